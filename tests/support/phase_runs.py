"""Running the real phases by hand in a test (no `migrator run`): a run begun in the state store
and claimed on the target, and CDC followed until caught up, bounded so that a phase that does not
return fails the test instead of hanging it."""

from __future__ import annotations

import threading
from typing import Any

from migrator.adapters.base import TargetAdapter
from migrator.engine.context import RunContext
from migrator.phases.cdc import CdcPhase
from migrator.state import SQLiteStateStore
from migrator.state.store import RunRecord

FOLLOW_LIMIT_S = 180


def claimed_run(
    store: SQLiteStateStore, target: TargetAdapter, plan_name: str, *, run_id: str | None = None, slot: str
) -> RunRecord:
    """A run of `plan_name` begun in `store` and claimed on `target`, as `migrator run` records one."""
    run = store.begin_run(plan_name, "digest", run_id=run_id, slot=slot)
    target.ownership(plan_name).claim(
        run_id=run.id,
        started_at="2026-01-01T00:00:00Z",
        host="test",
        state="test",
        slot=run.slot,
        publication="p",
    )
    return run


def follow_until_caught_up(ctx: RunContext) -> Any:
    stop = threading.Event()
    timer = threading.Timer(FOLLOW_LIMIT_S, stop.set)  # a safety net only: the phase ends when caught up
    timer.start()
    try:
        return CdcPhase(ctx, stop=stop, until="caught-up").run()
    finally:
        timer.cancel()
