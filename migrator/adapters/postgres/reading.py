"""SQL for reading key ranges, and the casts that deliver each type as the conversion table says.

Casts happen in the server, where they are cheap and exact: an enum arrives as its label,
an interval as ISO 8601 text, money as numeric. Python then only builds documents.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
from collections.abc import Sequence
from typing import Any

import psycopg
from bson.decimal128 import Decimal128
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
            # driver does not know, and would arrive as raw bytes. Same type: a no-op, except
            # that `character` means character(1), which would truncate: bpchar keeps the value.
            return f"{'bpchar' if element == 'character' else element}[]"
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


# Key types whose documents hold less than the source: BSON dates keep milliseconds, so an _id
# read from the target names every source key of its millisecond (docs/architecture.md, "Keys").
MILLISECOND_KEYS = frozenset({"timestamp with time zone", "timestamp without time zone"})
_JSON_TYPES = frozenset({"json", "jsonb"})


def key_text(value: Any, type_name: str | None = None) -> str:
    """A key value as PostgreSQL's text input for its type reads it back. `value` is either what
    the source delivered (Decimal, date, list, ...) or the BSON value a document holds for it
    (Decimal128, a UTC datetime for a date, ...); `type_name` is the column's canonical type
    (needed for json, and for a date held as a BSON date)."""
    if type_name is not None and type_name.endswith("[]") and isinstance(value, list):
        return _array_text(value, type_name[:-2])
    if type_name in _JSON_TYPES:
        return json.dumps(_plain_json(value), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)  # the shortest text that reads back as this double
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, datetime.datetime):
        if type_name == "date":
            return (
                value.astimezone(datetime.UTC).date().isoformat()
                if value.tzinfo
                else value.date().isoformat()
            )
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):  # bytea, as the source or a BSON binary of subtype 0 gives it
        return "\\x" + value.hex()
    if isinstance(value, list):
        return _array_text(value, None)
    return str(value)


def _array_text(values: list[Any], element_type: str | None) -> str:
    """An array literal: every element quoted (so commas, braces and the word NULL stay data),
    NULL unquoted, nested lists as further dimensions."""
    parts: list[str] = []
    for item in values:
        if item is None:
            parts.append("NULL")
        elif isinstance(item, list) and element_type not in _JSON_TYPES:
            parts.append(_array_text(item, element_type))
        else:
            text = key_text(item, element_type)
            parts.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def _plain_json(value: Any) -> Any:
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    return value


# Canonical names that mean a length of 1 in a cast (`::character` is char(1), `::bit` is bit(1),
# truncating or refusing longer values); a key value is cast to the unconstrained type instead.
_UNCONSTRAINED = {"character": "bpchar", "bit": "bit varying"}


def cast_type(type_name: str) -> sql.Composable:
    """The type a key value given as text is cast to: the column's type, without a length."""
    element = type_name.removesuffix("[]")
    name = _UNCONSTRAINED.get(element, element) + type_name[len(element) :]
    return sql.SQL(name)


def key_match(column: sql.Composable, value: sql.Composable, type_name: str) -> sql.Composable:
    """SQL that is true when key `column` is the key `value` (text) names. Exact for every type
    but the timestamps, whose _id holds the millisecond: there the value names every key of its
    millisecond, as a range an index on the key serves (BSON's truncation and date_trunc's both
    floor, before 1970 too)."""
    typed = sql.SQL("{}::{}").format(value, cast_type(type_name))
    if type_name not in MILLISECOND_KEYS:
        return sql.SQL("{} = {}").format(column, typed)
    start = sql.SQL("date_trunc('milliseconds', {})").format(typed)
    return sql.SQL("({c} >= {s} AND {c} < {s} + interval '1 millisecond')").format(c=column, s=start)


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Load values on `conn` as the conversion table says (for what casts cannot do)."""
    conn.adapters.register_loader("int8", Int64Loader)


# Types whose cast to text is not their output function: inet's text() always shows the
# netmask (10.0.0.1/32) where the output function, and so pgoutput, leaves a host's out
# (10.0.0.1); xml's text() is the text as stored, where the output function drops the XML
# declaration's encoding (and the declaration itself when nothing else is left in it). Read
# through the output function, as CDC receives them (docs/architecture.md, "Keys").
_OUTPUT_TEXT = frozenset({"inet", "xml"})


def read_expression(value: sql.Composable, column: ColumnInfo) -> sql.Composable:
    """`value` (of `column`'s type) as the conversion table delivers it (see `read_cast`)."""
    element = column.element_type if column.type_kind == "array" else column.type_name
    if element in _OUTPUT_TEXT:
        # concat gives the output function's text, and '' for NULL: the CASE keeps NULL NULL
        # (an xml value's text may be empty).
        text = sql.SQL("CASE WHEN {v} IS NOT NULL THEN concat({v}) END").format(v=value)
        return sql.SQL("{}::text[]").format(text) if column.type_kind == "array" else text
    cast = read_cast(column)
    if cast is None:
        return value
    return sql.SQL("{}::{}").format(value, sql.SQL(cast))


def column_expression(alias: str, column: ColumnInfo) -> sql.Composable:
    return read_expression(
        sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column.name)), column
    )


