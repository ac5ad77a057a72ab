"""Typed events. The engine emits them; the CLI renders them; the state store keeps them.

The library never prints: progress, lineage and warnings all travel as events, and
whoever runs the engine decides what to show (rich bars, plain lines, JSON lines).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from migrator.errors import MigratorError
from migrator.redact import redact_text
from migrator.timestamps import utc_text


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    # Whether the event belongs in the state store's event log (lineage and history) or is
    # only for people watching (frequent progress ticks).
    durable: ClassVar[bool] = True
    at: float = field(default_factory=time.time, kw_only=True)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("at", None)
        return data

    def to_dict(self) -> dict[str, Any]:
        # `ts`: RFC 3339 UTC, as in log lines and status (docs/json.md, "Timestamps").
        return {"event": self.kind, "ts": utc_text(self.at), **self.payload()}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run.started"
    run_id: str
    plan: str
    resumed: bool
    state: str = ""  # the state file that holds the run


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run.finished"
    run_id: str
    status: str
    stopped_after: str


@dataclass(frozen=True)
class PhaseStarted(Event):
    kind: ClassVar[str] = "phase.started"
    phase: str
    resumed: bool


@dataclass(frozen=True)
class PhaseFinished(Event):
    kind: ClassVar[str] = "phase.finished"
    phase: str
    seconds: float


@dataclass(frozen=True)
class SlotCreated(Event):
    kind: ClassVar[str] = "snapshot.slot_created"
    slot: str
    publication: str
    position: str
    publication_created: bool  # False: the publication existed (reused; rollback keeps it)
    # The source's words (adapters/vocabulary.py), so that whoever renders the event needs no
    # adapter: the capture objects named ("publication p") and the slot's noun ("binlog stream").
    capture: str
    stream: str


@dataclass(frozen=True)
class SnapshotOpened(Event):
    """Copy workers read at this point; `reread` means an older snapshot could not be imported."""

    kind: ClassVar[str] = "snapshot.opened"
    position: str
    reread: bool


@dataclass(frozen=True)
class TablePlanned(Event):
    kind: ClassVar[str] = "snapshot.table_planned"
    collection: str
    table: str
    estimated_rows: int
    chunks: int
    chunks_done: int
    rows_done: int  # source rows read, embedded ones included
    docs_done: int = 0  # documents written: what the progress bar counts against estimated_rows


@dataclass(frozen=True)
class ChunkFinished(Event):
    """Lineage of one copied key range."""

    kind: ClassVar[str] = "snapshot.chunk_finished"
    collection: str
    table: str
    chunk_id: int
    lo: Any
    hi: Any
    position: str
    rows_read: int
    docs_written: int
    replaced: int
    attempt: int
    seconds: float
    # The wire format the chunk moved in undecoded ("" for documents): docs/architecture.md,
    # "Undecoded copy".
    form: str = ""


@dataclass(frozen=True)
class SchemaObjectBuilt(Event):
    """A secondary index or constraint built on the target after the copy (or found built)."""

    kind: ClassVar[str] = "snapshot.schema_object"
    table: str
    name: str
    object_kind: str  # index, constraint, foreign_key
    ran: bool  # False: the target had it already (a resumed run)
    seconds: float


@dataclass(frozen=True)
class RowsCopied(Event):
    """Progress tick within a chunk, for live displays only."""

    kind: ClassVar[str] = "snapshot.rows"
    durable: ClassVar[bool] = False
    collection: str
    rows: int
    docs: int


@dataclass(frozen=True)
class DocumentSkipped(Event):
    kind: ClassVar[str] = "snapshot.document_skipped"
    collection: str
    key: Any
    bytes: int
    reason: str


@dataclass(frozen=True)
class CdcProgress(Event):
    """Where replay stands: for live displays and lag monitoring. The lag is phases/lag.py's:
    `lag_seconds` the age of the newest durably applied commit (0 only while `caught_up`; None
    while nothing is known), `lag_bytes` the source's change log after the applied position,
    `retained_wal_bytes` (a field name kept for its readers, whatever the source) what the slot
    holds back. `stream` and `change_log` are the source's words for them (adapters/vocabulary.py)."""

    kind: ClassVar[str] = "cdc.progress"
    durable: ClassVar[bool] = False
    position: str
    transactions: int
    changes: int
    lag_bytes: int
    lag_seconds: float | None
    retained_wal_bytes: int
    caught_up: bool = False
    stream: str = "slot"
    change_log: str = "change log"


