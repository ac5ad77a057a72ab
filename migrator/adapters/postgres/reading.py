"""SQL for reading key ranges, and the casts that deliver each type as the conversion table says.

Casts happen in the server, where they are cheap and exact: an enum arrives as its label,
an interval as ISO 8601 text, money as numeric. Python then only builds documents.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import psycopg
from bson.int64 import Int64
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from migrator.adapters.base import ColumnInfo, LevelRead
from migrator.adapters.postgres.inspect import table_identifier

# Types psycopg's binary loaders already turn into the Python value BSON needs.
_NATIVE = frozenset(
    {
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "real",
        "double precision",
        "text",
        "character varying",
        "character",
        "name",
        "boolean",
        "timestamp with time zone",
        "timestamp without time zone",
        "date",
        "uuid",
        "bytea",
        "json",
        "jsonb",
    }
)
_CASTS = {"oid": "bigint", "money": "numeric"}


def read_cast(column: ColumnInfo) -> str | None:
    """The type a column is cast to when read, or None when it is read as it is."""
    if column.type_kind == "array":
        element = column.element_type or ""
        if column.element_kind == "base" and element in _NATIVE:
            # Cast even so: an array over a domain (posint[]) has a type of its own that the
            # driver does not know, and would arrive as raw bytes. Same type: a no-op.
            return f"{element}[]"
        return f"{_CASTS.get(element, 'text')}[]"
    if column.type_kind == "base" and column.type_name in _NATIVE:
        return None
    return _CASTS.get(column.type_name, "text")


class Int64Loader(Loader):
    """bigint (and oid, read as bigint) as BSON's Int64: a plain int that fits 32 bits would be
    stored as int32, and the conversion table promises long (int64). Int64 is an int.

    A plain Loader, not a subclass of psycopg's Int8BinaryLoader: with the C implementation
    a Python override of a C loader's load() is silently bypassed."""

    format = Format.BINARY

    def load(self, data: Buffer) -> Int64:
        return Int64(int.from_bytes(data, "big", signed=True))


def key_text(value: Any) -> str:
    """A key value as PostgreSQL's text input for its type reads it back."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Load values on `conn` as the conversion table says (for what casts cannot do)."""
    conn.adapters.register_loader("int8", Int64Loader)


def column_expression(alias: str, column: ColumnInfo) -> sql.Composable:
    ref = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column.name))
    cast = read_cast(column)
    if cast is None:
        return ref
    return sql.SQL("{}::{}").format(ref, sql.SQL(cast))


_TEXT_LIKE = frozenset({"text", "character varying", "character", "name", "citext"})


def _element_order(alias: str, column: ColumnInfo) -> sql.Composable:
    """Order elements as BSON compares them: strings by code point (UTF-8 bytes, i.e. the "C"
    collation), nulls first. CDC's `$push` with `$sort` then keeps the snapshot's order."""
    ref = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column.name))
    if column.type_kind == "enum" or column.type_name in _TEXT_LIKE:
        ref = sql.SQL('{}::text COLLATE "C"').format(ref)
    return sql.SQL("{} NULLS FIRST").format(ref)


def key_range_condition(
    alias: str,
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
) -> tuple[sql.Composable, list[Any]]:
    """`(k...) > (lo...) AND (k...) <= (hi...)`; bounds are key values as text, cast back to
    the key's types so that the comparison is the index's own."""

    def ref(k: str) -> sql.Composable:
        return (
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) if alias else sql.Identifier(k)
        )

    cols = sql.SQL("({})").format(sql.SQL(", ").join(ref(k) for k in key))
    bound = sql.SQL("({})").format(
        sql.SQL(", ").join(sql.SQL("%s::{}").format(sql.SQL(t)) for t in key_types)
    )
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if lo is not None:
        parts.append(sql.SQL("{} > {}").format(cols, bound))
        params.extend(lo)
    if hi is not None:
        parts.append(sql.SQL("{} <= {}").format(cols, bound))
        params.extend(hi)
    if not parts:
        return sql.SQL("TRUE"), params
    return sql.SQL(" AND ").join(parts), params


def key_set_condition(
    alias: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
) -> tuple[sql.Composable, list[Any]]:
    """`(k...) IN (the given keys)`, keys as text cast to the key's types: one array
    parameter per key column, so the statement's size does not grow with the key count."""
    cols = sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in key)
    arrays = sql.SQL(", ").join(sql.SQL("%s::text[]::{}[]").format(sql.SQL(t)) for t in key_types)
    params: list[Any] = [[k[i] for k in keys] for i in range(len(key))]
    return sql.SQL("({}) IN (SELECT * FROM unnest({}))").format(cols, arrays), params


def sample_condition(alias: str, key: Sequence[str], fraction: float, seed: int) -> sql.Composable:
    """A deterministic pseudo-random `fraction` of the root keys: the same keys in every level's
    query (so a sampled document is read whole) and in every run with the same seed."""
    cols = sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in key)
    threshold = max(1, round(fraction * 16384))
    return sql.SQL("(hashtextextended(row({})::text, {}) & 16383) < {}").format(
        cols, sql.Literal(seed), sql.Literal(threshold)
    )


def level_query(
    level: LevelRead,
    root: str,
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
    where: tuple[sql.Composable, list[Any]] | None = None,
    relation: tuple[sql.Composable, list[Any]] | None = None,
) -> tuple[sql.Composed, list[Any]]:
    """One level's rows for the root key range (lo, hi], ordered by the root key; `where`
    narrows the root rows further (a key set, a sample). `relation` stands in for the root
    table (a derived table of given values, adapters/postgres/linked.py)."""
    condition, params = key_range_condition("r", key, key_types, lo, hi)
    if where is not None:
        condition = sql.SQL("{} AND {}").format(condition, where[0])
        params = [*params, *where[1]]
    root_relation: sql.Composable = table_identifier(root)
    if relation is not None:
        root_relation = relation[0]
        params = [*relation[1], *params]  # FROM comes before WHERE
    root_key: list[sql.Composable] = [sql.SQL("r.{}").format(sql.Identifier(k)) for k in key]
    if not level.path:
        select = [column_expression("r", c) for c in level.columns]
        order = root_key
        joins: list[sql.Composable] = []
    else:
        alias = f"c{len(level.path) - 1}"
        select = root_key + [column_expression(alias, c) for c in level.columns]
        order = root_key + [_element_order(alias, c) for c in level.order_by]
        joins = []
        parent = "r"
        for depth, hop in enumerate(level.path):
            child = f"c{depth}"
            on = sql.SQL(" AND ").join(
                sql.SQL("{}.{} = {}.{}").format(
                    sql.Identifier(child), sql.Identifier(c), sql.Identifier(parent), sql.Identifier(p)
                )
                for c, p in hop.on
            )
            joins.append(
                sql.SQL("JOIN {} {} ON {}").format(table_identifier(hop.table), sql.Identifier(child), on)
            )
            parent = child
    query = sql.SQL("SELECT {select} FROM {root} r {joins} WHERE {cond} ORDER BY {order}").format(
        select=sql.SQL(", ").join(select),
        root=root_relation,
        joins=sql.SQL(" ").join(joins),
        cond=condition,
        order=sql.SQL(", ").join(order),
    )
    return query, params
