"""JSON values exact both ways between databases (docs/architecture.md, "Tables as collections"):
a JSON number read as a Decimal (`loads_exact`), never a float, so that reverse sync writes back
the digits the target holds (a float would turn 12345678901234567890.5 into 1.2345678901234567e19),
and `json_text`, which writes such a value (json.dumps would need a float for a Decimal).

A MySQL/MariaDB source reads its JSON with `loads_numbers` (docs/architecture.md, "MySQL and
MariaDB sources"): a number with a fraction or an exponent, or an integer beyond int64, becomes a
`JsonNumber`, a Decimal with the number's own digits, so that no number is rounded on its way
(0.1000000000000000055511151231257827 is not the double 0.1, 1e400 no double at all, and
12345678901234567890123 no BSON integer). A PostgreSQL target writes its digits into jsonb; a
MongoDB target stores it as a double where the double prints back as the same number, else as a
Decimal128, or refuses it (adapters/documents.py). `same_number` compares JSON numbers as numbers,
as jsonb does: 1.0 and 1, -0.0 and 0, 1e400 and its 401 digits are one number.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

loads_exact: Callable[[str | bytes], Any] = functools.partial(json.loads, parse_float=Decimal)

_INT64 = 2**63


class JsonText(str):
    """A json or jsonb value as its PostgreSQL text output (docs/architecture.md, "Verify"): what
    verify on a PostgreSQL target reads where the target column is of the source column's very
    type, so that a JSON null is not SQL NULL, a json value keeps its text (key order, digits) and
    a jsonb number its scale ('1.10' is not '1.1'). `value()` parses it as a JsonNumber reader does."""

    __slots__ = ()

    def value(self) -> Any:
        return loads_numbers(str(self))


class JsonTexts(list[Any]):
    """An array of json or jsonb values (`json[]`, `jsonb[]`) as its elements' JsonText (None for
    a NULL element), a further dimension as a nested JsonTexts: a list that is a dimension of the
    array, never a JSON array (which an element's text holds)."""

    __slots__ = ()


class JsonNumber(Decimal):
    """A JSON number that a Python int within int64 does not hold: its own digits."""

    __slots__ = ()


def _integer(text: str) -> int | JsonNumber:
    value = int(text)
    return value if -_INT64 <= value < _INT64 else JsonNumber(text)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


loads_numbers: Callable[[str | bytes], Any] = functools.partial(
    json.loads, parse_float=JsonNumber, parse_int=_integer, parse_constant=_no_constant
)


def same_number(expected: Any, actual: Any) -> bool:
    """Two JSON values, one of them a JsonNumber, are the same number. A float (a source that
    reads JSON numbers as doubles: a PostgreSQL source) is compared at a double's precision."""
    values = (expected, actual)
    if any(isinstance(v, bool) or not isinstance(v, int | float | Decimal) for v in values):
        return False
    if any(isinstance(v, float) for v in values):
        return float(expected) == float(actual)
    return bool(Decimal(expected) == Decimal(actual))


def json_text(value: Any, *, item: str = ",", key: str = ":") -> str:
    """`value` (dicts, lists, str, int, Decimal, float, bool, None) as JSON text; a Decimal with
    its own digits. `item` and `key` are the separators."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"JSON cannot hold {value}")
        return str(value)
    if isinstance(value, dict):
        parts = (
            f"{json.dumps(str(k), ensure_ascii=False)}{key}{json_text(v, item=item, key=key)}"
            for k, v in value.items()
        )
        return "{" + item.join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + item.join(json_text(v, item=item, key=key) for v in value) + "]"
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"JSON cannot hold {type(value).__name__}")
