"""A table of the types every source adapter maps (the conformance suite's "every type, or
nearly"): columns in portable DDL (a type whose spelling differs is named in braces, filled in by
the source's `types`, tests/support/sources.py), rows of edge values as Python parameters, and the
values the target must hold, converted from what the source's own driver reads back.

The conversion is docs/plan.md's ("Type conversion", "Types from MySQL/MariaDB"): where the two
sources agree it is tests/support/expected.py's `convert`; where the drivers hand over the same
SQL value differently (a MySQL TIMESTAMP read in a UTC session is a naive datetime, a MariaDB JSON
is text, a TIME is a timedelta, BOOLEAN is TINYINT(1) and so an integer) this module says so.
Nothing here calls migrator's mapping.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tests.support.expected import convert

UTC = datetime.UTC

# (column, portable DDL type, conversion kind)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("c_smallint", "smallint", "int32"),
    ("c_integer", "integer", "int32"),
    ("c_bigint", "bigint", "int64"),
    ("c_decimal", "decimal(12,3)", "decimal"),
    ("c_real", "{real}", "float4"),
    ("c_double", "double precision", "double"),
    ("c_flag", "boolean", "flag"),
    ("c_varchar", "varchar(40)", "text"),
    ("c_char", "char(5)", "text"),
    ("c_text", "text", "text"),
    ("c_date", "date", "date"),
    ("c_ts", "{timestamp}", "timestamp"),
    ("c_tstz", "{timestamptz}", "timestamptz"),
    ("c_time", "{time}", "time"),
    ("c_bytes", "{bytes}", "bytea"),
    ("c_json", "{json}", "json"),
)
NAMES = tuple(name for name, _, _ in COLUMNS)

# Rows of edge values (without their keys), in COLUMNS order. Each fits both sources' ranges
# (a MySQL TIMESTAMP lies in 1970-2038, a DATETIME from 1000 on); floats are exact in 4 bytes.
ROWS: tuple[tuple[Any, ...], ...] = (
    (
        32767,
        -2147483648,
        9223372036854775807,
        Decimal("-123456789.125"),
        1.5,
        1.5e300,
        True,
        "héllo wörld ✓",
        "ab",
        "a longer text ✓ " * 20,
        datetime.date(2024, 2, 29),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 987654),
        datetime.datetime(2024, 2, 29, 23, 59, 59, 123456),
        datetime.time(13, 14, 15),
        b"\x00\xff\x10",
        '{"b": 1, "a": [1, 2.5, {"z": null}], "big": 9007199254740993, "s": "\\u2713"}',
    ),
    (
        -32768,
        0,
        5,  # small, yet a bigint: a long
        Decimal("0.500"),  # the scale is kept
        -0.25,
        0.1,
        False,
        "",
        "",
        "",
        datetime.date(1970, 1, 2),
        datetime.datetime(1900, 1, 1),
        datetime.datetime(1970, 1, 1, 0, 0, 1, 1000),
        datetime.time(0, 0, 0),
        b"",
        "[]",
    ),
    (None,) * len(COLUMNS),  # NULL in every column: the field is there, null
)


def table_ddl(types: Mapping[str, str], name: str, parent: str | None = None) -> str:
    """CREATE TABLE `name`: an integer key, a link to `parent` (`<parent>_id`), the typed columns."""
    link = f", {parent}_id integer NOT NULL REFERENCES {parent} (id)" if parent else ""
    columns = ", ".join(f"{column} {kind.format(**types)}" for column, kind, _ in COLUMNS)
    return f"CREATE TABLE {name} (id integer PRIMARY KEY{link}, {columns})"


def select(table: str, *leading: str) -> str:
    """The query that reads `table`'s typed columns after `leading`, in key order."""
    return f"SELECT {', '.join((*leading, *NAMES))} FROM {table} ORDER BY id"


def value(kind: str, read: Any) -> Any:
    """The target's value of a column of `kind`, from the source driver's `read`."""
    if read is None:
        return None
    if kind == "flag":
        # PostgreSQL's boolean is a bool; MySQL's BOOLEAN is TINYINT(1), an integer (docs/plan.md).
        return bool(read) if isinstance(read, bool) else int(read)
    if kind == "timestamptz" and isinstance(read, datetime.datetime) and read.tzinfo is None:
        read = read.replace(tzinfo=UTC)  # MySQL's TIMESTAMP, read in a UTC session
    if kind == "json" and isinstance(read, str):
        read = json.loads(read)  # MariaDB's JSON is text; psycopg parses json itself
    if kind == "time":
        return _time_text(read)
    return convert(kind, read)


def _time_text(read: datetime.time | datetime.timedelta) -> str:
    """HH:MM:SS as the database prints a time of whole seconds (psycopg: a time; PyMySQL: a
    timedelta, since MySQL's TIME is a duration)."""
    if isinstance(read, datetime.time):
        return read.isoformat()
    seconds = int(read.total_seconds())
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The typed columns of a row read back, as the target holds them, in column order."""
    return {name: value(kind, record[name]) for name, _, kind in COLUMNS}


def row(key: int, values: Sequence[Any], *links: int) -> tuple[Any, ...]:
    """INSERT parameters: the key, the links, the typed values."""
    return (key, *links, *values)
