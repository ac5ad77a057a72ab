"""Expected MongoDB documents, computed from the source's rows with plain SQL.

Independent of `migrator/mapping` on purpose: a test states its plan's mapping once, as `Coll`
and `Embed` values (the facts the plan YAML states: table, key, fields, exclude, embeds), and
this module reads the source with its own queries and builds the documents docs/plan.md promises:

- "Plan format v1": a collection's `key` becomes `_id` (a list: `{a: .., b: ..}` in key order)
  and is not repeated as a field; without `fields` a document takes every column in table order
  except the key columns (top level), the `on` columns (sub-documents) and `exclude`; embeds
  follow the fields in plan order; `many: true` is an array ([] when none) ordered by `order_by`
  then the element key, as MongoDB's `$sort` compares BSON values (docs/plan.md "Keys"); `many: false`
  a sub-document or null. A link that is NULL matches nothing, as SQL equality would.
- "Type conversion": docs/plan.md's table, implemented here from PostgreSQL's own text forms (each
  type's output function, in a session with IntervalStyle iso_8601 and TimeZone UTC) and
  psycopg's values; `real` widened as an IEEE single to a double; timestamps truncated to
  milliseconds; json parsed in key order, integers as int32 or int64 by size.

`Coll.plan_entry()` writes the same description as plan YAML, so the plan under test and the
expectation cannot drift apart. A column type this module has no conversion for raises
`Unmapped`: the test must exclude it (as `migrator plan` demands).
"""

from __future__ import annotations

import datetime
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import bson
import psycopg
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from psycopg import sql
from psycopg.types import TypeInfo
from psycopg.types.array import register_array
from psycopg.types.string import TextLoader

UTC = datetime.UTC
INT32 = range(-(2**31), 2**31)


class Unmapped(Exception):
    """A column whose type docs/plan.md gives no conversion for (the test must exclude it)."""


@dataclass(frozen=True)
class Embed:
    """One `embed:` entry. `on` is child column -> parent column, as in the plan."""

    name: str
    table: str
    on: Mapping[str, str]
    many: bool = True
    key: tuple[str, ...] = ()  # default: the child's primary key
    order_by: tuple[str, ...] = ()
    fields: Mapping[str, str] | None = None
    exclude: tuple[str, ...] = ()
    embeds: tuple[Embed, ...] = ()

    def plan_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"as": self.name, "from": self.table, "on": dict(self.on), "many": self.many}
        if self.key:
            entry["key"] = _one_or_list(self.key)
        if self.order_by:
            entry["order_by"] = _one_or_list(self.order_by)
        return _with_shape(entry, self.fields, self.exclude, self.embeds)


@dataclass(frozen=True)
class Coll:
    """One `collections:` entry."""

    name: str
    table: str
    key: tuple[str, ...]
    fields: Mapping[str, str] | None = None
    exclude: tuple[str, ...] = ()
    embeds: tuple[Embed, ...] = ()

    def plan_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "from": self.table, "key": _one_or_list(self.key)}
        return _with_shape(entry, self.fields, self.exclude, self.embeds)


def _with_shape(
    entry: dict[str, Any],
    fields: Mapping[str, str] | None,
    exclude: tuple[str, ...],
    embeds: tuple[Embed, ...],
) -> dict[str, Any]:
    """`entry` with the document's shape keys a plan entry sets: fields, exclude, embed."""
    if fields is not None:
        entry["fields"] = dict(fields)
    if exclude:
        entry["exclude"] = list(exclude)
    if embeds:
        entry["embed"] = [e.plan_entry() for e in embeds]
    return entry


def _one_or_list(columns: tuple[str, ...]) -> str | list[str]:
    return columns[0] if len(columns) == 1 else list(columns)


# -- column types -----------------------------------------------------------------------------

_SCALARS = {
    "int2": "int32",
    "int4": "int32",
    "int8": "int64",
    "oid": "int64",
    "numeric": "decimal",
    "money": "money",
    "float4": "float4",
    "float8": "double",
    "bool": "bool",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
    "date": "date",
    "uuid": "uuid",
    "bytea": "bytea",
    "json": "json",
    "jsonb": "jsonb",
    "interval": "text",  # IntervalStyle iso_8601: docs/plan.md's ISO 8601 duration
}
# Types docs/plan.md stores as their text form (or, for the character types, as the string).
_TEXT_FORMS = {
    "text", "varchar", "bpchar", "name", "citext", "xml", "time", "timetz", "inet", "cidr", "macaddr",
    "macaddr8", "bit", "varbit", "point", "line", "lseg", "box", "path", "polygon", "circle",
}  # fmt: skip


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # a scalar kind above, "text", or "unmapped:<type>"
    dims: int  # 0 scalar, 1 array (multidimensional arrays nest in the value itself)
    base_oid: int  # the (element) type with domains resolved
    base_array: str  # the base type's array type, as SQL (arrays are read cast to it)