@dataclass(frozen=True)
class BatchApplied(Event):
    """A batch of source transactions is durable on the target; `lag_ms` per transaction,
    from its source commit to now (both clocks are the machines' wall clocks)."""

    kind: ClassVar[str] = "cdc.batch_applied"
    durable: ClassVar[bool] = False
    position: str
    transactions: int
    changes: int
    writes: int
    lag_ms: list[float]
    commit_time: float | None = None  # the newest transaction's source commit time (epoch s)


@dataclass(frozen=True)
class BatchLimitChanged(Event):
    """CDC's batch limit (writes per target transaction) changed: halved after the target aborted a
    batch's transaction (`reason` says how), or grown back towards the plan's `ceiling`
    (phases.cdc.batch_changes) after batches that went through (phases/batch_size.py)."""

    kind: ClassVar[str] = "cdc.batch_limit"
    previous: int
    limit: int
    ceiling: int
    reason: str | None = None  # the error that shrank it; None when it grew


@dataclass(frozen=True)
class VerifyProgress(Event):
    """A key range of a collection compared (counts are the range's own)."""

    kind: ClassVar[str] = "verify.progress"
    durable: ClassVar[bool] = False
    collection: str
    position: str  # the source position the range was read at
    checked: int
    equal: int
    differing: int  # keys that go on to rechecks


@dataclass(frozen=True)
class VerifyFinished(Event):
    """A verify pass ended: the report `status` and the runbook show, and the cutover gate reads."""

    kind: ClassVar[str] = "verify.finished"
    report: dict[str, Any]


@dataclass(frozen=True)
class DualWriteDivergence(Event):
    """cdc.apply: false: after the grace period the target did not hold the document the source
    maps to, and the source had not changed it since. `difference`: 'missing' (in the target),
    'extra' (the source has none) or 'mismatched' with `diffs` (compare.FieldDiff dicts);
    `position`: the source commit (end position) whose check found it."""

    kind: ClassVar[str] = "dualwrite.divergence"
    collection: str
    id: Any  # the _id as relaxed extended JSON
    difference: str
    diffs: list[dict[str, str]]
    position: str


@dataclass(frozen=True)
class DualWriteProgress(Event):
    """cdc.apply: false: the dual-write oracle's counts so far (`summary` once, when CDC stops).
    checked = equal + diverged; superseded: differed, but the source changed again (that change
    is checked on its own); skipped: not checked (queue full, TRUNCATE, errors)."""

    kind: ClassVar[str] = "dualwrite.progress"
    durable: ClassVar[bool] = False
    transactions: int
    checked: int
    equal: int
    diverged: int
    superseded: int
    skipped: int
    pending: int
    rate: float  # diverged / checked


@dataclass(frozen=True)
class DualWriteSummary(DualWriteProgress):
    kind: ClassVar[str] = "dualwrite.summary"
    durable: ClassVar[bool] = True


@dataclass(frozen=True)
class Throttled(Event):
    """Work of `phase` is held (engine/throttle.py): emitted when throttling starts and again when
    its reasons change; `since` is the wall time it started."""

    kind: ClassVar[str] = "throttle.started"
    phase: str
    reasons: list[str]
    since: float


@dataclass(frozen=True)
class ThrottleLifted(Event):
    """Throttling ended (or the phase stopped while throttled): `seconds` held this time,
    `total_seconds` held by this process's run so far."""

    kind: ClassVar[str] = "throttle.lifted"
    phase: str
    seconds: float
    total_seconds: float


@dataclass(frozen=True)
class ThrottleProgress(Event):
    """While throttled, at every check: for live displays and metrics."""

    kind: ClassVar[str] = "throttle.progress"
    durable: ClassVar[bool] = False
    phase: str
    reasons: list[str]
    seconds: float
    total_seconds: float


@dataclass(frozen=True)
class ControlsChanged(Event):
    """`migrator throttle` changed run-time controls: `changes` as given (None: back to the
    plan's setting), `controls` all in force afterwards."""

    kind: ClassVar[str] = "throttle.controls"
    changes: dict[str, Any]
    controls: dict[str, Any]


@dataclass(frozen=True)
class Notice(Event):
    kind: ClassVar[str] = "notice"
    level: str  # 'info' | 'warn'
    message: str


