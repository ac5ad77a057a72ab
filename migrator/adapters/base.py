"""What adapters promise and what inspection reports.

Inspection results are plain frozen dataclasses: phases, preflight and the runbook
read them; only adapters build them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from migrator.findings import Finding

if TYPE_CHECKING:
    from migrator.adapters.rows import DocumentRows, ReverseCheckpoint
    from migrator.errors import OwnedByAnotherRun

# A key order every database can share, so that a source key range is one range of the target's
# keys: integers by value, UUIDs as 16 bytes compared bytewise (PostgreSQL's uuid order, and BSON's
# for binary subtype 4). Text is not here: a source orders it by collation, a target by bytes.
KeyOrder = Literal["integer", "uuid"]


@dataclass(frozen=True)
class Capabilities:
    change_capture: bool = False  # can stream changes after a consistent snapshot
    exported_snapshot: bool = False  # copy workers can share one snapshot
    transactions: bool = False  # a batch and its checkpoint can commit together
    change_streams: bool = False  # can feed reverse sync


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type_name: str  # canonical name: 'integer', 'numeric', 'timestamp with time zone', ...
    type_kind: str  # 'base', 'enum', 'array', 'domain', 'composite', 'range', 'pseudo', 'multirange'
    element_type: str | None  # for arrays: the element's canonical name
    element_kind: str | None
    nullable: bool
    numeric_precision: int | None  # declared precision of numeric(p, s); None when unconstrained
    numeric_scale: int | None
    position: int
    type_oid: int = 0  # the column's declared type (a domain's own oid): what the WAL names
    # A stored generated column's expression (pg_get_expr of its default), None for an ordinary
    # column. pgoutput before PostgreSQL 18 does not send such columns (docs/architecture.md).
    generated: str | None = None
    # attstorage: 'p' plain, 'm' main, 'e' external, 'x' extended. Only 'e' and 'x' (and 'm' as a
    # last resort) may be stored out of line, where an unchanged value arrives as "unchanged".
    storage: str = "p"
    # The columns a stored generated column's expression reads (pg_depend of its default).
    generated_from: tuple[str, ...] = ()
    # The server's own name of the column's type where it differs from `type_name` (a MySQL
    # COLUMN_TYPE such as "tinyint(1) unsigned"), for messages and the type table; "" otherwise.
    native_type: str = ""


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    referenced_table: str  # schema.table (as TableInfo.name)
    referenced_columns: tuple[str, ...]
    name: str = ""  # the constraint's name
    # NOT VALID: rows older than the constraint were never checked (an orphan may exist).
    validated: bool = True
    # NOT ENFORCED (PostgreSQL 18+): never checked at all.
    enforced: bool = True

    @property
    def holds(self) -> bool:
        """Whether every row satisfies it: a child row can then precede its parent only inside
        one transaction (docs/architecture.md, "Foreign keys hold at transaction boundaries")."""
        return self.validated and self.enforced

    def describe(self) -> str:
        state = "enforced, validated" if self.holds else "NOT ENFORCED" if not self.enforced else "NOT VALID"
        return (
            f"foreign key {self.name or '?'} ({', '.join(self.columns)}) REFERENCES "
            f"{self.referenced_table} ({', '.join(self.referenced_columns)}): {state}"
        )


@dataclass(frozen=True)
class LeafInfo:
    """A leaf partition of a partitioned table: its changes carry its own replica identity."""

    name: str  # schema.table
    replica_identity: str  # 'default', 'index', 'full', 'nothing' (as TableInfo's)
    identity_columns: tuple[str, ...]  # () when the leaf has no usable replica identity
    primary_key: tuple[str, ...] = ()
    primary_key_deferrable: bool = False
    identity_indexes: tuple[IdentityIndex, ...] = ()

    @property
    def has_identity(self) -> bool:
        return bool(self.identity_columns)


@dataclass(frozen=True)
class IdentityIndex:
    """A unique index PostgreSQL accepts for REPLICA IDENTITY USING INDEX: not partial, no
    expressions, valid, not deferrable, on NOT NULL columns only."""

    name: str  # the index's own name (indexes live in their table's schema)
    columns: tuple[str, ...]


@dataclass(frozen=True)
class TriggerInfo:
    """A user trigger (not one PostgreSQL made for a constraint) on a table or one of its partitions."""

    table: str  # schema.table it is defined on
    name: str
    enabled: str  # 'origin' (the default), 'always', 'replica', 'disabled'
    timing: str  # 'before', 'after', 'instead of'
    events: tuple[str, ...]  # 'insert', 'update', 'delete', 'truncate'


@dataclass(frozen=True)
class TableInfo:
    name: str  # schema.table
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...]  # unique constraints/indexes whose columns are all NOT NULL
    replica_identity: str  # 'default', 'index', 'full', 'nothing'
    # Columns the WAL carries for UPDATE/DELETE old rows; () when there is no usable replica identity
    # (NOTHING, no primary key, a DEFERRABLE one, a dropped identity index). For a partitioned table:
    # what every leaf's old tuple carries.
    identity_columns: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    estimated_rows: int
    total_bytes: int
    owned_by_current_user: bool
    kind: str = "table"  # 'table', or 'partitioned' (its rows live in `leaves`)
    leaves: tuple[LeafInfo, ...] = ()  # a partitioned table's leaf partitions, at any depth
    primary_key_deferrable: bool = False  # a DEFERRABLE primary key cannot serve as replica identity
    primary_key_name: str | None = None  # the constraint's name (also its index's)
    # Columns of the partition keys at every level of a partitioned table: a unique index on it must
    # include them all; `partitioned_by_expression` when a key holds an expression (then none can).
    partition_key: tuple[str, ...] = ()
    partitioned_by_expression: bool = False
    identity_indexes: tuple[IdentityIndex, ...] = ()
    inheritance_children: tuple[str, ...] = ()  # tables INHERITing from this one (not partitions)
    foreign_partitions: tuple[str, ...] = ()  # partitions that are foreign tables (not in the WAL)
    # The table itself or its partitions where UNLOGGED: their rows never reach the WAL, so the
    # publication refuses the table or (a partition) its changes are never sent.
    unlogged: tuple[str, ...] = ()
    triggers: tuple[TriggerInfo, ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class SourceServerInfo:
    endpoint: str  # no password
    version: str
    version_num: int
    settings: dict[str, str]  # wal_level, max_replication_slots, max_wal_senders, ...
    used_replication_slots: int
    used_wal_senders: int
    user: str
    is_superuser: bool
    has_replication: bool
    can_create_in_database: bool
    existing_slots: tuple[str, ...]
    existing_publications: tuple[str, ...]
    database: str = ""  # current_database()


@dataclass(frozen=True)
class SourceInfo:
    server: SourceServerInfo
    tables: dict[str, TableInfo]
    missing_tables: tuple[str, ...] = ()
    # Names the plan maps that are relations of another kind (a view, a temporary table, ...):
    # name -> what it is ("a view"), so that `plan` says so instead of "does not exist".
    not_tables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetCollectionInfo:
    name: str
    exists: bool
    documents: int


@dataclass(frozen=True)
class TargetInfo:
    endpoint: str
    version: str
    replica_set: str | None
    transactions: bool
    change_streams: bool
    collections: dict[str, TargetCollectionInfo] = field(default_factory=dict)


class Positions(Protocol):
    """A source's change positions (a WAL LSN, a binlog file and offset, ...). The engine
    orders, stores and compares them as integers; only the adapter writes and reads their
    text form, which is what users see (docs/architecture.md, "Layers")."""

    def text(self, value: int) -> str: ...

    def bytes_between(self, older: int, newer: int) -> int | None:
        """How many bytes of change log lie between two positions (lag in bytes), or None where
        the positions alone cannot tell (binlog positions in different files)."""
        ...

    def parse(self, text: str) -> int: ...


class CaptureMonitor(Protocol):
    """Facts about a change-capture slot for lag, the WAL budget and markers, read without
    consuming anything; `heartbeat` writes a marker into the change stream and returns its
    position's text (Positions.parse reads it)."""

    def state(self, slot: str) -> dict[str, Any] | None:
        """retained_bytes, confirmed (position text), active, current (position text); None if gone."""
        ...

    def unapplied_changes(self, slot: str, publication: str, applied: str, upto: str) -> int | None: ...

    def heartbeat(self, prefix: str, content: str) -> str: ...

    def close(self) -> None: ...