def _resolve(conn: psycopg.Connection[Any], type_oid: int) -> tuple[str, int, int, str]:
    """(scalar kind, is array, base element type oid, base array type as SQL) of a type, domains
    resolved to their base type."""
    row = conn.execute(
        "SELECT typname, typtype, typbasetype, typelem, typcategory, format_type(typarray, NULL)"
        " FROM pg_type WHERE oid = %s",
        [type_oid],
    ).fetchone()
    assert row is not None
    name, typtype, base, elem, category, array_sql = row
    if typtype == "d":
        return _resolve(conn, base)
    if category == "A" and elem:
        kind, dims, elem_oid, elem_array = _resolve(conn, elem)
        if dims:
            raise Unmapped(f"array of arrays type {name}")
        return kind, 1, elem_oid, elem_array
    if typtype in ("e", "r"):  # enum label, range text form
        return "text", 0, type_oid, array_sql
    if name in _SCALARS:
        return _SCALARS[name], 0, type_oid, array_sql
    if name in _TEXT_FORMS:
        return "text", 0, type_oid, array_sql
    return f"unmapped:{name}", 0, type_oid, array_sql


def columns(conn: psycopg.Connection[Any], table: str) -> list[Column]:
    """The table's live columns in table (attnum) order."""
    rows = conn.execute(
        "SELECT attname, atttypid FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    ).fetchall()
    return [Column(name, *_resolve(conn, type_oid)) for name, type_oid in rows]


def primary_key(conn: psycopg.Connection[Any], table: str) -> tuple[str, ...]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n",
        [table],
    ).fetchall()
    return tuple(r[0] for r in rows)


def _select_expression(conn: psycopg.Connection[Any], column: Column) -> sql.Composable:
    """How a column is read. Text forms come from the type's output function (psycopg's
    TextLoader on the base type: `::text` would differ, e.g. inet's text() keeps /32 and
    bpchar's drops the padding); money as numeric; arrays cast to the base type's array type,
    so that arrays of domains read as arrays of their base type."""
    ident = sql.Identifier(column.name)
    if column.kind == "text":
        conn.adapters.register_loader(column.base_oid, TextLoader)
    if column.kind == "money":
        return sql.SQL("{}::numeric" + ("[]" if column.dims else "")).format(ident)
    if column.dims:
        if column.kind == "text":
            info = TypeInfo("corpus_elem", column.base_oid, _array_oid(conn, column.base_oid))
            register_array(info, conn)
        return sql.SQL("{}::" + column.base_array).format(ident)
    return ident


def _array_oid(conn: psycopg.Connection[Any], type_oid: int) -> int:
    row = conn.execute("SELECT typarray FROM pg_type WHERE oid = %s", [type_oid]).fetchone()
    assert row is not None
    return int(row[0])


# -- value conversion (docs/plan.md "Type conversion") ------------------------------------------------


def _int(value: int) -> int | Int64:
    return value if value in INT32 else Int64(value)


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return _int(value)
    raise TypeError(f"unexpected JSON value {value!r}")


def _millis(value: datetime.datetime) -> datetime.datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def convert(kind: str, value: Any) -> Any:
    """One value of a column of scalar `kind` as the target stores it (arrays element-wise)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [convert(kind, v) for v in value]
    if kind == "int32":
        return int(value)
    if kind == "int64":
        return Int64(value)
    if kind in ("decimal", "money"):
        return Decimal128(value if isinstance(value, Decimal) else Decimal(str(value)))
    if kind == "float4":
        # psycopg parses the text form ("1.1"); the IEEE single it names, widened to a double.
        return struct.unpack("<f", struct.pack("<f", float(value)))[0]
    if kind == "double":
        return float(value)
    if kind == "bool":
        return bool(value)
    if kind == "timestamptz":
        return _millis(value.astimezone(UTC))
    if kind == "timestamp":
        return _millis(value.replace(tzinfo=UTC))
    if kind == "date":
        return datetime.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if kind == "uuid":
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    if kind == "bytea":
        return bytes(value)
    if kind in ("json", "jsonb"):
        return _json(value)
    if kind == "text":
        return str(value)
    raise Unmapped(f"no conversion for {kind}")


# -- documents -------------------------------------------------------------------------------


def connect(url: str) -> psycopg.Connection[Any]:
    """A read connection in the session settings the conversions above assume."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET IntervalStyle = 'iso_8601'")
    conn.execute("SET extra_float_digits = 1")
    return conn


