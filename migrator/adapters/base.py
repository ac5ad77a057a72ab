"""What adapters promise and what inspection reports.

Inspection results are plain frozen dataclasses: phases, preflight and the runbook
read them; only adapters build them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol


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

    @property
    def name(self) -> str:
        """The endpoint as users may see it: host, port, database; never a password."""
        ...

    def inspect(self, tables: Sequence[str]) -> SourceInfo: ...

    def monitor(self) -> CaptureMonitor:
        """A new monitor of the change-capture slots (its own connection; close it)."""
        ...

    def close(self) -> None: ...


class TargetAdapter(Protocol):
    """What every phase, operation and the mapping may ask of a target."""

    capabilities: ClassVar[Capabilities]
    name: str

    def inspect(self, collections: Sequence[str]) -> TargetInfo: ...

    def close(self) -> None: ...


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
