"""CDC phase: every source change after the snapshot, applied to the target in commit order.

Stream -> decode -> group by source transaction -> map to document writes -> apply in
batches of several transactions with the checkpoint -> acknowledge the durable position.
A batch is applied on a thread of its own while the next one is read and mapped (one batch in
flight at most); acknowledging, events and the replication connection stay on the reading one.

- Start: the checkpoint stored in the target beside the data (authoritative), else the
  slot's consistent point from the snapshot.
- A transaction whose commit lies before the checkpoint is skipped (it was applied).
- A transaction larger than a batch is applied in several batches; only the last carries
  the checkpoint, so a crash in between replays it whole, harmlessly (writes are idempotent).
- Protocol 2 streams large in-progress transactions; their changes are spooled to a
  temporary file, not memory, until the commit (or dropped on abort).
"""

from __future__ import annotations

import concurrent.futures
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Literal

from tenacity import wait_exponential

from migrator.adapters.base import ColumnInfo, WriteOp
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.adapters.postgres.inspect import PostgresInspector
from migrator.adapters.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Parse,
    Relation,
    RowChange,
    RowReader,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Update,
    decode,
    lsn_to_int,
    lsn_to_str,
)
from migrator.adapters.postgres.reading import key_text
from migrator.adapters.postgres.replication import (
    Idle,
    Keepalive,
    PollingStream,
    ReplicationStream,
    SlotMonitor,
)
from migrator.adapters.postgres.snapshot import Coordinator, SnapshotReader
from migrator.adapters.postgres.values import ValueParser
from migrator.engine.context import PlanView, RunContext
from migrator.engine.events import BatchApplied, CdcProgress, ErrorRaised, Notice
from migrator.engine.executor import Action
from migrator.engine.throttle import Throttler
from migrator.errors import SourceError, TerminalError, TransientError
from migrator.mapping.assemble import Assembler
from migrator.mapping.changes import ChangeMapper
from migrator.mapping.lookup import MappedDocuments
from migrator.mapping.source_reads import SourceReads
from migrator.mapping.spec import resolve
from migrator.phases.oracle import DualWriteOracle
from migrator.plan.names import cdc_checkpoint_id, publication_name, reverse_origin_name, slot_name_pattern

# Called for each applied row change: (table, old row, new row, 'insert' | 'update' | 'delete').
ChangeObserver = Callable[[str, Any, Any, str], None]
PHASE = "cdc"
HEARTBEAT_PREFIX = "migrator.heartbeat"
# Logical messages migrator commits as markers (heartbeat, verify, cutover) start with this.
MARKER_PREFIX = "migrator."
PROGRESS_INTERVAL_S = 2.0
BATCH_AGE_S = 0.2  # apply what has been committed at least this often
# How long a batch may wait for more transactions once the stream has nothing more for now:
# a few ms of latency that let a busy stream apply many transactions per target transaction.
LINGER_S = 0.02
# While a batch is being applied and the stream has nothing new, look back this often: the
# batch's checkpoint is acknowledged and reported as soon as it is durable.
APPLYING_POLL_S = 0.005
FEEDBACK_WHILE_APPLYING_S = 1.0
HOLD_FEEDBACK_S = 1.0  # status updates while throttled
MAX_CONSECUTIVE_FAILURES = 8
_CHANGE_NAMES = {"I": "insert", "U": "update", "D": "delete"}


class _Attempt:
    """The part of tenacity's RetryCallState its wait strategies read."""

    def __init__(self, number: int) -> None:
        self.attempt_number = number


Until = Literal["caught-up", "stopped"]


@dataclass
class CdcResult:
    position: str
    transactions: int = 0
    changes: int = 0
    stopped: bool = False
    caught_up: bool = False
    dual_write: dict[str, Any] | None = None  # cdc.apply: false: the oracle's counts (phases/oracle.py)


class _RelationState(RowReader):
    """A mapped table's current Relation message: how to read its rows, and the table's name."""

    __slots__ = ("table",)

    def __init__(
        self, table: str, names: Sequence[str], parsers: Sequence[Parse | None], is_key: Sequence[bool]
    ) -> None:
        super().__init__(names, parsers, is_key)
        self.table = table


@dataclass
class _Batch:
    ops: list[WriteOp] = field(default_factory=list)
    changes: int = 0
    transactions: int = 0
    end_lsn: int | None = None  # last complete transaction in the batch
    first_commit_at: float | None = None
    last_commit_time: float | None = None
    commit_times: list[float] = field(default_factory=list)


