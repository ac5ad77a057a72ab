"""Binlog row values as the contract's Python values: identical to what a snapshot reader hands
for the same row (docs/architecture.md, "MySQL and MariaDB sources", the table of types).

mysql-replication decodes a row event's values by the binlog's column type, which differs from
a query result: BINARY(n) arrives without its trailing zero bytes, SET as a Python set (and '' as
None), TIME as a timedelta, TIMESTAMP as a naive UTC datetime, MariaDB's JSON (a longtext) as
text (parsed as the snapshot parses it: values.py, numbers exact), a BIGINT as a plain int. Each column gets a converter chosen by its declared type, read from
information_schema (the binlog's own metadata does not say BINARY's width, nor which longtext is
JSON). A FLOAT arrives as its exact 4-byte value widened to double (1.1 -> 1.100000023841858),
which is what the snapshot reads too (CAST(f AS DOUBLE): the text protocol would print 6
significant digits, 0.142857 for 1/7, losing what the column holds).

Zero dates: mysql-replication hands None for a DATE or DATETIME no datetime can hold (its
none_sources says "out of ... range"), and a TIMESTAMP's zero value as the epoch, 1970-01-01
00:00:00 (a TIMESTAMP's range starts one second later, so nothing else reads so). Under the plan's
source.zero_dates "null" both are None, as the snapshot's readers deliver them (values.py); under
"refuse" the run stops, as there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bson.int64 import Int64

from migrator.adapters.json_values import JsonNumber, loads_numbers
from migrator.adapters.mysql.values import ZeroDates, zero_date

Convert = Callable[[Any], Any]

_INT64_MAX = (1 << 63) - 1
_LABELS = re.compile(r"'((?:[^']|'')*)'")
# mysql-replication's word for a SET with no member (it hands None for it, as for NULL).
EMPTY_SET = "empty set"
# Its words for a date no datetime can hold (a zero date), handed as None too.
OUT_OF_RANGE = frozenset({"out of date range", "out of datetime range", "out of datetime2 range"})
# A TIMESTAMP's zero value, as mysql-replication decodes it (utcfromtimestamp(0)); the type's
# least value is one second later.
_TIMESTAMP_LEAST = datetime(1970, 1, 1, 0, 0, 1)
_DATES = frozenset({"date", "datetime", "timestamp"})


@dataclass(frozen=True)
class ColumnFacts:
    """What information_schema.COLUMNS says of a column (and whether MariaDB's JSON check names it)."""

    name: str
    data_type: str  # DATA_TYPE: 'int', 'varchar', 'longtext', ...
    column_type: str  # COLUMN_TYPE: 'int(10) unsigned', "set('a','b')", ...
    octet_length: int | None = None  # CHARACTER_OCTET_LENGTH (BINARY(n): n)
    precision: int | None = None  # NUMERIC_PRECISION (BIT(n): n)
    fsp: int | None = None  # DATETIME_PRECISION
    is_json: bool = False

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()


def time_text(value: timedelta, fsp: int) -> str:
    """A TIME as the server prints it: '[-]HH:MM:SS[.f...]' with `fsp` fraction digits; hours may
    exceed 24 (TIME spans -838:59:59 to 838:59:59)."""
    micros = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"
    if fsp > 0:
        text += "." + f"{fraction:06d}"[:fsp]
    return text


def labels(column_type: str) -> list[str]:
    """The members of "set('a','b','it''s')" or "enum(...)", in definition order."""
    inside = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return [m.replace("''", "'") for m in _LABELS.findall(inside)]


def _plain_json(value: Any) -> Any:
    # MySQL 8's binary JSON arrives parsed, its keys and strings as bytes.
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {_plain_json(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        return JsonNumber(value)  # a uint64 beyond int64, as the snapshot's reader gives it
    return value


def _json(value: Any) -> Any:
    if isinstance(value, bytes | str):
        return loads_numbers(value)
    return _plain_json(value)


def _unsigned_bigint(value: int) -> Int64 | Decimal:
    return Int64(value) if value <= _INT64_MAX else Decimal(value)


def _timestamp(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: Any) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


def _bits(column: ColumnFacts) -> Convert:
    width = column.precision or 1
    return lambda value: (
        value.zfill(width)[-width:] if isinstance(value, str) else format(value, f"0{width}b")
    )


def _binary(column: ColumnFacts) -> Convert:
    width = column.octet_length or 0
    return lambda value: _bytes(value).ljust(width, b"\0")


def _members(column: ColumnFacts) -> Convert:
    order = labels(column.column_type)
    return lambda value: [label for label in order if label in value]


def binlog_time(value: timedelta) -> timedelta:
    """A TIME with a fraction as mysql-replication decodes it, corrected: the server packs a negative
    time's whole and fractional parts as one two's complement number, and the library negates the
    whole part alone and adds the fraction's complement, giving -(s + (1 - f)) for -(s + f)
    (measured on MariaDB 10.11: '-1:00:00.001021' arrived as -1:00:00.998979)."""
    micros = value // timedelta(microseconds=1)
    if micros >= 0:
        return value
    seconds, fraction = divmod(-micros, 1_000_000)
    if fraction == 0:
        return value
    return -timedelta(seconds=seconds, microseconds=1_000_000 - fraction)


def _time(column: ColumnFacts) -> Convert:
    fsp = column.fsp or 0
    if fsp == 0:
        return lambda value: time_text(value, fsp)
    return lambda value: time_text(binlog_time(value), fsp)


# Converters that depend on the column's declaration (a width, labels, a precision).
_DECLARED: dict[str, Callable[[ColumnFacts], Convert]] = {
    "bit": _bits,
    "binary": _binary,
    "set": _members,
    "time": _time,
}
_BY_KIND: dict[str, Convert] = {
    "json": _json,
    "bigint": Int64,
    "timestamp": _timestamp,
    **dict.fromkeys(("varbinary", "tinyblob", "blob", "mediumblob", "longblob"), _bytes),
    **dict.fromkeys(("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"), _text),
}


def converter(column: ColumnFacts) -> Convert | None:
    """The conversion of `column`'s binlog values (None: taken as mysql-replication decodes them)."""
    kind = column.data_type.lower()
    if column.is_json:
        return _json
    if kind == "bigint" and column.unsigned:
        return _unsigned_bigint
    if kind == "int" and column.unsigned:
        # The table's bigint (long), as BIGINT: BSON's Int64, as the snapshot and the PostgreSQL
        # source hand it (a plain int that fits 32 bits would be stored as int32).
        return Int64
    declared = _DECLARED.get(kind)
    return declared(column) if declared is not None else _BY_KIND.get(kind)


def _zero_timestamp(to: ZeroDates, table: str, name: str) -> Convert:
    def convert(value: datetime) -> Any:
        if value < _TIMESTAMP_LEAST:
            return zero_date(to, "'0000-00-00 00:00:00'", f" in {table}.{name} from the binlog")
        return _timestamp(value)

    return convert


class RowConverter:
    """A table's rows as the contract's values: one converter per column, by name. `zero_dates`:
    the plan's source.zero_dates (see the module's docstring); `table` names it in errors."""

    def __init__(
        self,
        columns: Sequence[ColumnFacts],
        zero_dates: ZeroDates = "refuse",
        table: str = "",
        read: Collection[str] | None = None,
    ) -> None:
        # `read`: the columns the mapping reads (None: all); a zero date elsewhere is never refused.
        self.columns = {c.name: c for c in columns}
        self._convert = {c.name: f for c in columns if (f := converter(c)) is not None}
        dates = [
            c.name for c in columns if c.data_type.lower() in _DATES and (read is None or c.name in read)
        ]
        to: ZeroDates = zero_dates
        for c in columns:
            if c.data_type.lower() == "timestamp":
                self._convert[c.name] = _zero_timestamp(to if c.name in dates else "null", table, c.name)
        self._sets = frozenset(c.name for c in columns if c.data_type.lower() == "set")
        self._dates = frozenset(dates)
        self._zero_dates = zero_dates
        self._table = table

    def row(self, values: Mapping[str, Any], none_sources: Mapping[str, str] | None = None) -> dict[str, Any]:
        out = dict(values)
        for name, convert in self._convert.items():
            value = out.get(name)
            if value is not None:
                out[name] = convert(value)
        if none_sources:
            if self._sets:
                for name in self._sets:
                    if out.get(name) is None and none_sources.get(name) == EMPTY_SET:
                        out[name] = []
            if self._dates and self._zero_dates == "refuse":
                for name in self._dates:
                    if out.get(name) is None and none_sources.get(name) in OUT_OF_RANGE:
                        zero_date("refuse", "'0000-00-00'", f" in {self._table}.{name} from the binlog")
        return out
