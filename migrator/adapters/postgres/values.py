"""pgoutput text values -> the same Python values the snapshot reads.

The snapshot reads binary values, cast in the server where the conversion table says so;
CDC receives PostgreSQL's text output. This module parses that text so that one row gives
the same document by either path: same loaders for native types, the same casts' text
forms (the replication session sets TimeZone, IntervalStyle and lc_monetary to match).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
from bson.int64 import Int64
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Loader, Transformer
from psycopg.pq import Format

from migrator.adapters.base import ColumnInfo, source_text_reader
from migrator.adapters.postgres.pgoutput import Parse
from migrator.adapters.postgres.reading import read_cast
from migrator.errors import SourceError

# Session settings for the replication connection: text output in the forms the snapshot's
# casts produce (ISO 8601 intervals, UTC timestamps, money without locale), every float's shortest
# exact digits, bytea in hex, in UTF-8. Each of these forms is also what a PostgreSQL server reads
# back as the same value whatever its own session's settings (money aside: lc_monetary), which
# lets a PostgreSQL target take the text as it is (TEXT_FORMAT, docs/architecture.md, "Undecoded
# change values").
REPLICATION_OPTIONS = (
    "-c TimeZone=UTC -c IntervalStyle=iso_8601 -c DateStyle=ISO -c lc_monetary=C -c extra_float_digits=3"
    " -c bytea_output=hex -c client_encoding=UTF8"
)
# The format name of those values as the change stream hands them over undecoded (SourceText).
TEXT_FORMAT = "postgresql-text"
# Built-in types whose decoded value can be a str other than the value's text: json and jsonb
# (a JSON string) and arrays of them. Object ids below FirstNormalObjectId (16384) are the
# server's own: user-defined types (enums, domains) are not judged here.
_STR_VALUED = frozenset({114, 3802, 199, 3807})
_FIRST_USER_OID = 16384

_PSYCOPG_NAMES = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "numeric": "numeric",
    "real": "float4",
    "double precision": "float8",
    "text": "text",
    "character varying": "varchar",
    "character": "bpchar",
    "name": "name",
    "boolean": "bool",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "date": "date",
    "uuid": "uuid",
    "bytea": "bytea",
    "json": "json",
    "jsonb": "jsonb",
}


def _float4(value: float) -> float:
    # The snapshot's binary float4 arrives widened to double with float4's exact binary
    # value (0.1 -> 0.10000000149011612); text gives the shortest decimal. Round-trip
    # through float4 so both paths agree.
    return float(struct.unpack("!f", struct.pack("!f", value))[0])


def _money(text: str) -> Decimal:
    # lc_monetary=C prints "$1,234.56" and "-$1,234.56".
    return Decimal(text.replace("$", "").replace(",", ""))


def _map_nested(value: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return None if value is None else fn(value)


# Types whose valid PostgreSQL values Python's datetime cannot hold (infinity, years before 1 or
# after 9999): the snapshot stops on them naming the rows (phases/snapshot.py); CDC names the column.
_DATES = frozenset({"date", "timestamp with time zone", "timestamp without time zone"})


def _named(parse: Parse, column: ColumnInfo) -> Parse:
    def named(data: Any) -> Any:
        try:
            return parse(data)
        except psycopg.DataError as exc:
            raise SourceError(
                f"column {column.name} ({column.type_name}) of a changed row holds {bytes(data).decode()!r}, which "
                f"a BSON date cannot hold: {exc}",
                hint="dates and timestamps must lie within years 1 to 9999 and be finite: the change stays in the "
                "stream and stops every resume, so roll back (`migrator rollback`) and run again after you exclude "
                "the column or fix the rows",
            ) from None

    return named


class _Int64TextLoader(Loader):
    """bigint as BSON Int64, as the snapshot loads it (see reading.Int64Loader)."""

    def load(self, data: Buffer) -> Int64:
        return Int64(int(bytes(data)))


class _Context:
    def __init__(self) -> None:
        self.adapters = AdaptersMap(psycopg.adapters)
        self.adapters.register_loader("int8", _Int64TextLoader)
        self.connection = None


def undecoded_parser(type_oid: int, parse: Parse) -> Parse:
    """What reads a value of a column handed over undecoded (docs/architecture.md, "Undecoded
    change values"): a SourceText of the column's type, or, for a built-in type whose decoded
    value is never a str other than its own text (every one but json, jsonb and arrays of them),
    the text as a plain str: nothing could take it for a decoded value, and bytes.decode is one
    call in C where a SourceText costs a Python call and a copy into the subclass (the one
    object left per value on CDC's hottest path)."""
    if 0 < type_oid < _FIRST_USER_OID and type_oid not in _STR_VALUED:
        return bytes.decode
    return source_text_reader(TEXT_FORMAT, type_oid, parse)


class ValueParser:
    """Parses one column's text values; built once per column from its ColumnInfo."""

    def __init__(self) -> None:
        self._tx = Transformer(_Context())
        self._cache: dict[tuple[str, str, str | None], Parse] = {}

    def _loader(self, psycopg_name: str) -> Parse:
        info = psycopg.adapters.types.get(psycopg_name)
        if info is None:
            raise KeyError(psycopg_name)
        loader = self._tx.get_loader(info.oid, Format.TEXT)
        return loader.load

    def _array_loader(self, psycopg_name: str) -> Parse:
        info = psycopg.adapters.types.get(psycopg_name)
        if info is None or not info.array_oid:
            raise KeyError(psycopg_name)
        loader = self._tx.get_loader(info.array_oid, Format.TEXT)
        return loader.load

    def for_column(self, column: ColumnInfo) -> Parse:
        key = (column.type_name, column.type_kind, column.element_type)
        parse = self._cache.get(key)
        if parse is None:
            parse = self._build(column)
            self._cache[key] = parse
        element = column.element_type if column.type_kind == "array" else column.type_name
        if element in _DATES:
            return _named(parse, column)
        return parse

    def _build(self, column: ColumnInfo) -> Parse:
        cast = read_cast(column)
        if column.type_kind == "array":
            element = column.element_type or ""
            if cast is None or cast == f"{element}[]":
                load = self._array_loader(_PSYCOPG_NAMES[element])
                if element == "real":
                    return lambda data: _map_nested(load(data), _float4)
                return load
            texts = self._array_loader("text")
            if cast == "numeric[]":  # money[]
                return lambda data: _map_nested(texts(data), _money)
            if cast == "bigint[]":  # oid[]
                return lambda data: _map_nested(texts(data), lambda v: Int64(int(v)))
            return texts
        if cast is None:
            if column.type_name == "bigint":
                # What _Int64TextLoader does, in one call instead of three: CDC parses every
                # value of every change, and the values it parses are bytes.
                return Int64
            load = self._loader(_PSYCOPG_NAMES[column.type_name])
            if column.type_name == "real":
                return lambda data: _float4(load(data))
            return load
        if cast == "numeric":  # money
            return lambda data: _money(bytes(data).decode())
        if cast == "bigint":  # oid
            return Int64
        return lambda data: bytes(data).decode("utf-8")
