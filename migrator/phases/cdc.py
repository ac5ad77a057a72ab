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

The source's side (decoding pgoutput, the relations' state, spooling the streamed transactions
of protocol 2, skipping reverse sync's own, grouping into transactions) is the adapter's
(adapters/postgres/changes.py): this module reads its events, maps them, applies them and
acknowledges what is durable (_Following, one per stream), and watches the schema.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from migrator.adapters.base import ColumnInfo, WriteOp
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.adapters.postgres.changes import (
    Change,
    ChangeReader,
    Event,
    Marker,
    Received,
    Replayed,
    TableDescribed,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
)
from migrator.adapters.postgres.generated import GeneratedColumns, StoredColumn
from migrator.adapters.postgres.inspect import PostgresInspector, split_table
from migrator.adapters.postgres.lsn import Lsn
from migrator.adapters.postgres.partitions import Partitions, quoted, quoted_identifier
from migrator.adapters.postgres.pgoutput import UNCHANGED, Relation, Row
from migrator.adapters.postgres.publication import publishing, restore_statements
from migrator.adapters.postgres.reading import key_text
from migrator.adapters.postgres.relations import Relations, RelationState, column_parsers, computed_columns
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
from migrator.state.labels import SnapshotLabel

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


@dataclass
class _Deferred:
    """A change of a relation with generated columns to compute: mapped when its batch is handed
    to the applier, once they are (one statement per relation for the whole batch)."""

    change: Change  # its `computed` and `texts` are set
    mapper: ChangeMapper
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
        # The relations announced on the stream: how their changes are read
        # (adapters/postgres/changes.py); built here, since what a table's columns must be is
        # the mapping's.
        self._relations = Relations()
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
        found = self._mapped_table(message)
        if found is None:
            return  # not a mapped table (a publication is never wider than the plan, but be safe)
        table, leaf = found
        unsure = self._leaf_identity(message, leaf, table)
        absent = self._check_columns(message, table)
        expected = self._expected_columns[table]
        mapped = self._mapped_columns(table)
        computed = computed_columns(
            message,
            table,
            {n: c for n, c in absent.items() if n in mapped},
            expected,
            self._generated,
            self._parser,
        )
        state = RelationState(
            table,
            tuple(c.name for c in message.columns),
            column_parsers(message, expected, self._parser),
            [c.is_key for c in message.columns],
            leaf=leaf,
            unsure=unsure,
            computed=computed,
        )
        self._relations.register(message.relation_id, state)

    def _mapped_table(self, message: Relation) -> tuple[str, str | None] | None:
        """The mapped table (as the plan names it) whose changes the relation's are, and the leaf
        partition's own name where the relation is one; None: not a mapped table."""
        table = message.table
        if table in self._expected_columns:
            return table, None
        renamed = self._renamed(message)
        if renamed is not None:
            return renamed, None
        # A leaf partition of a mapped partitioned table (docs/architecture.md, "Partitioned
        # tables"): its rows are the root's, read by column name (a leaf may order its columns
        # otherwise, or have dropped ones).
        root = self._partitions.root_of(message.relation_id)
        if root is None or root not in self._expected_columns:
            return None
        return root, table

    def _check_columns(self, message: Relation, table: str) -> dict[str, StoredColumn]:
        """Compare the relation's columns with what the mapping was built on (a difference stops
        the run or rebuilds the mapping: _schema_changed); the stored generated columns the
        message leaves out are returned."""
        current = {c.name: c.type_oid for c in message.columns}
        # Stored generated columns are the relation's even where the message leaves them out.
        stored = self._generated.stored(message.relation_id)
        absent = {n: c for n, c in stored.items() if n not in current}
        current.update({n: c.type_oid for n, c in absent.items()})
        listed = self._published.get(table)
        known = {
            n: c.type_oid
            for n, c in self._expected_columns[table].items()
            if listed is None or n in listed or c.generated is not None or n in stored
        }
        if current != known:
            self._schema_changed(table, current)
        return absent

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

    def _resolve(self, batch: _Batch) -> list[WriteOp]:
        """The batch's writes with those of its deferred changes in their places, once their
        generated columns are computed: one statement per relation (and set of columns)."""
        groups: dict[tuple[int, frozenset[str]], list[_Deferred]] = {}
        for _, deferred in batch.deferred:
            if deferred.compute:
                groups.setdefault((id(deferred.change.computed), deferred.compute), []).append(deferred)
        for (_, names), members in groups.items():
            computed = members[0].change.computed
            assert computed is not None
            generated = computed.generated
            if names != set(generated.columns):
                generated = generated.only(names)
            results = self._generated.evaluate(generated, [d.change.texts or {} for d in members])
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
            for observer in self.observers:
                observer(table, change.old, change.new, change.kind)
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
                (
                    c
                    for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot")
                    if c.label == SnapshotLabel.SLOT
                ),
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
        if change.kind in ("table dropped", "table renamed"):
            self._table_gone(change)
        elif change.kind.startswith("column"):
            self._column_change(change, first)
        elif change.kind.startswith("partition"):
            self._partition_change(change)

    def _table_gone(self, change: SchemaChange) -> None:
        table, subject = change.table, change.subject
        if change.kind == "table dropped":
            raise TerminalError(
                f"table {table} was dropped (DROP TABLE) on the source while the migration ran",
                hint="restore it, or roll back (`migrator rollback`) and run again with a plan without it",
            )
        raise TerminalError(
            f"table {table} was renamed to {subject} ({_rename_kind(table, subject)}) on the source while the "
            "migration ran: the plan names it as it was",
            hint=f"{_rename_back(table, subject, self._shapes.schema_exists(split_table(table)[0]))} or roll back (`migrator rollback`) and run again with a plan "
            f"that names {subject}",
        )

    def _column_change(self, change: SchemaChange, first: bool) -> None:
        table, subject = change.table, change.subject
        mapped = subject in self._mapped_columns(table) or self._takes_by_default(table, subject)
        if change.kind == "column dropped" and not mapped and first:
            self.ctx.events.emit(
                Notice(
                    "info",
                    f"column {table}.{subject}, which the plan does not map, was dropped on the source since the "
                    "snapshot: no document changes",
                )
            )
        if not mapped:
            return
        if change.kind == "column dropped":
            raise TerminalError(
                f"column {table}.{subject} was dropped (or renamed) on the source while the migration ran; "
                "the mapping uses it",
                hint="restore the column, or roll back and start again with a plan that does not use it",
            )
        if change.kind == "column re-added":
            raise TerminalError(
                f"column {table}.{subject} was dropped and added again (ALTER TABLE ... DROP {subject}, ADD {subject}) "
                "on the source while the migration ran: the source lost its values (the new column holds NULL or "
                "its default) and PostgreSQL logs no row change for that, so documents keep the old ones; the "
                "mapping uses it",
                hint="roll back (`migrator rollback`) and run again, so that a new snapshot reads the column as it "
                "is now; or restore the old values in the source",
            )
        if change.kind == "column retyped":
            raise TerminalError(
                f"column {table}.{subject} changed type on the source while the migration ran; the mapping "
                "converts it as it was",
                hint="roll back and start again, so that the snapshot and the changes agree on the type",
            )
        if change.kind == "column added":
            self._mapped_column_added(table, subject)

    def _mapped_column_added(self, table: str, column: str) -> None:
        if self._published.get(table) is not None and (table, column) not in self._widened:
            # The publication's column list was fixed when it was made: a column added since is
            # not published until the list names it. Widen it, so that changed rows carry the
            # column from here on, as they do where every column is published (before the marker
            # below, so that every change after the marker carries it).
            self._widened.add((table, column))
            self._widen_publication(table, column)
        self._mark_for_backfill(table, column)

    def _partition_change(self, change: SchemaChange) -> None:
        table, subject = change.table, change.subject
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
        slot = next(
            c
            for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot")
            if c.label == SnapshotLabel.SLOT
        )
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

    def _observe(self, change: Change) -> None:
        """cdc.apply: false: a row change goes to the oracle instead of the target."""
        assert self._oracle is not None
        self._oracle.change(change.table, change.old, change.new, change.kind)

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
            (
                c
                for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot")
                if c.label == SnapshotLabel.DONE
            ),
            None,
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
                self._relations.clear()  # a new stream sends its Relation messages again
                self._added.marked.clear()  # a backfill marker not applied yet: emitted again
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
            return _Following(self, stream, checkpoint, consistent_after, result, apply_thread).run()
        finally:
            # On the way out after an error too: nothing is written any more once this returns,
            # before a retry reads the checkpoint again.
            apply_thread.shutdown(wait=True)

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


