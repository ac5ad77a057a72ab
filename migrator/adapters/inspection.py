"""What inspection reports of a source and a target: plain frozen dataclasses that phases,
preflight and the runbook read and only adapters build (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    # Stores the source's column types as they are (a PostgreSQL target's tables), so the BSON
    # conversion table's precision findings do not apply (docs/architecture.md, "Tables as collections").
    keeps_source_types: bool = False
    # Its load probe reads how far the source's replicas lag (throttle.max_replica_lag); a MySQL
    # primary cannot (docs/architecture.md, "MySQL and MariaDB sources").
    replica_lag: bool = False
    # Takes back, by reverse sync after cutover, the values of a target that keeps the source's
    # types (a PostgreSQL target): a source of those same types, or one whose writer inverts the
    # target's type table (MySQL/MariaDB; docs/architecture.md, "Tables as collections");
    # preflight refuses a cutover into such a target otherwise.
    reverse_from_own_types: bool = False
    # Keeps a routing document (a cutover switch of kind mongodb) beside the data: a MongoDB
    # target; preflight refuses that switch into a target without it (docs/architecture.md,
    # "Tables as collections").
    routing_documents: bool = False


@dataclass(frozen=True)
class CutoverNeeds:
    """What the plan asks of the source at cutover (phases.cutover), for the privileges and
    features a source adapter's preflight checks: reverse sync writes the mapped tables back, a
    `lock` fence locks them (a `command` fence asks nothing of the database), `switch` is the
    switch's kind (None: none set), `routing_table` the table a switch of kind `postgres` writes in
    the source's database (None for any other switch). The defaults are the plan's."""

    reverse_sync: bool = True
    fence: Literal["lock", "command"] = "lock"
    switch: str | None = None
    routing_table: str | None = None
    # The target keeps the source's column types (a PostgreSQL target), so rollback after cutover
    # sets the source's counters past the target's keys (docs/architecture.md, "Tables as
    # collections").
    own_types: bool = False
    # The plan's name, for the server-wide objects named after it (a replication origin, whose
    # room preflight counts); "" where the caller has no plan.
    plan_name: str = ""


@dataclass(frozen=True)
class UserType:
    """A user-defined type a column declares (or its array's element): what a PostgreSQL target
    creates before its tables (docs/architecture.md, "Tables as collections")."""

    name: str  # schema-qualified and quoted, as format('%I.%I') gives it
    kind: str  # 'enum', 'domain', 'composite', 'range', 'multirange'
    labels: tuple[str, ...] = ()  # an enum's, in enumsortorder
    base: str = ""  # a domain's base type (format_type), "" where that base is itself user-defined
    checks: tuple[str, ...] = ()  # a domain's CHECK constraints (pg_get_constraintdef)
    not_null: bool = False  # a domain's NOT NULL
    schema: str = ""  # the schema it is in (unquoted)
    # The user-defined functions a domain's CHECK constraints call (FirstNormalObjectId and up):
    # each as (schema.name(argument types), pg_get_functiondef). The target must have them first.
    functions: tuple[tuple[str, str], ...] = ()


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
    # Whether that expression names nothing of its database but its own table's columns (no
    # pg_depend entry on a user-defined function, operator, type or collation, object ids from
    # 16384): every PostgreSQL server can evaluate it, so a PostgreSQL target keeps the column
    # GENERATED (docs/architecture.md, "Tables as collections").
    generated_builtin: bool = False
    # The server's own name of the column's type where it differs from `type_name` (a MySQL
    # COLUMN_TYPE such as "tinyint(1) unsigned"), for messages and the type table; "" otherwise.
    native_type: str = ""
    # The column's type as declared, with its modifier and domain (format_type(atttypid,
    # atttypmod): what pg_dump writes); its default expression (not a generated column's); and
    # attidentity ('a' ALWAYS, 'd' BY DEFAULT, '' none). A PostgreSQL target creates its tables
    # from these (docs/architecture.md, "Tables as collections"); "" / None where unknown.
    declared_type: str = ""
    default: str | None = None
    identity: str = ""
    user_type: UserType | None = None
    # The column's collation where it is not its type's default, schema-qualified and quoted as
    # pg_dump writes it (`pg_catalog."en-x-icu"`); "" otherwise.
    collation: str = ""


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
    # The referential actions, as the SQL standard names them ('CASCADE', 'SET NULL', 'SET DEFAULT',
    # 'RESTRICT', 'NO ACTION'); '' where the adapter does not read them.
    on_delete: str = ""
    on_update: str = ""

    @property
    def holds(self) -> bool:
        """Whether every row satisfies it: a child row can then precede its parent only inside
        one transaction (docs/architecture.md, "Foreign keys hold at transaction boundaries")."""
        return self.validated and self.enforced

    def actions(self) -> dict[str, str]:
        """The actions that change or delete child rows: {'ON DELETE': 'CASCADE', ...}."""
        acting = ("CASCADE", "SET NULL", "SET DEFAULT")
        found = {"ON DELETE": self.on_delete, "ON UPDATE": self.on_update}
        return {event: action for event, action in found.items() if action.upper() in acting}

    def describe(self) -> str:
        state = "enforced, validated" if self.holds else "NOT ENFORCED" if not self.enforced else "NOT VALID"
        actions = "".join(f" {event} {action}" for event, action in self.actions().items())
        return (
            f"foreign key {self.name or '?'} ({', '.join(self.columns)}) REFERENCES "
            f"{self.referenced_table} ({', '.join(self.referenced_columns)}){actions}: {state}"
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
class SequenceGrant:
    """A sequence that gives out a column's values (a serial's or an identity's), with what the
    plan's role lacks of what rollback after cutover does to it: read its last value (SELECT or
    USAGE) and setval it (UPDATE)."""

    column: str
    sequence: str  # schema-qualified and quoted, as format('%I.%I') gives it
    missing: tuple[str, ...]  # 'SELECT', 'UPDATE'; () when the role has both


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
    # What reverse sync and rollback after cutover write to the table, as far as the plan's role
    # lacks it (a PostgreSQL source): of INSERT, UPDATE, DELETE on it, and its columns' sequences.
    write_denied: tuple[str, ...] = ()
    sequences: tuple[SequenceGrant, ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Grant:
    """Privileges a role lacks on one object, as a GRANT names them: `privileges` ("USAGE,
    CREATE"), `kind` (DATABASE, SCHEMA, TABLE) and the object's name parts (schema, table)."""

    privileges: str
    kind: str
    name: tuple[str, ...]


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
    # The replication origin functions reverse sync calls on a PostgreSQL source that the role may
    # not execute (PostgreSQL grants them to superusers only).
    origin_functions_denied: tuple[str, ...] = ()
    # The replication origins holding one of the server's origin states, and how many states it
    # has (max_replication_slots); None where the role may not read them (not a superuser).
    origin_states: tuple[tuple[str, ...], int] | None = None
    # What the role lacks to keep reverse sync's checkpoint on a PostgreSQL source (the schema
    # `migrator` and its table, adapters/postgres/checkpoint_access.py).
    checkpoint_denied: tuple[Grant, ...] = ()


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
class RowStatistics:
    """What `migrator init` estimates document sizes from (docs/architecture.md, "Proposing a
    plan"): a table's average row width and, per column, how many rows share its most common
    value: how far a fan-out along a foreign key on that column reaches, estimated."""

    # The average row's bytes from the server's statistics (PostgreSQL: pg_stats.avg_width summed;
    # MySQL/MariaDB: information_schema.TABLES.AVG_ROW_LENGTH), else from a sample of rows; None
    # where neither is known (an empty table).
    avg_row_bytes: int | None
    # column -> estimated rows holding the column's most common non-NULL value (PostgreSQL:
    # pg_stats.most_common_freqs[1] x the row estimate); a column left out has no such statistic.
    most_common_rows: dict[str, int] = field(default_factory=dict)
