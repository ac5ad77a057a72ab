"""What PostgreSQL allows when a table is published for logical replication, and the fixes it accepts.

Two questions, asked by preflight (to report) and by the publication manager (as a last guard
right before CREATE/ALTER PUBLICATION):

- Has every relation whose changes the publication sends a usable replica identity? Without one,
  PostgreSQL makes the *application's* UPDATE and DELETE fail once the table is published.
- Which columns may stay in the source (a publication column list, PostgreSQL 15+)?

The rules are established on a real server in docs/architecture.md ("Replica identity",
"Partitioned tables", "Publication column lists"); every fix is run by a test.

And one catalog read, `read_publication`: what the run's publication publishes now, which CDC
compares with what the run needs (docs/architecture.md, "The run's publication").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from migrator.adapters.base import IdentityIndex, LeafInfo, TableInfo
from migrator.adapters.postgres import fixes

PARTITIONED_SERVER_VERSION = 130000  # publishing a partitioned table; publish_via_partition_root
COLUMN_LIST_SERVER_VERSION = 150000


@dataclass(frozen=True)
class IdentityProblem:
    """A relation (a table, a partitioned table, or one of its partitions) that would make the
    application's UPDATE and DELETE fail once published."""

    relation: str
    message: str
    fix: str


@dataclass(frozen=True)
class Publishing:
    """How one table is published: its column list, and what the plan does not read."""

    table: str
    columns: tuple[str, ...] | None  # the column list; None publishes every column
    left_out: tuple[str, ...]  # not read by the plan, kept in the source by the column list
    sent_unread: tuple[str, ...]  # not read by the plan, and still sent by PostgreSQL
    reason: str | None = None  # why `sent_unread` are sent
    fix: str | None = None  # what keeps them in the source, where PostgreSQL has a way


@dataclass(frozen=True)
class PublishedState:
    """What a publication publishes now, as the catalog says."""

    name: str
    all_tables: bool  # FOR ALL TABLES
    actions: frozenset[str]  # of 'insert', 'update', 'delete', 'truncate'
    via_root: bool  # publish_via_partition_root
    relations: frozenset[int]  # every relation whose changes it sends (leaf partitions, not their root)
    # Per table it names itself (pg_publication_rel): its column list (None: every column) and
    # whether it has a row filter (a WHERE, PostgreSQL 15+).
    listed: dict[int, tuple[frozenset[str] | None, bool]]


# pg_publication_tables resolves FOR ALL TABLES, FOR TABLES IN SCHEMA and a partitioned table
# published per partition (its leaves) into the relations whose changes are sent.
_SENT_SQL = """
SELECT c.oid::bigint FROM pg_publication_tables t
JOIN pg_namespace n ON n.nspname = t.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.tablename
WHERE t.pubname = %(name)s
"""
_OPTIONS_SQL = (
    "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, {viaroot} "
    "FROM pg_publication WHERE pubname = %(name)s"
)
_LISTED_SQL = """
SELECT pr.prrelid::bigint, {columns}, {qual}
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = %(name)s
"""


def read_publication(conn: psycopg.Connection[Any], name: str, version: int) -> PublishedState | None:
    """What publication `name` publishes now (None: it does not exist). Raises psycopg's errors."""
    viaroot = "pubviaroot" if version >= PARTITIONED_SERVER_VERSION else "false"
    row = conn.execute(_OPTIONS_SQL.format(viaroot=viaroot), {"name": name}).fetchone()
    if row is None:
        return None
    all_tables, insert, update, delete, truncate, via_root = row
    actions = frozenset(
        a
        for a, on in zip(
            ("insert", "update", "delete", "truncate"), (insert, update, delete, truncate), strict=True
        )
        if on
    )
    sent = frozenset(int(r[0]) for r in conn.execute(_SENT_SQL, {"name": name}).fetchall())
    if version >= COLUMN_LIST_SERVER_VERSION:
        columns = (
            "(SELECT array_agg(a.attname::text) FROM pg_attribute a "
            "WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs))"
        )
        query = _LISTED_SQL.format(columns=columns, qual="pr.prqual IS NOT NULL")
    else:
        query = _LISTED_SQL.format(columns="NULL::text[]", qual="false")
    listed = {
        int(oid): (None if cols is None else frozenset(cols), bool(qual))
        for oid, cols, qual in conn.execute(query, {"name": name}).fetchall()
    }
    return PublishedState(name, bool(all_tables), actions, bool(via_root), sent, listed)