class SourceAdapter(Protocol):
    """What every phase, operation and the mapping may ask of a source. Each method returns an
    object the adapter owns; nothing outside adapters/ names its classes."""

    capabilities: ClassVar[Capabilities]
    positions: ClassVar[Positions]
    # What a change carries for a value the source did not send (an unchanged TOASTed value):
    # leave that field out of the update (docs/architecture.md, "Unchanged TOASTed values").
    unchanged: ClassVar[object]

    @property
    def name(self) -> str:
        """The endpoint as users may see it: host, port, database; never a password."""
        ...

    def inspect(self, tables: Sequence[str]) -> SourceInfo: ...

    def monitor(self) -> CaptureMonitor:
        """A new monitor of the change-capture slots (its own connection; close it)."""
        ...

    def close(self) -> None: ...

    def capture_setup(self) -> CaptureSetup:
        """Publications and replication slots: create, check, drop."""
        ...

    def snapshot_session(self, snapshot_name: str | None) -> SnapshotSession:
        """The coordinator of a consistent read: at an exported snapshot, or (None) a fresh one."""
        ...

    def range_reader(self) -> KeyReader:
        """Reads current rows by key ranges or key sets (verify, lookups, dry-run samples)."""
        ...

    def export_snapshot(self, slot: str) -> SnapshotExport:
        """Create the change-capture slot `slot` exporting its snapshot (close once imported)."""
        ...

    def snapshot_reader(self, snapshot_name: str) -> RowStreams:
        """A copy worker's reader inside the exported snapshot `snapshot_name`."""
        ...

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        """The tables' shape (as JSON) that schema-change detection compares against, read in
        `snapshot_name` (or now)."""
        ...

    def key_lookup(self) -> KeyLookup:
        """Key lookups: root keys of given rows, and _id values typed from their text."""
        ...

    def linked_reader(self) -> LinkedReader:
        """Reads embedded levels under given link values (fills SourceRead placeholders)."""
        ...

    def key_text(self, value: Any, type_name: str | None = None) -> str:
        """A key value as the text the readers take (of the key's type `type_name`)."""
        ...

    def key_order(self, type_name: str) -> KeyOrder | None:
        """How a key column of this type orders, where that order is one every target can
        share (verify then reads the target by key range); None where it depends on the
        source (a collation) and the target is read by the source's keys instead."""
        ...

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        """The most significant digits a numeric column holds today (a full scan)."""
        ...

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        """The root key whose document (with its embedded rows) would be the largest, estimated."""
        ...

    def describe(self, info: SourceInfo) -> str:
        """The server as preflight's 'reachable' finding names it (product, version, user)."""
        ...

    def server_findings(self, info: SourceInfo, plan_name: str) -> list[Finding]:
        """Preflight's checks of the server and the tables' ownership (before mapping resolution)."""
        ...

    def preflight_findings(
        self, info: SourceInfo, collections: Sequence[MappedCollection], read: Mapping[str, set[str]]
    ) -> list[Finding]:
        """How each mapped table's features meet change capture; `read`: columns read per table."""
        ...

    # operations, cutover, reverse sync, the switch (issue 13)

    def load_probe(self) -> LoadProbe:
        """A sampler of the source's load for throttling (its own connection; close it)."""
        ...

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> WriteFence:
        """Blocks the application's writes to `tables` while held (cutover's freeze)."""
        ...

    def reverse_writer(
        self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = ...
    ) -> ReverseWriter:
        """Writes target changes back into the source (reverse sync, rollback after cutover)."""
        ...

    def reverse_checkpoint(self, plan_name: str) -> ReverseCheckpoint | None:
        """Reverse sync's stored checkpoint, read on a plain connection (status, rollback)."""
        ...

    def routing_value(self, table: str, plan_name: str, column: str) -> Any:
        """`column` of plan `plan_name`'s row in the routing table (the switch of kind postgres);
        None where the table, the column or the row is not there."""
        ...

    def write_routing_row(
        self, table: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        """Name `primary` in plan `plan_name`'s routing row, with the run that flipped it."""
        ...

    # The change path (docs/architecture.md, "A change's path").

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> CaptureStream:
        """The changes of `publication` from `slot` after position `start` (polling `poll_changes`
        a time where given, else a streaming connection); close it."""
        ...

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> ChangeSchema:
        """The schema checks of a CDC run (and the relations its streams are read with); close it."""
        ...

    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
    ) -> AbstractContextManager[list[Iterator[tuple[Any, ...]]]]:
        """The rows of each level of one document (root key `values`) as a snapshot chunk reads
        them, now."""
        ...

    def table_rows(
        self, table: str, columns: Mapping[str, ColumnInfo], order: Sequence[str], chunk: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table` now, in chunks, its values as a change of the row carries them."""
        ...


class TargetAdapter(Protocol):
    """What every phase, operation and the mapping may ask of a target."""

    capabilities: ClassVar[Capabilities]
    name: str

    def inspect(self, collections: Sequence[str]) -> TargetInfo: ...

    def close(self) -> None: ...

    @property
    def database(self) -> str:
        """Where the collections live (findings name a collection as database.collection)."""
        ...

    @property
    def max_document_bytes(self) -> int:
        """The largest document the target stores (an encoded document above it is refused)."""
        ...

    def reader(self, collection: str) -> CollectionReader:
        """Reads (and repairs) `collection`'s documents by _id."""
        ...

    def writer(self, collection: str) -> CollectionWriter:
        """Writes snapshot batches of encoded documents into `collection`, idempotently."""
        ...

    def encode_document(self, document: dict[str, Any], collection: str) -> bytes:
        """A document as the target stores it (what readers give back, and writers take)."""
        ...

    def id_identity(self, doc_id: Any) -> Hashable:
        """What the target's unique key compares: two _ids with equal identities are one
        document there (dry-run's key collisions)."""
        ...

    def describe(self, info: TargetInfo) -> str:
        """The server as preflight's 'reachable' finding names it (product, version, topology)."""
        ...

    # operations, cutover, reverse sync, the switch (issue 13)

    def ownership(self, plan_name: str) -> Ownership:
        """The plan's ownership record in the target (which run owns the data)."""
        ...

    def refusal(self, owner: OwnerRecord, *, this_run: str | None = None) -> OwnedByAnotherRun:
        """The error that names the owning run (`owner`, as `ownership().read()` gave it)."""
        ...

    def write_fence(self, collections: Sequence[str], plan_name: str) -> TargetWriteFence:
        """Refuses the application's writes on `collections` (rollback after cutover)."""
        ...

    def change_stream(
        self, plan_name: str, collections: Iterable[str], *, max_await_ms: int = ...
    ) -> TargetChanges:
        """The change stream of `collections` for plan `plan_name`'s reverse sync."""
        ...

    def checkpoint_record(self, checkpoint_id: str) -> dict[str, Any] | None:
        """CDC's checkpoint record written with the data, or None before CDC wrote one."""
        ...

    def existing_collections(self) -> dict[str, int]:
        """Collections of the target database and their estimated document counts."""
        ...

    def routing_document(self, collection: str, plan_name: str) -> Mapping[str, Any] | None:
        """Plan `plan_name`'s routing document (the switch of kind mongodb), or None."""
        ...

    def write_routing_document(
        self, collection: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        """Name `primary` in plan `plan_name`'s routing document, with the run that flipped it."""
        ...

    def applied_position(self, checkpoint_id: str) -> int | None:
        """The source position CDC has applied up to (its checkpoint written with the data)."""
        ...

    def delete_state(self, state_id: str) -> bool:
        """Remove one of migrator's state documents (a checkpoint); True if it existed."""
        ...

    def empty_collection(self, collection: str) -> int:
        """Delete every document of `collection` and the indexes migrator created on it."""
        ...

    def drop_collection(self, collection: str) -> None:
        """Drop `collection`."""
        ...

    def applier(
        self,
        checkpoint_id: str,
        *,
        transactions: bool,
        current: Callable[[str, Any], dict[str, Any] | None] | None = None,
        reads: Callable[[Sequence[SourceRead]], Sequence[Any]] | None = None,
    ) -> ChangeApplier:
        """CDC's writer: batches with their checkpoint `checkpoint_id` (in one transaction where
        `transactions`); `current` reads a document as the source holds it, `reads` fills in
        SourceReads."""
        ...


@dataclass(frozen=True)
class JoinHop:
    """One step from a parent table down to an embedded child table."""

    table: str
    on: tuple[tuple[str, str], ...]  # (child column, parent column)
    row_overhead: int  # estimated BSON bytes a row adds beyond its values (field names, array index)


@dataclass(frozen=True)
class LargestDocument:
    key: tuple[object, ...]
    estimated_bytes: int
    embedded_rows: int


@dataclass(frozen=True)
class LevelRead:
    """What to read for one level of a document: the root table (empty path) or an embedded
    table reached from the root through `path`. Rows come ordered by the root key, then
    `order_by`; non-root rows start with the root key's values.

    Elements are ordered the way MongoDB's `$push ... $sort` orders them (binary string
    comparison, nulls first), so that CDC can keep arrays in the snapshot's order."""

    path: tuple[JoinHop, ...]
    columns: tuple[ColumnInfo, ...]
    order_by: tuple[ColumnInfo, ...]


@dataclass(frozen=True, eq=False)
class SourceRead:
    """A value a change does not carry: the content of an embed for the given link values (the
    referenced row of a lookup, a parent's children), filled in from the source when the batch is
    applied, by the reader the phase gives the applier (docs/architecture.md, "Embedded content
    read from the source"). `spec` says what to read and is opaque to target adapters.

    `only_if`: read only when an earlier write of the same source transaction carries one of these
    tags (WriteOp.tags); otherwise the value is `otherwise`, and nothing is read."""

    spec: Any
    values: tuple[Any, ...]
    literal: bool = False  # inside an aggregation pipeline: the content is wrapped in $literal
    only_if: tuple[Hashable, ...] | None = None
    otherwise: Any = None


@dataclass(frozen=True)
class WriteOp:
    """One target write, in target-neutral terms; the target adapter executes it.

    kinds: 'update' (update_one), 'update_many', 'replace' (replace_one, `update` the document),
    'delete' (delete_one), 'delete_many',
    'rekey' (move a whole document to a new _id: needs a read, see the applier),
    'merge_element' (change an element whose unchanged TOASTed values must be kept,
    possibly moving it to another parent: needs a read).

    `reads`: the SourceRead placeholders inside `update` or `extra`, which the applier fills in
    before it writes. `tags`: what this write tells later writes of the same source transaction
    (a child placed under a parent's link values, a parent removed), for SourceRead.only_if.
    """

    collection: str
    kind: str
    filter: dict[str, Any]
    update: Any = None
    array_filters: tuple[dict[str, Any], ...] = ()
    upsert: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    reads: tuple[SourceRead, ...] = ()
    tags: tuple[Hashable, ...] = ()


# -- what operations, cutover and reverse sync ask of the adapters (issue 13) --------------------
# Declared here so that operations/, phases/cutover.py, phases/reverse.py and engine/switch.py
# type against them and never name an adapter's classes (docs/architecture.md, "Layers").


class LoadProbe(Protocol):
    """Samples the source's load for throttling (engine/throttle.py's LoadSampler)."""

    def sample(self, *, sessions: bool, replicas: bool) -> Any: ...

    def close(self) -> None: ...


class WriteFence(Protocol):
    """Holds the application's writes while the switch flips (cutover); lifting is always safe."""

    def engage(self) -> float: ...

    def describe(self) -> str: ...

    def waiting_writers(self) -> int: ...

    def cancel_waiting(self) -> int: ...

    def lift(self) -> float | None: ...


class TargetWriteFence(Protocol):
    """Refuses the application's writes on the target (rollback after cutover). `lift(before)`
    restores the options recorded before the fence; `own_options()` reads them now, without a
    fence's own."""

    def engage(self) -> object: ...

    def describe(self) -> str: ...

    def lift(self, before: Mapping[str, Mapping[str, Any]]) -> float | None: ...

    def own_options(self) -> dict[str, Any]: ...


class ReverseWriter(Protocol):
    """Writes target changes back into the source with reverse sync's checkpoint, tagged so that
    the forward stream skips them."""

    def setup(self) -> None: ...

    def checkpoint(self) -> ReverseCheckpoint | None: ...

    def forget(self) -> bool: ...

    def apply(self, documents: Sequence[DocumentRows], checkpoint: ReverseCheckpoint | None) -> int: ...

    def close(self) -> None: ...


class OwnerRecord(Protocol):
    """Which run owns a plan's data in a target (docs/architecture.md, "One owner")."""

    @property
    def plan(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def slot(self) -> str: ...
    @property
    def facts(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


class Ownership(Protocol):
    """A plan's ownership record in the target: read, claimed by a run, released by it."""

    def read(self) -> OwnerRecord | None: ...

    def claim(
        self,
        *,
        run_id: str,
        started_at: str,
        host: str,
        state: str,
        slot: str,
        publication: str,
        replaceable: Callable[[OwnerRecord], bool] = ...,
    ) -> OwnerRecord: ...

    def release(self, run_id: str, records: list[str]) -> str: ...

    def note(self, run_id: str, facts: Mapping[str, Any]) -> None:
        """Add facts (what the run created) to run `run_id`'s record."""
        ...

    def slot(self) -> str:
        """The replication slot of the run that owns the plan's data (or the plan-named one)."""
        ...


class ChangedDocument(Protocol):
    """A document a target change names, by collection and `_id`; `key` is its exact identity."""

    @property
    def collection(self) -> str: ...
    @property
    def document_id(self) -> Any: ...
    @property
    def key(self) -> bytes: ...


class ChangeGroup(Protocol):
    """The changes of one target transaction (or one change outside a transaction). `echo`:
    forward CDC's own; `token`: where a stream resumed after it reads on; `cluster_time`: an
    ordered integer (the target's `cluster_seconds`/`cluster_iso` show it)."""

    @property
    def documents(self) -> Sequence[ChangedDocument]: ...
    @property
    def echo(self) -> bool: ...
    @property
    def events(self) -> int: ...
    @property
    def token(self) -> Mapping[str, Any] | None: ...
    @property
    def cluster_time(self) -> int | None: ...


class ChangeStep(Protocol):
    """One read of an open stream: the groups it completed, and whether it had nothing more."""

    @property
    def idle(self) -> bool: ...
    @property
    def transactions(self) -> Sequence[ChangeGroup]: ...


class OpenChanges(Protocol):
    """An open target change stream, read one step at a time."""

    marker_seen: int

    @property
    def in_transaction(self) -> bool: ...
    @property
    def position(self) -> Mapping[str, Any] | None: ...

    def next(self) -> ChangeStep: ...


class TargetChanges(Protocol):
    """The target's change stream for reverse sync (docs/architecture.md, "Reverse sync")."""

    def position_now(self) -> Mapping[str, Any]: ...

    def write_marker(self) -> int: ...

    def follow(self, after: Mapping[str, Any]) -> AbstractContextManager[OpenChanges]: ...

    def current(self, documents: Sequence[ChangedDocument]) -> dict[bytes, Mapping[str, Any]]: ...

    def cluster_seconds(self, cluster_time: int) -> int: ...

    def cluster_iso(self, cluster_time: int | None) -> str | None: ...


@dataclass(frozen=True)
class WriteResult:
    """What a CollectionWriter did with a batch: documents inserted, and replaced (the _id existed)."""

    inserted: int
    replaced: int


class CollectionWriter(Protocol):
    """A target collection's snapshot writer: (_id, encoded document) pairs, idempotently."""

    def write(self, batch: Sequence[tuple[Any, bytes]]) -> WriteResult: ...


class CollectionReader(Protocol):
    """A target collection's documents by _id, encoded (verify, lookups, repair)."""

    def fetch(self, ids: Sequence[Any]) -> list[tuple[Any, bytes]]: ...

    def fetch_range(self, order: KeyOrder, lo: str | None, hi: str | None) -> list[tuple[Any, bytes]]:
        """The documents with lo < _id <= hi (None: unbounded), the bounds being the source's
        key text of a single key column ordered as `order` says."""
        ...

    def ids(
        self,
        batch: int = ...,
        sample: int | None = None,
        outside: KeyOrder | None = None,
        after: Any = None,
    ) -> Iterator[list[Any]]:
        """Every _id in batches, in _id order, after `after`; a random `sample` of them; or,
        with `outside`, only those a range read in that order can never see (another type)."""
        ...

    def find_ids(self, query: Mapping[str, Any]) -> list[Any]: ...

    def count(self) -> int: ...

    def replace(self, doc_id: Any, raw: bytes) -> None: ...

    def delete(self, doc_id: Any) -> None: ...


class CaptureSetup(Protocol):
    """The source's change-capture objects of a run (a publication, a slot): create, check, drop."""

    def ensure_publication(self, name: str, tables: Mapping[str, Collection[str] | None]) -> bool: ...

    def slot_exists(self, slot: str) -> bool: ...

    def drop_slot(self, slot: str) -> bool: ...

    def drop_publication(self, name: str) -> None: ...


class SnapshotStart(Protocol):
    """Where a created slot starts: its consistent point and the snapshot it exported."""

    @property
    def position(self) -> str: ...

    @property
    def snapshot_name(self) -> str: ...


class SnapshotExport(Protocol):
    """A created slot holding its exported snapshot until a SnapshotSession imported it."""

    @property
    def start(self) -> SnapshotStart: ...

    def close(self) -> None: ...


class SnapshotSession(Protocol):
    """A consistent read that copy workers share (`exported`) and that splits tables into key ranges."""

    @property
    def exported(self) -> str: ...

    @property
    def position(self) -> str:
        """Where a fresh snapshot stands among the change positions (text)."""
        ...

    def key_boundaries(
        self, table: str, key: Sequence[str], key_types: Sequence[str], every: int
    ) -> list[list[str]]: ...

    def close(self) -> None: ...


class RowStreams(Protocol):
    """Streams a collection's levels (LevelRead) for the root key range (lo, hi], in the reader's
    current read: one row stream per level, each ordered by the root key."""

    def stream(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> list[Iterator[tuple[Any, ...]]]: ...

    @property
    def read_position(self) -> str | None:
        """Where this reader reads, where that is not the exported snapshot (a source whose
        readers cannot share one: docs/architecture.md, "MySQL and MariaDB sources"); None when
        it reads the exported snapshot itself."""
        ...

    def close(self) -> None: ...


class KeyReader(RowStreams, Protocol):
    """Reads current rows, each read in a short consistent transaction of its own (begin/end)."""

    def begin(self) -> str:
        """Start a read; the position (text) its snapshot stands at."""
        ...

    def end(self) -> None: ...

    def stream_keys(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        keys: Sequence[Sequence[str]],
    ) -> list[Iterator[tuple[Any, ...]]]:
        """As `stream`, for the root keys `keys` (as text) alone."""
        ...

    def stream_sample(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        fraction: float,
        seed: int,
    ) -> list[Iterator[tuple[Any, ...]]]:
        """As `stream`, for a deterministic `fraction` of the keys (the same for the same seed)."""
        ...

    def first_keys(self, table: str, key: Sequence[str], limit: int) -> list[list[str]]: ...

    def missing_keys(
        self, table: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
    ) -> list[int]: ...


class LinkedReader(Protocol):
    """Reads embedded levels under a derived parent of given link values (SourceRead)."""

    def begin(self) -> str: ...

    def end(self) -> None: ...

    def stream_linked(
        self,
        levels: Sequence[LevelRead],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
        ordinal: str,
    ) -> list[Iterator[tuple[Any, ...]]]: ...

    def close(self) -> None: ...


class KeyLookup(Protocol):
    """Key lookups on committed data: the root keys of given rows, _id values typed from text."""

    def root_keys(
        self,
        root: str,
        root_key: Sequence[ColumnInfo],
        path: Sequence[JoinHop],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
    ) -> list[list[list[str]]]: ...

    def typed(self, key: Sequence[ColumnInfo], values: Sequence[Sequence[str]]) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


# The resolved mapping as a source adapter's preflight reads it (mapping/spec.py builds it;
# adapters sit below mapping, docs/architecture.md "Layers", so they see its shape only).


class MappedEmbed(Protocol):
    @property
    def as_(self) -> str: ...

    @property
    def many(self) -> bool: ...

    @property
    def on(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def child(self) -> MappedDocument: ...


class MappedField(Protocol):
    @property
    def column(self) -> ColumnInfo: ...


class MappedDocument(Protocol):
    @property
    def table(self) -> str: ...

    @property
    def key(self) -> tuple[str, ...]: ...

    @property
    def fields(self) -> Sequence[MappedField]: ...

    @property
    def embeds(self) -> Sequence[MappedEmbed]: ...


class MappedLevel(Protocol):
    @property
    def table(self) -> str: ...

    @property
    def key(self) -> tuple[str, ...]: ...

    @property
    def link(self) -> tuple[str, ...]: ...

    @property
    def document(self) -> MappedDocument: ...

    @property
    def embed(self) -> MappedEmbed | None: ...


class MappedCollection(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def levels(self) -> Sequence[MappedLevel]: ...


# -- change capture: what a source's change stream yields, in commit order (docs/architecture.md,
# "A change's path"). The adapter reads its own protocol into these; phases read only these.


@dataclass(frozen=True)
class Idle:
    """Nothing arrived within the wait; `wal_end` is the server's last reported position."""

    wal_end: int


@dataclass(frozen=True)
class Keepalive:
    """The server has sent everything before `wal_end`. Once every change received so far is
    applied, the consumer acknowledges it: a fast shutdown of the source waits until its
    walsender's client has confirmed all that was sent."""

    wal_end: int


@dataclass(slots=True)
class Change:  # not frozen: built for every change, and its new row may be completed in place
    """A row change of a mapped table (`table`: as the plan names it, the root for a leaf
    partition's). `kind`: 'insert', 'update' or 'delete'. `old`: the old key columns or whole
    old row (None for an insert, or an update that kept its key); `new`: None for a delete.
    A value may be the source's `unchanged` (a TOASTed value the update did not change).
    `computed` and `texts`: for a table whose stored generated columns the change lacks, what
    computes them and the text of the columns they read (None for the others, and for deletes):
    the adapter's, opaque to phases (ChangeSchema.to_compute, ChangeSchema.complete)."""

    table: str
    kind: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    computed: Any = None
    texts: dict[str, Any] | None = None


@dataclass(frozen=True)
class Truncated:
    """TRUNCATE of these mapped tables (a partitioned table's when every leaf was truncated)."""

    tables: tuple[str, ...]


@dataclass(frozen=True)
class TableDescribed:
    """A table's columns as the changes that follow were logged (`relation`: the adapter's own
    description, handed back to ChangeSchema.relation). Sent before a relation's first change
    and again whenever its catalog entry changed (DDL), also inside a transaction. `spooled`:
    inside a block of a streamed transaction being received (it is seen again when that
    transaction is replayed)."""

    relation: Any
    spooled: bool = False


@dataclass(frozen=True)
class TransactionBegun:
    """A transaction begins, committed at `commit_position`; its changes follow as they arrive."""

    commit_position: int


@dataclass(frozen=True)
class TransactionCommitted:
    """The end of the transaction begun last: `end_position` is where the stream resumes after
    it. `skipped`: applied already (committed before the applied position) or written by
    reverse sync (its origin): its changes were not handed over."""

    commit_position: int
    end_position: int
    commit_time: datetime
    skipped: bool


@dataclass(frozen=True)
class Replayed:
    """A streamed transaction at its commit: `changes` reads its changes back from the spool
    (empty when `skipped`), to be read before the next event (and closed, which closes the
    spool, if not read to its end)."""

    commit_position: int
    end_position: int
    commit_time: datetime
    skipped: bool
    changes: Generator[Change | Truncated | TableDescribed, None, None]


@dataclass(frozen=True)
class Marker:
    """A logical message (pg_logical_emit_message): a marker someone may wait for."""

    prefix: str
    content: bytes


@dataclass(frozen=True)
class Received:
    """A message with nothing to hand over (spooled, skipped, or of no interest). `behind`: a
    block of a transaction still in progress starts: the source is ahead of what is applied."""

    behind: bool = False


ChangeEvent = (
    Keepalive
    | Idle
    | TransactionBegun
    | Change
    | Truncated
    | TableDescribed
    | Marker
    | TransactionCommitted
    | Replayed
    | Received
)


class CaptureStream(Protocol):
    """The connection a source's changes arrive on (a replication connection, or SQL polling)."""

    # How long to wait for more before reporting Idle, while a batch lingers (None: the reader's
    # wait).
    linger: float | None

    def keepalive(self, interval: float = ..., /) -> None:
        """Send a status update if one is due within `interval` seconds of the last."""
        ...

    def acknowledge(self, position: int, /) -> None:
        """Everything before `position` is durable on the target: the source may free it."""
        ...

    def close(self) -> None: ...


class ChangeEvents(Protocol):
    """A capture stream read as typed events in commit order (ChangeEvent)."""

    in_transaction: bool

    @property
    def in_stream(self) -> bool:
        """Inside a block of a transaction still in progress (streamed before its commit)."""
        ...

    @property
    def streams_pending(self) -> bool:
        """A transaction streamed in part has not committed or aborted yet."""
        ...

    def events(self, wait_s: float) -> Iterator[ChangeEvent]: ...


@dataclass(frozen=True)
class MappedColumns:
    """What the mapping takes of each source table, as plain data for the source's schema checks
    (ChangeSchema): `read`, the columns it reads; `mapped`, those whose loss or change of type
    it cannot follow (fields, keys, link columns); `locating`, the key columns that say which
    document or element a row is; `open_shapes`, per table the columns excluded by each level of
    the plan that lists no `fields` there (so it takes every other column)."""

    read: Mapping[str, set[str]]
    mapped: Mapping[str, frozenset[str]]
    locating: Mapping[str, tuple[str, ...]]
    open_shapes: Mapping[str, tuple[frozenset[str], ...]]

    def columns(self, table: str) -> set[str]:
        return set(self.mapped.get(table, ()))

    def takes_by_default(self, table: str, column: str) -> bool:
        """Whether the plan would map `column` of `table`: it lists no `fields` there (so every
        column is taken) and does not exclude it."""
        return any(column not in excluded for excluded in self.open_shapes.get(table, ()))


class SchemaHost(Protocol):
    """What a source's schema checks ask of the phase that follows its changes."""

    def notice(self, level: str, message: str) -> None:
        """Tell the user (an event)."""
        ...

    def table_changed(self, table: str, info: TableInfo) -> None:
        """The catalog's `table` has columns the mapping was not built on: map it as it is now
        (and give the checks the new MappedColumns), or raise what stops the run."""
        ...

    def reads_with(self, table: str, info: TableInfo) -> dict[str, set[str]] | None:
        """The columns the mapping would read per mapped table (in the plan's order) with `table`
        as `info` says; None where the mapping would not resolve."""
        ...

    def column_added(self, table: str, column: str) -> None:
        """A column the mapping takes was added to `table` since the snapshot (now published)."""
        ...


class ChangeSchema(Protocol):
    """A source's checks that the tables and the publication still are what the mapping was
    built on (docs/architecture.md, "Schema changes", "The run's publication"): each raises a
    TerminalError that says what changed and how to go on. It also keeps the state the change
    stream is decoded with (the relations announced on it)."""

    @property
    def vouched(self) -> int:
        """The source position before the last publication check that found it whole."""
        ...

    @property
    def baseline(self) -> Mapping[str, Any] | None:
        """The mapped tables' shape changes are checked against (each with `columns`)."""
        ...

    def reader(self, stream: CaptureStream, *, applied: Callable[[], int], skip_origin: str) -> ChangeEvents:
        """`stream` read as typed events with the relations announced on it."""
        ...

    def relation(self, relation: Any) -> None:
        """A TableDescribed's relation: check it against the mapping and read its changes so."""
        ...

    def columns_of(self, relation: Any) -> tuple[str, frozenset[str]] | None:
        """The mapped table a described relation's changes are, and the columns it carries."""
        ...

    def check_schema(self) -> None: ...

    def check_publication(self) -> None: ...

    def check_located(self, table: str, new: dict[str, Any]) -> None:
        """Raise when an update's new row lacks a key column that places it."""
        ...

    def to_compute(self, change: Change) -> frozenset[str]:
        """The generated columns of `change` to compute (those its update may have changed)."""
        ...

    def complete(self, pending: Sequence[tuple[Change, frozenset[str]]]) -> None:
        """Compute the given generated columns of each change into its new row."""
        ...

    def table(self, table: str) -> TableInfo | None:
        """`table` as the catalog has it now."""
        ...

    def columns_changed(self, table: str, current: dict[str, int]) -> None:
        """The stream (or catalog) shows `table` with `current` columns (name -> type id)."""
        ...

    def remap(self, source_info: SourceInfo, mapped: MappedColumns) -> None:
        """The mapping was built again on `source_info`."""
        ...

    def restart(self) -> None:
        """A new stream: its relations are announced again."""
        ...

    def close(self) -> None: ...


class ChangeApplier(Protocol):
    """A target's writer of CDC batches: data and checkpoint commit together."""

    def apply(
        self,
        ops: Sequence[WriteOp],
        position: int | None,
        position_text: str | None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None: ...

    def checkpoint(self) -> dict[str, Any] | None:
        """The stored checkpoint record (position, commit time, ...), or None."""
        ...

    def ensure_indexes(self, paths: dict[str, set[str]]) -> list[str]: ...


@dataclass(frozen=True)
class LoadSample:
    """Source load, as throttling reads it (engine/throttle.py). `active_sessions` None: not
    asked. `replica_lag_seconds` None: not asked, or no replica (`replicas` 0); 0.0 for a replica
    that is caught up."""

    active_sessions: int | None
    replicas: int | None
    replica_lag_seconds: float | None
