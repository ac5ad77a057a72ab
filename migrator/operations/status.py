"""What `migrator status` reports: where a plan's run stands, gathered read-only.

Three places know part of it, and each is asked separately so that one being down never hides
what the others know:

- the state store: the run, its phases, chunk progress, checkpoints (the mirrored CDC position
  among them) and the event log (errors, warnings);
- the target: the CDC checkpoint in its `_migrator` collection, written with the data (the
  authoritative applied position), and the collections' document counts;
- the source: the replication slot (retained WAL, confirmed position, whether a stream holds
  it) and the current WAL position, from which the lag in bytes follows.

Nothing here prints, writes to a database, or creates a state file: a plan without a state
file has no run, and its report says so. Where the state file to read was not named (--state,
MIGRATOR_STATE) and the default one holds no run, the target's ownership record says which run
owns the plan's data and where its state file is (adapters/mongodb/ownership.py): on the same
host that file is read, so that `status` finds a run from any directory; elsewhere the report
names it.
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from migrator.adapters.base import OwnerRecord, Positions, SourceAdapter, TargetAdapter
from migrator.adapters.registry import positions_for, source_for, target_for
from migrator.engine.events import (
    RunFinished,
    RunStarted,
    Throttled,
    ThrottleLifted,
    VerifyFinished,
    WriteFreeze,
)
from migrator.engine.throttle import CHUNK_ROWS, MAX_LAG, PAUSED
from migrator.errors import MigratorError
from migrator.phases.cutover import switched
from migrator.phases.lag import from_checkpoint
from migrator.plan.models import Plan
from migrator.plan.names import cdc_checkpoint_id
from migrator.redact import endpoint_of, redact_text, url_passwords
from migrator.state import CheckpointRecord, EventRecord, RunRecord, SQLiteStateStore, StateStore
from migrator.state.labels import CdcLabel, SnapshotLabel
from migrator.state.lease import is_held

VERIFY_EVENT = VerifyFinished.kind
RECENT_ERRORS = 10
RECENT_WARNINGS = 5
INTERRUPTED = "interrupted"  # a phase recorded running that no process works on
STATUS_TIMEOUT_MS = 3_000  # the target's server selection; a status must not hang on a dead server


@dataclass(frozen=True)
class EndpointStatus:
    """A database as status saw it. `endpoint` never carries a password; `reachable` is None
    when it was not asked (no run, or live=False)."""

    endpoint: str
    reachable: bool | None = None
    error: str | None = None


@dataclass(frozen=True)
class RunInfo:
    id: str
    status: str
    phase: str | None
    started_at: str
    ended_at: str | None


@dataclass(frozen=True)
class PhaseInfo:
    name: str
    status: str  # pending | running | done | failed | interrupted (recorded running, no process on it)
    started_at: str | None
    ended_at: str | None


@dataclass(frozen=True)
class CollectionProgress:
    """Snapshot progress of one collection: chunks (key ranges) and what the finished ones copied.
    `target_documents` is the target's estimated count now (None when not read)."""

    collection: str
    table: str
    chunks_total: int
    chunks_done: int
    chunks_running: int
    chunks_failed: int
    rows: int
    documents: int
    target_documents: int | None


@dataclass(frozen=True)
class SnapshotStatus:
    status: str  # the phase's status: pending | running | done | failed
    position: str | None  # the slot's consistent point: where CDC starts
    consistent_after: str | None  # once CDC passes it, the target is consistent (a reread moves it)
    chunks_total: int
    chunks_done: int
    rows: int
    documents: int
    collections: list[CollectionProgress]


@dataclass(frozen=True)
class SlotStatus:
    """The replication slot, read live from the source; None values: the source was not reached."""

    name: str
    exists: bool | None = None
    active: bool | None = None  # a stream (a running `migrator run`) holds it
    confirmed_position: str | None = None
    current_position: str | None = None  # the source's current WAL position
    retained_wal_bytes: int | None = None