def restore_statements(
    name: str, tables: Mapping[str, Sequence[str] | None], version: int, *, options: bool, table_set: bool
) -> list[str]:
    """The statements that make publication `name` publish what the run needs again: `tables`
    (each with its column list, None: every column), every change, each partition's own.
    `options`: its publish settings changed; `table_set`: its tables or their lists changed;
    neither: it is gone."""
    targets = ", ".join(
        fixes.table(t) + ("" if c is None else f" ({fixes.columns(c)})") for t, c in tables.items()
    )
    viaroot = version >= PARTITIONED_SERVER_VERSION
    if not options and not table_set:
        return [
            f"CREATE PUBLICATION {fixes.ident(name)} FOR TABLE {targets}"
            + (" WITH (publish_via_partition_root = false);" if viaroot else ";")
        ]
    out: list[str] = []
    if options:
        out.append(
            f"ALTER PUBLICATION {fixes.ident(name)} SET (publish = 'insert, update, delete, truncate'"
            + (", publish_via_partition_root = false);" if viaroot else ");")
        )
    if table_set:
        out.append(f"ALTER PUBLICATION {fixes.ident(name)} SET TABLE {targets};")
    return out


def partitioned_unsupported(table: TableInfo, version: int) -> str | None:
    if table.kind == "partitioned" and version < PARTITIONED_SERVER_VERSION:
        return (
            f"{table.name} is a partitioned table: PostgreSQL before 13 cannot publish one "
            "(only its partitions, one by one, and not those created later)"
        )
    return None


def identity_problems(table: TableInfo, key: Sequence[str] = ()) -> list[IdentityProblem]:
    """Every relation of `table` that has no usable replica identity, each with a fix. `key`: the
    columns the plan keys the table by (for an ADD PRIMARY KEY fix)."""
    if table.kind != "partitioned":
        leaf = _as_leaf(table)
        if leaf.identity_columns:
            return []
        return [IdentityProblem(table.name, _why(leaf, table.name), _leaf_fix(leaf, key))]
    problems: list[IdentityProblem] = []
    future = "a partition created later takes the default replica identity, its primary key"
    if not table.primary_key:
        problems.append(
            IdentityProblem(
                table.name,
                f"partitioned table {table.name} has no primary key: {future}, so it would have none, and "
                "once it is published the application's UPDATE and DELETE on it fail",
                _partitioned_primary_key_fix(table, key),
            )
        )
    elif table.primary_key_deferrable:
        problems.append(
            IdentityProblem(
                table.name,
                f"the primary key of partitioned table {table.name} is DEFERRABLE, which PostgreSQL cannot "
                f"use as replica identity: {future}, so it would have none, and once it is published the "
                "application's UPDATE and DELETE on it fail",
                fixes.replace_primary_key(
                    table.name, table.primary_key_name or "<constraint>", table.primary_key
                ),
            )
        )
    for leaf in table.leaves:
        if not leaf.identity_columns:
            problems.append(
                IdentityProblem(
                    leaf.name,
                    f"partition {leaf.name} of {table.name}: {_why(leaf, leaf.name)} (REPLICA IDENTITY is set "
                    "per partition: the partitioned table's own setting applies to none of them)",
                    _leaf_fix(leaf, ()),
                )
            )
    return problems


def publishing(table: TableInfo, read: Collection[str] | None, version: int) -> Publishing:
    """The column list for `table` when the plan reads only `read` (None: every column).

    PostgreSQL's rules (docs/architecture.md, "Publication column lists"): lists exist from 15;
    a list must include the replica identity, so a FULL identity allows none; a partitioned
    table published per partition (publish_via_partition_root = false) takes none; a stored
    generated column may not be listed (before 18 it is never sent anyway).
    """
    published = [c.name for c in table.columns if c.generated is None]
    unread = tuple(c for c in published if read is not None and c not in read)
    if not unread:
        return Publishing(table.name, None, (), ())
    if version < COLUMN_LIST_SERVER_VERSION:
        return Publishing(
            table.name,
            None,
            (),
            unread,
            "this PostgreSQL has no publication column lists (they arrived in 15)",
            "upgrade to PostgreSQL 15 or newer",
        )
    if table.kind == "partitioned":
        return Publishing(
            table.name,
            None,
            (),
            unread,
            "PostgreSQL takes no column list for a partitioned table published per partition "
            "(publish_via_partition_root = false, which migrator needs so that each partition's replica "
            "identity and TRUNCATE arrive)",
            None,
        )
    if table.replica_identity == "full":
        return Publishing(
            table.name,
            None,
            (),
            unread,
            "its REPLICA IDENTITY FULL makes every column part of the identity, and a column list must "
            "include the identity",
            _narrower_identity(table, read or ()),
        )
    identity = set(table.identity_columns)
    sent = tuple(c for c in unread if c in identity)
    left_out = tuple(c for c in unread if c not in identity)
    columns = tuple(c for c in published if c not in left_out) if left_out else None
    if not sent:
        return Publishing(table.name, columns, left_out, ())
    return Publishing(
        table.name,
        columns,
        left_out,
        sent,
        "they are part of its replica identity, which a column list must include",
        _narrower_identity(table, read or ()),
    )


