"""Reverse sync: after cutover, every change made on the target flows back to the source's rows,
so that the source stays a complete, current fallback.

The target's change feed on the mapped collections (`TargetAdapter.change_stream`), read as target
transactions with forward CDC's own marked (a MongoDB target's change stream,
adapters/mongodb/changes.py; a PostgreSQL target's slot, adapters/postgres_target/reverse.py) -> batches that skip forward CDC's transactions ->
read each changed document -> inverse mapping (mapping/inverse.py) -> one PostgreSQL transaction
per batch with the rows and the checkpoint (adapters/postgres/reverse_writer.py) -> next batch.

- **State, not deltas.** For every document an event names, the document is read by `_id` when
  the batch is applied, and its current state is written as rows (or, when it is gone, its rows
  are deleted). We read it ourselves rather than ask for `fullDocument: 'updateLookup'`: that
  lookup also returns the document as it is at lookup time, not as the event left it, so it gives
  nothing more for a state-based apply, while reading per batch touches a document that changed
  many times once, handles inserts, updates, replaces and deletes alike (no pre-images needed),
  and keeps large documents out of the change events (an event over 16 MB fails the stream).
  A state newer than the event is harmless: the later events write the same state again, and
  writes that change nothing write nothing.
- **Batches.** A batch is applied when it holds `batch_documents` documents, when the stream has
  nothing more for now, or when its oldest change has waited `batch_wait_s`: a workload that keeps
  rewriting the same documents fills no batch and never lets the stream idle, and must not leave
  its changes to be applied all at once at a caught-up marker. A document changed many times in a
  batch is read and written once, in its last state.
- **In order, resumable.** Batches are applied in stream order; each commits with the resume
  token of its last event in the source (`migrator.reverse_checkpoint`), so a crash resumes
  after the last durable batch and replays the rest idempotently.
- **No echo, either way.** Forward CDC writes the target in MongoDB transactions that also write
  its `_migrator` checkpoint document (`cdc:<plan>`); the change stream marks such a transaction
  (`Transaction.echo`, adapters/mongodb/changes.py), and it is skipped whole. A PostgreSQL
  target's feed marks the transactions committed under forward CDC's replication origin. The other way, the
  rows are written under a replication origin that forward CDC skips (phases/cdc.py).
- **Lag** is reported like CDC's (ReverseProgress, ReverseBatchApplied): now minus the cluster
  time of the last applied event, 0 when nothing is pending.
- **Retries** like CDC: a transient error (lost connection, failover, serialization failure,
  classified by server error code and SQLSTATE) reopens the stream from the checkpoint, with
  exponential backoff, at most MAX_CONSECUTIVE_FAILURES times in a row without progress; a
  terminal one (a document the inverse cannot map, a constraint the rows break, history lost
  from the oplog) stops reverse sync with the error.

`prepare()` records the starting position (now) when there is none: call it before the switch
flips, so that every write the application makes on the target after the flip is carried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from migrator.adapters.base import (
    ChangedDocument,
    ChangeGroup,
    OpenChanges,
    ReverseWriter,
    SourceAdapter,
    TargetAdapter,
    TargetChanges,
)
from migrator.adapters.rows import DocumentRows, ReverseCheckpoint
from migrator.engine.context import RunContext
from migrator.engine.events import (
    ErrorRaised,
    EventSink,
    Notice,
    ReverseBatchApplied,
    ReverseProgress,
)
from migrator.engine.retry import RetryStopped, retrying_streak
from migrator.errors import MigratorError, TerminalError, TransientError
from migrator.mapping.inverse import DocumentInverse, UnknownFields, inverses
from migrator.mapping.spec import CollectionMapping
from migrator.plan.names import reverse_origin_name

PHASE = "reverse"
MAX_CONSECUTIVE_FAILURES = 8
PROGRESS_INTERVAL_S = 2.0
IDLE_CHECKPOINT_S = 5.0  # how often skipped-only progress (forward CDC's transactions) is recorded
# How often an idle stream's position (its post-batch resume token) is recorded, so that a quiet
# target does not leave the checkpoint behind in an oplog that rolls over.
IDLE_TOKEN_S = 60.0
# A batch is applied once it holds `batch_documents` documents, when the stream is idle, or once
# its oldest change has waited this long: a workload that keeps rewriting the same few hundred
# documents never fills a batch and never lets the stream idle, and its changes would otherwise
# all be applied at once when a caught-up marker arrives (rollback's lag gate waits for that).
BATCH_WAIT_S = 1.0

Until = Literal["stopped", "caught-up"]


@dataclass
class ReverseResult:
    events: int = 0  # change events read and covered by the checkpoint (applied or skipped)
    documents: int = 0  # documents written back
    rows: int = 0  # rows inserted, updated or deleted on the source
    skipped_transactions: int = 0  # forward CDC's transactions, not echoed
    stopped: bool = False
    caught_up: bool = False
    cluster_time: str | None = None  # of the last event covered, ISO 8601 UTC


@dataclass
class _Batch:
    documents: dict[bytes, ChangedDocument] = field(default_factory=dict)  # in first-seen order
    events: int = 0
    skipped: int = 0
    token: Mapping[str, Any] | None = None
    cluster_time: int | None = None
    cluster_times: list[int] = field(default_factory=list)  # of applied (not skipped) events
    since: float | None = None  # monotonic time its first document was added

    def add(self, group: ChangeGroup) -> None:
        self.events += group.events
        self.token = group.token
        self.cluster_time = group.cluster_time
        if group.echo:
            self.skipped += 1
            return
        if group.documents and self.since is None:
            self.since = time.monotonic()
        for document in group.documents:
            self.documents.setdefault(document.key, document)
        if group.documents and group.cluster_time is not None:
            self.cluster_times.append(group.cluster_time)

    @property
    def empty(self) -> bool:
        return self.token is None

    def waited(self, now: float) -> float:
        """How long its oldest document has waited (0 without documents)."""
        return 0.0 if self.since is None else now - self.since


class ReverseSync:
    """Follows the target's change stream and applies it to the source (see the module doc)."""

    name: ClassVar[str] = PHASE

    def __init__(
        self,
        plan_name: str,
        collections: list[CollectionMapping],
        source: SourceAdapter,
        target: TargetAdapter,
        events: EventSink,
        *,
        stop: threading.Event,
        batch_documents: int = 500,
        batch_wait_s: float = BATCH_WAIT_S,
        max_await_ms: int = 500,
        unknown_fields: UnknownFields = "error",
        writer: ReverseWriter | None = None,
        on_applied: Callable[[str, Any], None] | None = None,
    ) -> None:
        """`on_applied(collection, _id)` is called for each document written back, once its
        batch is durable on the source (rollback rechecks those)."""
        self.plan_name = plan_name
        self.target = target
        self.events = events
        self._stop = stop
        self._batch_documents = batch_documents
        self._batch_wait_s = batch_wait_s
        # A target that keeps the source's column types holds the values as the source does.
        self._inverses: dict[str, DocumentInverse] = inverses(
            collections, unknown_fields=unknown_fields, native=target.capabilities.keeps_source_types
        )
        self.changes: TargetChanges = target.change_stream(
            plan_name, self._inverses, max_await_ms=max_await_ms
        )
        # `run(until='caught-up')` writes a marker once and waits to see it in the stream:
        # everything written on the target before it has then been read. Only the stream that
        # is open counts (`OpenChanges.marker_seen`): one reopened after a transient error
        # resumes from the checkpoint, before a marker the failed stream read, and must read
        # again (and apply) what that stream's unapplied batch held before the marker counts.
        self.writer = writer or source.reverse_writer(plan_name, reverse_origin_name(plan_name))
        self._last_applied: int | None = None  # cluster time of the last applied event
        self._pending = False  # events read and not yet applied
        self._on_applied = on_applied
        self._deadline: float | None = None  # of the current run(), if bounded

    @classmethod
    def from_context(cls, ctx: RunContext, *, stop: threading.Event, **options: Any) -> ReverseSync:
        return cls(
            ctx.plan.name,
            ctx.collections,
            ctx.source,
            ctx.target,
            ctx.events,
            stop=stop,
            **options,
        )

    # -- set-up ----------------------------------------------------------------------------------

    def ready(self) -> None:
        """Raise unless reverse sync can run: a target with a change feed and transactions (forward
        CDC's writes are told apart by their transactions or their origin), the replication
        origin and the checkpoint table on the source (created here when missing)."""
        info = self.target.inspect([])
        if not info.change_streams or not info.transactions:
            raise TerminalError(
                f"the target {self.target.name} offers no change feed or no transactions: reverse sync "
                "needs both",
                hint="run MongoDB as a replica set (one member will do); set a PostgreSQL target's "
                "wal_level to logical",
            )
        self.writer.setup()

    def prepare(self) -> ReverseCheckpoint:
        """The stored starting position, or the stream's position now, recorded (before the switch
        flips, so that no write on the target after it is missed)."""
        self.ready()
        stored = self.writer.checkpoint()
        if stored is not None:
            return stored
        checkpoint = ReverseCheckpoint(dict(self.changes.position_now()))
        self.writer.apply([], checkpoint)
        self.events.emit(Notice("info", "reverse sync starts from the target's current position"))
        return checkpoint

    def close(self) -> None:
        self.writer.close()

    # -- running ---------------------------------------------------------------------------------

    def run(self, until: Until = "stopped", deadline: float | None = None) -> ReverseResult:
        """Follow the target until the stop event is set (`stopped`), or until everything
        written on the target before this call is applied (`caught-up`: a marker document is
        written to `_migrator` first, and its event in the stream says the rest has been read).
        By the monotonic `deadline`, if given, it stops as the stop event would (what was
        applied is checkpointed; `caught_up` stays False): rollback's freeze budget."""
        self._deadline = deadline
        result = ReverseResult()
        marker = self.changes.write_marker() if until == "caught-up" else 0

        def attempt(previous: TransientError | None) -> ReverseResult:
            checkpoint = self.writer.checkpoint()
            if checkpoint is None:
                raise TerminalError(
                    "reverse sync has no starting position on the source",
                    hint="call prepare() before the switch flips (cutover does)",
                )
            return self._follow(checkpoint, result, until, marker)

        def announce(exc: TransientError, delay: float, failures: int) -> None:
            self.events.emit(ErrorRaised.of(PHASE, exc, retrying=True))
            self.events.emit(
                Notice(
                    "warn",
                    f"reverse sync: {exc.message}; retrying in {delay:.1f} s ({failures}/{MAX_CONSECUTIVE_FAILURES})",
                )
            )

        try:
            return retrying_streak(
                attempt,
                stop=self._stop,
                limit=MAX_CONSECUTIVE_FAILURES,
                progress=lambda: result.events,
                announce=announce,
                ended=self._past_deadline,
            )
        except RetryStopped:
            result.stopped = True
            return result
        except MigratorError as exc:  # terminal, or transient past the streak's limit
            self.events.emit(ErrorRaised.of(PHASE, exc, retrying=False))
            raise

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _follow(
        self, checkpoint: ReverseCheckpoint, result: ReverseResult, until: Until, marker: int
    ) -> ReverseResult:
        with self.changes.follow(checkpoint.resume_token) as stream:
            return self._loop(stream, checkpoint, result, until, marker)

    def _loop(
        self,
        stream: OpenChanges,
        checkpoint: ReverseCheckpoint,
        result: ReverseResult,
        until: Until,
        marker: int,
    ) -> ReverseResult:
        covered = checkpoint.events  # events the stored checkpoint covers, since the start
        saved_at = time.monotonic()
        saved_token: Any = checkpoint.resume_token
        saved_cluster_time = checkpoint.cluster_time
        last_progress = 0.0
        batch = _Batch()

        def flush(force: bool) -> None:
            """Apply the batch with its checkpoint. A batch of skipped transactions only (forward
            CDC's) is recorded when `force`d or now and then, not each time."""
            nonlocal batch, covered, saved_at, saved_token, saved_cluster_time
            if batch.empty:
                return
            if not batch.documents and not force and time.monotonic() - saved_at < IDLE_CHECKPOINT_S:
                return
            assert batch.token is not None
            position = ReverseCheckpoint(dict(batch.token), batch.cluster_time, covered + batch.events)
            rows_written = self._apply(batch, position)
            stream.confirm(batch.token)  # durable on the source: the target may free its log
            covered += batch.events
            saved_at, saved_token = time.monotonic(), batch.token
            saved_cluster_time = batch.cluster_time
            result.events += batch.events
            result.documents += len(batch.documents)
            result.rows += rows_written
            result.skipped_transactions += batch.skipped
            result.cluster_time = self.changes.cluster_iso(batch.cluster_time)
            if batch.cluster_times:
                self._last_applied = batch.cluster_times[-1]
                now = time.time()
                self.events.emit(
                    ReverseBatchApplied(
                        cluster_time=result.cluster_time,
                        events=batch.events,
                        documents=len(batch.documents),
                        rows=rows_written,
                        lag_ms=[
                            round((now - self.changes.cluster_seconds(t)) * 1000, 1)
                            for t in batch.cluster_times
                        ],
                    )
                )
            batch = _Batch()

        while True:
            if self._stop.is_set() or self._past_deadline():
                flush(force=True)  # an open transaction group is left for the next run to read again
                result.stopped = True
                return result
            step = stream.next()
            now = time.monotonic()
            if step.idle:
                # Nothing more for now: the stream has returned every event up to this point
                # (and completed the open transaction, if any).
                for transaction in step.transactions:
                    batch.add(transaction)
                flush(force=False)
                self._pending = bool(batch.documents)
                idle_token = stream.position
                if (
                    batch.empty
                    and idle_token is not None
                    and idle_token != saved_token
                    and now - saved_at >= IDLE_TOKEN_S
                ):
                    self.writer.apply([], ReverseCheckpoint(dict(idle_token), saved_cluster_time, covered))
                    stream.confirm(idle_token)
                    saved_at, saved_token = now, idle_token
            else:
                self._pending = True
                for transaction in step.transactions:
                    batch.add(transaction)
                if len(batch.documents) >= self._batch_documents or batch.waited(now) >= self._batch_wait_s:
                    flush(force=False)
            if until == "caught-up" and not stream.in_transaction and stream.marker_seen >= marker:
                flush(force=True)
                self._pending = False
                result.caught_up = True
                self._progress(result)
                return result
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                self._progress(result)

    def _apply(self, batch: _Batch, position: ReverseCheckpoint) -> int:
        """Read the batch's documents as they are now and write them (or their deletion) with
        the checkpoint in one source transaction."""
        found = self.changes.current(list(batch.documents.values()))
        rows: list[DocumentRows] = []
        for key, changed in batch.documents.items():
            inverse = self._inverses[changed.collection]
            document = found.get(key)
            rows.append(inverse.deletion(changed.document_id) if document is None else inverse.rows(document))
        written = self.writer.apply(rows, position)
        if self._on_applied is not None:
            for changed in batch.documents.values():
                self._on_applied(changed.collection, changed.document_id)
        return written

    def _progress(self, result: ReverseResult) -> None:
        if not self._pending or self._last_applied is None:
            lag = 0.0
        else:
            lag = max(0.0, time.time() - self.changes.cluster_seconds(self._last_applied))
        self.events.emit(
            ReverseProgress(
                cluster_time=result.cluster_time,
                events=result.events,
                documents=result.documents,
                skipped_transactions=result.skipped_transactions,
                lag_seconds=round(lag, 3),
            )
        )