def _rows(conn: psycopg.Connection[Any], table: str, wanted: Iterable[str]) -> list[dict[str, Any]]:
    by_name = {c.name: c for c in columns(conn, table)}
    selected = [by_name[name] for name in dict.fromkeys(wanted)]
    for column in selected:
        if column.kind.startswith("unmapped:"):
            raise Unmapped(f"{table}.{column.name}: {column.kind.split(':', 1)[1]}")
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(_select_expression(conn, c) for c in selected), _table_ident(table)
    )
    out = []
    for row in conn.execute(query).fetchall():
        out.append({c.name: convert(c.kind, v) for c, v in zip(selected, row, strict=True)})
    return out


def _table_ident(table: str) -> sql.Composable:
    schema, _, name = table.rpartition(".")
    return sql.Identifier(schema or "public", name)


def _hashable(values: Sequence[Any]) -> bytes:
    return bson.encode({"v": list(values)})


def _field_columns(
    conn: psycopg.Connection[Any], table: str, spec_fields: Mapping[str, str] | None, left_out: Iterable[str]
) -> list[tuple[str, str]]:
    """(target name, column) pairs of the document's own fields, in order."""
    if spec_fields is not None:
        return list(spec_fields.items())
    skip = set(left_out)
    return [(c.name, c.name) for c in columns(conn, table) if c.name not in skip]


@dataclass
class _Level:
    """One embed's rows, grouped by the values of its `on` child columns."""

    spec: Embed
    groups: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)


def _build_level(conn: psycopg.Connection[Any], spec: Embed) -> _Level:
    key = spec.key or primary_key(conn, spec.table)
    own = _field_columns(conn, spec.table, spec.fields, [*spec.on, *spec.exclude])
    nested = [_build_level(conn, e) for e in spec.embeds]
    needed = [*spec.on, *key, *spec.order_by, *(c for _, c in own)]
    for embed in spec.embeds:
        needed += list(embed.on.values())
    level = _Level(spec)
    rows = _rows(conn, spec.table, needed)
    for row in rows:
        link = [row[c] for c in spec.on]
        if any(v is None for v in link):
            continue  # NULL equals nothing
        element = {name: row[column] for name, column in own}
        for child in nested:
            element[child.spec.name] = _attach(child, row)
        level.groups.setdefault(_hashable(link), []).append(
            {"doc": element, "sort": [row[c] for c in (*spec.order_by, *key)]}
        )
    for members in level.groups.values():
        members.sort(key=lambda m: [bson_order(v) for v in m["sort"]])
    return level


def _attach(level: _Level, parent_row: Mapping[str, Any]) -> Any:
    link = [parent_row[c] for c in level.spec.on.values()]
    members = [] if any(v is None for v in link) else level.groups.get(_hashable(link), [])
    if level.spec.many:
        return [m["doc"] for m in members]
    return members[0]["doc"] if members else None


def documents(conn: psycopg.Connection[Any], spec: Coll) -> list[dict[str, Any]]:
    """The collection's expected documents, ordered by _id as tests.support.docs orders them."""
    own = _field_columns(conn, spec.table, spec.fields, [*spec.key, *spec.exclude])
    levels = [_build_level(conn, e) for e in spec.embeds]
    needed = [*spec.key, *(c for _, c in own), *(c for e in spec.embeds for c in e.on.values())]
    out = []
    for row in _rows(conn, spec.table, needed):
        _id = row[spec.key[0]] if len(spec.key) == 1 else {k: row[k] for k in spec.key}
        doc: dict[str, Any] = {"_id": _id}
        doc.update({name: row[column] for name, column in own})
        for level in levels:
            doc[level.spec.name] = _attach(level, row)
        out.append(doc)
    return sorted(out, key=lambda d: bson.encode({"k": d["_id"]}))


def bson_order(value: Any) -> tuple[Any, ...]:
    """A sort key that orders values as MongoDB compares BSON values (numbers by value across
    int, long, double and decimal, NaN first; strings by code point; binaries by length, then
    subtype, then bytes; null lowest)."""
    if value is None:
        return (1,)
    if isinstance(value, bool):
        return (8, value)
    if isinstance(value, (int, float, Decimal128)):
        number = value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)
        if number.is_nan():
            return (2, 0, Decimal(0))
        return (2, 1, number)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, dict):
        return (4, [(k, bson_order(v)) for k, v in value.items()])
    if isinstance(value, list):
        return (5, [bson_order(v) for v in value])
    if isinstance(value, uuid.UUID):
        return (6, 16, 4, value.bytes)
    if isinstance(value, bytes):
        return (6, len(value), 0, value)
    if isinstance(value, datetime.datetime):
        return (9, value)
    raise TypeError(f"no BSON order for {type(value).__name__}")