def _as_leaf(table: TableInfo) -> LeafInfo:
    return LeafInfo(
        table.name,
        table.replica_identity,
        table.identity_columns,
        table.primary_key,
        table.primary_key_deferrable,
        table.identity_indexes,
    )


def _why(leaf: LeafInfo, name: str) -> str:
    fails = "once it is in a publication, the application's UPDATE and DELETE on it fail"
    if leaf.replica_identity == "nothing":
        return f"{name} has REPLICA IDENTITY NOTHING: {fails}, and changes cannot be keyed"
    if leaf.replica_identity == "index":
        return f"the index of {name}'s REPLICA IDENTITY USING INDEX was dropped, so it has none: {fails}"
    if leaf.primary_key and leaf.primary_key_deferrable:
        return (
            f"the primary key of {name} ({', '.join(leaf.primary_key)}) is DEFERRABLE, which PostgreSQL "
            f"cannot use as replica identity, so it has none: {fails}"
        )
    return f"{name} has no primary key and no replica identity: {fails}, and changes cannot be keyed"


def _leaf_fix(leaf: LeafInfo, key: Sequence[str]) -> str:
    """Statements that give `leaf` a usable replica identity, the least costly first."""
    options: list[str] = []
    if leaf.primary_key and not leaf.primary_key_deferrable:
        options.append(fixes.replica_identity(leaf.name, "DEFAULT"))
    elif not leaf.primary_key and key:
        add = fixes.add_primary_key(leaf.name, key)
        # A new primary key serves only under the default identity (not NOTHING, nor a dropped index).
        default = (
            "" if leaf.replica_identity == "default" else " " + fixes.replica_identity(leaf.name, "DEFAULT")
        )
        options.append(add + default)
    # The primary key's own index is what DEFAULT uses already.
    usable_primary = leaf.primary_key if not leaf.primary_key_deferrable else None
    options += [
        fixes.replica_identity_index(leaf.name, i.name)
        for i in leaf.identity_indexes
        if i.columns != usable_primary
    ]
    if not leaf.identity_indexes and leaf.primary_key_deferrable:
        index = fixes.identity_index_name(leaf.name)
        options.append(
            f"{fixes.unique_index(leaf.name, index, leaf.primary_key)} "
            f"{fixes.replica_identity_index(leaf.name, index)}"
        )
    options.append(f"as a last resort, {fixes.replica_identity(leaf.name, 'FULL')}")
    return " or ".join(options)


def _partitioned_primary_key_fix(table: TableInfo, key: Sequence[str]) -> str:
    if table.partitioned_by_expression:
        return (
            f"none in PostgreSQL: a table partitioned by an expression can have no primary key; give every "
            f"partition a replica identity now and every partition created later before it takes writes "
            f"(e.g. {fixes.replica_identity(table.leaves[0].name if table.leaves else table.name, 'FULL')}), "
            "then map it knowing that a partition without one breaks the application's writes"
        )
    base = list(key) or list(next(iter(table.unique_keys), ()))
    columns = base + [c for c in table.partition_key if c not in base]
    return fixes.add_primary_key(table.name, columns) + (
        " (a primary key of a partitioned table must include the partition key)"
    )


def _narrower_identity(table: TableInfo, read: Collection[str]) -> str | None:
    """A replica identity within the columns the plan reads, which a column list can include."""
    usable_primary = table.primary_key and not table.primary_key_deferrable
    if usable_primary and set(table.primary_key) <= set(read) and table.replica_identity != "default":
        return fixes.replica_identity(table.name, "DEFAULT")
    index: IdentityIndex | None = next(
        (i for i in table.identity_indexes if set(i.columns) <= set(read)), None
    )
    if index is not None:
        return fixes.replica_identity_index(table.name, index.name)
    return None