@dataclass(frozen=True)
class ErrorRaised(Event):
    """An error met by a phase: `retrying` when it is retried (a lost connection), else the phase
    stops with it. `error` is the error's class (ConnectionFailed, SourceError, ...): what metrics
    count by and what `migrator status` lists. `message` is already free of secrets."""

    kind: ClassVar[str] = "error"
    phase: str
    error: str
    message: str
    retrying: bool
    hint: str | None = None
    code: str | None = None  # the server's: SQLSTATE or MongoDB error code
    cause: str | None = None  # the driver's exception class the error classifies

    @classmethod
    def of(cls, phase: str, exc: BaseException, *, retrying: bool) -> ErrorRaised:
        # An unexpected error keeps its type: `KeyError: 'int'`, never a bare `'int'`.
        message = (
            exc.message
            if isinstance(exc, MigratorError)
            else (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        )
        hint = exc.hint if isinstance(exc, MigratorError) else None
        code, cause = _origin(exc)
        return cls(
            phase,
            type(exc).__name__,
            redact_text(message),
            retrying,
            None if hint is None else redact_text(hint),
            code,
            cause,
        )


def _origin(exc: BaseException) -> tuple[str | None, str | None]:
    """The server code and driver class behind `exc`: its own (a classified error, or a driver
    error that escaped), else those of the error it was raised from (`raise ... from exc`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MigratorError):
            if current.code is not None or current.cause is not None:
                return current.code, current.cause
        else:
            # psycopg errors carry `sqlstate`, pymongo's OperationFailure `code`.
            code = getattr(current, "sqlstate", None) or getattr(current, "code", None)
            text = str(code) if isinstance(code, str | int) and code not in ("", 0) else None
            return text, None if current is exc else type(current).__name__
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None, None


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class EventBus:
    """Fans events out to sinks; safe to call from worker threads."""

    def __init__(self, *sinks: EventSink | Callable[[Event], None]) -> None:
        self._sinks = list(sinks)
        self._lock = threading.Lock()

    def add(self, sink: EventSink | Callable[[Event], None]) -> None:
        self._sinks.append(sink)

    def emit(self, event: Event) -> None:
        with self._lock:
            for sink in self._sinks:
                if callable(sink):
                    sink(event)
                else:
                    sink.emit(event)


class Collector:
    """Keeps every event: for tests and for callers who want the list."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@dataclass(frozen=True)
class RollbackStepDone(Event):
    """One rollback step finished (or was found done by an earlier, interrupted rollback)."""

    kind: ClassVar[str] = "rollback.step"
    step: str
    outcome: str
    # What the step did, as the preview listed it, in the source's words ("drop binlog stream
    # s"): `step` is the state store's label, the same whatever the source.
    description: str = ""


@dataclass(frozen=True)
class FinishStepDone(Event):
    """One step of `migrator finish` done (or found done by an earlier, interrupted finish)."""

    kind: ClassVar[str] = "finish.step"
    step: str
    outcome: str
    description: str = ""  # what the step did, as the preview listed it


@dataclass(frozen=True)
class CutoverStep(Event):
    """A cutover step done (gate, fence, drained, checked, switched, unfenced, ...)."""

    kind: ClassVar[str] = "cutover.step"
    step: str
    message: str


@dataclass(frozen=True)
class CutoverAbandoned(Event):
    """An attempt gave up within the freeze budget; the fence was lifted, writes went on."""

    kind: ClassVar[str] = "cutover.abandoned"
    attempt: int
    reason: str
    freeze_ms: float


@dataclass(frozen=True)
class WriteFreeze(Event):
    """A write freeze ended: `forward` (cutover: source writes held) or `back` (rollback after
    cutover: target writes held), measured from the fence taken to the fence lifted."""

    kind: ClassVar[str] = "write_freeze"
    direction: str
    freeze_ms: float


@dataclass(frozen=True)
class ReverseProgress(Event):
    """Where reverse sync (target -> source, phases/reverse.py) stands, like CdcProgress: `lag_seconds`
    is now minus the cluster time of the last applied target event (0 when nothing is pending)."""

    kind: ClassVar[str] = "reverse.progress"
    durable: ClassVar[bool] = False
    cluster_time: str | None  # ISO 8601 UTC of the last event covered by the checkpoint
    events: int  # change events read (applied and skipped)
    documents: int  # documents written back as rows
    skipped_transactions: int  # forward CDC's own transactions, not echoed
    lag_seconds: float


@dataclass(frozen=True)
class ReverseBatchApplied(Event):
    """A batch of target changes is durable on the source with its checkpoint; `lag_ms` per
    event, from its cluster time on the target to now."""

    kind: ClassVar[str] = "reverse.batch_applied"
    durable: ClassVar[bool] = False
    cluster_time: str | None
    events: int
    documents: int
    rows: int
    lag_ms: list[float]