@dataclass
class _Applying:
    """The batch the apply thread is writing while the stream is read on."""

    future: concurrent.futures.Future[None]
    batch: _Batch
    position: int | None
    # The server's WAL end from a keepalive that came while this batch was being applied, with
    # nothing else received: everything before it is durable once this batch is.
    acknowledge_after: int = 0


class _Spool:
    """Changes of one streamed transaction, on disk until its commit or abort."""

    def __init__(self) -> None:
        # Closed on commit or abort, not at the end of a block: it outlives this call.
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="migrator-stream-")  # noqa: SIM115
        self.count = 0

    def add(self, xid: int | None, payload: bytes) -> None:
        pickle.dump((xid, payload), self.file)
        self.count += 1

    def replay(self, drop_xids: set[int]) -> Any:
        self.file.seek(0)
        for _ in range(self.count):
            xid, payload = pickle.load(self.file)
            if xid not in drop_xids:
                yield payload

    def close(self) -> None:
        self.file.close()


class CdcPhase:
    name: ClassVar[str] = PHASE

    def __init__(self, ctx: RunContext, *, stop: threading.Event, until: Until = "stopped") -> None:
        self.ctx = ctx
        self.settings = ctx.plan.phases.cdc
        self.until = until
        self._stop = stop
        self.slot = ctx.run.slot
        self.publication = publication_name(ctx.plan.name)
        # Reverse sync (phases/reverse.py) writes the source under this replication origin;
        # its transactions are skipped below, so that they never echo back to the target.
        self._reverse_origin = reverse_origin_name(ctx.plan.name)
        self.monitor = SlotMonitor(ctx.source.endpoint)
        self._parser = ValueParser()
        self._relations: dict[int, _RelationState] = {}
        self._expected_columns: dict[str, dict[str, ColumnInfo]] = {}
        self._mapper = self._build_mapper()
        target = ctx.target
        info = target.inspect([])
        self.applier = ChangeApplier(
            target.client()[target.database],
            cdc_checkpoint_id(ctx.plan.name),
            transactions=info.transactions,
            current=self._current_document,
            # Embedded content a change names only by link values (mapping/reads.py).
            reads=SourceReads(ctx.source.endpoint),
        )
        # cdc.apply: false: nothing is written but the checkpoint; the oracle checks the
        # application's own writes instead (phases/oracle.py).
        # Called with (table, old row, new row, 'insert'|'update'|'delete') for every change put
        # in a batch: the cutover's record of documents touched since its verify.
        self.observers: list[ChangeObserver] = []
        self._oracle: DualWriteOracle | None = None
        if not self.settings.apply:
            self._oracle = DualWriteOracle(
                ctx.collections,
                ctx.source_info,
                MappedDocuments(ctx.collections, ctx.source.endpoint, target),
                ctx.events,
                grace=ctx.plan.phases.verify.dual_write_grace,
                unchanged=UNCHANGED,
            )

    def _current_document(self, collection: str, doc_id: Any) -> dict[str, Any] | None:
        """Document `doc_id` of `collection` as the source holds it now, read as the snapshot
        reads a chunk (None: the source has no such row). For the applier, when a change needs
        stored state that the target does not hold."""
        mapping = next(c for c in self.ctx.collections if c.name == collection)
        key = mapping.document.key
        table = self.ctx.source_info.tables[mapping.table]
        key_types = [str(column.type_name) for k in key if (column := table.column(k)) is not None]
        values = [doc_id] if len(key) == 1 else [doc_id[k] for k in key]
        texts = [key_text(v) for v in values]
        endpoint = self.ctx.source.endpoint
        coordinator = Coordinator(endpoint, None)
        try:
            lo = coordinator.key_before(mapping.table, key, key_types, texts)
            reader = SnapshotReader(endpoint, coordinator.exported)
            try:
                assembler = Assembler(mapping)
                streams = reader.stream(assembler.reads(), mapping.table, key, key_types, lo, texts)
                documents = [document for _, document, _ in assembler.documents(streams)]
            finally:
                reader.close()
        finally:
            coordinator.close()
        return documents[0] if documents else None

    # -- mapping ---------------------------------------------------------------------------------

    def _build_mapper(self) -> ChangeMapper:
        tables = self.ctx.source_info.tables
        identity = {name: info.identity_columns for name, info in tables.items()}
        self._expected_columns = {name: {c.name: c for c in info.columns} for name, info in tables.items()}
        return ChangeMapper(self.ctx.collections, identity, UNCHANGED)

    def _relation(self, message: Relation) -> None:
        table = message.table
        names = tuple(c.name for c in message.columns)
        expected = self._expected_columns.get(table)
        if expected is None:
            return  # not a mapped table (a publication is never wider than the plan, but be safe)
        current = {c.name: c.type_oid for c in message.columns}
        known = {n: c.type_oid for n, c in expected.items()}
        if current != known:
            self._schema_changed(table, current)
            expected = self._expected_columns[table]
        parsers = []
        for column in message.columns:
            info = expected.get(column.name)
            parsers.append(self._parser.for_column(info) if info is not None else None)
        self._relations[message.relation_id] = _RelationState(
            table, names, parsers, [c.is_key for c in message.columns]
        )

    def _schema_changed(self, table: str, current: dict[str, int]) -> None:
        """A relation message whose columns differ from what the mapping was built on: an added
        column flows through where the mapping takes every column; a dropped or retyped mapped
        column stops the run (nothing silent)."""
        mapped = self._mapped_columns(table)
        before = self._expected_columns[table]
        endpoint = self.ctx.source.endpoint
        with endpoint.connect() as conn:
            info = PostgresInspector(conn, endpoint.name, endpoint.secrets).table(table)
        if info is None:
            raise TerminalError(f"table {table} disappeared from the source while the migration ran")
        # The mapping was built on the catalog as it is now, which may be newer than the changes
        # being replayed (a run resumed after DDL): a column the catalog still has, with its type,
        # but the stream does not yet, was added later in the stream.
        now = {c.name: c.type_oid for c in info.columns}
        later = sorted(n for n in mapped if n not in current and now.get(n) == before[n].type_oid)
        dropped = [n for n in sorted(mapped) if n not in current and n not in later]
        # ... and a column the stream has but the catalog no longer has was dropped later in the
        # stream: the mapping built on the newer catalog silently lost it if it takes every column.
        dropped += [
            n for n in sorted(set(current) - set(before) - set(now)) if self._takes_by_default(table, n)
        ]
        if dropped:
            raise TerminalError(
                f"column {table}.{dropped[0]} was dropped (or renamed) on the source while the migration ran; "
                "the mapping uses it",
                hint="restore the column, or roll back and start again with a plan that does not use it",
            )
        for name in sorted(mapped):
            if name in current and before[name].type_oid and current[name] != before[name].type_oid:
                raise TerminalError(
                    f"column {table}.{name} changed type on the source while the migration ran; the mapping "
                    "converts it as it was",
                    hint="roll back and start again, so that the snapshot and the changes agree on the type",
                )
        tables = dict(self.ctx.source_info.tables)
        tables[table] = info
        source_info = type(self.ctx.source_info)(self.ctx.source_info.server, tables, ())
        resolution = resolve(list(self.ctx.plan.collections), source_info)
        if not resolution.ok:
            problems = "; ".join(f.message for f in resolution.findings)
            raise TerminalError(
                f"the mapping no longer resolves after a schema change on {table}: {problems}"
            )
        added = sorted(set(current) - set(before))
        self.ctx.source_info = source_info
        self.ctx.collections = resolution.collections
        self._mapper = self._build_mapper()
        if self._oracle is not None:
            self._oracle.remap(resolution.collections, source_info)
        now_mapped = self._mapped_columns(table)
        flowing = [c for c in added if c in now_mapped] + later
        if flowing:
            self.ctx.events.emit(
                Notice(
                    "warn",
                    f"column(s) {flowing} added to {table}: changed rows carry them from now on; documents of "
                    "rows that do not change lack them until verify --repair copies them",
                )
            )

    def _takes_by_default(self, table: str, column: str) -> bool:
        """Whether the plan would map `column` of `table`: it lists no `fields` there (so every
        column is taken) and does not exclude it."""

        def walk(shape: Any) -> bool:
            if shape.table == table and shape.fields is None and column not in shape.exclude:
                return True
            return any(walk(e) for e in shape.embed)

        return any(walk(c) for c in self.ctx.plan.collections)

    def _mapped_columns(self, table: str) -> set[str]:
        out: set[str] = set()

        def walk(doc: Any, embed: Any) -> None:
            if doc.table == table:
                out.update(f.column.name for f in doc.fields)
                out.update(doc.key)
                if embed is not None:
                    out.update(c for c, _ in embed.on)
            for child in doc.embeds:
                if doc.table == table:
                    out.update(p for _, p in child.on)
                walk(child.child, child)

        for collection in self.ctx.collections:
            walk(collection.document, None)
        return out

    # -- the loop --------------------------------------------------------------------------------

    def plan(self) -> list[Action]:
        return planned_actions(self.ctx)

    def start_position(self) -> tuple[int, str]:
        stored = self.applier.checkpoint()
        if stored is not None:
            return int(stored["position"]), "target checkpoint"
        slot = next(c for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot") if c.label == "slot")
        return lsn_to_int(slot.position), "snapshot position"

    def run(self) -> CdcResult:
        try:
            return self._run()
        finally:
            if self.ctx.throttle is not None:
                self.ctx.throttle.release(PHASE)

    def _max_lag(self) -> float:
        """cdc.max_lag, or `migrator throttle --max-lag` while it is set."""
        return self.ctx.throttle.max_lag if self.ctx.throttle is not None else self.settings.max_lag

    def _run(self) -> CdcResult:
        if self._oracle is None:
            return self._follow()
        self._oracle.start()
        try:
            result = self._follow()
        except BaseException:
            self._oracle.close(drain=False)
            raise
        result.dual_write = self._oracle.close(drain=True).to_dict()
        return result

    def _observe(self, relation: _RelationState, message: RowChange) -> None:
        """cdc.apply: false: a row change goes to the oracle instead of the target."""
        assert self._oracle is not None
        self._oracle.change(relation.table, message.old, message.new, _CHANGE_NAMES[message.kind])

    def _follow(self) -> CdcResult:
        checkpoint, origin = self.start_position()
        state = self.monitor.state(self.slot)
        if state is None:
            raise SourceError(
                f"replication slot {self.slot} no longer exists: changes after {lsn_to_str(checkpoint)} are lost "
                "to this run and a new snapshot is needed",
                hint="run `migrator rollback` for this plan, then `migrator run` again",
            )
        snapshot_done = next(
            (c for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot") if c.label == "done"), None
        )
        consistent_after = lsn_to_int(
            snapshot_done.detail.get("consistent_after", snapshot_done.position) if snapshot_done else "0/0"
        )
        indexes = self.applier.ensure_indexes(self._mapper.index_paths())
        if indexes:
            self.ctx.events.emit(Notice("info", f"indexes for embedded changes: {', '.join(indexes)}"))
        self.ctx.events.emit(Notice("info", f"replaying changes from {lsn_to_str(checkpoint)} ({origin})"))
        result = CdcResult(position=lsn_to_str(checkpoint))
        wait = wait_exponential(multiplier=0.5, max=30)
        failures = 0
        while True:
            before = result.position
            try:
                stream = self._open_stream(checkpoint)
                try:
                    return self._loop(stream, checkpoint, consistent_after, result)
                finally:
                    stream.close()
                    self.monitor.close()
            except TransientError as exc:
                # Lost connection to either side: reconnect and resume from the durable
                # checkpoint. Bounded: a streak of failures without progress ends the run.
                failures = 1 if result.position != before else failures + 1
                if failures > MAX_CONSECUTIVE_FAILURES:
                    raise
                delay = float(wait(_Attempt(failures)))  # type: ignore[arg-type]
                self.ctx.events.emit(ErrorRaised.of(PHASE, exc, retrying=True))
                self.ctx.events.emit(
                    Notice(
                        "warn",
                        f"{exc.message}; retrying in {delay:.1f} s ({failures}/{MAX_CONSECUTIVE_FAILURES})",
                    )
                )
                if self._stop.wait(delay):
                    result.stopped = True
                    return result
                self._relations = {}  # a new stream sends its Relation messages again
                try:
                    checkpoint, _ = self.start_position()
                except TransientError:
                    continue  # the target is still away: count it as another failure

    def _open_stream(self, checkpoint: int) -> ReplicationStream | PollingStream:
        endpoint = self.ctx.source.endpoint
        if self.settings.mode == "poll":
            return PollingStream(
                endpoint, self.slot, self.publication, checkpoint, batch=self.settings.poll_changes
            )
        return ReplicationStream(endpoint, self.slot, self.publication, checkpoint)

    def _loop(
        self,
        stream: ReplicationStream | PollingStream,
        checkpoint: int,
        consistent_after: int,
        result: CdcResult,
    ) -> CdcResult:
        apply_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="migrator-cdc-apply")
        try:
            return self._stream_loop(stream, checkpoint, consistent_after, result, apply_thread)
        finally:
            # On the way out after an error too: nothing is written any more once this returns,
            # before a retry reads the checkpoint again.
            apply_thread.shutdown(wait=True)

    def _stream_loop(
        self,
        stream: ReplicationStream | PollingStream,
        checkpoint: int,
        consistent_after: int,
        result: CdcResult,
        apply_thread: concurrent.futures.ThreadPoolExecutor,
    ) -> CdcResult:
        batch = _Batch()
        applied = checkpoint
        in_txn = False
        skip_txn = False
        awaited = False  # the transaction carries a marker someone waits for
        in_stream = False
        spools: dict[int, _Spool] = {}
        aborted_subxids: dict[int, set[int]] = {}
        reverse_xids: set[int] = set()  # streamed transactions that reverse sync wrote
        current_stream_xid: int | None = None
        last_activity = time.monotonic()
        last_budget_check = 0.0
        throttle = self.ctx.throttle
        last_throttle_check = 0.0
        # One batch is written by this thread while the next is read, decoded and mapped: the
        # target's time and the stream's overlap. Everything else (acknowledging, events, the
        # replication connection) stays on this thread.
        applying: _Applying | None = None

        def settle() -> None:
            """Wait for the batch being applied; then it is the checkpoint: acknowledge, report."""
            nonlocal applied, applying
            if applying is None:
                return
            done, applying = applying, None
            while not concurrent.futures.wait([done.future], timeout=FEEDBACK_WHILE_APPLYING_S).done:
                # Applying (a spooled transaction replayed whole, a conflict retried) is not
                # reading: without a status update now and then, the server's wal_sender_timeout
                # ends the connection and a large transaction starts over.
                stream.keepalive()
            done.future.result()  # the apply's error, raised here
            position, applied_batch = done.position, done.batch
            if position is not None:
                applied = position
                stream.acknowledge(max(position, done.acknowledge_after))
                result.position = lsn_to_str(position)
                now = time.time()
                self.ctx.events.emit(
                    BatchApplied(
                        position=result.position,
                        transactions=applied_batch.transactions,
                        changes=applied_batch.changes,
                        writes=len(applied_batch.ops),
                        lag_ms=[round((now - t) * 1000, 1) for t in applied_batch.commit_times],
                    )
                )
            result.changes += applied_batch.changes
            result.transactions += applied_batch.transactions

        def flush(final: bool = True) -> None:
            """Hand the batch to the apply thread, once the one before it is applied."""
            nonlocal batch, applying
            if not batch.ops and batch.end_lsn is None:
                return
            settle()
            position = batch.end_lsn if final else None
            future = apply_thread.submit(
                self.applier.apply,
                batch.ops,
                position,
                lsn_to_str(position) if position is not None else None,
            )
            applying = _Applying(future, batch, position)
            batch = _Batch()
            stream.linger = APPLYING_POLL_S if stream.linger is None else min(stream.linger, APPLYING_POLL_S)

        def handle_change(message: RowChange | Insert | Update | Delete) -> None:
            # Decoding with self._relations as readers gives a RowChange for every relation
            # found there; a raw Insert, Update or Delete is one of a relation never announced.
            relation = self._relations.get(message.relation_id)
            if relation is None or not isinstance(message, RowChange):
                raise SourceError(
                    f"change for unknown relation {message.relation_id} (no Relation message first)"
                )
            if self._oracle is not None:
                self._observe(relation, message)
                batch.changes += 1
                return
            mapper = self._mapper
            if message.kind == "I":
                assert message.new is not None
                ops = mapper.insert(relation.table, message.new)
            elif message.kind == "U":
                assert message.new is not None
                ops = mapper.update(relation.table, message.old, message.new)
            else:
                assert message.old is not None
                ops = mapper.delete(relation.table, message.old)
            batch.ops.extend(ops)
            batch.changes += 1
            for observer in self.observers:
                observer(relation.table, message.old, message.new, _CHANGE_NAMES[message.kind])

        def handle_truncate(message: Truncate) -> None:
            for relation_id in message.relation_ids:
                relation = self._relations.get(relation_id)
                if relation is None:
                    continue
                if self.settings.on_truncate == "stop":
                    raise TerminalError(
                        f"TRUNCATE of {relation.table} on the source: the migration stops rather than guess",
                        hint="set phases.cdc.on_truncate: apply to empty the matching documents or arrays, "
                        "then run again",
                    )
                if self._oracle is not None:
                    self._oracle.truncated(relation.table)
                else:
                    batch.ops.extend(self._mapper.truncate(relation.table))
                batch.changes += 1

        def dispatch(message: Any) -> None:
            if isinstance(message, Relation):
                self._relation(message)
            elif isinstance(message, RowChange | Insert | Update | Delete):
                handle_change(message)
            elif isinstance(message, Truncate):
                handle_truncate(message)
            # Type, Origin and logical messages carry nothing to apply.

        def end_transaction(commit_lsn: int, end_lsn: int, commit_time: Any) -> None:
            batch.end_lsn = end_lsn
            batch.transactions += 1
            batch.last_commit_time = commit_time.timestamp()
            batch.commit_times.append(batch.last_commit_time)
            if batch.first_commit_at is None:
                batch.first_commit_at = time.monotonic()
            if self._oracle is not None:
                self._oracle.commit(lsn_to_str(end_lsn), batch.last_commit_time)
            if len(batch.ops) >= self.settings.batch_changes:
                flush()

        marker: int | None = None  # a heartbeat whose commit, once applied, proves we are caught up

        def caught_up() -> bool:
            nonlocal marker
            if self.until != "caught-up" or in_txn or batch.ops:
                return False
            settle()
            if marker is None or applied < marker:
                if marker is None:
                    marker = lsn_to_int(self.monitor.heartbeat(HEARTBEAT_PREFIX, self.ctx.plan.name))
                return False
            lag = 0.0 if batch.last_commit_time is None else time.time() - batch.last_commit_time
            if applied >= consistent_after and lag <= self._max_lag():
                return True
            marker = None
            return False

        for item in stream.messages(wait_s=min(1.0, self.settings.heartbeat_interval)):
            now = time.monotonic()
            if isinstance(item, Keepalive):
                # All before item.wal_end has been received. Once it is applied, acknowledge
                # that position too (as PostgreSQL's own subscribers do): what lies between the
                # last applied commit and it holds nothing to apply, and a fast shutdown of the
                # source waits for this client's confirmation of everything sent, forever.
                if not in_txn and not in_stream and not spools:
                    age = None if batch.first_commit_at is None else now - batch.first_commit_at
                    if age is not None and age < LINGER_S:
                        # The server sends one of these each time it has sent all there is, so
                        # under a steady stream of small transactions that is after each one.
                        # Applying then would mean one target transaction (and checkpoint) per
                        # source transaction; wait a moment for more to batch instead: until
                        # data comes, or Idle after the rest of LINGER_S, which applies.
                        stream.linger = max(0.001, LINGER_S - age)
                    else:
                        flush()
                        if applying is not None:
                            applying.acknowledge_after = max(applying.acknowledge_after, item.wal_end)
                        else:
                            stream.acknowledge(item.wal_end)
            elif isinstance(item, Idle):
                stream.linger = None
                settle()  # nothing to read meanwhile
                if not in_txn:
                    flush()
                if now - last_activity >= self.settings.heartbeat_interval and not in_txn:
                    self.monitor.heartbeat(HEARTBEAT_PREFIX, self.ctx.plan.name)
                    last_activity = now
            else:
                last_activity = now
                # Changes of announced relations come as RowChanges, their values parsed while
                # decoding; inside a stream they are only spooled, so read raw until replayed.
                readers = None if in_stream else self._relations
                message = decode(item, in_stream=in_stream, readers=readers)
                if type(message) is RowChange:  # nearly every message: the shortest way through
                    if not skip_txn:
                        handle_change(message)
                        if len(batch.ops) >= self.settings.batch_changes:
                            flush(final=False)  # a huge transaction, as below
                elif isinstance(message, StreamStart):
                    in_stream, current_stream_xid = True, message.xid
                    spools.setdefault(message.xid, _Spool())
                elif isinstance(message, StreamStop):
                    in_stream, current_stream_xid = False, None
                elif in_stream:
                    if isinstance(message, Relation):
                        self._relation(message)
                    assert current_stream_xid is not None
                    if isinstance(message, Origin) and message.name == self._reverse_origin:
                        reverse_xids.add(current_stream_xid)  # in its first block: skipped at commit
                    spools[current_stream_xid].add(getattr(message, "xid", None), item)
                elif isinstance(message, StreamAbort):
                    if message.xid == message.subxid:
                        reverse_xids.discard(message.xid)
                        spool = spools.pop(message.xid, None)
                        if spool is not None:
                            spool.close()
                        aborted_subxids.pop(message.xid, None)
                    else:
                        aborted_subxids.setdefault(message.xid, set()).add(message.subxid)
                elif isinstance(message, StreamCommit):
                    spool = spools.pop(message.xid, None)
                    dropped = aborted_subxids.pop(message.xid, set())
                    echo = message.xid in reverse_xids  # reverse sync's own: skipped like below
                    reverse_xids.discard(message.xid)
                    if spool is not None:
                        try:
                            if message.commit_lsn >= applied and not echo:
                                for payload in spool.replay(dropped):
                                    dispatch(decode(payload, in_stream=True, readers=self._relations))
                                    if len(batch.ops) >= self.settings.batch_changes:
                                        flush(final=False)
                        finally:
                            spool.close()
                    if message.commit_lsn >= applied and not echo:
                        end_transaction(message.commit_lsn, message.end_lsn, message.commit_time)
                elif isinstance(message, Begin):
                    in_txn = True
                    skip_txn = message.final_lsn < applied
                    awaited = False
                elif isinstance(message, Commit):
                    in_txn = False
                    if not skip_txn:
                        end_transaction(message.commit_lsn, message.end_lsn, message.commit_time)
                        if awaited:
                            # Someone waits for this marker (cutover, verify, caught-up): apply
                            # and checkpoint now rather than when the stream next goes idle.
                            flush()
                elif isinstance(message, LogicalMessage):
                    awaited = awaited or message.prefix.startswith(MARKER_PREFIX)
                elif isinstance(message, Origin):
                    # Sent after Begin when the transaction was committed under a replication
                    # origin. Reverse sync's own (its rows came from the target) is skipped like
                    # an applied one, so nothing echoes; other origins (the source may itself
                    # subscribe to another database) are applied as usual.
                    if message.name == self._reverse_origin:
                        skip_txn = True
                elif isinstance(message, Relation):
                    self._relation(message)
                elif not skip_txn and not isinstance(message, LogicalMessage):
                    dispatch(message)
                    if len(batch.ops) >= self.settings.batch_changes:
                        flush(final=False)  # a huge transaction: apply as it comes, checkpoint at its commit
            if applying is not None and applying.future.done():
                settle()
            if (
                not in_txn
                and batch.first_commit_at is not None
                and now - batch.first_commit_at >= BATCH_AGE_S
            ):
                flush()
            if now - last_budget_check >= PROGRESS_INTERVAL_S:
                last_budget_check = now
                self._check_budget(applied, batch, result)
            if (
                throttle is not None
                and not in_txn
                and not in_stream
                and now - last_throttle_check >= throttle.interval
            ):
                last_throttle_check = now
                if throttle.poll(PHASE).throttled:
                    # Held between batches: what is complete is applied and acknowledged first;
                    # then nothing is read or applied until the hold lifts, while status updates
                    # keep the replication connection (wal_sender_timeout) and the budget checks
                    # (max_retained_wal) going.
                    flush()
                    settle()
                    self._hold(throttle, stream, applied, batch, result)
                    last_activity = last_throttle_check = time.monotonic()
            if self._stop.is_set() and not in_txn:
                flush()
                settle()
                result.stopped = True
                return result
            if caught_up():
                result.caught_up = True
                return result
        settle()
        return result

    def _hold(
        self,
        throttle: Throttler,
        stream: ReplicationStream | PollingStream,
        applied: int,
        batch: _Batch,
        result: CdcResult,
    ) -> None:
        """Wait while throttled, reading nothing, sending status updates when due (so that the
        server's wal_sender_timeout never ends the connection) and checking the WAL budget."""
        last_budget = time.monotonic()

        def tick() -> None:
            nonlocal last_budget
            # The server's keepalive requests are not read while held: answer them unasked, often
            # enough for any wal_sender_timeout worth having (the default is 60 s).
            stream.keepalive(HOLD_FEEDBACK_S)
            if time.monotonic() - last_budget >= PROGRESS_INTERVAL_S:
                last_budget = time.monotonic()
                self._check_budget(applied, batch, result)

        throttle.wait(PHASE, self._stop, tick=tick)

    def _check_budget(self, applied: int, batch: _Batch, result: CdcResult) -> None:
        state = self.monitor.state(self.slot)
        if state is None:
            raise SourceError(
                f"replication slot {self.slot} disappeared while streaming: a new snapshot is needed",
                hint="run `migrator rollback` for this plan, then `migrator run` again",
            )
        retained = int(state["retained_bytes"])
        lag_bytes = max(0, lsn_to_int(state["current"]) - applied)
        lag_seconds = (
            0.0 if batch.last_commit_time is None else max(0.0, time.time() - batch.last_commit_time)
        )
        self.ctx.events.emit(
            CdcProgress(
                position=lsn_to_str(applied),
                transactions=result.transactions,
                changes=result.changes,
                lag_bytes=lag_bytes,
                lag_seconds=round(lag_seconds, 3),
                retained_wal_bytes=retained,
            )
        )
        if retained > self.settings.max_retained_wal:
            raise TerminalError(
                f"slot {self.slot} holds {retained:,} bytes of WAL on the source, over the budget of "
                f"{self.settings.max_retained_wal:,} (phases.cdc.max_retained_wal): stopping before the source's "
                "disk fills",
                hint="find why the target falls behind, raise the budget if the disk allows, then `migrator run` "
                "resumes from the checkpoint",
            )


def planned_actions(view: PlanView) -> list[Action]:
    """What CDC would do, in order (pure: feeds --dry-run and the runbook)."""
    plan, settings = view.plan, view.plan.phases.cdc
    slot, publication = slot_name_pattern(plan.name), publication_name(plan.name)
    database = plan.target.database
    collections = ", ".join(f"{database}.{c.name}" for c in view.collections)
    how = (
        "a replication connection (START_REPLICATION)"
        if settings.mode == "stream"
        else f"SQL polling (pg_logical_slot_peek_binary_changes, {settings.poll_changes:,} changes a poll)"
    )
    actions = [
        Action(
            PHASE,
            f"stream changes of publication {publication} from slot {slot} through {how}, starting at "
            f"the target's checkpoint, else at the slot's consistent point",
            "none",
        ),
    ]
    if settings.apply:
        actions.append(
            Action(
                PHASE,
                f"apply each source transaction, in commit order, as document writes to {collections} in "
                f"batches of up to {settings.batch_changes:,} writes, each with its checkpoint "
                f"({database}._migrator, _id {cdc_checkpoint_id(plan.name)})",
                "target",
            )
        )
    else:
        actions.append(
            Action(
                PHASE,
                f"dual-write verification (cdc.apply: false): write only the checkpoint ({database}._migrator) "
                f"and check each change against {collections} "
                f"{plan.phases.verify.dual_write_grace:g} s after its commit",
                "target",
            )
        )
    actions += [
        Action(PHASE, f"acknowledge the applied position to slot {slot}, so the source frees WAL", "source"),
        Action(PHASE, "mirror the applied position into the state store, now and then", "state"),
        Action(
            PHASE,
            f"when idle, emit a heartbeat every {settings.heartbeat_interval:g} s "
            f"(pg_logical_emit_message '{HEARTBEAT_PREFIX}') so the slot keeps advancing",
            "source",
        ),
        Action(
            PHASE,
            f"stop if the slot retains over {settings.max_retained_wal:,} bytes of WAL; on TRUNCATE: "
            f"{settings.on_truncate}; keep following until stopped or cut over"
            + f" (--until caught-up: stop once the lag is under {settings.max_lag:g} s)",
            "none",
        ),
    ]
    return actions


def wait_until_applied(
    target: Any,
    plan_name: str,
    marker: int,
    deadline: float,
    *,
    stop: threading.Event | None = None,
    check: Callable[[], None] | None = None,
    poll_s: float = 0.01,
) -> bool:
    """Whether CDC's checkpoint on the target reached `marker` (a source position, such as a
    marker's from pg_logical_emit_message) by the monotonic `deadline`: False on timeout or
    when `stop` is set. `check` runs at each poll (to raise what stopped the CDC being waited
    for). What cutover, rollback and the checks before the fence wait on."""
    checkpoint = cdc_checkpoint_id(plan_name)
    while (target.applied_position(checkpoint) or 0) < marker:
        if check is not None:
            check()
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return False
        time.sleep(poll_s)
    return True
