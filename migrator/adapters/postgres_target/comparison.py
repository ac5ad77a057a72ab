"""When a target row and the source's rows through the mapping are the same document
(TargetAdapter.same_document, what verify calls equal: docs/architecture.md, "Tables as
collections").

Both documents hold the Python values the readers give: the source's range reader and this
target's reader (reader.py). They are compared type for type, as BSON documents are: an Int64 is
not a float, a bool not an integer, a numeric keeps its scale ('1.50' is not '1.5'), a float
compares by its bits (NaN equals NaN, -0.0 is not 0.0), and a timestamp to the microsecond.
Field order is not significant; array order is.

A PostgreSQL source reads a column of one declared type as this target's reader does, so its
values compare as they are. A MySQL/MariaDB source's reader gives some values in another form
than the PostgreSQL column the type table (column_types.py) made for them holds, and there the
pair is compared through one normal form, each rule bound to a type table row:

- bigint unsigned -> numeric(20,0): the source gives an Int64 (a Decimal past 2^63-1), the target
  a Decimal of scale 0: an integer and a Decimal of exponent 0 are the same number;
- time -> interval: the source gives MySQL's text ('-838:59:59.000000'), the target ISO 8601
  ('PT-838H-59M-59S'): both are parsed to a duration, only when one side is each form;
- char(n) -> character(n): MySQL reads CHAR without its padding, PostgreSQL with it: the target's
  value equals the source's padded with blanks (MySQL cannot store a CHAR's trailing blanks).
  Only a value of a character(n) column: the reader gives those as `Padded`; a varchar or text
  value with blanks added is a different value.
- json -> jsonb: a JSON number that no int64 holds, or with a fraction or an exponent, is read on
  both sides as a JsonNumber (json_values.py) and compared as a number, as jsonb compares them
  (jsonb keeps 1.0 but not -0.0's sign, and prints 1e400 with its 401 digits); against a float
  (a PostgreSQL source reads JSON numbers as doubles) at a double's precision.
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from typing import Any

from bson.int64 import Int64

from migrator.adapters.json_values import JsonNumber, JsonText, same_number
from migrator.adapters.postgres_target.rows import decode

# MySQL's TIME text (values.py of the MySQL adapter reads TIME as text).
_CLOCK = re.compile(r"^(-?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$")
# ISO 8601 as intervalstyle iso_8601 prints an interval without years or months: a TIME's interval
# holds hours, or days and hours where the application wrote one on the target after cutover
# ('1 day 02:00' is the TIME 26:00:00), each part signed on its own.
_ISO = re.compile(r"^P(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+)(?:\.(\d{1,6}))?S)?)?$")


class Padded(str):
    """A value of a target character(n) column (reader.py): the one text whose trailing blanks
    may be the column's padding rather than the value's. Otherwise the text it holds."""

    __slots__ = ()


def comparable(value: Any) -> Any:
    """`value` as a structure that equals another's exactly when the values are the same."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((str(k), comparable(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("array", tuple(comparable(v) for v in value))
    if isinstance(value, float):
        return ("float", struct.pack("!d", value))
    if isinstance(value, decimal.Decimal):
        return ("numeric", str(value))
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return ("timestamptz", value.astimezone(datetime.UTC).isoformat())
    if isinstance(value, Padded):
        return ("str", str(value))
    return (type(value).__name__, value)


def _micros(digits: str | None) -> int:
    return int((digits or "0").ljust(6, "0"))


def _clock(text: str) -> datetime.timedelta | None:
    found = _CLOCK.match(text)
    if found is None:
        return None
    sign, h, m, s, frac = found.groups()
    span = datetime.timedelta(hours=int(h), minutes=int(m), seconds=int(s), microseconds=_micros(frac))
    return -span if sign else span


def _iso(text: str) -> datetime.timedelta | None:
    found = _ISO.match(text)
    if found is None or text in ("P", "PT"):
        return None
    d, h, m, s, frac = found.groups()
    seconds = int(s or 0)
    micros = _micros(frac)
    if (s or "").startswith("-"):
        micros = -micros
    return datetime.timedelta(
        days=int(d or 0), hours=int(h or 0), minutes=int(m or 0), seconds=seconds, microseconds=micros
    )


def _integer(value: Any) -> int | None:
    if isinstance(value, Int64) or (isinstance(value, int) and not isinstance(value, bool)):
        return int(value)
    if isinstance(value, decimal.Decimal) and value.is_finite() and value.as_tuple().exponent == 0:
        return int(value)
    return None


def _same_across(expected: Any, actual: Any) -> bool:
    """The normal form of the module's docstring, for a pair that differs type for type."""
    if isinstance(expected, str) and isinstance(actual, str):
        if (
            isinstance(actual, Padded)
            and actual.startswith(expected)
            and actual[len(expected) :].strip(" ") == ""
            and not expected.endswith(" ")
        ):
            return True
        duration = _clock(expected)
        return duration is not None and duration == _iso(actual)
    number = _integer(expected)
    return number is not None and isinstance(actual, decimal.Decimal) and number == _integer(actual)


def _same_json(expected: Any, actual: Any) -> bool:
    """A json/jsonb value read as its text (JsonText) on one side or both: two texts compare as
    text (the source gives one only where the target's column is of its very type: a json value
    is its text, a jsonb value's text output is canonical, numbers with their scale); against a
    parsed value (a MySQL/MariaDB source, a column of another type) the text is parsed and
    compared as before, but for SQL NULL against the target's JSON null."""
    if isinstance(expected, JsonText):
        # SQL NULL (None) on the target is not the source's JSON null ('null').
        return isinstance(actual, JsonText) and str(expected) == str(actual)
    # A JsonText is never SQL NULL, and every source's None is SQL NULL on the target (a JSON null
    # a MySQL/MariaDB or parsing source reads arrives as NULL: the type table).
    return expected is not None and same_value(expected, actual.value())


def same_value(expected: Any, actual: Any) -> bool:
    """`expected` (the source's) and `actual` (this target's) are the same value."""
    if isinstance(expected, JsonText) or isinstance(actual, JsonText):
        return _same_json(expected, actual)
    if isinstance(expected, JsonNumber) or isinstance(actual, JsonNumber):
        return same_number(expected, actual)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same_value(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return len(expected) == len(actual) and all(
            same_value(e, a) for e, a in zip(expected, actual, strict=True)
        )
    return comparable(expected) == comparable(actual) or _same_across(expected, actual)


def same(expected: bytes, actual: bytes) -> bool:
    """Two encoded documents (rows.encode) hold the same values; bytes first, as nearly every
    equal pair is byte for byte."""
    return expected == actual or same_value(decode(expected), decode(actual))
