"""What `migrator status` reports, section by section; `StatusReport.to_dict()` is the `--json`
form (docs/operations.md documents its fields)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from migrator.operations.status.times import parse_time
from migrator.timestamps import utc_text


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
    """The run's slot (a replication slot, a binlog stream: CdcStatus.stream names it), read live
    from the source; None values: the source was not reached. `retained_wal_bytes` keeps its name
    whatever the source (a field of the --json contract): the change log the slot holds back."""

    name: str
    exists: bool | None = None
    active: bool | None = None  # a stream (a running `migrator run`) holds it
    confirmed_position: str | None = None
    current_position: str | None = None  # the source's current position in its change log
    retained_wal_bytes: int | None = None


@dataclass(frozen=True)
class CdcStatus:
    """Where replay stands. `applied_position` comes from the target's checkpoint
    (`applied_from: "target"`), or from the state store's mirror of it when the target could
    not be read (`"state store"`). Lag as phases/lag.py defines it: `lag_bytes`, change log the
    source wrote after the applied (or the slot's confirmed) position; `lag_seconds`, now minus the
    source commit time of the newest applied transaction (`applied_commit_time`), 0 only when
    `caught_up` (the source wrote nothing since). `stream` and `change_log` are the source's words
    for its slot and its change log ("replication slot" and "WAL", "binlog stream" and "binlog":
    adapters/vocabulary.py), for whoever renders the report."""

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
    stream: str
    change_log: str


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
    """Everything `migrator status` shows; `to_dict()` is the `--json` form (docs/operations.md documents
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
        """The `--json` form: every moment named `ts` (or `..._at`, `since`) and written as
        RFC 3339 UTC with `Z` (docs/json.md, "Timestamps"), whatever form the state store kept."""
        contract = _contract(asdict(self))
        assert isinstance(contract, dict)
        return contract


def _contract(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {("ts" if k == "at" else k): _contract(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_contract(v) for v in value]
    if isinstance(value, str) and (key in ("at", "since") or key.endswith("_at")):
        try:
            return utc_text(parse_time(value))
        except ValueError:
            return value
    return value
