"""Ending what a killed process of the run left open on the target, once this one owns the run.

Called by every command that takes a run over to write (run, cutover, rollback, finish) once it
holds the run's lease and the target's ownership record names the run, so that a live owner's
sessions are never touched (docs/architecture.md, "Transactions a killed process left open").
"""

from __future__ import annotations

import threading

from migrator.adapters.base import TargetAdapter
from migrator.engine.events import EventBus, Notice
from migrator.engine.retry import retrying


def end_abandoned(
    target: TargetAdapter, plan_name: str, run_id: str, events: EventBus, stop: threading.Event | None = None
) -> int:
    """The target's `end_abandoned`, retried on transient errors; a notice says what it ended, or
    why it could not. Returns how many sessions were ended."""
    found = retrying(
        lambda: target.end_abandoned(plan_name, run_id),
        what="ending the target sessions an earlier process of the run left",
        events=events,
        stop=stop,
    )
    if found.refused:
        events.emit(Notice("warn", found.refused))
    elif found.ended:
        events.emit(
            Notice(
                "info",
                f"ended {found.ended} target session(s) that an earlier process of run {run_id} wrote in: "
                "a transaction one of them left open (a crash) is aborted and no longer holds its documents",
            )
        )
    return found.ended
