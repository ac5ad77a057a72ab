"""Gathers a `StatusReport` for one plan: the state store first, then the live reads
(operations/status/live.py), section by section (snapshot.py, cdc.py, events.py)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from migrator.adapters.base import OwnerRecord, Positions
from migrator.adapters.registry import positions_for, vocabulary_for
from migrator.errors import MigratorError
from migrator.operations.session import open_state_store
from migrator.operations.status import events as log
from migrator.operations.status.cdc import cdc_status
from migrator.operations.status.live import LiveReads
from migrator.operations.status.report import (
    CheckpointInfo,
    CutoverStatus,
    EndpointStatus,
    OwnerInfo,
    PhaseInfo,
    RunInfo,
    SlotStatus,
    StatusReport,
)
from migrator.operations.status.snapshot import snapshot_status
from migrator.operations.status.times import iso, now
from migrator.phases.cutover import switched
from migrator.plan.models import Plan
from migrator.state import CheckpointRecord, EventRecord, RunRecord, StateStore
from migrator.state.lease import is_held

INTERRUPTED = "interrupted"  # a phase recorded running that no process works on


class StatusReader:
    """Gathers a `StatusReport` for one plan. Read-only; one instance per report."""

    def __init__(self, plan: Plan, state_path: Path, *, live: bool = True) -> None:
        self.plan = plan
        self.state_path = state_path
        self.live = live
        self._reads = LiveReads(plan)
        self._positions: Positions = positions_for(plan.source.adapter)
        self._vocabulary = vocabulary_for(plan.source.adapter)

    def read(self, *, history: bool = False, explicit: bool = False) -> StatusReport:
        """The report; `explicit`: the state file was named (--state, MIGRATOR_STATE), so the
        ownership record is only reported, never followed to another file."""
        at = iso(now())
        source = self._reads.source_endpoint()
        target = self._reads.target_endpoint()
        owner = self._reads.owner() if self.live else None
        state_from = "given" if explicit else "default"
        if not explicit and owner is not None and not self._has_run(self.state_path):
            found = Path(owner.state)
            if owner.host == socket.gethostname() and found != self.state_path and self._has_run(found):
                self.state_path, state_from = found, "owner record"
        if not self.state_path.exists():
            message = (
                f"no run of plan {self.plan.name}: there is no state file {self.state_path} "
                "(`migrator run` starts one; --state or MIGRATOR_STATE name another file)"
            )
            return self._no_run(at, source, target, message + self._owner_note(owner), owner, state_from)
        with open_state_store(self.state_path) as store:
            run = self._current_run(store)
            if run is None:
                message = f"no run of plan {self.plan.name} in {self.state_path} (`migrator run` starts one)"
                return self._no_run(at, source, target, message + self._owner_note(owner), owner, state_from)
            report = self._report(store, run, at, source, target, history)
        return replace(report, owner=_owner_info(owner), state_from=state_from)

    def _no_run(
        self,
        at: str,
        source: EndpointStatus,
        target: EndpointStatus,
        message: str,
        owner: OwnerRecord | None,
        state_from: str,
    ) -> StatusReport:
        return StatusReport(
            self.plan.name,
            str(self.state_path),
            at,
            None,
            message,
            source,
            target,
            owner=_owner_info(owner),
            state_from=state_from,
        )

    def _owner_note(self, owner: OwnerRecord | None) -> str:
        if owner is None:
            return ""
        return (
            f"; the target's ownership record names {owner.describe()}: "
            f"`migrator status PLAN --state {owner.state}`"
            + ("" if owner.host == socket.gethostname() else f" on host {owner.host}")
        )

    def _has_run(self, path: Path) -> bool:
        if not path.is_file():
            return False
        try:
            with open_state_store(path) as store:
                return bool(store.runs(self.plan.name))
        except MigratorError:
            return False

    @staticmethod
    def _current_run_of(runs: Sequence[RunRecord]) -> RunRecord | None:
        active = [r for r in runs if r.status == "active"]
        return active[-1] if active else (runs[-1] if runs else None)

    def _current_run(self, store: StateStore) -> RunRecord | None:
        return self._current_run_of(store.runs(self.plan.name))

    def _phases(self, store: StateStore, run: RunRecord) -> tuple[list[PhaseInfo], list[EventRecord]]:
        """The phases as recorded (a phase no process works on any more is INTERRUPTED), and the
        run's event log."""
        # Read around the phases: a `migrator run` that started and never finished (no
        # run.finished after its run.started: a clean stop records one, CDC then stays "running"
        # by design) with no process on the run before and after was interrupted (kill -9, a
        # lost machine); the next `migrator run` resumes it.
        held_before = is_held(self.state_path, self.plan.name)
        recorded = store.phases(run.id)
        events = store.events(run.id)
        gone = (
            held_before is False
            and log.unfinished(events)
            and is_held(self.state_path, self.plan.name) is False
        )
        phases = [
            PhaseInfo(
                p.name, INTERRUPTED if gone and p.status == "running" else p.status, p.started_at, p.ended_at
            )
            for p in recorded
        ]
        return phases, events

    def _report(
        self,
        store: StateStore,
        run: RunRecord,
        at: str,
        source: EndpointStatus,
        target: EndpointStatus,
        history: bool,
    ) -> StatusReport:
        phases, events = self._phases(store, run)
        phase_status = {p.name: p.status for p in phases}
        checkpoints = store.checkpoints(run.id)

        target_counts: dict[str, int] | None = None
        applied = None
        slot = SlotStatus(run.slot)
        if self.live:
            target, target_counts, applied = self._reads.target(target)
            source, slot = self._reads.source(source, slot)

        clean = self._reads.clean
        return StatusReport(
            plan=self.plan.name,
            state=str(self.state_path),
            at=at,
            run=RunInfo(run.id, run.status, run.phase, run.started_at, run.ended_at),
            message=None,
            source=source,
            target=target,
            phases=phases,
            snapshot=snapshot_status(
                self.plan, store, run, phase_status.get("snapshot", "pending"), target_counts, self._positions
            ),
            cdc=cdc_status(
                self.plan,
                checkpoints,
                phase_status.get("cdc", "pending"),
                target,
                applied,
                slot,
                self._positions,
                self._vocabulary,
            ),
            last_checkpoint=_checkpoint(checkpoints[-1]) if checkpoints else None,
            errors=log.errors(events, clean),
            warnings=log.warnings(events, clean),
            verify=log.last_verify(events),
            history=[_checkpoint(c) for c in checkpoints] if history else None,
            throttle=log.throttle_status(self.plan, store, run, events, clean),
            cutover=self._cutover(store, run, events),
        )

    def _cutover(self, store: StateStore, run: RunRecord, events: Sequence[EventRecord]) -> CutoverStatus:
        applied_until, reverse_events = self._reads.reverse() if self.live else (None, None)
        return CutoverStatus(
            primary="target" if switched(store, run.id) else "source",
            reverse_sync=self.plan.phases.cutover.reverse_sync,
            reverse_applied_until=applied_until,
            reverse_events=reverse_events,
            last_freeze_ms=log.freezes(events),
        )


def _checkpoint(record: CheckpointRecord) -> CheckpointInfo:
    return CheckpointInfo(record.id, record.phase, record.label, record.position or None, record.created_at)


def _owner_info(owner: OwnerRecord | None) -> OwnerInfo | None:
    if owner is None:
        return None
    created = owner.facts.get("publication_created")
    return OwnerInfo(
        run_id=owner.run_id,
        started_at=owner.started_at,
        host=owner.host,
        state=owner.state,
        slot=owner.slot,
        publication_created=None if created is None else bool(created),
    )


def gather(
    plan: Plan, state_path: Path, *, history: bool = False, live: bool = True, explicit: bool = False
) -> StatusReport:
    """The status of `plan`'s current run (its active run, else its latest) in `state_path`;
    unless `explicit`, a run the target's ownership record locates on this host is found too."""
    return StatusReader(plan, state_path, live=live).read(history=history, explicit=explicit)
