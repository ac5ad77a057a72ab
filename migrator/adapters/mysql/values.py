"""PyMySQL's results -> the Python values of the conversion table (docs/architecture.md, "MySQL
and MariaDB sources"): the snapshot's readers and the binlog's change events must deliver the
identical value for one row.

Two steps. In SQL, what the text protocol would print lossily is read in a form that keeps it:
FLOAT as DOUBLE (the protocol prints a FLOAT with 6 significant digits; the binlog carries its
exact 4-byte value, which widening keeps), TIME as its text (PyMySQL would make a timedelta of
it), a SET as its text. In Python, per column: bigint as BSON's Int64 (the table says long, and
a small int would otherwise be stored as int32), bigint unsigned beyond int64 as Decimal,
TIMESTAMP as aware UTC (every connection sets time_zone '+00:00'), BIT as '0'/'1' text of its
width, a SET as the list of its members, JSON parsed keeping key order, its numbers exact
(json_values.loads_numbers: a fraction, an exponent or an integer beyond int64 as a JsonNumber,
never a float that would round it).

Zero dates ('0000-00-00', or a zero month or day) in date, datetime and timestamp columns: PyMySQL
hands them as the server's text. The plan's source.zero_dates decides (docs/architecture.md, "Types
chosen by the plan"): "null" delivers None, as the binlog's converters do; "refuse" (preflight fails
on the ones a table holds) stops the run at one written since, rather than store text in a date field.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal

import pymysql.converters
from bson.int64 import Int64
from pymysql.constants import FIELD_TYPE

from migrator.adapters.base import ColumnInfo
from migrator.adapters.json_values import loads_numbers
from migrator.errors import TerminalError

Convert = Callable[[Any], Any]
ZeroDates = Literal["refuse", "null"]
DATE_TYPES = frozenset({"date", "timestamp without time zone", "timestamp with time zone"})
_INT64_MAX = 2**63 - 1

_READ_AS = {"real": "CAST({} AS DOUBLE)", "time without time zone": "CAST({} AS CHAR)"}


def _datetime(text: Any) -> Any:
    """A DATETIME or TIMESTAMP as the server prints it ('YYYY-MM-DD hh:mm:ss[.ffffff]'), parsed in
    C: PyMySQL's own parser (a regular expression, then int() per field) was the largest cost of
    reading a row of the snapshot benchmark's table. What fromisoformat refuses (a zero date, a
    day the calendar has not) goes to PyMySQL's parser, which gives what it always gave."""
    try:
        return datetime.datetime.fromisoformat(text)
    except (ValueError, TypeError):
        return pymysql.converters.convert_datetime(text)


def _date(text: Any) -> Any:
    """A DATE ('YYYY-MM-DD'), as `_datetime`."""
    try:
        return datetime.date.fromisoformat(text)
    except (ValueError, TypeError):
        return pymysql.converters.convert_date(text)


# PyMySQL's conversions with the faster parsers of date and time text: the `conv` of the readers'
# connections. The values are the ones PyMySQL's own parsers give.
CONVERSIONS: dict[Any, Any] = {
    **pymysql.converters.conversions,
    FIELD_TYPE.DATETIME: _datetime,
    FIELD_TYPE.TIMESTAMP: _datetime,
    FIELD_TYPE.DATE: _date,
}


def select_expression(ref: str, column: ColumnInfo) -> str:
    """`ref` (SQL naming a value of `column`'s type) as the readers select it."""
    if column.type_kind == "array":  # a SET: its text, members in definition order
        return f"CAST({ref} AS CHAR)"
    form = _READ_AS.get(column.type_name)
    return ref if form is None else form.format(ref)


def _int64(value: Any) -> Any:
    return Int64(value)


def _unsigned64(value: Any) -> Any:
    return Int64(value) if value <= _INT64_MAX else Decimal(value)


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=datetime.UTC) if isinstance(value, datetime.datetime) else value


def _json(value: Any) -> Any:
    return loads_numbers(value.decode("utf-8") if isinstance(value, bytes | bytearray) else value)


def _members(value: Any) -> list[str]:
    text = value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)
    return text.split(",") if text else []


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def bits_text(value: bytes, width: int) -> str:
    """A BIT(width) value as its '0'/'1' text, `width` characters."""
    return format(int.from_bytes(value, "big"), f"0{width}b")


_BY_TYPE: dict[str, Convert] = {
    "bigint": _int64,
    "bigint unsigned": _unsigned64,
    "timestamp with time zone": _utc,
    "json": _json,
    "time without time zone": _text,
}


class ZeroDateRefused(TerminalError):
    """A zero date reached a reader or the binlog while the plan refuses them."""

    def __init__(self, shown: str, where: str = "") -> None:
        super().__init__(
            f"a zero date ({shown}) was read{where}: no date type outside MySQL can hold it",
            hint='map zero dates to null with source: {..., zero_dates: "null"} in the plan, or set them to '
            "NULL at the source (`migrator plan` names the columns and gives the UPDATE)",
        )


def zero_date(to: ZeroDates, shown: str, where: str = "") -> None:
    """What a zero date becomes: None, or (refused) the run stops."""
    if to == "refuse":
        raise ZeroDateRefused(shown, where)


def _dates(convert: Convert | None, to: ZeroDates) -> Convert:
    def date_value(value: Any) -> Any:
        if isinstance(value, str | bytes):  # PyMySQL's text for a date no datetime can hold
            return zero_date(to, repr(_text(value)))
        return value if convert is None else convert(value)

    return date_value


def converter(
    type_name: str, type_kind: str = "base", width: int = 0, zero_dates: ZeroDates = "refuse"
) -> Convert | None:
    """How a selected value of this type becomes the table's value (None: as PyMySQL gives it).
    `width`: a BIT column's width in bits (the result's column length); `zero_dates`: the plan's
    source.zero_dates (see the module's docstring)."""
    if type_kind == "array":
        return _members
    if type_name == "bit":
        return lambda value: bits_text(value, width)
    if type_name in DATE_TYPES:
        return _dates(_BY_TYPE.get(type_name), zero_dates)
    return _BY_TYPE.get(type_name)


def row_converter(
    converters: Sequence[Convert | None],
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """One row's conversion (None where every value is delivered as it is); NULL stays None."""
    work = [(i, c) for i, c in enumerate(converters) if c is not None]
    if not work:
        return None

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i, convert_one in work:
            if values[i] is not None:
                values[i] = convert_one(values[i])
        return tuple(values)

    return convert
