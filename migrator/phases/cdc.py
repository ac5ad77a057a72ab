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
import contextlib
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Literal

from migrator.adapters.base import ColumnInfo, WriteOp
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.adapters.postgres.generated import Generated, GeneratedColumns, StoredColumn
from migrator.adapters.postgres.inspect import PostgresInspector, split_table
from migrator.adapters.postgres.lsn import Lsn
from migrator.adapters.postgres.partitions import Partitions, quoted, quoted_identifier
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
    Row,
    RowChange,
    RowReader,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Tuple,
    Update,
    decode,
)
from migrator.adapters.postgres.publication import publishing, restore_statements
from migrator.adapters.postgres.reading import key_text
from migrator.adapters.postgres.replication import (
    Idle,
    Keepalive,
    PollingStream,
    ReplicationStream,
    SlotMonitor,
)
from migrator.adapters.postgres.shapes import (
    SchemaChange,
    ShapeReader,
    TableShape,
    compare,
    compare_publication,
    shapes_from_json,
)
from migrator.adapters.postgres.snapshot import Coordinator, PublicationManager, SnapshotReader
from migrator.adapters.postgres.values import ValueParser
from migrator.engine.context import PlanView, RunContext
from migrator.engine.events import BatchApplied, CdcProgress, ErrorRaised, Notice
from migrator.engine.executor import Action
from migrator.engine.retry import RetryStopped, retrying_streak
from migrator.engine.throttle import Throttler
from migrator.errors import (
    BatchTooLarge,
    InternalError,
    MigratorError,
    SourceError,
    TerminalError,
    TransientError,
)
from migrator.mapping.assemble import Assembler
from migrator.mapping.changes import ChangeMapper, fill_unchanged
from migrator.mapping.columns import columns_read
from migrator.mapping.lookup import MappedDocuments
from migrator.mapping.source_reads import SourceReads
from migrator.mapping.spec import resolve
from migrator.phases.backfill import (
    BACKFILL_PREFIX,
    AddedColumns,
    backfill_writes,
    marker_column,
    marker_content,
)
from migrator.phases.batch_size import BatchLimit
from migrator.phases.lag import LagTracker, commit_time_field
from migrator.phases.oracle import DualWriteOracle
from migrator.plan.names import cdc_checkpoint_id, publication_name, reverse_origin_name, slot_name_pattern

# Called for each applied row change: (table, old row, new row, 'insert' | 'update' | 'delete').
ChangeObserver = Callable[[str, Any, Any, str], None]
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
MAX_CONSECUTIVE_FAILURES = 8
SLOT_RELEASE_S = 60.0  # how long a reconnect waits for the server to let go of the slot
_CHANGE_NAMES = {"I": "insert", "U": "update", "D": "delete"}


def unexpected(exc: Exception, doing: str) -> InternalError:
    """An error that is no MigratorError (a defect) that ends CDC, as a terminal error that says
    where it happened: what status records, and the checkpoint stays before it."""
    return InternalError(
        f"CDC stopped by an unexpected error while {doing}: {type(exc).__name__}: {exc}",
        hint="this is a defect of migrator: report it with this message; the checkpoint stays before it, so "
        "`migrator run` resumes from there once it is fixed",
    )


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
    """A mapped table's current Relation message: how to read its rows, and the table's name.

    For a leaf partition of a mapped partitioned table, `table` is the root (its changes are
    the root's) and `leaf` the partition's own name. `unsure`: the leaf's replica identity
    lacked columns the mapping needs when these changes were logged (fixed since): its
    updates and deletes are checked one by one."""

    __slots__ = ("computed", "leaf", "table", "unsure")

    def __init__(
        self,
        table: str,
        names: Sequence[str],
        parsers: Sequence[Parse | None],
        is_key: Sequence[bool],
        *,
        leaf: str | None = None,
        unsure: tuple[str, ...] = (),
        computed: _Computed | None = None,
    ) -> None:
        super().__init__(names, parsers, is_key)
        self.table = table
        self.leaf = leaf
        self.unsure = unsure
        self.computed = computed

    def row_change(self, message: Insert | Update | Delete) -> RowChange:
        """A change decoded without this reader (its raw values kept, see _Computed), as the
        RowChange the reader would have given."""
        if isinstance(message, Insert):
            return RowChange("I", message.xid, message.relation_id, None, False, self._row(message.new))
        old = None if message.old is None else self._row(message.old, key_only=message.old_is_key)
        if isinstance(message, Delete):
            return RowChange("D", message.xid, message.relation_id, old, message.old_is_key, None)
        return RowChange(
            "U", message.xid, message.relation_id, old, message.old_is_key, self._row(message.new)
        )

    def _row(self, values: Tuple, key_only: bool = False) -> Row:
        if len(values) != self._width:
            raise SourceError(f"pgoutput tuple has {len(values)} columns, its Relation message {self._width}")
        row = {
            name: parse(value) if type(value) is bytes else value
            for (name, parse), value in zip(self._columns, values, strict=True)
            if not key_only or name in self._keys
        }
        for name in self._left_out:
            row.pop(name, None)
        return row


@dataclass(frozen=True)
class _Computed:
    """A relation's stored generated columns that its changes lack (docs/architecture.md,
    "Stored generated columns"): what computes them, how to parse the results, and where in a
    tuple the columns they read are. Its changes are decoded raw, so that those columns' text
    (PostgreSQL's own, what the expressions are fed) is at hand; tables without such columns
    keep the one-pass reader."""

    generated: Generated
    parsers: dict[str, Parse]  # generated column -> parser of its text
    inputs: dict[str, tuple[int, bool]]  # column read -> (its index in a tuple, whether it is a key column)

    def texts(self, message: Insert | Update) -> dict[str, Any]:
        """The text of each column read (None: NULL; UNCHANGED: neither tuple carries it). An
        unchanged TOASTed value is taken from the old tuple where it has it, as fill_unchanged."""
        old = message.old if isinstance(message, Update) else None
        key_only = isinstance(message, Update) and message.old_is_key
        out: dict[str, Any] = {}
        for name, (index, is_key) in self.inputs.items():
            value = message.new[index]
            if value is UNCHANGED and old is not None and (is_key or not key_only):
                value = old[index]
            out[name] = value.decode() if isinstance(value, bytes) else value
        return out


@dataclass
class _Deferred:
    """A change of a relation with generated columns to compute: mapped when its batch is handed
    to the applier, once they are (one statement per relation for the whole batch)."""

    relation: _RelationState
    mapper: ChangeMapper
    change: RowChange
    texts: dict[str, Any]
    compute: frozenset[str]  # the generated columns to compute (the others stay unchanged)