_TEXT_LIKE = frozenset({"text", "character varying", "character", "name", "citext"})
_FLOATING = frozenset({"real", "double precision", "numeric"})


def _element_order(alias: str, column: ColumnInfo) -> sql.Composable:
    """Order elements as BSON compares the values they become, nulls first, so that CDC's
    `$push` with `$sort` keeps the snapshot's order: strings (text, and every type read as its
    text form: intervals, ranges, inet, times with zone, ...) by code point (UTF-8 bytes, the "C"
    collation); binaries by length first; NaN below every number; timestamps by millisecond. Arrays and JSON have no such
    order and are refused as order_by (mapping/spec.py)."""
    ref = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column.name))
    if column.type_kind == "enum" or column.type_name in _TEXT_LIKE:
        return sql.SQL('{}::text COLLATE "C" NULLS FIRST').format(ref)
    if column.type_kind != "array" and read_cast(column) == "text":
        return sql.SQL('{} COLLATE "C" NULLS FIRST').format(read_expression(ref, column))
    if column.type_name == "bytea":
        return sql.SQL("octet_length({r}) NULLS FIRST, {r}").format(r=ref)
    if column.type_name in _FLOATING:
        return sql.SQL("{r} IS NOT NULL AND {r} <> 'NaN', {r} NULLS FIRST").format(r=ref)
    if column.type_name in MILLISECOND_KEYS:
        # BSON dates hold milliseconds: values within one millisecond are equal to $sort, which
        # then orders them by the key. date_trunc floors, as BSON's encoding does (before 1970 too).
        return sql.SQL("date_trunc('milliseconds', {}) NULLS FIRST").format(ref)
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
        sql.SQL(", ").join(sql.SQL("%s::{}").format(cast_type(t)) for t in key_types)
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
    """The root rows of the given keys (as text, each cast to its column's type in the server;
    see `key_match`): one text array parameter per key column, so the statement's size does not
    grow with the key count."""
    arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in key)
    names = sql.SQL(", ").join(sql.Identifier(f"v{i}") for i in range(len(key)))
    match = sql.SQL(" AND ").join(
        key_match(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)),
            sql.SQL("u.{}").format(sql.Identifier(f"v{i}")),
            t,
        )
        for i, (k, t) in enumerate(zip(key, key_types, strict=True))
    )
    params: list[Any] = [[k[i] for k in keys] for i in range(len(key))]
    condition = sql.SQL("EXISTS (SELECT 1 FROM unnest({}) AS u({}) WHERE {})").format(arrays, names, match)
    return condition, params


def sample_condition(alias: str, key: Sequence[str], fraction: float, seed: int) -> sql.Composable:
    """A deterministic pseudo-random `fraction` of the root keys: the same keys in every level's
    query (so a sampled document is read whole) and in every run with the same seed."""
    cols = sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in key)
    threshold = max(1, round(fraction * 16384))
    return sql.SQL("(hashtextextended(row({})::text, {}) & 16383) < {}").format(
        cols, sql.Literal(seed), sql.Literal(threshold)
    )


def _text_expression(alias: str, column: ColumnInfo) -> sql.Composable:
    """A json/jsonb column as its text, an array of them (`json[]`) as an array of its elements'
    texts (LevelRead.json_text): the text PostgreSQL prints for each element, NULL elements NULL."""
    cast = "text[]" if column.type_kind == "array" else "text"
    return sql.SQL("{}.{}::{}").format(sql.Identifier(alias), sql.Identifier(column.name), sql.SQL(cast))


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
        select = [
            _text_expression("r", c) if c.name in level.json_text else column_expression("r", c)
            for c in level.columns
        ]
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
