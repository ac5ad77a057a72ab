"""CDC's loop over one stream: read its transactions, map them, apply them in batches through
the apply thread, acknowledge what is durable (docs/architecture.md, "A change's path").

One batch is written by the apply thread while the next is read, decoded and mapped: the
target's time and the stream's overlap (one batch in flight at most). Everything else
(acknowledging, events, the replication connection) stays on the reading thread. Between
messages the loop does what is due: flush an aged batch, check the schema and the WAL budget,
throttle, stop, --until caught-up.

- A transaction whose commit lies before the checkpoint is skipped (it was applied).
- A transaction larger than a batch is applied in several batches; only the last carries
  the checkpoint, so a crash in between replays it whole, harmlessly (writes are idempotent).
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from migrator.adapters.base import (
    CaptureStream,
    Change,
    ChangeEvent,
    Idle,
    Keepalive,
    Marker,
    Received,
    Replayed,
    TableDescribed,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
    WriteOp,
)
from migrator.engine.events import BatchApplied, CdcProgress
from migrator.engine.throttle import Throttler
from migrator.errors import BatchTooLarge, InternalError, MigratorError, SourceError, TerminalError
from migrator.mapping.changes import ChangeMapper, fill_unchanged
from migrator.phases.backfill import BACKFILL_PREFIX, marker_column
from migrator.phases.lag import commit_time_field

if TYPE_CHECKING:
    from migrator.phases.cdc import CdcPhase, CdcResult

PHASE = "cdc"
HEARTBEAT_PREFIX = "migrator.heartbeat"
# Logical messages migrator commits as markers (heartbeat, verify, cutover) start with this.
MARKER_PREFIX = "migrator."
PROGRESS_INTERVAL_S = 2.0
SCHEMA_CHECK_S = 5.0  # how often the mapped tables' shape is compared with the catalog's
BATCH_AGE_S = 0.2  # apply what has been committed at least this often
# How long a batch may wait for more transactions once the stream has nothing more for now:
# a few ms of latency that let a busy stream apply many transactions per target transaction.
LINGER_S = 0.02
# While a batch is being applied and the stream has nothing new, look back this often: the
# batch's checkpoint is acknowledged and reported as soon as it is durable.
APPLYING_POLL_S = 0.005
FEEDBACK_WHILE_APPLYING_S = 1.0
HOLD_FEEDBACK_S = 1.0  # status updates while throttled


def unexpected(exc: Exception, doing: str) -> InternalError:
    """An error that is no MigratorError (a defect) that ends CDC, as a terminal error that says
    where it happened: what status records, and the checkpoint stays before it."""
    return InternalError(
        f"CDC stopped by an unexpected error while {doing}: {type(exc).__name__}: {exc}",
        hint="this is a defect of migrator: report it with this message; the checkpoint stays before it, so "
        "`migrator run` resumes from there once it is fixed",
    )


@dataclass
class Deferred:
    """A change of a relation with generated columns to compute: mapped when its batch is handed
    to the applier, once they are (one statement per relation for the whole batch)."""

    change: Change  # its `computed` and `texts` are set
    mapper: ChangeMapper
    compute: frozenset[str]  # the generated columns to compute (the others stay unchanged)


@dataclass
class Batch:
    ops: list[WriteOp] = field(default_factory=list)
    # Changes mapped once their generated columns are computed, with the place in `ops` their
    # writes go: transaction order is kept.
    deferred: list[tuple[int, Deferred]] = field(default_factory=list)
    changes: int = 0
    transactions: int = 0
    end_lsn: int | None = None  # last complete transaction in the batch
    first_commit_at: float | None = None
    last_commit_time: float | None = None
    commit_times: list[float] = field(default_factory=list)
    # Its transactions' `visibility` (change_events.py): reads of the source for it show them
    # all, and its checkpoint is written only once the source shows them (`apply`).
    visible: list[Any] = field(default_factory=list)


@dataclass
class Applying:
    """The batch the apply thread is writing while the stream is read on."""

    future: concurrent.futures.Future[None]
    batch: Batch
    position: int | None
    # The server's WAL end from a keepalive that came while this batch was being applied, with
    # nothing else received: everything before it is durable once this batch is.
    acknowledge_after: int = 0
    # Set by the apply thread as the future completes: what the loop looks at after every
    # message, where Future.done() would take the future's lock each time.
    done: bool = False

    def finished(self, _: concurrent.futures.Future[None]) -> None:
        self.done = True


class Following:
    """One stream's worth of CDC: read its transactions (the source's typed events,
    adapters/base.py), map them, apply them in batches through the apply thread, acknowledge
    what is durable, and between messages do what is due (flush an aged batch, check schema
    and budget, throttle, stop, --until caught-up).

    One batch is written by the apply thread while the next is read, decoded and mapped: the
    target's time and the stream's overlap. Everything else (acknowledging, events, the
    replication connection) stays on the reading thread."""

    def __init__(
        self,
        phase: CdcPhase,
        stream: CaptureStream,
        checkpoint: int,
        consistent_after: int,
        result: CdcResult,
        apply_thread: concurrent.futures.ThreadPoolExecutor,
    ) -> None:
        self.phase = phase
        self.stream = stream
        self.applied = checkpoint
        self.reader = phase.schema.reader(
            stream,
            applied=lambda: self.applied,
            # Reverse sync (phases/reverse.py) writes the source under this replication origin:
            # its transactions never echo back to the target.
            skip_origin=phase.reverse_origin,
        )
        self.consistent_after = consistent_after
        self.result = result
        self.apply_thread = apply_thread
        self.polling = phase.settings.mode == "poll"
        self.text = phase.ctx.source.positions.text  # a position as users read it
        self.unchanged = phase.ctx.source.unchanged
        self.batch = Batch()
        self.applying: Applying | None = None
        self.reading: int | None = None  # the commit position of the transaction being read
        self.awaited = False  # the transaction carries a marker someone waits for
        # Tables whose documents are brought up to date at the end of the transaction being read
        # (phases/backfill.py).
        self.due: dict[str, set[str]] = {}
        self.marker: int | None = None  # a heartbeat whose commit, once applied, proves we are caught up
        self.last_activity = time.monotonic()
        self.last_budget_check = 0.0
        self.last_schema_check = time.monotonic()
        self.last_throttle_check = 0.0
        self.throttler = phase.ctx.throttle
        self.stop = phase.stop_event
        self.until_caught_up = phase.until == "caught-up"

    def run(self) -> CdcResult:
        for event in self.reader.events(wait_s=min(1.0, self.phase.settings.heartbeat_interval)):
            now = time.monotonic()
            if type(event) is Change:  # nearly every event: the shortest way through
                self.last_activity = now
                self.change(event)
                if len(self.batch.ops) >= self.phase.batch_limit.limit:
                    self.flush(final=False)  # a huge transaction: apply as it comes, checkpoint at its commit
            elif isinstance(event, Keepalive):
                self.keepalive(event.wal_end, now)
            elif isinstance(event, Idle):
                self.idle(event.wal_end, now)
            else:
                self.last_activity = now
                self.message(event)
            if self.between_messages(now):
                return self.result
        self.settle()
        return self.result

    # -- reading ----------------------------------------------------------------------------------

    def message(self, event: ChangeEvent) -> None:
        if isinstance(event, TransactionBegun):
            self.phase.lag.behind()
            self.reading = event.commit_position
            self.awaited = False
            self.batch.visible.append(event.visibility)
        elif isinstance(event, TransactionCommitted):
            if not event.skipped:
                self.end_transaction(event.end_position, event.commit_time)
                if self.awaited:
                    # Someone waits for this marker (cutover, verify, caught-up): apply and
                    # checkpoint now rather than when the stream next goes idle.
                    self.flush()
            if self.due:
                self.backfill()
        elif isinstance(event, Replayed):
            self.replayed(event)
        elif isinstance(event, Marker):
            self.marked(event)
        elif isinstance(event, TableDescribed):
            self.described(event)
        elif isinstance(event, Truncated):
            self.truncate(event.tables)
            self.flush_when_full()  # a huge transaction: apply as it comes, checkpoint at its commit
        elif isinstance(event, Received) and event.behind:
            self.phase.lag.behind()

    def replayed(self, event: Replayed) -> None:
        """A streamed transaction at its commit: its changes from the spool, then its end."""
        self.reading = event.commit_position
        self.batch.visible.append(event.visibility)
        try:
            for item in event.changes:
                if type(item) is Change:
                    self.change(item)
                elif isinstance(item, Truncated):
                    self.truncate(item.tables)
                elif isinstance(item, TableDescribed):
                    self.described(item)
                self.flush_when_full()
        finally:
            event.changes.close()  # the spool, at once (also when a change stops the run)
        if not event.skipped:
            self.end_transaction(event.end_position, event.commit_time)
        if self.due:
            self.backfill()

    def marked(self, event: Marker) -> None:
        phase = self.phase
        self.awaited = self.awaited or event.prefix.startswith(MARKER_PREFIX)
        if event.prefix == BACKFILL_PREFIX and phase.oracle is None:
            named = marker_column(phase.ctx.plan.name, event.content)
            if named is not None and named[0] in phase.ctx.source_info.tables:
                self.due.setdefault(named[0], set()).add(named[1])

    def described(self, event: TableDescribed) -> None:
        if event.spooled:
            # Of a streamed transaction still in progress, which may abort: checked when its
            # transaction is replayed at the commit (an ALTER TABLE ... ADD COLUMN in it is not
            # in the catalog yet, and the column looked dropped: docs/architecture.md, "A column
            # added while CDC follows").
            return
        self.phase.schema.relation(event.relation)
        table, columns = self.phase.backfills.due(event.relation)
        if columns:
            self.due.setdefault(table, set()).update(columns)

    def change(self, change: Change) -> None:
        phase = self.phase
        try:
            if change.kind == "update":
                assert change.new is not None
                # An unchanged TOASTed key or link is known from the old tuple: before anything
                # reads the row (docs/architecture.md, "Unchanged TOASTed values").
                change.new = fill_unchanged(change.old, change.new, self.unchanged)
            if phase.oracle is not None:
                phase.oracle.change(change.table, change.old, change.new, change.kind)
                self.batch.changes += 1
                return
            if change.texts is not None:
                self.defer(change)
                return
            mapper = phase.mapper
            if change.kind == "insert":
                assert change.new is not None
                ops = mapper.insert(change.table, change.new)
            elif change.kind == "update":
                assert change.new is not None
                phase.schema.check_located(change.table, change.new)
                ops = mapper.update(change.table, change.old, change.new)
            else:
                assert change.old is not None
                ops = mapper.delete(change.table, change.old)
        except MigratorError:
            raise
        except Exception as exc:
            where = (
                "" if self.reading is None else f" in the transaction committed at {self.text(self.reading)}"
            )
            raise unexpected(exc, f"mapping {change.kind} of {change.table}{where}") from exc
        self.batch.ops.extend(ops)
        self.batch.changes += 1
        for observer in phase.observers:
            observer(change.table, change.old, change.new, change.kind)

    def defer(self, change: Change) -> None:
        """A change whose generated columns are computed when its batch is handed over."""
        assert change.computed is not None and change.texts is not None and change.new is not None
        if change.kind == "update":
            self.phase.schema.check_located(change.table, change.new)
        compute = self.phase.schema.to_compute(change)
        batch = self.batch
        batch.deferred.append((len(batch.ops), Deferred(change, self.phase.mapper, compute)))
        batch.changes += 1
        if len(batch.ops) + len(batch.deferred) >= self.phase.batch_limit.limit:
            self.flush(final=False)

    def truncate(self, tables: tuple[str, ...]) -> None:
        phase = self.phase
        for table in tables:
            if phase.settings.on_truncate == "stop":
                raise TerminalError(
                    f"TRUNCATE of {table} on the source: the migration stops rather than guess",
                    hint="set phases.cdc.on_truncate: apply to empty the matching documents or arrays, then run again",
                )
            if phase.oracle is not None:
                phase.oracle.truncated(table)
            else:
                self.batch.ops.extend(phase.mapper.truncate(table))
            self.batch.changes += 1

    def end_transaction(self, end_position: int, commit_time: datetime) -> None:
        batch = self.batch
        batch.end_lsn = end_position
        batch.transactions += 1
        batch.last_commit_time = commit_time.timestamp()
        batch.commit_times.append(batch.last_commit_time)
        if batch.first_commit_at is None:
            batch.first_commit_at = time.monotonic()
        if self.phase.oracle is not None:
            self.phase.oracle.commit(self.text(end_position), batch.last_commit_time)
        if len(batch.ops) >= self.phase.batch_limit.limit:
            self.flush()

    def backfill(self) -> None:
        """At the end of a transaction after the ALTER: apply everything before, then the
        documents of every row as it is now; the stream after this point comes after."""
        self.flush()
        self.settle()
        # What the stream read before this point and no batch applied (nothing to write): the
        # rows are read once the source shows it too (phases/backfill.py).
        self.phase.reads.carry(self.batch.visible)
        self.batch.visible.clear()
        for table, columns in sorted(self.due.items()):
            self.phase._backfill(table, columns, self.stream.keepalive)
        self.due.clear()

    # -- the source's word on what it has sent ---------------------------------------------------

    def keepalive(self, wal_end: int, now: float) -> None:
        """All before `wal_end` has been received. Once it is applied, acknowledge that position
        too (as PostgreSQL's own subscribers do): what lies between the last applied commit and
        it holds nothing to apply, and a fast shutdown of the source waits for this client's
        confirmation of everything sent, forever."""
        reader = self.reader
        if reader.in_transaction or reader.in_stream or reader.streams_pending:
            return
        age = None if self.batch.first_commit_at is None else now - self.batch.first_commit_at
        if age is not None and age < LINGER_S:
            # The server sends one of these each time it has sent all there is, so under a
            # steady stream of small transactions that is after each one. Applying then would
            # mean one target transaction (and checkpoint) per source transaction; wait a moment
            # for more to batch instead: until data comes, or Idle after the rest of LINGER_S,
            # which applies.
            self.stream.linger = max(0.001, LINGER_S - age)
            return
        self.flush()
        if self.applying is not None:
            self.applying.acknowledge_after = max(self.applying.acknowledge_after, wal_end)
            return
        self.stream.acknowledge(wal_end)
        self.phase.lag.acknowledged(wal_end)
        if self.nothing_pending():
            # The server has sent all its WAL, and all of it is durable.
            self.phase.lag.caught_up(wal_end)

    def idle(self, wal_end: int, now: float) -> None:
        self.stream.linger = None
        self.settle()  # nothing to read meanwhile
        in_transaction = self.reader.in_transaction
        if not in_transaction:
            self.flush()
            if self.polling:
                # A poll that found nothing new decoded up to the source's position; once what it
                # read is applied (waited for: nothing else to do until the next poll, which would
                # otherwise always find the last heartbeat in flight), CDC is caught up there.
                self.settle()
                if self.nothing_pending():
                    self.phase.lag.caught_up(max(self.applied, wal_end))
        if now - self.last_activity >= self.phase.settings.heartbeat_interval and not in_transaction:
            self.phase.monitor.heartbeat(HEARTBEAT_PREFIX, self.phase.ctx.plan.name)
            self.last_activity = now

    def nothing_pending(self) -> bool:
        """Every change read is durable (what CDC's lag calls caught up, with the source's word
        that nothing more is to be read: a keepalive, or a poll that found nothing)."""
        batch, reader = self.batch, self.reader
        return (
            self.applying is None
            and not reader.in_transaction
            and not reader.in_stream
            and not reader.streams_pending
            and not batch.ops
            and not batch.deferred
            and batch.end_lsn is None
        )

    # -- applying ---------------------------------------------------------------------------------

    def flush_when_full(self) -> None:
        if len(self.batch.ops) >= self.phase.batch_limit.limit:
            self.flush(final=False)  # a huge transaction: apply as it comes, checkpoint at its commit

    def flush(self, final: bool = True) -> None:
        """Hand the batch to the apply thread, once the one before it is applied."""
        phase, batch = self.phase, self.batch
        if not batch.ops and batch.end_lsn is None and not batch.deferred:
            return
        if batch.deferred:
            batch.ops = self.resolve(batch)  # before settle(): the source's turn overlaps the target's
        self.settle()
        position = batch.end_lsn if final else None
        if position is not None and position > phase.schema.vouched:
            # Never a checkpoint past what a publication check covers (docs/architecture.md,
            # "The run's publication").
            phase.schema.check_publication()
        # The checkpoint carries what lag is measured from (phases/lag.py), and which added
        # columns' documents were brought up to date (phases/backfill.py).
        fields = {
            **phase.lag.record_fields(),
            **commit_time_field(batch.last_commit_time),
            **phase.added.record_fields(),
        }
        future = self.apply_thread.submit(
            self.apply,
            batch,
            position,
            self.text(position) if position is not None else None,
            fields if position is not None else None,
        )
        self.applying = Applying(future, batch, position)
        future.add_done_callback(self.applying.finished)
        # The source reads carry the batch's transactions until a read shows them (a part of a
        # transaction: the rest of it follows in the next batch, whose reads show it too).
        self.batch = Batch()
        stream = self.stream
        stream.linger = APPLYING_POLL_S if stream.linger is None else min(stream.linger, APPLYING_POLL_S)

    def apply(
        self, batch: Batch, position: int | None, text: str | None, fields: dict[str, Any] | None
    ) -> None:
        """On the apply thread: the batch's writes and checkpoint, reading the source for them
        only once it shows the batch's transactions and those of earlier batches no read has
        shown yet (docs/architecture.md, "Why reading 'now' converges")."""
        phase = self.phase
        with phase.reads.showing(batch.visible):
            if position is not None:
                # Never a checkpoint before the source shows every transaction up to it, also
                # those no read waited for: a run resumed from it reads the source for later
                # changes, and so does whoever waits for a marker in it (verify's rechecks,
                # cutover's final check). Waited for before the target's transaction opens
                # (docs/architecture.md, "Why reading 'now' converges").
                phase.reads.confirm()
            phase.applier.apply(batch.ops, position, text, fields=fields)

    def resolve(self, batch: Batch) -> list[WriteOp]:
        """The batch's writes with those of its deferred changes in their places, once their
        generated columns are computed (by the source: one statement per relation and set of
        columns)."""
        phase = self.phase
        phase.schema.complete([(d.change, d.compute) for _, d in batch.deferred])
        ops: list[WriteOp] = []
        done = 0
        for at, deferred in batch.deferred:
            ops.extend(batch.ops[done:at])
            done = at
            change, table = deferred.change, deferred.change.table
            try:
                assert change.new is not None
                if change.kind == "insert":
                    ops.extend(deferred.mapper.insert(table, change.new))
                else:
                    ops.extend(deferred.mapper.update(table, change.old, change.new))
            except MigratorError:
                raise
            except Exception as exc:
                raise unexpected(exc, f"mapping {change.kind} of {table}") from exc
            for observer in phase.observers:
                observer(table, change.old, change.new, change.kind)
        ops.extend(batch.ops[done:])
        batch.deferred = []
        return ops

    def settle(self) -> None:
        """Wait for the batch being applied; then it is the checkpoint: acknowledge, report."""
        if self.applying is None:
            return
        done, self.applying = self.applying, None
        self.wait_applied(done)
        self.raise_apply_error(done)
        position, applied_batch = done.position, done.batch
        if done.batch.ops:  # a checkpoint alone says nothing about the size
            self.phase.batch_limit.succeeded()
        if position is not None:
            self.applied = position
            self.acknowledge(done, position)
        self.result.changes += applied_batch.changes
        self.result.transactions += applied_batch.transactions

    def wait_applied(self, done: Applying) -> None:
        waited_since = time.monotonic()
        while not concurrent.futures.wait([done.future], timeout=FEEDBACK_WHILE_APPLYING_S).done:
            # Applying (a spooled transaction replayed whole, a conflict retried) is not reading:
            # without a status update now and then, the server's wal_sender_timeout ends the
            # connection and a large transaction starts over.
            self.stream.keepalive()
            if time.monotonic() - waited_since >= PROGRESS_INTERVAL_S:
                # A slow apply is when lag grows: keep reporting it (invariant 10).
                waited_since = time.monotonic()
                self.check_budget()

    def raise_apply_error(self, done: Applying) -> None:
        """The apply's error, raised here."""
        applied = self.applied
        try:
            done.future.result()
        except BatchTooLarge as exc:
            upto = "" if done.position is None else f" up to {self.text(done.position)}"
            collections = ", ".join(sorted({op.collection for op in done.batch.ops}))
            # Smaller batches from the checkpoint on; a TerminalError for a single write.
            self.phase.batch_limit.shrink(
                exc,
                writes=len(done.batch.ops),
                where=f"(to {collections}) of the source transaction(s) after {self.text(applied)}{upto}",
            )
            raise
        except MigratorError:
            raise
        except Exception as exc:
            collections = ", ".join(sorted({op.collection for op in done.batch.ops}))
            upto = "" if done.position is None else f" up to {self.text(done.position)}"
            raise unexpected(
                exc,
                f"applying {done.batch.changes} change(s) after {self.text(applied)}{upto} to {collections}",
            ) from exc

    def acknowledge(self, done: Applying, position: int) -> None:
        """The batch is durable up to `position`: acknowledge it to the source and report it."""
        phase, applied_batch = self.phase, done.batch
        self.stream.acknowledge(max(position, done.acknowledge_after))
        phase.lag.applied(max(position, done.acknowledge_after), applied_batch.last_commit_time)
        if done.acknowledge_after >= position and self.nothing_pending():
            # The server said it had sent all its WAL while this batch was applied, and nothing
            # came after: caught up (phases/lag.py).
            phase.lag.caught_up(done.acknowledge_after)
        self.result.position = self.text(position)
        now = time.time()
        phase.ctx.events.emit(
            BatchApplied(
                position=self.result.position,
                transactions=applied_batch.transactions,
                changes=applied_batch.changes,
                writes=len(applied_batch.ops),
                lag_ms=[round((now - t) * 1000, 1) for t in applied_batch.commit_times],
                commit_time=applied_batch.last_commit_time,
            )
        )

    # -- between messages -------------------------------------------------------------------------

    def between_messages(self, now: float) -> bool:
        """What is due after each message; True: this run of CDC ends (stopped, or caught up)."""
        # Run after every change: the cheap tests here, the work in the methods called.
        if self.applying is not None and self.applying.done:
            self.settle()
        first_commit_at = self.batch.first_commit_at
        if (
            first_commit_at is not None
            and now - first_commit_at >= BATCH_AGE_S
            and not self.reader.in_transaction
        ):
            self.flush()
        if (
            now - self.last_schema_check >= SCHEMA_CHECK_S
            or now - self.last_budget_check >= PROGRESS_INTERVAL_S
        ):
            self.check_now_and_then(now)
        if self.throttler is not None:
            self.throttle(self.throttler, now)
        if self.stop.is_set() and not self.reader.in_transaction:
            self.flush()
            self.settle()
            self.result.stopped = True
            return True
        if self.until_caught_up and self.caught_up():
            self.result.caught_up = True
            return True
        return False

    def check_now_and_then(self, now: float) -> None:
        phase = self.phase
        if now - self.last_schema_check >= SCHEMA_CHECK_S:
            # DDL on a table no change touches says nothing in the stream: look now and then.
            self.last_schema_check = now
            phase.schema.check_schema()
            phase.schema.check_publication()
        if now - self.last_budget_check >= PROGRESS_INTERVAL_S:
            self.last_budget_check = now
            self.check_budget()

    def throttle(self, throttle: Throttler, now: float) -> None:
        if (
            self.reader.in_transaction
            or self.reader.in_stream
            or now - self.last_throttle_check < throttle.interval
        ):
            return
        self.last_throttle_check = now
        if throttle.poll(PHASE).throttled:
            # Held between batches: what is complete is applied and acknowledged first; then
            # nothing is read or applied until the hold lifts, while status updates keep the
            # replication connection (wal_sender_timeout) and the budget checks
            # (max_retained_wal) going.
            self.flush()
            self.settle()
            self.hold(throttle)
            self.last_activity = self.last_throttle_check = time.monotonic()

    def hold(self, throttle: Throttler) -> None:
        """Wait while throttled, reading nothing, sending status updates when due (so that the
        server's wal_sender_timeout never ends the connection) and checking the WAL budget."""
        last_budget = time.monotonic()

        def tick() -> None:
            nonlocal last_budget
            # The server's keepalive requests are not read while held: answer them unasked, often
            # enough for any wal_sender_timeout worth having (the default is 60 s).
            self.stream.keepalive(HOLD_FEEDBACK_S)
            if time.monotonic() - last_budget >= PROGRESS_INTERVAL_S:
                last_budget = time.monotonic()
                self.check_budget()

        throttle.wait(PHASE, self.stop, tick=tick)

    def check_budget(self) -> None:
        """Report progress and lag; stop when the slot holds more WAL than the budget."""
        phase, result = self.phase, self.result
        state = phase.monitor.state(phase.slot)
        if state is None:
            raise SourceError(
                f"{phase.ctx.vocabulary.named_stream(phase.slot)} disappeared while streaming: a new snapshot "
                "is needed",
                hint="run `migrator rollback` for this plan, then `migrator run` again",
            )
        retained = int(state["retained_bytes"])
        phase.lag.source_position(phase.ctx.source.positions.parse(state["current"]))
        lag = phase.lag.reading()
        phase.ctx.events.emit(
            CdcProgress(
                position=self.text(self.applied),
                transactions=result.transactions,
                changes=result.changes,
                lag_bytes=lag.bytes if lag.bytes is not None else 0,
                lag_seconds=lag.seconds,
                retained_wal_bytes=retained,
                caught_up=lag.caught_up,
                stream=phase.ctx.vocabulary.stream,
                change_log=phase.ctx.vocabulary.change_log,
            )
        )
        if retained > phase.settings.max_retained_wal:
            raise TerminalError(
                f"{phase.ctx.vocabulary.named_stream(phase.slot)} holds {retained:,} bytes of "
                f"{phase.ctx.vocabulary.change_log} on the source, over the budget of "
                f"{phase.settings.max_retained_wal:,} (phases.cdc.max_retained_wal): stopping before the source's "
                "disk fills",
                hint="find why the target falls behind, raise the budget if the disk allows, then `migrator run` "
                "resumes from the checkpoint",
            )

    def caught_up(self) -> bool:
        phase = self.phase
        if self.reader.in_transaction or self.batch.ops:
            return False
        self.settle()
        if self.marker is None or self.applied < self.marker:
            if self.marker is None:
                self.marker = phase.ctx.source.positions.parse(
                    phase.monitor.heartbeat(HEARTBEAT_PREFIX, phase.ctx.plan.name)
                )
            return False
        lag = phase.lag.seconds()
        # Once applied, the marker stays: it proved the stream passed the moment of asking; the
        # lag now falls as commits are applied, or to 0 at the next idle poll or keepalive that
        # finds nothing pending (phases/lag.py). A new marker each time would itself be a commit
        # read a poll later (poll mode: up to a second), whose age alone can exceed max_lag.
        return self.applied >= self.consistent_after and lag is not None and lag <= phase.max_lag()