@dataclass
class _Batch:
    ops: list[WriteOp] = field(default_factory=list)
    # Changes mapped once their generated columns are computed, with the place in `ops` their
    # writes go: transaction order is kept.
    deferred: list[tuple[int, _Deferred]] = field(default_factory=list)
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
        # Writes per batch: phases.cdc.batch_changes, less while the target aborts batches
        # (docs/architecture.md, "Batches that adapt"); kept across reconnects.
        self.batch_limit = BatchLimit(self.settings.batch_changes, events=ctx.events)
        self.until = until
        self._stop = stop
        self.slot = ctx.run.slot
        self.publication = publication_name(ctx.plan.name)
        # Reverse sync (phases/reverse.py) writes the source under this replication origin;
        # its transactions are skipped below, so that they never echo back to the target.
        self._reverse_origin = reverse_origin_name(ctx.plan.name)
        self.monitor = SlotMonitor(ctx.source.endpoint)
        # The one measure of lag (phases/lag.py): progress, metrics, --until caught-up and the
        # throttler's max_lag rule read it.
        self.lag = LagTracker()
        if ctx.throttle is not None:
            ctx.throttle.follow_lag(self.lag.seconds)
        self._parser = ValueParser()
        self._relations: dict[int, _RelationState] = {}
        # What decoding reads rows with: every relation but those whose changes are read raw.
        self._readers: dict[int, RowReader] = {}
        self._partitions = Partitions(ctx.source.endpoint)
        self._generated = GeneratedColumns(ctx.source.endpoint)
        self._shapes = ShapeReader(ctx.source.endpoint)
        # The mapped tables' shape that changes are checked against: the snapshot's, else (a run
        # begun before it was recorded) the catalog's when CDC started.
        self._baseline: dict[str, TableShape] | None = None
        self._accepted_leaves: set[int] = set()  # partitions added since, checked: no rows from before
        # The source's WAL position before the last publication check that found the run's
        # publication whole: no checkpoint goes past it unchecked (docs/architecture.md, "The
        # run's publication").
        self._publication_vouched = 0
        self._widened: set[tuple[str, str]] = set()  # (table, column) added since and now published
        # Mapped columns added since the snapshot: their documents are brought up to date at a
        # point of the stream after the ALTER (phases/backfill.py).
        self._added = AddedColumns()
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
        # Per table, the publication's column list (None: every column is published): a Relation
        # message names only these (docs/architecture.md, "Publication column lists").
        read = columns_read(self.ctx.collections)
        version = self.ctx.source_info.server.version_num
        self._published: dict[str, frozenset[str] | None] = {}
        for name, info in tables.items():
            listed = publishing(info, read.get(name), version).columns
            self._published[name] = None if listed is None else frozenset(listed)
        # Per table, the key columns that say which document or element its row is. (A link
        # column that neither tuple carries did not change: the mapper finds its element by the
        # element's own key, which preflight makes unique wherever the link is outside the replica
        # identity; docs/architecture.md, "Embeds: owner and lookup".)
        self._locating: dict[str, tuple[str, ...]] = {}

        def walk(doc: Any) -> None:
            known = self._locating.get(doc.table, ())
            self._locating[doc.table] = tuple(dict.fromkeys((*known, *doc.key)))
            for embed in doc.embeds:
                walk(embed.child)

        for collection in self.ctx.collections:
            walk(collection.document)
        return ChangeMapper(self.ctx.collections, identity, UNCHANGED)

    def _relation(self, message: Relation) -> None:
        if message.relation_id in self._relations:
            # Sent again within a stream: the relation's catalog entry changed (DDL). Some DDL
            # changes nothing a Relation message shows (a column dropped and added again keeps
            # name and type): compare the shapes now rather than within 5 s (docs/architecture.md,
            # "Schema changes").
            self._check_schema()
        table = message.table
        names = tuple(c.name for c in message.columns)
        expected = self._expected_columns.get(table)
        leaf: str | None = None
        unsure: tuple[str, ...] = ()
        renamed = self._renamed(message) if expected is None else None
        if renamed is not None:
            table, expected = renamed, self._expected_columns[renamed]
        elif expected is None:
            # A leaf partition of a mapped partitioned table (docs/architecture.md, "Partitioned
            # tables"): its rows are the root's, read by column name (a leaf may order its
            # columns otherwise, or have dropped ones).
            root = self._partitions.root_of(message.relation_id)
            if root is None or root not in self._expected_columns:
                return  # not a mapped table (a publication is never wider than the plan, but be safe)
            leaf, table, expected = table, root, self._expected_columns[root]
        unsure = self._leaf_identity(message, leaf, table)
        current = {c.name: c.type_oid for c in message.columns}
        # Stored generated columns are the relation's even where the message leaves them out.
        stored = self._generated.stored(message.relation_id)
        absent = {n: c for n, c in stored.items() if n not in current}
        current.update({n: c.type_oid for n, c in absent.items()})
        listed = self._published.get(table)
        known = {
            n: c.type_oid
            for n, c in expected.items()
            if listed is None or n in listed or c.generated is not None or n in stored
        }
        if current != known:
            self._schema_changed(table, current)
            expected = self._expected_columns[table]
        parsers = []
        for column in message.columns:
            info = expected.get(column.name)
            parsers.append(self._parser.for_column(info) if info is not None else None)
        mapped = self._mapped_columns(table)
        computed = self._computed(message, table, {n: c for n, c in absent.items() if n in mapped}, expected)
        state = _RelationState(
            table,
            names,
            parsers,
            [c.is_key for c in message.columns],
            leaf=leaf,
            unsure=unsure,
            computed=computed,
        )
        self._relations[message.relation_id] = state
        if computed is None:
            self._readers[message.relation_id] = state
        else:
            self._readers.pop(message.relation_id, None)

    def _renamed(self, message: Relation) -> str | None:
        """The mapped table (as the plan names it) that `message` names otherwise: the same oid
        under a name given since the snapshot. Its change may come before the periodic catalog
        check sees the rename, so the run stops here, naming both. Renamed back since (the
        catalog names it as the plan does), the changes logged in between are its own: followed."""
        if self._baseline is None:
            return None
        table = next((t for t, shape in self._baseline.items() if shape.oid == message.relation_id), None)
        if table is None:
            return None
        live = self._shapes.read([table], self._baseline).get(table)
        if live is None:
            self._schema_change(SchemaChange(table, "table dropped", self._baseline[table].name), False)
        elif live.name != self._baseline[table].name:
            self._schema_change(SchemaChange(table, "table renamed", live.name), False)
        return table

    def _computed(
        self, message: Relation, table: str, columns: dict[str, StoredColumn], expected: dict[str, ColumnInfo]
    ) -> _Computed | None:
        """How to compute the mapped stored generated columns the relation's changes lack."""
        if not columns:
            return None
        sent = {c.name: (i, c.is_key) for i, c in enumerate(message.columns)}
        for name, column in columns.items():
            unsent = [c for c in column.reads if c not in sent]
            if unsent:
                raise TerminalError(
                    f"generated column {table}.{name} cannot be computed: it reads {', '.join(unsent)}, which the "
                    f"change stream of {message.table} does not carry",
                    hint=f"publish every column {table}.{name} reads (a publication column list must include them)",
                )
        generated = self._generated.computing(message.relation_id, columns)
        parsers = {name: self._parser.for_column(expected[name]) for name in columns}
        return _Computed(generated, parsers, {c: sent[c] for c in generated.inputs})

    def _leaf_identity(self, message: Relation, leaf: str | None, root: str) -> tuple[str, ...]:
        """Check, before any change of mapped table `root` (or of its leaf partition `leaf`) is
        applied, that its replica identity carries what the mapping was validated against: the
        table's identity columns, key-flagged in its Relation message, or REPLICA IDENTITY FULL.
        A table's identity may change while the run follows (ALTER TABLE ... REPLICA IDENTITY,
        which makes pgoutput send a new Relation message). The identity flagged is the one the
        changes that follow were logged under; if the catalog has it fixed since, those changes
        are checked one by one instead (the columns returned)."""
        info = self.ctx.source_info.tables[root]
        # What the mapping keys by, of the identity it was validated against: a FULL identity
        # names every column, but only the key columns say which document or element a change is
        # (an identity narrowed to the key loses nothing the mapping needs).
        locating = set(self._locating.get(root, ()))
        needed = tuple(c for c in info.identity_columns if c in locating) or info.identity_columns
        flagged = {c.name for c in message.columns if c.is_key}
        missing = [c for c in needed if c not in flagged]
        if message.replica_identity == "f" or not missing:
            return ()
        now = self._partitions.identity(message.relation_id, [c.name for c in message.columns])
        if now is not None and now.covers(needed):
            return tuple(needed)
        if leaf is None:
            usable = (
                info.primary_key and not info.primary_key_deferrable and set(needed) <= set(info.primary_key)
            )
            fix = (
                f"ALTER TABLE {quoted(root)} REPLICA IDENTITY DEFAULT;"
                if usable
                else f"ALTER TABLE {quoted(root)} REPLICA IDENTITY FULL;"
            )
            identity = now.describe() if now is not None else f"({', '.join(sorted(flagged)) or 'none'})"
            raise TerminalError(
                f"the replica identity of {root} was changed on the source while the migration ran: it is now "
                f"{identity}, without {', '.join(missing)}, which the mapping keys by: its updates and deletes "
                "would not say which document they change",
                hint=f"{fix} then `migrator run` again (a change logged meanwhile whose old row lacks "
                f"{', '.join(missing)} stops the run again: then roll back and run again)",
            )
        raise TerminalError(
            f"partition {leaf} of {root} has a replica identity ({', '.join(sorted(flagged)) or 'none'}) without "
            f"{', '.join(missing)}: its updates and deletes would not say which document of {root} they change",
            hint=f"ALTER TABLE {quoted(leaf)} REPLICA IDENTITY FULL; then `migrator run` again (or REPLICA IDENTITY "
            f"USING INDEX on a unique index of {leaf} over {', '.join(needed)})",
        )

    def _to_compute(
        self, table: str, computed: _Computed, change: RowChange, texts: dict[str, Any]
    ) -> frozenset[str]:
        """The generated columns to compute for this insert or update. One whose every input is
        unchanged (stored out of line, not updated) is itself unchanged, and left out like them;
        one that reads such an input beside others cannot be computed from the change: stop."""
        lacking = {c for c, v in texts.items() if v is UNCHANGED}
        if not lacking:
            return frozenset(computed.generated.columns)
        assert change.new is not None
        out = set()
        for name, reads in computed.generated.reads.items():
            unsent = [c for c in reads if c in lacking]
            if not unsent:
                out.add(name)
            elif len(unsent) == len(reads):
                change.new[name] = UNCHANGED
            else:
                raise TerminalError(
                    f"generated column {table}.{name} cannot be computed for an UPDATE: it reads "
                    f"{', '.join(unsent)}, which the change does not carry (a value stored out of line that the "
                    "UPDATE did not change, and not in the replica identity)",
                    hint=f"ALTER TABLE {quoted(table)} REPLICA IDENTITY FULL, so that PostgreSQL logs it; then roll "
                    "back (`migrator rollback`) and run again, since changes logged before cannot be computed",
                )
        return frozenset(out)

    def _resolve(self, batch: _Batch) -> list[WriteOp]:
        """The batch's writes with those of its deferred changes in their places, once their
        generated columns are computed: one statement per relation (and set of columns)."""
        groups: dict[tuple[int, frozenset[str]], list[_Deferred]] = {}
        for _, deferred in batch.deferred:
            if deferred.compute:
                groups.setdefault((id(deferred.relation.computed), deferred.compute), []).append(deferred)
        for (_, names), members in groups.items():
            computed = members[0].relation.computed
            assert computed is not None
            generated = computed.generated
            if names != set(generated.columns):
                generated = generated.only(names)
            results = self._generated.evaluate(generated, [d.texts for d in members])
            for deferred, values in zip(members, results, strict=True):
                new = deferred.change.new
                assert new is not None
                for name, value in zip(generated.columns, values, strict=True):
                    new[name] = None if value is None else computed.parsers[name](value)
        ops: list[WriteOp] = []
        done = 0
        for at, deferred in batch.deferred:
            ops.extend(batch.ops[done:at])
            done = at
            change, table = deferred.change, deferred.relation.table
            try:
                assert change.new is not None
                if change.kind == "I":
                    ops.extend(deferred.mapper.insert(table, change.new))
                else:
                    ops.extend(deferred.mapper.update(table, change.old, change.new))
            except MigratorError:
                raise
            except Exception as exc:
                raise unexpected(exc, f"mapping {_CHANGE_NAMES[change.kind]} of {table}") from exc
            for observer in self.observers:
                observer(table, change.old, change.new, _CHANGE_NAMES[change.kind])
        ops.extend(batch.ops[done:])
        batch.deferred = []
        return ops

    def _check_schema(self) -> None:
        """Compare the mapped tables' shape with the catalog's: what would make rows vanish or
        appear without a change, or the mapping read what is no longer there, stops the run
        (terminal: the checkpoint stays where it was). The catalog is ahead of the stream, so
        this may stop before the change that made it is reached: that is fine."""
        tables = list(self.ctx.source_info.tables)
        first = self._baseline is None
        if self._baseline is None:
            slot = next(
                (c for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot") if c.label == "slot"),
                None,
            )
            recorded = slot.detail.get("schema") if slot is not None else None
            if recorded is None:
                self._baseline = self._shapes.read(tables)
                return
            self._baseline = shapes_from_json(recorded)
        live = self._shapes.read(tables, self._baseline)
        for change in compare(self._baseline, live):
            self._schema_change(change, first)
        for table, relation in self._shapes.unlogged(live):
            what = relation if relation == table else f"partition {relation} of {table}"
            raise TerminalError(
                f"{what} is UNLOGGED (made or created so on the source while the migration ran): its changes are "
                "not written to the WAL, so they never reach the target",
                hint=f"ALTER TABLE {quoted(relation)} SET LOGGED; then roll back (`migrator rollback`) and run again: "
                "rows written while it was UNLOGGED never passed through the stream",
            )

    def _check_publication(self) -> None:
        """The run's publication must still publish what the run needs: pgoutput sends nothing of
        a table, a column or a kind of change it no longer publishes, so the catalog is the only
        witness (docs/architecture.md, "The run's publication"). Terminal, naming what changed."""
        version = self.ctx.source_info.server.version_num
        tables = list(self.ctx.source_info.tables)
        position, state = self._shapes.publication(self.publication, version)
        live = self._shapes.read(tables, self._baseline)
        needed: dict[str, frozenset[str]] = {}
        ordered: dict[str, list[str] | None] = {}
        for table in tables:
            listed = self._published.get(table)
            expected = self._expected_columns.get(table, {})
            ordered[table] = None if listed is None else [c for c in expected if c in listed]
            needed[table] = (
                listed
                if listed is not None
                else frozenset(n for n, c in expected.items() if c.generated is None)
            )
        changes = compare_publication(state, live, needed)
        if not changes:
            self._publication_vouched = position
            return
        statements = restore_statements(
            self.publication,
            ordered,
            version,
            options=any(c.options for c in changes),
            table_set=state is not None and any(not c.options for c in changes),
        )
        raise TerminalError(
            f"publication {self.publication}, through which this run receives the source's changes, was altered "
            f"on the source while the migration ran: {'; '.join(c.what for c in changes)}. PostgreSQL sends "
            "nothing of what a publication does not publish, so changes made since may be missing from the target",
            hint=f"restore it: {' '.join(statements)} then `migrator run` resumes, and `migrator verify --repair` "
            "copies what changed meanwhile (or roll back with `migrator rollback` and run again)",
        )

    def _schema_change(self, change: SchemaChange, first: bool) -> None:
        table, subject = change.table, change.subject
        if change.kind == "table dropped":
            raise TerminalError(
                f"table {table} was dropped (DROP TABLE) on the source while the migration ran",
                hint="restore it, or roll back (`migrator rollback`) and run again with a plan without it",
            )
        if change.kind == "table renamed":
            raise TerminalError(
                f"table {table} was renamed to {subject} ({_rename_kind(table, subject)}) on the source while the "
                "migration ran: the plan names it as it was",
                hint=f"{_rename_back(table, subject, self._shapes.schema_exists(split_table(table)[0]))} or roll back (`migrator rollback`) and run again with a plan "
                f"that names {subject}",
            )
        mapped = change.kind.startswith("column") and (
            subject in self._mapped_columns(table) or self._takes_by_default(table, subject)
        )
        if change.kind == "column dropped" and not mapped and first:
            self.ctx.events.emit(
                Notice(
                    "info",
                    f"column {table}.{subject}, which the plan does not map, was dropped on the source since the "
                    "snapshot: no document changes",
                )
            )
        if change.kind == "column dropped" and mapped:
            raise TerminalError(
                f"column {table}.{subject} was dropped (or renamed) on the source while the migration ran; "
                "the mapping uses it",
                hint="restore the column, or roll back and start again with a plan that does not use it",
            )
        if change.kind == "column re-added" and mapped:
            raise TerminalError(
                f"column {table}.{subject} was dropped and added again (ALTER TABLE ... DROP {subject}, ADD {subject}) "
                "on the source while the migration ran: the source lost its values (the new column holds NULL or "
                "its default) and PostgreSQL logs no row change for that, so documents keep the old ones; the "
                "mapping uses it",
                hint="roll back (`migrator rollback`) and run again, so that a new snapshot reads the column as it "
                "is now; or restore the old values in the source",
            )
        if change.kind == "column retyped" and mapped:
            raise TerminalError(
                f"column {table}.{subject} changed type on the source while the migration ran; the mapping "
                "converts it as it was",
                hint="roll back and start again, so that the snapshot and the changes agree on the type",
            )
        if (
            change.kind == "column added"
            and self._published.get(table) is not None
            and mapped
            and (table, subject) not in self._widened
        ):
            # The publication's column list was fixed when it was made: a column added since is
            # not published until the list names it. Widen it, so that changed rows carry the
            # column from here on, as they do where every column is published (before the marker
            # below, so that every change after the marker carries it).
            self._widened.add((table, subject))
            self._widen_publication(table, subject)
        if change.kind == "column added" and mapped:
            self._mark_for_backfill(table, subject)
        if change.kind == "partition detached":
            gone = not self._shapes.existing([change.oid])
            raise TerminalError(
                f"partition {subject} of {table} was "
                + ("dropped (DROP TABLE)" if gone else "detached (DETACH PARTITION)")
                + f" on the source while the migration ran: its rows left {table} without a change that says so",
                hint="roll back (`migrator rollback`) and run again: a new snapshot reads the table as it is",
            )
        if change.kind == "partition added" and change.oid not in self._accepted_leaves:
            # A partition created since is followed like the others (its Relation message is
            # checked); one attached with rows brought them in without a change.
            if self._shapes.holds_rows_from_before(change.oid, subject):
                raise TerminalError(
                    f"partition {subject} was attached to {table} (ATTACH PARTITION) on the source while the "
                    f"migration ran, with rows it held before: they entered {table} without a change that says so",
                    hint="roll back (`migrator rollback`) and run again: a new snapshot reads them",
                )
            self._accepted_leaves.add(change.oid)

    def _check_located(self, table: str, new: Row) -> None:
        """An UPDATE whose row still lacks a key column after fill_unchanged (stored out of line,
        unchanged, and not in the replica identity, so neither tuple carries it): the change cannot
        be placed. Stop rather than write the marker or guess. (Preflight refuses a key outside the
        replica identity, so this guards a mapping that changed its identity mid-run.)"""
        for column in self._locating.get(table, ()):
            if new.get(column) is UNCHANGED:
                break
        else:
            return
        missing = [c for c in self._locating[table] if new.get(c) is UNCHANGED]
        raise TerminalError(
            f"an UPDATE of {table} does not carry {', '.join(missing)} (a value stored out of line that it "
            "did not change, and not in the replica identity): which document or element it changes is not known",
            hint=f"ALTER TABLE {quoted(table)} REPLICA IDENTITY FULL, so that PostgreSQL logs it; then roll back "
            "(`migrator rollback`) and run again, since changes logged before cannot be placed",
        )

    def _check_placeable(self, relation: _RelationState, message: RowChange) -> None:
        """An update or delete of a mapped table (or leaf partition) logged while its replica
        identity lacked the columns the mapping needs: placed only if its old row carries them."""
        old = message.old
        if old is not None and all(c in old for c in relation.unsure):
            return
        what = "an UPDATE" if message.kind == "U" else "a DELETE"
        of = relation.table if relation.leaf is None else f"partition {relation.leaf} of {relation.table}"
        raise TerminalError(
            f"{what} of {of} was logged while its replica identity lacked "
            f"{', '.join(c for c in relation.unsure if old is None or c not in old)}: which document it changes "
            "is not known",
            hint="roll back (`migrator rollback`) and run again: the new snapshot starts after it",
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
        self.ctx.source_info = source_info
        self.ctx.collections = resolution.collections
        self._mapper = self._build_mapper()
        if self._oracle is not None:
            self._oracle.remap(resolution.collections, source_info)
        # Changed rows carry the added columns from here on; the documents of the others are
        # brought up to date when the stream is past the ALTER (phases/backfill.py).

    def _mark_for_backfill(self, table: str, column: str) -> None:
        """Commit a marker naming `table` and `column`, once the catalog has `column`, mapped and not
        read by the snapshot: it reaches the stream after the ALTER, which a table no row change
        touches again never shows otherwise (docs/architecture.md, "A column added while CDC
        follows")."""
        key = f"{table}.{column}"
        if self._oracle is not None or key in self._added.done or key in self._added.marked:
            return
        self._added.marked.add(key)
        self.monitor.heartbeat(BACKFILL_PREFIX, marker_content(self.ctx.plan.name, table, column))

    def _backfill_due(self, message: Relation) -> tuple[str, list[str]]:
        """The mapped table, and the columns added since the snapshot that this Relation message
        carries but its documents lack: the message is at a point of the stream after the ALTER
        that added them (pgoutput describes a relation by the catalog as of the change that
        follows). Only these: the catalog may already have columns added later in the stream."""
        state = self._relations.get(message.relation_id)
        if state is None or self._oracle is not None:
            return "", []
        names = {c.name for c in message.columns}
        pending = self._added.pending(state.table, self._baseline, self._mapped_columns(state.table))
        return state.table, [c for c in pending if c in names]

    def _backfill(self, table: str, added: set[str], tick: Callable[[], None]) -> None:
        """Bring every document of `table`'s rows up to date with `added`, columns added since the
        snapshot whose ALTER lies before this point of the stream: each row as read now, written
        through the mapper (ChangeMapper.refresh). Called with everything before this point of
        the stream applied, and nothing after it: see docs/architecture.md, "A column added while
        CDC follows", for why the documents then converge to the source. `tick` runs between
        chunks: status updates to the replication connection, which reads nothing meanwhile
        (wal_sender_timeout)."""
        endpoint = self.ctx.source.endpoint
        with endpoint.connect() as conn:
            info = PostgresInspector(conn, endpoint.name, endpoint.secrets).table(table)
        if info is None:
            raise TerminalError(f"table {table} disappeared from the source while the migration ran")
        if {c.name for c in info.columns} - set(self._expected_columns[table]):
            # Reached by a marker before any Relation message showed the columns: the mapping
            # takes them from here on, as on that message.
            self._schema_changed(table, {c.name: c.type_oid for c in info.columns})
        pending = [
            c for c in self._added.pending(table, self._baseline, self._mapped_columns(table)) if c in added
        ]
        if not pending:
            return
        expected = self._expected_columns[table]
        read = columns_read(self.ctx.collections).get(table, set())
        columns = {n: c for n, c in expected.items() if n in read}
        order = list(self.ctx.source_info.tables[table].primary_key or ())
        rows = 0
        for chunk, ops in backfill_writes(
            endpoint, table, columns, order, self._mapper, self._parser, self.batch_limit.limit
        ):
            tick()
            if ops:
                # No checkpoint: the writes are idempotent, and a run resumed before the next
                # checkpoint (which records them done) writes them again.
                try:
                    self.applier.apply(ops, None, None)
                except BatchTooLarge as exc:
                    # Smaller chunks when CDC goes on from the checkpoint (docs/architecture.md,
                    # "Batches that adapt"); a TerminalError for a single write.
                    self.batch_limit.shrink(
                        exc, writes=len(ops), where=f"bringing the documents of {table} up to date"
                    )
                    raise
            for row in chunk:
                for observer in self.observers:
                    observer(table, None, row, "update")
            rows += len(chunk)
        self._added.finished(table, pending)
        self.ctx.events.emit(
            Notice(
                "info",
                f"column(s) {', '.join(pending)} added to {table} since the snapshot: the documents of its "
                f"{rows:,} row(s) were brought up to date",
            )
        )

    def _widen_publication(self, table: str, column: str) -> None:
        """Publish `column`, added to `table` since the publication was made, where the mapping
        takes it: the publication is made to list what the mapping on today's catalog reads."""
        endpoint = self.ctx.source.endpoint
        with endpoint.connect() as conn:
            info = PostgresInspector(conn, endpoint.name, endpoint.secrets).table(table)
        if info is None:
            return  # dropped meanwhile: the next schema check stops the run
        tables = dict(self.ctx.source_info.tables)
        tables[table] = info
        source_info = type(self.ctx.source_info)(self.ctx.source_info.server, tables, ())
        resolution = resolve(list(self.ctx.plan.collections), source_info)
        if not resolution.ok:
            return  # the Relation message that carries the column stops the run, saying why
        read = columns_read(resolution.collections)
        PublicationManager(endpoint).ensure_publication(
            self.publication,
            {t: read[t] for t in dict.fromkeys(t for c in resolution.collections for t in c.tables())},
        )
        listed = publishing(info, read.get(table), source_info.server.version_num).columns
        self._published[table] = None if listed is None else frozenset(listed)
        self.ctx.events.emit(
            Notice(
                "warn",
                f"column {column} added to {table} since the snapshot: publication {self.publication} now publishes "
                "it, and changed rows carry it from here on; the documents of the others are brought up to date "
                "once the stream reaches this point",
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
        self._added.load(stored)
        slot = next(c for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot") if c.label == "slot")
        self.lag.resume(stored, snapshot_at=slot.created_at)
        if stored is not None:
            return int(stored["position"]), "target checkpoint"
        return Lsn.parse(slot.position).value, "snapshot position"

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
                f"replication slot {self.slot} no longer exists: changes after {Lsn(checkpoint)} are lost "
                "to this run and a new snapshot is needed",
                hint="run `migrator rollback` for this plan, then `migrator run` again",
            )
        try:
            self._check_schema()  # DDL made while no run followed (docs/architecture.md, "Schema changes")
            self._check_publication()
        finally:
            self._shapes.close()
        snapshot_done = next(
            (c for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot") if c.label == "done"), None
        )
        consistent_after = Lsn.parse(
            snapshot_done.detail.get("consistent_after", snapshot_done.position) if snapshot_done else "0/0"
        ).value
        indexes = self.applier.ensure_indexes(self._mapper.index_paths())
        if indexes:
            self.ctx.events.emit(Notice("info", f"indexes for embedded changes: {', '.join(indexes)}"))
        self.ctx.events.emit(Notice("info", f"replaying changes from {Lsn(checkpoint)} ({origin})"))
        result = CdcResult(position=str(Lsn(checkpoint)))

        def attempt(previous: TransientError | None) -> CdcResult:
            nonlocal checkpoint
            if previous is not None:
                # A retry: reconnect and resume from the durable checkpoint. A batch the target
                # aborted first waits for the server to let go of the slot.
                if isinstance(previous, BatchTooLarge) and not self._slot_released():
                    raise RetryStopped
                self._relations = {}  # a new stream sends its Relation messages again
                self._added.marked.clear()  # a backfill marker not applied yet: emitted again
                self._readers = {}
                # The target still away: the old checkpoint stands, the attempt fails and counts.
                with contextlib.suppress(TransientError):
                    checkpoint, _ = self.start_position()
            stream = self._open_stream(checkpoint)
            try:
                return self._loop(stream, checkpoint, consistent_after, result)
            except MigratorError:
                raise
            except Exception as exc:
                raise unexpected(exc, f"following changes after {result.position}") from exc
            finally:
                stream.close()
                self.monitor.close()
                self._partitions.close()
                self._generated.close()
                self._shapes.close()

        def announce(exc: TransientError, delay: float, failures: int) -> None:
            if isinstance(exc, BatchTooLarge):
                retry = f"applying batches of up to {self.batch_limit.limit:,} writes from the checkpoint"
            else:
                retry = f"retrying in {delay:.1f} s ({failures}/{MAX_CONSECUTIVE_FAILURES})"
            self.ctx.events.emit(ErrorRaised.of(PHASE, exc, retrying=True))
            self.ctx.events.emit(Notice("warn", f"{exc.message}; {retry}"))

        # Lost connection to either side: reconnect and resume from the durable checkpoint.
        # Bounded: a streak of failures without progress ends the run. A batch the target
        # aborted is no such failure: the limit has shrunk (settle()), which ends at a single
        # write (phases/batch_size.py); go on at once.
        try:
            return retrying_streak(
                attempt,
                stop=self._stop,
                limit=MAX_CONSECUTIVE_FAILURES,
                progress=lambda: result.position,
                announce=announce,
                fresh=(BatchTooLarge,),
            )
        except RetryStopped:
            result.stopped = True
            return result

    def _slot_released(self) -> bool:
        """Wait until the server has let go of the slot that the closed stream used (its walsender
        ends a moment after the connection): a stream opened at once would be refused. False when
        stopped meanwhile."""
        deadline = time.monotonic() + SLOT_RELEASE_S
        while time.monotonic() < deadline:
            state = self.monitor.state(self.slot)
            if state is None or not state["active"]:
                break
            if self._stop.wait(0.2):
                return False
        self.monitor.close()
        return True

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
        last_schema_check = time.monotonic()
        throttle = self.ctx.throttle
        last_throttle_check = 0.0
        # One batch is written by this thread while the next is read, decoded and mapped: the
        # target's time and the stream's overlap. Everything else (acknowledging, events, the
        # replication connection) stays on this thread.
        applying: _Applying | None = None
        reading: int | None = None  # the commit position of the transaction being read
        # Tables whose documents are brought up to date at the end of the transaction being read
        # (phases/backfill.py).
        due: dict[str, set[str]] = {}

        polling = isinstance(stream, PollingStream)

        def nothing_pending() -> bool:
            """Every change read is durable (what CDC's lag calls caught up, with the source's word
            that nothing more is to be read: a keepalive, or a poll that found nothing)."""
            return (
                applying is None
                and not in_txn
                and not in_stream
                and not spools
                and not batch.ops
                and not batch.deferred
                and batch.end_lsn is None
            )

        def settle() -> None:
            """Wait for the batch being applied; then it is the checkpoint: acknowledge, report."""
            nonlocal applied, applying
            if applying is None:
                return
            done, applying = applying, None
            waited_since = time.monotonic()
            while not concurrent.futures.wait([done.future], timeout=FEEDBACK_WHILE_APPLYING_S).done:
                # Applying (a spooled transaction replayed whole, a conflict retried) is not
                # reading: without a status update now and then, the server's wal_sender_timeout
                # ends the connection and a large transaction starts over.
                stream.keepalive()
                if time.monotonic() - waited_since >= PROGRESS_INTERVAL_S:
                    # A slow apply is when lag grows: keep reporting it (invariant 10).
                    waited_since = time.monotonic()
                    self._check_budget(applied, batch, result)
            try:
                done.future.result()  # the apply's error, raised here
            except BatchTooLarge as exc:
                upto = "" if done.position is None else f" up to {Lsn(done.position)}"
                collections = ", ".join(sorted({op.collection for op in done.batch.ops}))
                # Smaller batches from the checkpoint on; a TerminalError for a single write.
                self.batch_limit.shrink(
                    exc,
                    writes=len(done.batch.ops),
                    where=f"(to {collections}) of the source transaction(s) after {Lsn(applied)}{upto}",
                )
                raise
            except MigratorError:
                raise
            except Exception as exc:
                collections = ", ".join(sorted({op.collection for op in done.batch.ops}))
                upto = "" if done.position is None else f" up to {Lsn(done.position)}"
                raise unexpected(
                    exc,
                    f"applying {done.batch.changes} change(s) after {Lsn(applied)}{upto} to {collections}",
                ) from exc
            position, applied_batch = done.position, done.batch
            if done.batch.ops:  # a checkpoint alone says nothing about the size
                self.batch_limit.succeeded()
            if position is not None:
                applied = position
                stream.acknowledge(max(position, done.acknowledge_after))
                self.lag.applied(max(position, done.acknowledge_after), applied_batch.last_commit_time)
                if done.acknowledge_after >= position and nothing_pending():
                    # The server said it had sent all its WAL while this batch was applied, and
                    # nothing came after: caught up (phases/lag.py).
                    self.lag.caught_up(done.acknowledge_after)
                result.position = str(Lsn(position))
                now = time.time()
                self.ctx.events.emit(
                    BatchApplied(
                        position=result.position,
                        transactions=applied_batch.transactions,
                        changes=applied_batch.changes,
                        writes=len(applied_batch.ops),
                        lag_ms=[round((now - t) * 1000, 1) for t in applied_batch.commit_times],
                        commit_time=applied_batch.last_commit_time,
                    )
                )
            result.changes += applied_batch.changes
            result.transactions += applied_batch.transactions

        def flush(final: bool = True) -> None:
            """Hand the batch to the apply thread, once the one before it is applied."""
            nonlocal batch, applying
            if not batch.ops and batch.end_lsn is None and not batch.deferred:
                return
            if batch.deferred:
                batch.ops = self._resolve(batch)  # before settle(): the source's turn overlaps the target's
            settle()
            position = batch.end_lsn if final else None
            if position is not None and position > self._publication_vouched:
                # Never a checkpoint past what a publication check covers (docs/architecture.md,
                # "The run's publication").
                self._check_publication()
            # The checkpoint carries what lag is measured from (phases/lag.py), and which added
            # columns' documents were brought up to date (phases/backfill.py).
            fields = {
                **self.lag.record_fields(),
                **commit_time_field(batch.last_commit_time),
                **self._added.record_fields(),
            }
            future = apply_thread.submit(
                self.applier.apply,
                batch.ops,
                position,
                str(Lsn(position)) if position is not None else None,
                fields=fields if position is not None else None,
            )
            applying = _Applying(future, batch, position)
            batch = _Batch()
            stream.linger = APPLYING_POLL_S if stream.linger is None else min(stream.linger, APPLYING_POLL_S)

        def handle_change(message: RowChange | Insert | Update | Delete) -> None:
            # Decoding with self._readers gives a RowChange for every relation found there; a
            # raw Insert, Update or Delete is one whose generated columns CDC computes (read
            # raw), or one never announced.
            relation = self._relations.get(message.relation_id)
            if relation is None or (not isinstance(message, RowChange) and relation.computed is None):
                raise SourceError(
                    f"change for unknown relation {message.relation_id} (no Relation message first)"
                )
            texts = None
            if not isinstance(message, RowChange):
                assert relation.computed is not None
                if not isinstance(message, Delete):
                    texts = relation.computed.texts(message)
                message = relation.row_change(message)
            try:
                if message.kind == "U":
                    assert message.new is not None
                    # An unchanged TOASTed key or link is known from the old tuple: before anything
                    # reads the row (docs/architecture.md, "Unchanged TOASTed values").
                    message.new = fill_unchanged(message.old, message.new, UNCHANGED)
                if relation.unsure and message.kind != "I":
                    self._check_placeable(relation, message)
                if self._oracle is not None:
                    self._observe(relation, message)
                    batch.changes += 1
                    return
                mapper = self._mapper
                if texts is not None:
                    assert relation.computed is not None
                    if message.kind == "U":
                        assert message.new is not None
                        self._check_located(relation.table, message.new)
                    compute = self._to_compute(relation.table, relation.computed, message, texts)
                    batch.deferred.append(
                        (len(batch.ops), _Deferred(relation, mapper, message, texts, compute))
                    )
                    batch.changes += 1
                    if len(batch.ops) + len(batch.deferred) >= self.batch_limit.limit:
                        flush(final=False)
                    return
                if message.kind == "I":
                    assert message.new is not None
                    ops = mapper.insert(relation.table, message.new)
                elif message.kind == "U":
                    assert message.new is not None
                    self._check_located(relation.table, message.new)
                    ops = mapper.update(relation.table, message.old, message.new)
                else:
                    assert message.old is not None
                    ops = mapper.delete(relation.table, message.old)
            except MigratorError:
                raise
            except Exception as exc:
                where = "" if reading is None else f" in the transaction committed at {Lsn(reading)}"
                raise unexpected(
                    exc, f"mapping {_CHANGE_NAMES[message.kind]} of {relation.table}{where}"
                ) from exc
            batch.ops.extend(ops)
            batch.changes += 1
            for observer in self.observers:
                observer(relation.table, message.old, message.new, _CHANGE_NAMES[message.kind])

        def truncate(table: str) -> None:
            if self.settings.on_truncate == "stop":
                raise TerminalError(
                    f"TRUNCATE of {table} on the source: the migration stops rather than guess",
                    hint="set phases.cdc.on_truncate: apply to empty the matching documents or arrays, "
                    "then run again",
                )
            if self._oracle is not None:
                self._oracle.truncated(table)
            else:
                batch.ops.extend(self._mapper.truncate(table))
            batch.changes += 1

        def handle_truncate(message: Truncate) -> None:
            tables: list[str] = []
            leaves: dict[str, dict[int, str]] = {}  # root -> the truncated leaves, by relation id
            for relation_id in message.relation_ids:
                relation = self._relations.get(relation_id)
                if relation is None:
                    continue
                if relation.leaf is not None:
                    leaves.setdefault(relation.table, {})[relation_id] = relation.leaf
                else:
                    tables.append(relation.table)
            for root, truncated in leaves.items():
                # TRUNCATE of a partitioned table names every leaf: that is the root's TRUNCATE.
                if self._partitions.leaves(root) <= set(truncated):
                    tables.append(root)
                    continue
                # Which documents held rows of one partition is not known here: never empty more.
                raise TerminalError(
                    f"TRUNCATE of partition {', '.join(sorted(truncated.values()))} of {root} on the source: "
                    f"the documents of its rows cannot be told from the other documents of {root}, so the "
                    "migration stops (whatever phases.cdc.on_truncate says)",
                    hint="roll back (`migrator rollback`) and run again: a new snapshot leaves the truncated rows out",
                )
            for table in tables:
                truncate(table)

        def relation(message: Relation) -> None:
            self._relation(message)
            table, columns = self._backfill_due(message)
            if columns:
                due.setdefault(table, set()).update(columns)

        def backfill() -> None:
            """At the end of a transaction after the ALTER: apply everything before, then the
            documents of every row as it is now; the stream after this point comes after."""
            flush()
            settle()
            for table, columns in sorted(due.items()):
                self._backfill(table, columns, stream.keepalive)
            due.clear()

        def dispatch(message: Any) -> None:
            if isinstance(message, Relation):
                relation(message)
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
                self._oracle.commit(str(Lsn(end_lsn)), batch.last_commit_time)
            if len(batch.ops) >= self.batch_limit.limit:
                flush()

        marker: int | None = None  # a heartbeat whose commit, once applied, proves we are caught up

        def caught_up() -> bool:
            nonlocal marker
            if self.until != "caught-up" or in_txn or batch.ops:
                return False
            settle()
            if marker is None or applied < marker:
                if marker is None:
                    marker = Lsn.parse(self.monitor.heartbeat(HEARTBEAT_PREFIX, self.ctx.plan.name)).value
                return False
            lag = self.lag.seconds()
            # Once applied, the marker stays: it proved the stream passed the moment of asking; the
            # lag now falls as commits are applied, or to 0 at the next idle poll or keepalive that
            # finds nothing pending (phases/lag.py). A new marker each time would itself be a commit
            # read a poll later (poll mode: up to a second), whose age alone can exceed max_lag.
            return applied >= consistent_after and lag is not None and lag <= self._max_lag()

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
                            self.lag.acknowledged(item.wal_end)
                            if nothing_pending():
                                # The server has sent all its WAL, and all of it is durable.
                                self.lag.caught_up(item.wal_end)
            elif isinstance(item, Idle):
                stream.linger = None
                settle()  # nothing to read meanwhile
                if not in_txn:
                    flush()
                    if polling:
                        # A poll that found nothing new decoded up to the source's position; once
                        # what it read is applied (waited for: nothing else to do until the next
                        # poll, which would otherwise always find the last heartbeat in flight),
                        # CDC is caught up there.
                        settle()
                        if nothing_pending():
                            self.lag.caught_up(max(applied, item.wal_end))
                if now - last_activity >= self.settings.heartbeat_interval and not in_txn:
                    self.monitor.heartbeat(HEARTBEAT_PREFIX, self.ctx.plan.name)
                    last_activity = now
            else:
                last_activity = now
                # Changes of announced relations come as RowChanges, their values parsed while
                # decoding; inside a stream they are only spooled, so read raw until replayed.
                readers = None if in_stream else self._readers
                message = decode(item, in_stream=in_stream, readers=readers)
                if type(message) is RowChange:  # nearly every message: the shortest way through
                    if not skip_txn:
                        handle_change(message)
                        if len(batch.ops) >= self.batch_limit.limit:
                            flush(final=False)  # a huge transaction, as below
                elif isinstance(message, StreamStart):
                    self.lag.behind()
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
                    reading = message.commit_lsn
                    spool = spools.pop(message.xid, None)
                    dropped = aborted_subxids.pop(message.xid, set())
                    echo = message.xid in reverse_xids  # reverse sync's own: skipped like below
                    reverse_xids.discard(message.xid)
                    if spool is not None:
                        try:
                            if message.commit_lsn >= applied and not echo:
                                for payload in spool.replay(dropped):
                                    dispatch(decode(payload, in_stream=True, readers=self._readers))
                                    if len(batch.ops) >= self.batch_limit.limit:
                                        flush(final=False)
                        finally:
                            spool.close()
                    if message.commit_lsn >= applied and not echo:
                        end_transaction(message.commit_lsn, message.end_lsn, message.commit_time)
                    if due:
                        backfill()
                elif isinstance(message, Begin):
                    self.lag.behind()
                    in_txn = True
                    reading = message.final_lsn
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
                    if due:
                        backfill()
                elif isinstance(message, LogicalMessage):
                    awaited = awaited or message.prefix.startswith(MARKER_PREFIX)
                    if message.prefix == BACKFILL_PREFIX and self._oracle is None:
                        named = marker_column(self.ctx.plan.name, message.content)
                        if named is not None and named[0] in self._expected_columns:
                            due.setdefault(named[0], set()).add(named[1])
                elif isinstance(message, Origin):
                    # Sent after Begin when the transaction was committed under a replication
                    # origin. Reverse sync's own (its rows came from the target) is skipped like
                    # an applied one, so nothing echoes; other origins (the source may itself
                    # subscribe to another database) are applied as usual.
                    if message.name == self._reverse_origin:
                        skip_txn = True
                elif isinstance(message, Relation):
                    relation(message)
                elif not skip_txn and not isinstance(message, LogicalMessage):
                    dispatch(message)
                    if len(batch.ops) >= self.batch_limit.limit:
                        flush(final=False)  # a huge transaction: apply as it comes, checkpoint at its commit
            if applying is not None and applying.future.done():
                settle()
            if (
                not in_txn
                and batch.first_commit_at is not None
                and now - batch.first_commit_at >= BATCH_AGE_S
            ):
                flush()
            if now - last_schema_check >= SCHEMA_CHECK_S:
                # DDL on a table no change touches says nothing in the stream: look now and then.
                last_schema_check = now
                self._check_schema()
                self._check_publication()
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
        self.lag.source_position(Lsn.parse(state["current"]).value)
        lag = self.lag.reading()
        self.ctx.events.emit(
            CdcProgress(
                position=str(Lsn(applied)),
                transactions=result.transactions,
                changes=result.changes,
                lag_bytes=lag.bytes if lag.bytes is not None else 0,
                lag_seconds=lag.seconds,
                retained_wal_bytes=retained,
                caught_up=lag.caught_up,
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
            "when a column the mapping takes is added to a mapped table (ALTER TABLE ... ADD COLUMN logs no row "
            "change): once the stream is past the ALTER (its first change, or a marker "
            f"pg_logical_emit_message '{BACKFILL_PREFIX}'), rewrite the documents of every row of that table "
            "from the source as it is then",
            "target" if settings.apply else "none",
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


def _rename_kind(old: str, new: str) -> str:
    (old_schema, old_name), (new_schema, new_name) = split_table(old), split_table(new)
    if old_schema == new_schema:
        return "ALTER TABLE ... RENAME"
    if old_name == new_name:
        return "ALTER SCHEMA ... RENAME, or ALTER TABLE ... SET SCHEMA"
    return "renamed and moved to another schema"


def _rename_back(old: str, new: str, old_schema_exists: bool) -> str:
    """The statements that give the table its old name back, so that the run goes on."""
    (old_schema, old_name), (new_schema, new_name) = split_table(old), split_table(new)
    steps = []
    if old_schema != new_schema:
        # A schema renamed took the table (and its other tables) along: rename it back. Else the
        # table was moved out of a schema that still exists: move it back.
        steps.append(
            f"ALTER TABLE {quoted(new)} SET SCHEMA {quoted_identifier(old_schema)};"
            if old_schema_exists
            else f"ALTER SCHEMA {quoted_identifier(new_schema)} RENAME TO {quoted_identifier(old_schema)};"
        )
        new = f"{old_schema}.{new_name}"
    if old_name != new_name:
        steps.append(f"ALTER TABLE {quoted(new)} RENAME TO {quoted_identifier(old_name)};")
    return " ".join(steps)
