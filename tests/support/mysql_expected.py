"""Expected MongoDB documents from a MySQL/MariaDB source's rows, read with plain SQL (PyMySQL).

Independent of `migrator/mapping` and `migrator/adapters/mysql` on purpose: the plan is stated
once as tests/support/expected.py's `Coll` and `Embed` (whose `plan_entry()` writes the plan), and
this module builds the documents docs/plan.md promises, from "Plan format v1" (the key as `_id`,
fields in table order less key, `on` and excluded columns, embeds after them, `many` arrays
ordered by `order_by` then the element key) and "Types from MySQL/MariaDB" (each column by its
declared type in information_schema.COLUMNS: tinyint .. int and year as int32, int unsigned and
bigint as int64, bigint unsigned above 2^63-1 as Decimal128, decimal as Decimal128 with its
scale, bit(n) as n characters of 0 and 1, SET as its members in definition order, date as that
day at 00:00 UTC, datetime and timestamp (read in a +00:00 session) truncated to milliseconds,
time as the server prints it, MariaDB's JSON (longtext with `json_valid`) parsed in key order with
numbers by the table's rule). A type the table refuses (spatial) raises `Unmapped`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import bson
import pymysql
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from tests.support.expected import Coll, Embed, Unmapped, bson_order
from tests.support.mariadb import connect

UTC = datetime.UTC
INT32 = range(-(2**31), 2**31)
INT64 = range(-(2**63), 2**63)
_SMALL_INTS = {"tinyint", "smallint", "mediumint", "year"}
_STRINGS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"}
_BYTES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL = {
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection",
}  # fmt: skip


@dataclass(frozen=True)
class MyColumn:
    name: str
    data_type: str  # information_schema.COLUMNS.DATA_TYPE, or "json" for MariaDB's checked longtext
    column_type: str  # COLUMN_TYPE: "int(10) unsigned", "bit(5)", ...

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type


def columns(conn: pymysql.connections.Connection[Any], table: str) -> list[MyColumn]:
    schema, name = table.split(".", 1)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, k.CONSTRAINT_NAME IS NOT NULL"
            " FROM information_schema.COLUMNS c LEFT JOIN information_schema.CHECK_CONSTRAINTS k"
            " ON k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME"
            " AND k.CHECK_CLAUSE = CONCAT('json_valid(`', c.COLUMN_NAME, '`)')"
            " WHERE c.TABLE_SCHEMA = %s AND c.TABLE_NAME = %s ORDER BY c.ORDINAL_POSITION",
            [schema, name],
        )
        return [
            MyColumn(n, "json" if j else str(t).lower(), str(ct).lower()) for n, t, ct, j in cur.fetchall()
        ]


def primary_key(conn: pymysql.connections.Connection[Any], table: str) -> tuple[str, ...]:
    schema, name = table.split(".", 1)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            [schema, name],
        )
        return tuple(r[0] for r in cur.fetchall())


def _expression(column: MyColumn) -> str:
    name = f"`{column.name}`"
    if column.data_type in {"time", "set", "json"}:
        return f"CAST({name} AS CHAR)"  # as the server prints it
    if column.data_type == "bit":
        return f"CAST({name} AS UNSIGNED)"
    if column.data_type == "float":
        return f"CAST({name} AS DOUBLE)"  # the 4-byte value widened, not the 6 digits printed
    return name


def _integer(column: MyColumn, value: int) -> Any:
    if column.data_type in _SMALL_INTS or (column.data_type == "int" and not column.unsigned):
        return value
    if value in INT64:
        return Int64(value)
    return Decimal128(Decimal(value))


def _json_number(value: Any) -> Any:
    if isinstance(value, int):
        return value if value in INT32 else Int64(value) if value in INT64 else Decimal128(Decimal(value))
    double = float(value)
    return double if Decimal(repr(double)) == value else Decimal128(value)


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return _json_number(value)


def _millis(value: datetime.datetime) -> datetime.datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000, tzinfo=UTC)


def convert(column: MyColumn, value: Any) -> Any:
    kind = column.data_type
    if value is None:
        return None
    if kind in _SMALL_INTS or kind in {"int", "bigint"}:
        return _integer(column, int(value))
    if kind == "decimal":
        return Decimal128(value)
    if kind in {"double", "float"}:
        return float(value)
    if kind == "bit":
        width = int(column.column_type.split("(")[1].rstrip(")"))
        return format(int(value), f"0{width}b")
    if kind in _STRINGS or kind == "time":
        return value
    if kind in _BYTES:
        return bytes(value)
    if kind == "set":
        return value.split(",") if value else []
    if kind == "date":
        return datetime.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if kind in {"datetime", "timestamp"}:
        return _millis(value)
    if kind == "json":
        return _json(json.loads(value, parse_float=Decimal))
    raise Unmapped(f"{column.name}: {kind}")


def _rows(
    conn: pymysql.connections.Connection[Any], table: str, wanted: Iterable[str]
) -> list[dict[str, Any]]:
    by_name = {c.name: c for c in columns(conn, table)}
    selected = [by_name[n] for n in dict.fromkeys(wanted)]
    for column in selected:
        if column.data_type in _SPATIAL:
            raise Unmapped(f"{table}.{column.name}: {column.data_type}")
    schema, name = table.split(".", 1)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(map(_expression, selected))} FROM `{schema}`.`{name}`")
        return [{c.name: convert(c, v) for c, v in zip(selected, row, strict=True)} for row in cur.fetchall()]


def _own_fields(
    conn: pymysql.connections.Connection[Any],
    table: str,
    spec_fields: Mapping[str, str] | None,
    left_out: Iterable[str],
) -> list[tuple[str, str]]:
    if spec_fields is not None:
        return list(spec_fields.items())
    drop = set(left_out)
    return [(c.name, c.name) for c in columns(conn, table) if c.name not in drop]


def _link(values: list[Any]) -> bytes | None:
    return None if any(v is None for v in values) else bson.encode({"v": values})


class _Embedded:
    """One embed's elements, grouped by their `on` child columns' values."""

    def __init__(self, conn: pymysql.connections.Connection[Any], spec: Embed) -> None:
        self.spec = spec
        key = spec.key or primary_key(conn, spec.table)
        own = _own_fields(conn, spec.table, spec.fields, [*spec.on, *spec.exclude])
        self.children = [_Embedded(conn, e) for e in spec.embeds]
        parents = [c for e in spec.embeds for c in e.on.values()]
        self.groups: dict[bytes, list[tuple[list[Any], dict[str, Any]]]] = {}
        for row in _rows(conn, spec.table, [*spec.on, *key, *spec.order_by, *(c for _, c in own), *parents]):
            link = _link([row[c] for c in spec.on])
            if link is None:
                continue  # NULL equals nothing
            element = {name: row[c] for name, c in own}
            element.update({child.spec.name: child.of(row) for child in self.children})
            order = [bson_order(row[c]) for c in (*spec.order_by, *key)]
            self.groups.setdefault(link, []).append((order, element))
        for members in self.groups.values():
            members.sort(key=lambda m: m[0])

    def of(self, parent: Mapping[str, Any]) -> Any:
        link = _link([parent[c] for c in self.spec.on.values()])
        members = [e for _, e in self.groups.get(link, [])] if link is not None else []
        if self.spec.many:
            return members
        return members[0] if members else None


def documents(conn: pymysql.connections.Connection[Any], spec: Coll) -> list[dict[str, Any]]:
    """The collection's expected documents, ordered by _id."""
    own = _own_fields(conn, spec.table, spec.fields, [*spec.key, *spec.exclude])
    embedded = [_Embedded(conn, e) for e in spec.embeds]
    wanted = [*spec.key, *(c for _, c in own), *(c for e in spec.embeds for c in e.on.values())]
    out = []
    for row in _rows(conn, spec.table, wanted):
        doc: dict[str, Any] = {
            "_id": row[spec.key[0]] if len(spec.key) == 1 else {k: row[k] for k in spec.key}
        }
        doc.update({name: row[c] for name, c in own})
        doc.update({e.spec.name: e.of(row) for e in embedded})
        out.append(doc)
    return sorted(out, key=lambda d: bson.encode({"k": d["_id"]}))


def reader(url: str) -> pymysql.connections.Connection[Any]:
    """A connection reading TIMESTAMP as the UTC instant it stores (docs/plan.md)."""
    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
    return conn