@dataclass(frozen=True)
class CdcStatus:
    """Where replay stands. `applied_position` comes from the target's checkpoint
    (`applied_from: "target"`), or from the state store's mirror of it when the target could
    not be read (`"state store"`). Lag as phases/lag.py defines it: `lag_bytes`, WAL the source
    wrote after the applied (or the slot's confirmed) position; `lag_seconds`, now minus the
    source commit time of the newest applied transaction (`applied_commit_time`), 0 only when
    `caught_up` (the source wrote nothing since)."""

    status: str
    applied_position: str | None
    applied_at: str | None
    applied_age_seconds: float | None
    applied_from: str | None
    lag_bytes: int | None
    lag_seconds: float | None
    caught_up: bool | None
    applied_commit_time: str | None
    max_lag_seconds: float
    max_retained_wal_bytes: int
    slot: SlotStatus


@dataclass(frozen=True)
class CheckpointInfo:
    id: int
    phase: str
    label: str
    position: str | None
    created_at: str


@dataclass(frozen=True)
class ErrorInfo:
    seq: int
    at: str
    phase: str | None
    error: str
    message: str
    retrying: bool
    hint: str | None
    code: str | None = None  # SQLSTATE or MongoDB error code, as the server gave it
    cause: str | None = None  # the driver's exception class


@dataclass(frozen=True)
class WarningInfo:
    seq: int
    at: str
    message: str


@dataclass(frozen=True)
class VerifyInfo:
    """The last verify report the state store holds (`migrator verify` with an active run keeps
    it in the event log): `report` is that report as stored, field for field."""

    seq: int
    at: str
    report: dict[str, Any]


@dataclass(frozen=True)
class ThrottleStatus:
    """Live throttling (engine/throttle.py) as the run's event log and controls tell it.
    `throttled`: a running `migrator run` holds its work now (`phase`, `since`, `reasons`);
    `throttled_seconds`: time held so far in this run, the current hold included. `paused`,
    `chunk_rows`, `max_lag_seconds`: what `migrator throttle` set (None: the plan's setting),
    `controls_updated_at` when it last did; `file`: the plan's throttle file."""

    throttled: bool
    phase: str | None
    since: str | None
    reasons: list[str]
    throttled_seconds: float
    paused: bool
    chunk_rows: int | None
    max_lag_seconds: float | None
    controls_updated_at: str | None
    file: str | None


@dataclass(frozen=True)
class CutoverStatus:
    """Which side is primary, by the run's checkpoints (`target` once cut over, `source` before
    and after a rollback flipped the switch back); reverse sync's checkpoint on the source, read
    live (`reverse_applied_until`: the cluster time of the last target change it covers;
    `reverse_events`: change events covered since it started; None: none stored or the source
    was not reached); the last write freeze of each direction (`forward`: cutover, `back`:
    rollback after cutover), in ms."""

    primary: str
    reverse_sync: bool
    reverse_applied_until: str | None
    reverse_events: int | None
    last_freeze_ms: dict[str, float]


@dataclass(frozen=True)
class OwnerInfo:
    """The target's ownership record: which run owns the plan's data in the target database, and
    where from (host and state file; docs/architecture.md, "One owner")."""

    run_id: str
    started_at: str
    host: str
    state: str
    slot: str
    publication_created: bool | None


@dataclass(frozen=True)
class StatusReport:
    """Everything `migrator status` shows; `to_dict()` is the `--json` form (README documents
    its fields). `run` is None when the plan has no run: then `message` says so."""

    plan: str
    state: str
    at: str
    run: RunInfo | None
    message: str | None
    source: EndpointStatus
    target: EndpointStatus
    phases: list[PhaseInfo] = field(default_factory=list)
    snapshot: SnapshotStatus | None = None
    cdc: CdcStatus | None = None
    last_checkpoint: CheckpointInfo | None = None
    errors: list[ErrorInfo] = field(default_factory=list)
    warnings: list[WarningInfo] = field(default_factory=list)
    verify: VerifyInfo | None = None
    history: list[CheckpointInfo] | None = None
    throttle: ThrottleStatus | None = None
    cutover: CutoverStatus | None = None
    owner: OwnerInfo | None = None  # the target's ownership record (None: none, or not read)
    state_from: str = "default"  # how the state file was chosen: given | default | owner record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(value: datetime.datetime) -> str:
    if value.tzinfo is None:  # pymongo without tz_aware: BSON dates are UTC
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).isoformat(timespec="milliseconds")