class _Following:
    """One stream's worth of CDC: read its transactions (adapters/postgres/changes.py), map
    them, apply them in batches through the apply thread, acknowledge what is durable, and
    between messages do what is due (flush an aged batch, check schema and budget, throttle,
    stop, --until caught-up).

    One batch is written by the apply thread while the next is read, decoded and mapped: the
    target's time and the stream's overlap. Everything else (acknowledging, events, the
    replication connection) stays on the reading thread."""

    def __init__(
        self,
        phase: CdcPhase,
        stream: ReplicationStream | PollingStream,
        checkpoint: int,
        consistent_after: int,
        result: CdcResult,
        apply_thread: concurrent.futures.ThreadPoolExecutor,
    ) -> None:
        self.phase = phase
        self.stream = stream
        self.reader = ChangeReader(
            stream,
            phase._relations,
            phase._partitions,
            applied=lambda: self.applied,
            # Reverse sync (phases/reverse.py) writes the source under this replication origin:
            # its transactions never echo back to the target.
            skip_origin=phase._reverse_origin,
        )
        self.consistent_after = consistent_after
        self.result = result
        self.apply_thread = apply_thread
        self.polling = isinstance(stream, PollingStream)
        self.batch = _Batch()
        self.applied = checkpoint
        self.applying: _Applying | None = None
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
        self.stop = phase._stop
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

    def message(self, event: Event) -> None:
        if isinstance(event, TransactionBegun):
            self.phase.lag.behind()
            self.reading = event.commit_position
            self.awaited = False
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
        if event.prefix == BACKFILL_PREFIX and phase._oracle is None:
            named = marker_column(phase.ctx.plan.name, event.content)
            if named is not None and named[0] in phase._expected_columns:
                self.due.setdefault(named[0], set()).add(named[1])

    def described(self, event: TableDescribed) -> None:
        self.phase._relation(event.relation)
        if event.spooled:
            return  # seen again when its transaction is replayed
        table, columns = self.phase._backfill_due(event.relation)
        if columns:
            self.due.setdefault(table, set()).update(columns)

    def change(self, change: Change) -> None:
        phase = self.phase
        try:
            if change.kind == "update":
                assert change.new is not None
                # An unchanged TOASTed key or link is known from the old tuple: before anything
                # reads the row (docs/architecture.md, "Unchanged TOASTed values").
                change.new = fill_unchanged(change.old, change.new, UNCHANGED)
            if phase._oracle is not None:
                phase._observe(change)
                self.batch.changes += 1
                return
            if change.texts is not None:
                self.defer(change)
                return
            mapper = phase._mapper
            if change.kind == "insert":
                assert change.new is not None
                ops = mapper.insert(change.table, change.new)
            elif change.kind == "update":
                assert change.new is not None
                phase._check_located(change.table, change.new)
                ops = mapper.update(change.table, change.old, change.new)
            else:
                assert change.old is not None
                ops = mapper.delete(change.table, change.old)
        except MigratorError:
            raise
        except Exception as exc:
            where = "" if self.reading is None else f" in the transaction committed at {Lsn(self.reading)}"
            raise unexpected(exc, f"mapping {change.kind} of {change.table}{where}") from exc
        self.batch.ops.extend(ops)
        self.batch.changes += 1
        for observer in phase.observers:
            observer(change.table, change.old, change.new, change.kind)

    def defer(self, change: Change) -> None:
        """A change whose generated columns are computed when its batch is handed over."""
        assert change.computed is not None and change.texts is not None and change.new is not None
        if change.kind == "update":
            self.phase._check_located(change.table, change.new)
        compute = change.computed.to_compute(change.table, change.new, change.texts)
        batch = self.batch
        batch.deferred.append((len(batch.ops), _Deferred(change, self.phase._mapper, compute)))
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
            if phase._oracle is not None:
                phase._oracle.truncated(table)
            else:
                self.batch.ops.extend(phase._mapper.truncate(table))
            self.batch.changes += 1

    def end_transaction(self, end_position: int, commit_time: datetime) -> None:
        batch = self.batch
        batch.end_lsn = end_position
        batch.transactions += 1
        batch.last_commit_time = commit_time.timestamp()
        batch.commit_times.append(batch.last_commit_time)
        if batch.first_commit_at is None:
            batch.first_commit_at = time.monotonic()
        if self.phase._oracle is not None:
            self.phase._oracle.commit(str(Lsn(end_position)), batch.last_commit_time)
        if len(batch.ops) >= self.phase.batch_limit.limit:
            self.flush()

    def backfill(self) -> None:
        """At the end of a transaction after the ALTER: apply everything before, then the
        documents of every row as it is now; the stream after this point comes after."""
        self.flush()
        self.settle()
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
            batch.ops = phase._resolve(batch)  # before settle(): the source's turn overlaps the target's
        self.settle()
        position = batch.end_lsn if final else None
        if position is not None and position > phase._publication_vouched:
            # Never a checkpoint past what a publication check covers (docs/architecture.md,
            # "The run's publication").
            phase._check_publication()
        # The checkpoint carries what lag is measured from (phases/lag.py), and which added
        # columns' documents were brought up to date (phases/backfill.py).
        fields = {
            **phase.lag.record_fields(),
            **commit_time_field(batch.last_commit_time),
            **phase._added.record_fields(),
        }
        future = self.apply_thread.submit(
            phase.applier.apply,
            batch.ops,
            position,
            str(Lsn(position)) if position is not None else None,
            fields=fields if position is not None else None,
        )
        self.applying = _Applying(future, batch, position)
        self.batch = _Batch()
        stream = self.stream
        stream.linger = APPLYING_POLL_S if stream.linger is None else min(stream.linger, APPLYING_POLL_S)

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

    def wait_applied(self, done: _Applying) -> None:
        waited_since = time.monotonic()
        while not concurrent.futures.wait([done.future], timeout=FEEDBACK_WHILE_APPLYING_S).done:
            # Applying (a spooled transaction replayed whole, a conflict retried) is not reading:
            # without a status update now and then, the server's wal_sender_timeout ends the
            # connection and a large transaction starts over.
            self.stream.keepalive()
            if time.monotonic() - waited_since >= PROGRESS_INTERVAL_S:
                # A slow apply is when lag grows: keep reporting it (invariant 10).
                waited_since = time.monotonic()
                self.phase._check_budget(self.applied, self.batch, self.result)

    def raise_apply_error(self, done: _Applying) -> None:
        """The apply's error, raised here."""
        applied = self.applied
        try:
            done.future.result()
        except BatchTooLarge as exc:
            upto = "" if done.position is None else f" up to {Lsn(done.position)}"
            collections = ", ".join(sorted({op.collection for op in done.batch.ops}))
            # Smaller batches from the checkpoint on; a TerminalError for a single write.
            self.phase.batch_limit.shrink(
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

    def acknowledge(self, done: _Applying, position: int) -> None:
        """The batch is durable up to `position`: acknowledge it to the source and report it."""
        phase, applied_batch = self.phase, done.batch
        self.stream.acknowledge(max(position, done.acknowledge_after))
        phase.lag.applied(max(position, done.acknowledge_after), applied_batch.last_commit_time)
        if done.acknowledge_after >= position and self.nothing_pending():
            # The server said it had sent all its WAL while this batch was applied, and nothing
            # came after: caught up (phases/lag.py).
            phase.lag.caught_up(done.acknowledge_after)
        self.result.position = str(Lsn(position))
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
        if self.applying is not None and self.applying.future.done():
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
            phase._check_schema()
            phase._check_publication()
        if now - self.last_budget_check >= PROGRESS_INTERVAL_S:
            self.last_budget_check = now
            phase._check_budget(self.applied, self.batch, self.result)

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
            self.phase._hold(throttle, self.stream, self.applied, self.batch, self.result)
            self.last_activity = self.last_throttle_check = time.monotonic()

    def caught_up(self) -> bool:
        phase = self.phase
        if self.reader.in_transaction or self.batch.ops:
            return False
        self.settle()
        if self.marker is None or self.applied < self.marker:
            if self.marker is None:
                self.marker = Lsn.parse(phase.monitor.heartbeat(HEARTBEAT_PREFIX, phase.ctx.plan.name)).value
            return False
        lag = phase.lag.seconds()
        # Once applied, the marker stays: it proved the stream passed the moment of asking; the
        # lag now falls as commits are applied, or to 0 at the next idle poll or keepalive that
        # finds nothing pending (phases/lag.py). A new marker each time would itself be a commit
        # read a poll later (poll mode: up to a second), whose age alone can exceed max_lag.
        return self.applied >= self.consistent_after and lag is not None and lag <= phase._max_lag()


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
