"""The shape of the mapped tables that a run's checkpoints were taken against, and what changed.

A table's shape: its oid and name, its columns with their type oids and, for a partitioned
table, its leaf partitions. The snapshot records it (read inside its exported snapshot); CDC
compares it with the live catalog when it starts and every few seconds while it follows, so
that DDL made while no run followed, or on a table no change touches, is not missed: a table
dropped or renamed, a column dropped or retyped, a partition detached, dropped or attached
with rows (docs/architecture.md, "Schema changes").

Plain SQL on pg_class, pg_attribute and pg_inherits (no function that reads the catalog's
latest state), so that inside an imported snapshot it reads the catalog as of that snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import split_table
from migrator.adapters.postgres.publication import PublishedState, read_publication

# A partitioned table's leaves (at any depth), as two arrays in one order: oids, then names.
_SHAPES_SQL = """
SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relkind::text,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(SELECT a.atttypid::bigint FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       ARRAY(WITH RECURSIVE tree(relid) AS (
                 SELECT c.oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid)
             SELECT l.oid::bigint FROM tree JOIN pg_class l ON l.oid = tree.relid
             WHERE l.relkind IN ('r', 'f') ORDER BY l.oid),
       ARRAY(WITH RECURSIVE tree(relid) AS (
                 SELECT c.oid UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid)
             SELECT ln.nspname || '.' || l.relname FROM tree JOIN pg_class l ON l.oid = tree.relid
             JOIN pg_namespace ln ON ln.oid = l.relnamespace
             WHERE l.relkind IN ('r', 'f') ORDER BY l.oid),
       ARRAY(SELECT a.attnum::int FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND (c.oid = ANY(%(oids)s::oid[])
       OR (n.nspname, c.relname) IN (SELECT * FROM unnest(%(schemas)s::text[], %(names)s::text[])))
"""

_EXISTING_SQL = "SELECT oid::bigint FROM pg_class WHERE oid = ANY(%(oids)s::oid[])"

_UNLOGGED_SQL = """
SELECT c.oid::bigint, n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = ANY(%(oids)s::oid[]) AND c.relpersistence = 'u' ORDER BY 2
"""

# Whether a leaf partition holds a row older than the link that made it part of its root's tree
# (the ATTACH PARTITION, or the CREATE TABLE ... PARTITION OF): such a row entered the root
# without passing through the change stream. Rows of the transaction that made the link count
# too, unless that transaction also created the table (CREATE TABLE ... PARTITION OF, whose
# rows are published). age() of an xid beyond wraparound distance is negative: older still.
_HELD_ROWS_SQL = """
WITH link AS (
    SELECT i.xmin AS xid,
           i.xmin = (SELECT t.xmin FROM pg_type t JOIN pg_class c ON c.reltype = t.oid WHERE c.oid = {leaf}::oid) AS created
    FROM pg_inherits i
    WHERE i.inhrelid IN (SELECT relid FROM pg_partition_ancestors({leaf}::oid::regclass))
    ORDER BY age(i.xmin) LIMIT 1
)
SELECT EXISTS (
    SELECT 1 FROM {table} r, link
    WHERE age(r.xmin) > age(link.xid) OR age(r.xmin) < 0 OR (NOT link.created AND r.xmin = link.xid)
)
"""


@dataclass(frozen=True)
class TableShape:
    oid: int
    name: str  # schema.table, as the catalog names it now
    columns: dict[str, int]  # column -> type oid
    leaves: dict[int, str] | None  # a partitioned table's leaf partitions: oid -> schema.table
    # column -> attnum, its identity: a column dropped and added again under its name has a new
    # one (None: a shape recorded before attnums were)
    attnums: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "oid": self.oid,
            "name": self.name,
            "columns": [[n, t] for n, t in self.columns.items()],
            "leaves": None if self.leaves is None else [[o, n] for o, n in self.leaves.items()],
            "attnums": None if self.attnums is None else [[n, a] for n, a in self.attnums.items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableShape:
        leaves = data.get("leaves")
        attnums = data.get("attnums")
        return cls(
            int(data["oid"]),
            str(data["name"]),
            {str(n): int(t) for n, t in data["columns"]},
            None if leaves is None else {int(o): str(n) for o, n in leaves},
            None if attnums is None else {str(n): int(a) for n, a in attnums},
        )


ChangeKind = Literal[
    "table dropped",
    "table renamed",
    "column dropped",
    "column retyped",
    "column added",
    "column re-added",
    "partition detached",
    "partition dropped",
    "partition added",
]


@dataclass(frozen=True)
class SchemaChange:
    table: str  # the mapped table, as the plan names it
    kind: ChangeKind
    subject: str  # the column, the partition, or the table's new name
    oid: int = 0  # a partition's


def shapes_to_json(shapes: Mapping[str, TableShape]) -> dict[str, Any]:
    return {table: shape.to_json() for table, shape in shapes.items()}


def shapes_from_json(data: Mapping[str, Any]) -> dict[str, TableShape]:
    return {str(table): TableShape.from_json(shape) for table, shape in data.items()}


class ShapeReader:
    """Reads the mapped tables' shapes on a connection of its own (inside `snapshot` if given)."""

    def __init__(self, endpoint: PgEndpoint, snapshot: str | None = None) -> None:
        self._endpoint = endpoint
        self._snapshot = snapshot
        self._conn: psycopg.Connection[Any] | None = None

    def _query(
        self, query: str | sql.Composed, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._endpoint.connect()
                if self._snapshot is not None:
                    self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    self._conn.execute(
                        sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self._snapshot))
                    )
            return list(self._conn.execute(query, params).fetchall())
        except psycopg.Error as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def read(
        self, tables: Iterable[str], known: Mapping[str, TableShape] | None = None
    ) -> dict[str, TableShape]:
        """The shape of each table found, by its name in `tables`: found by name, or, for those
        `known` already, by oid (a renamed table keeps its oid; a re-created one does not)."""
        tables = list(tables)
        known = known or {}
        parts = [split_table(t) for t in tables]
        rows = self._query(
            _SHAPES_SQL,
            {
                "oids": [s.oid for s in known.values()],
                "schemas": [s for s, _ in parts],
                "names": [n for _, n in parts],
            },
        )
        by_oid: dict[int, TableShape] = {}
        by_name: dict[str, TableShape] = {}
        for oid, schema, name, kind, names, types, leaf_oids, leaf_names, attnums in rows:
            shape = TableShape(
                int(oid),
                f"{schema}.{name}",
                {str(n): int(t) for n, t in zip(names, types, strict=True)},
                dict(zip((int(o) for o in leaf_oids), (str(n) for n in leaf_names), strict=True))
                if kind == "p"
                else None,
                {str(n): int(a) for n, a in zip(names, attnums, strict=True)},
            )
            by_oid[shape.oid] = by_name[shape.name] = shape
        out: dict[str, TableShape] = {}
        for table, (schema, name) in zip(tables, parts, strict=True):
            before = known.get(table)
            found = by_oid.get(before.oid) if before is not None else by_name.get(f"{schema}.{name}")
            if found is not None:
                out[table] = found
        return out

    def unlogged(self, live: Mapping[str, TableShape]) -> list[tuple[str, str]]:
        """(mapped table, relation) for each mapped table or leaf partition that is UNLOGGED now.
        PostgreSQL refuses SET UNLOGGED for a table in a publication, but not for a partition of
        a published partitioned table, nor an UNLOGGED partition created under one: their changes
        never reach the WAL (docs/architecture.md, "Schema changes")."""
        owner = {shape.oid: table for table, shape in live.items()}
        owner.update({oid: table for table, shape in live.items() for oid in (shape.leaves or {})})
        if not owner:
            return []
        rows = self._query(_UNLOGGED_SQL, {"oids": list(owner)})
        return [(owner[int(oid)], str(name)) for oid, name in rows]

    def schema_exists(self, schema: str) -> bool:
        """Whether a schema of this name exists now (a renamed table's old schema: renamed too,
        or left)."""
        rows = self._query("SELECT to_regnamespace(%(schema)s) IS NOT NULL", {"schema": f'"{schema}"'})
        return bool(rows and rows[0][0])

    def existing(self, oids: Sequence[int]) -> set[int]:
        """Which of these relations exist."""
        return {int(o) for (o,) in self._query(_EXISTING_SQL, {"oids": list(oids)})}

    def holds_rows_from_before(self, leaf: int, name: str) -> bool:
        """Whether leaf partition `leaf` holds a row it had before it became a partition of its
        root's tree (ATTACH PARTITION of a table with rows). Reads the partition (stops at the
        first such row)."""
        query = sql.SQL(_HELD_ROWS_SQL).format(
            leaf=sql.Literal(leaf), table=sql.Identifier(*split_table(name))
        )
        rows = self._query(query)
        return bool(rows and rows[0][0])

    def publication(self, name: str, version: int) -> tuple[int, PublishedState | None]:
        """The source's WAL position, then what publication `name` publishes, read after it: the
        catalog read covers every transaction committed up to that position."""
        ((position,),) = self._query(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
            "ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint"
        )
        assert self._conn is not None
        try:
            return int(position), read_publication(self._conn, name, version)
        except psycopg.Error as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _readded(before: TableShape, now: TableShape, column: str) -> bool:
    """Whether `column` is another column under the same name (dropped and added again: a new
    attnum, and the old values gone), where both shapes know attnums."""
    if before.attnums is None or now.attnums is None:
        return False
    return before.attnums.get(column) != now.attnums.get(column)


def compare(recorded: Mapping[str, TableShape], live: Mapping[str, TableShape]) -> list[SchemaChange]:
    """What changed from `recorded` to `live` (both by the plan's table names)."""
    changes: list[SchemaChange] = []
    for table, before in recorded.items():
        now = live.get(table)
        if now is None or now.oid != before.oid:
            changes.append(SchemaChange(table, "table dropped", before.name))
            continue
        if now.name != before.name:
            changes.append(SchemaChange(table, "table renamed", now.name))
        for column, type_oid in before.columns.items():
            if column not in now.columns:
                changes.append(SchemaChange(table, "column dropped", column))
            elif _readded(before, now, column):
                changes.append(SchemaChange(table, "column re-added", column))
            elif now.columns[column] != type_oid:
                changes.append(SchemaChange(table, "column retyped", column))
        changes += [SchemaChange(table, "column added", c) for c in now.columns if c not in before.columns]
        if before.leaves is not None and now.leaves is not None:
            changes += [
                SchemaChange(table, "partition detached", name, oid)
                for oid, name in before.leaves.items()
                if oid not in now.leaves
            ]
            changes += [
                SchemaChange(table, "partition added", name, oid)
                for oid, name in now.leaves.items()
                if oid not in before.leaves
            ]
    return changes


@dataclass(frozen=True)
class PublicationChange:
    what: str  # what the publication no longer publishes, in words
    options: bool  # restored by ALTER PUBLICATION ... SET (...), else by ... SET TABLE


ACTIONS = ("insert", "update", "delete", "truncate")


def compare_publication(
    state: PublishedState | None, live: Mapping[str, TableShape], needed: Mapping[str, frozenset[str]]
) -> list[PublicationChange]:
    """What of the run's needs the run's publication no longer publishes: every change (insert,
    update, delete, truncate) of each mapped table (each leaf partition of a partitioned one,
    published per partition), without a row filter, with `needed`'s columns (per mapped table:
    the columns the run needs sent). Empty when it publishes all of it (docs/architecture.md,
    "The run's publication")."""
    if state is None:
        return [PublicationChange("it was dropped (DROP PUBLICATION)", False)]
    changes: list[PublicationChange] = []
    off = [a for a in ACTIONS if a not in state.actions]
    if off:
        changes.append(
            PublicationChange(
                f"it no longer publishes {', '.join(a.upper() for a in off)} "
                f"(publish = '{', '.join(a for a in ACTIONS if a in state.actions)}')",
                True,
            )
        )
    if state.via_root:
        changes.append(
            PublicationChange(
                "it publishes partitions' changes as their root's (publish_via_partition_root = true), "
                "without each partition's replica identity and TRUNCATE",
                True,
            )
        )
    for table, shape in live.items():
        if shape.leaves is None:
            if shape.oid not in state.relations:
                changes.append(PublicationChange(f"it no longer publishes table {shape.name}", False))
                continue
        elif not state.via_root:
            unsent = [n for o, n in shape.leaves.items() if o not in state.relations]
            if unsent:
                changes.append(
                    PublicationChange(
                        f"it no longer publishes partition(s) {', '.join(unsent)} of {shape.name}", False
                    )
                )
        columns, filtered = state.listed.get(shape.oid, (None, False))
        if filtered:
            changes.append(
                PublicationChange(
                    f"table {shape.name} has a row filter (WHERE): the changes of rows it leaves out are not sent",
                    False,
                )
            )
        left_out = sorted(
            (needed.get(table, frozenset()) & set(shape.columns)) - (columns or set(shape.columns))
        )
        if columns is not None and left_out:
            changes.append(
                PublicationChange(
                    f"its column list for table {shape.name} leaves out {', '.join(left_out)}", False
                )
            )
    return changes