def _parse_time(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def _checkpoint(record: CheckpointRecord) -> CheckpointInfo:
    return CheckpointInfo(record.id, record.phase, record.label, record.position or None, record.created_at)


class StatusReader:
    """Gathers a `StatusReport` for one plan. Read-only; one instance per report."""

    def __init__(self, plan: Plan, state_path: Path, *, live: bool = True) -> None:
        self.plan = plan
        self.state_path = state_path
        self.live = live
        self._source_url = plan.source.url.get_secret_value()
        self._target_url = plan.target.url.get_secret_value()
        self._secrets = url_passwords(self._source_url, self._target_url)
        self._positions: Positions = positions_for(plan.source.adapter)

    def _clean(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _source(self) -> SourceAdapter:
        """The plan's source adapter (it connects on first use; close it)."""
        return source_for(self.plan.source.adapter, self._source_url)

    def _target(self) -> TargetAdapter:
        """The plan's target adapter, with a short server selection timeout (close it)."""
        return target_for(
            self.plan.target.adapter,
            self._target_url,
            self.plan.target.database,
            timeout_ms=STATUS_TIMEOUT_MS,
        )

    def _source_name(self) -> str:
        try:
            source = self._source()
        except MigratorError:
            return endpoint_of(self._source_url)
        source.close()
        return source.name

    def read(self, *, history: bool = False, explicit: bool = False) -> StatusReport:
        """The report; `explicit`: the state file was named (--state, MIGRATOR_STATE), so the
        ownership record is only reported, never followed to another file."""
        at = _now().isoformat(timespec="milliseconds")
        source = EndpointStatus(self._source_name())
        target = EndpointStatus(f"{endpoint_of(self._target_url)} database {self.plan.target.database}")
        owner = self._read_owner() if self.live else None
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
        with SQLiteStateStore(self.state_path) as store:
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
            with SQLiteStateStore(path) as store:
                return bool(store.runs(self.plan.name))
        except MigratorError:
            return False

    def _read_owner(self) -> OwnerRecord | None:
        """The ownership record, or None when there is none or the target cannot be read (the
        target's section of the report says so)."""
        target = self._target()
        try:
            return target.ownership(self.plan.name).read()
        except MigratorError:
            return None
        finally:
            target.close()

    @staticmethod
    def _current_run_of(runs: Sequence[RunRecord]) -> RunRecord | None:
        active = [r for r in runs if r.status == "active"]
        return active[-1] if active else (runs[-1] if runs else None)

    def _current_run(self, store: StateStore) -> RunRecord | None:
        return self._current_run_of(store.runs(self.plan.name))

    def _report(
        self,
        store: StateStore,
        run: RunRecord,
        at: str,
        source: EndpointStatus,
        target: EndpointStatus,
        history: bool,
    ) -> StatusReport:
        # Read around the phases: a `migrator run` that started and never finished (no
        # run.finished after its run.started: a clean stop records one, CDC then stays "running"
        # by design) with no process on the run before and after was interrupted (kill -9, a
        # lost machine); the next `migrator run` resumes it.
        held_before = is_held(self.state_path, self.plan.name)
        recorded = store.phases(run.id)
        events = store.events(run.id)
        gone = (
            held_before is False and _unfinished(events) and is_held(self.state_path, self.plan.name) is False
        )
        phases = [
            PhaseInfo(
                p.name, INTERRUPTED if gone and p.status == "running" else p.status, p.started_at, p.ended_at
            )
            for p in recorded
        ]
        phase_status = {p.name: p.status for p in phases}
        checkpoints = store.checkpoints(run.id)

        target_counts: dict[str, int] | None = None
        applied: dict[str, Any] | None = None
        slot = SlotStatus(run.slot)
        if self.live:
            target, target_counts, applied = self._read_target(target)
            source, slot = self._read_source(source, slot)

        return StatusReport(
            plan=self.plan.name,
            state=str(self.state_path),
            at=at,
            run=RunInfo(run.id, run.status, run.phase, run.started_at, run.ended_at),
            message=None,
            source=source,
            target=target,
            phases=phases,
            snapshot=self._snapshot(store, run, phase_status.get("snapshot", "pending"), target_counts),
            cdc=self._cdc(checkpoints, phase_status.get("cdc", "pending"), target, applied, slot),
            last_checkpoint=_checkpoint(checkpoints[-1]) if checkpoints else None,
            errors=self._errors(events),
            warnings=self._warnings(events),
            verify=self._verify(events),
            history=[_checkpoint(c) for c in checkpoints] if history else None,
            throttle=self._throttle(store, run, events),
            cutover=self._cutover(store, run, events),
        )

    def _cutover(self, store: StateStore, run: RunRecord, events: Sequence[EventRecord]) -> CutoverStatus:
        freezes: dict[str, float] = {}
        for e in events:
            if e.kind == WriteFreeze.kind:
                freezes[str(e.payload.get("direction"))] = float(e.payload.get("freeze_ms") or 0.0)
        applied_until: str | None = None
        reverse_events: int | None = None
        if self.live:
            try:
                source = self._source()
                try:
                    checkpoint = source.reverse_checkpoint(self.plan.name)
                finally:
                    source.close()
            except MigratorError:
                checkpoint = None  # the source section says whether it was reached
            if checkpoint is not None:
                reverse_events = checkpoint.events
                if checkpoint.cluster_time is not None:
                    applied_until = _iso(
                        datetime.datetime.fromtimestamp(checkpoint.cluster_time >> 32, datetime.UTC)
                    )
        return CutoverStatus(
            primary="target" if switched(store, run.id) else "source",
            reverse_sync=self.plan.phases.cutover.reverse_sync,
            reverse_applied_until=applied_until,
            reverse_events=reverse_events,
            last_freeze_ms=freezes,
        )

    # -- live reads ------------------------------------------------------------------------------

    def _read_target(
        self, status: EndpointStatus
    ) -> tuple[EndpointStatus, dict[str, int] | None, dict[str, Any] | None]:
        target = self._target()
        try:
            applied = target.checkpoint_record(cdc_checkpoint_id(self.plan.name))
            counts = target.existing_collections()
        except MigratorError as exc:
            return EndpointStatus(status.endpoint, False, self._clean(exc.message)), None, None
        finally:
            target.close()
        return EndpointStatus(status.endpoint, True), counts, applied

    def _read_source(self, status: EndpointStatus, slot: SlotStatus) -> tuple[EndpointStatus, SlotStatus]:
        try:
            source = self._source()
            try:
                monitor = source.monitor()
                try:
                    state = monitor.state(slot.name)
                finally:
                    monitor.close()
            finally:
                source.close()
        except MigratorError as exc:
            return EndpointStatus(status.endpoint, False, self._clean(exc.message)), slot
        reached = EndpointStatus(status.endpoint, True)
        if state is None:  # before the snapshot created it, or after a rollback dropped it
            return reached, SlotStatus(slot.name, exists=False)
        return reached, SlotStatus(
            slot.name,
            exists=True,
            active=bool(state["active"]),
            confirmed_position=state["confirmed"],
            current_position=state["current"],
            retained_wal_bytes=int(state["retained_bytes"]),
        )

    # -- sections --------------------------------------------------------------------------------

    def _snapshot(
        self,
        store: StateStore,
        run: RunRecord,
        status: str,
        target_counts: dict[str, int] | None,
    ) -> SnapshotStatus:
        checkpoints = store.checkpoints(run.id, "snapshot")
        by_label: dict[str, CheckpointRecord] = {}
        for c in checkpoints:
            by_label[c.label] = c  # the latest of each label
        planned: dict[str, int] = (
            dict(by_label[SnapshotLabel.PLANNED].detail.get("chunks", {}))
            if SnapshotLabel.PLANNED in by_label
            else {}
        )
        chunks = store.chunks(run.id)
        collections = []
        for mapping in self.plan.collections:
            total = planned.get(mapping.name, 0)
            mine = [c for c in chunks if c.table == mapping.name and c.chunk_id < total]
            done = [c for c in mine if c.status == "done"]
            collections.append(
                CollectionProgress(
                    collection=mapping.name,
                    table=mapping.table,
                    chunks_total=total,
                    chunks_done=len(done),
                    chunks_running=sum(1 for c in mine if c.status == "running"),
                    chunks_failed=sum(1 for c in mine if c.status == "failed"),
                    rows=sum(c.rows_read for c in done),
                    documents=sum(c.docs_written for c in done),
                    target_documents=None if target_counts is None else target_counts.get(mapping.name, 0),
                )
            )
        slot = by_label.get(SnapshotLabel.SLOT)
        done_checkpoint = by_label.get(SnapshotLabel.DONE)
        consistent_after: str | None = None
        if done_checkpoint is not None:
            consistent_after = str(done_checkpoint.detail.get("consistent_after") or done_checkpoint.position)
        elif SnapshotLabel.REREAD in by_label and slot is not None:
            consistent_after = max(
                [slot.position] + [c.position for c in checkpoints if c.label == SnapshotLabel.REREAD],
                key=self._positions.parse,
            )
        return SnapshotStatus(
            status=status,
            position=slot.position if slot is not None else None,
            consistent_after=consistent_after,
            chunks_total=sum(c.chunks_total for c in collections),
            chunks_done=sum(c.chunks_done for c in collections),
            rows=sum(c.rows for c in collections),
            documents=sum(c.documents for c in collections),
            collections=collections,
        )

    def _cdc(
        self,
        checkpoints: Sequence[CheckpointRecord],
        status: str,
        target: EndpointStatus,
        applied: dict[str, Any] | None,
        slot: SlotStatus,
    ) -> CdcStatus:
        position: str | None = None
        applied_at: datetime.datetime | None = None
        applied_from: str | None = None
        mirrored: dict[str, Any] = {}
        if applied is not None:
            position = str(applied.get("position_text") or "") or None
            if position is None and applied.get("position") is not None:
                position = self._positions.text(int(applied["position"]))
            if isinstance(applied.get("updated_at"), datetime.datetime):
                applied_at = applied["updated_at"]
            applied_from = "target" if position is not None else None
        if position is None and not target.reachable:
            mirrors = [c for c in checkpoints if c.phase == "cdc" and c.label == CdcLabel.APPLIED]
            if mirrors:
                position = mirrors[-1].position
                applied_at = _parse_time(mirrors[-1].created_at)
                applied_from = "state store"
                mirrored = dict(mirrors[-1].detail)
        age = None if applied_at is None else max(0.0, (_now() - _aware(applied_at)).total_seconds())
        # Lag as phases/lag.py defines it, from the checkpoint record (or its mirror) and the slot.
        record: dict[str, Any] | None = None
        if position is not None:
            record = dict(applied) if applied_from == "target" and applied is not None else dict(mirrored)
            record["position"] = self._positions.parse(position)
        lag = from_checkpoint(
            record,
            now=_now().timestamp(),
            confirmed_position=None
            if slot.confirmed_position is None
            else self._positions.parse(slot.confirmed_position),
            current_position=None
            if slot.current_position is None
            else self._positions.parse(slot.current_position),
        )
        known = position is not None and slot.current_position is not None
        settings = self.plan.phases.cdc
        return CdcStatus(
            status=status,
            applied_position=position,
            applied_at=None if applied_at is None else _iso(applied_at),
            applied_age_seconds=None if age is None else round(age, 3),
            applied_from=applied_from,
            lag_bytes=lag.bytes if known else None,
            lag_seconds=lag.seconds if known else None,
            caught_up=lag.caught_up if known else None,
            applied_commit_time=lag.to_dict()["applied_commit_time"],
            max_lag_seconds=float(settings.max_lag),
            max_retained_wal_bytes=int(settings.max_retained_wal),
            slot=slot,
        )

    def _throttle(self, store: StateStore, run: RunRecord, events: Sequence[EventRecord]) -> ThrottleStatus:
        controls = store.controls(run.id)
        values = {c.name: c.value for c in controls}
        held = 0.0
        current: EventRecord | None = None
        for event in events:
            if event.kind == ThrottleLifted.kind:
                held += float(event.payload.get("seconds") or 0.0)
                current = None
            elif event.kind == Throttled.kind:
                current = event
            elif event.kind in (RunStarted.kind, RunFinished.kind):
                current = None  # a run that ended (or died) while throttled holds nothing now
        since: datetime.datetime | None = None
        if current is not None:
            since = datetime.datetime.fromtimestamp(float(current.payload.get("since") or 0.0), datetime.UTC)
            held += max(0.0, (_now() - since).total_seconds())
        chunk_rows, max_lag = values.get(CHUNK_ROWS), values.get(MAX_LAG)
        return ThrottleStatus(
            throttled=current is not None,
            phase=None if current is None else str(current.payload.get("phase")),
            since=None if since is None else _iso(since),
            reasons=[self._clean(str(r)) for r in (current.payload.get("reasons", []) if current else [])],
            throttled_seconds=round(held, 3),
            paused=bool(values.get(PAUSED, False)),
            chunk_rows=None if chunk_rows is None else int(chunk_rows),
            max_lag_seconds=None if max_lag is None else float(max_lag),
            controls_updated_at=max((c.updated_at for c in controls), default=None),
            file=self.plan.phases.throttle.file,
        )

    def _errors(self, events: Sequence[EventRecord]) -> list[ErrorInfo]:
        found = [e for e in events if e.kind == "error"][-RECENT_ERRORS:]
        return [
            ErrorInfo(
                seq=e.seq,
                at=e.ts,
                phase=e.payload.get("phase"),
                error=str(e.payload.get("error", "")),
                message=self._clean(str(e.payload.get("message", ""))),
                retrying=bool(e.payload.get("retrying", False)),
                hint=None if e.payload.get("hint") is None else self._clean(str(e.payload["hint"])),
                code=None if e.payload.get("code") is None else str(e.payload["code"]),
                cause=None if e.payload.get("cause") is None else str(e.payload["cause"]),
            )
            for e in reversed(found)
        ]

    @staticmethod
    def _verify(events: Sequence[EventRecord]) -> VerifyInfo | None:
        for event in reversed(events):
            if event.kind == VERIFY_EVENT and isinstance(event.payload.get("report"), dict):
                return VerifyInfo(event.seq, event.ts, event.payload["report"])
        return None

    def _warnings(self, events: Sequence[EventRecord]) -> list[WarningInfo]:
        found = [e for e in events if e.kind == "notice" and e.payload.get("level") == "warn"][
            -RECENT_WARNINGS:
        ]
        return [
            WarningInfo(e.seq, e.ts, self._clean(str(e.payload.get("message", "")))) for e in reversed(found)
        ]


def _unfinished(events: Sequence[EventRecord]) -> bool:
    """Whether the last `migrator run` of these events started and recorded no end."""
    ends = [e.kind for e in events if e.kind in (RunStarted.kind, RunFinished.kind)]
    return bool(ends) and ends[-1] == RunStarted.kind


def _aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


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


__all__ = [
    "CdcStatus",
    "CheckpointInfo",
    "CollectionProgress",
    "EndpointStatus",
    "ErrorInfo",
    "OwnerInfo",
    "PhaseInfo",
    "RunInfo",
    "SlotStatus",
    "SnapshotStatus",
    "StatusReport",
    "ThrottleStatus",
    "VerifyInfo",
    "WarningInfo",
    "gather",
]
