"""Values as reverse sync writes them into MySQL/MariaDB columns: the inverse of the type contract
(docs/architecture.md, "MySQL and MariaDB sources", "Reverse sync and echo prevention").

The mapping's inverse (mapping/inverse.py) hands each column the Python value of its canonical type;
this turns it into what PyMySQL must send for the server to store the value the snapshot read:
- bigint (BSON Int64, an int subclass PyMySQL would quote as text) -> int;
- timestamp with or without time zone (a UTC datetime) -> the naive UTC wall clock: every session
  runs under time_zone '+00:00' (connection.py), so a TIMESTAMP stores that instant;
- bit (n characters of '0'/'1') -> the integer they spell (a string would be stored as bytes);
- text[] (a SET's labels) -> the labels joined by commas ('' for none);
- json (a parsed value; a PostgreSQL target's numbers as Decimal, json_values.py) -> its JSON text,
  a number with its own digits (MariaDB's JSON is LONGTEXT with CHECK json_valid);
- a Decimal that is a whole number for bigint unsigned -> int;
- time (MySQL's TIME, a duration) given as a timedelta or as the ISO 8601 text of a PostgreSQL
  interval (a PostgreSQL target's column, read with intervalstyle iso_8601) -> MySQL's
  '[-]H:MM:SS.ffffff'; a duration with months or years has no fixed length and is refused.
Everything else (str, bytes, Decimal, float, date) is sent as it is.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any

from migrator.adapters.base import ColumnInfo
from migrator.adapters.json_values import json_text
from migrator.errors import TerminalError

_TIMESTAMPS = frozenset({"timestamp with time zone", "timestamp without time zone"})
_INTEGERS = frozenset({"smallint", "integer", "bigint", "bigint unsigned"})
# PostgreSQL's interval output in intervalstyle iso_8601: each part signed on its own.
_ISO_DURATION = re.compile(
    r"^(-)?P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$"
)
_MICROS = {3: 3_600_000_000, 4: 60_000_000}


def _duration_micros(text: str) -> int | None:
    """Microseconds of an ISO 8601 duration as PostgreSQL prints an interval; None if `text` is
    not one (MySQL's own 'HH:MM:SS' text, which is sent as it is)."""
    found = _ISO_DURATION.match(text)
    if found is None:
        return None
    negative, years, months, weeks, days, hours, minutes, seconds = found.groups()
    if years or months:
        raise TerminalError(
            f"the interval {text} has months or years: a MySQL TIME holds a fixed duration only",
            hint="write the duration in days, hours, minutes and seconds on the target",
        )
    micros = (int(weeks or 0) * 7 + int(days or 0)) * 86_400_000_000
    micros += int(hours or 0) * _MICROS[3] + int(minutes or 0) * _MICROS[4]
    micros += round(Decimal(seconds or 0) * 1_000_000)
    return -micros if negative else micros


def _time_text(micros: int) -> str:
    """MySQL's TIME literal for a duration: '[-]H:MM:SS.ffffff' (hours beyond 24 as they are)."""
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}.{fraction:06}"


def _time_value(value: Any) -> Any:
    if isinstance(value, datetime.timedelta):
        return _time_text(value // datetime.timedelta(microseconds=1))
    if isinstance(value, str):
        micros = _duration_micros(value)
        return value if micros is None else _time_text(micros)
    return value


def write_value(column: ColumnInfo, value: Any) -> Any:
    """`value` (as the inverse mapping gives it for `column`) as PyMySQL must send it."""
    if value is None:
        return None
    name = column.type_name
    if name == "json":
        return json_text(value, item=", ", key=": ")
    if column.type_kind == "array":  # a SET: MySQL has no other array
        return ",".join(str(v) for v in value)
    if name in _INTEGERS and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return int(value)
    if name in _TIMESTAMPS and isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None)
    if name == "time without time zone":
        return _time_value(value)
    if name == "bit" and isinstance(value, str):
        return int(value, 2) if value else 0
    return value
