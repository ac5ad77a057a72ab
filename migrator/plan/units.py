"""Durations ("2s", "500ms", "1m") and sizes ("10GB", "512MB") in plans.

One unit table per kind builds both the pattern the loader matches and the one the JSON Schema
(`migrator schema`) gives editors, so the two accept the same strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, GetJsonSchemaHandler, PlainSerializer
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _unit_pattern(units: Mapping[str, object], *, any_case: bool) -> str:
    """`^ number unit $`, unit from the table, in the regex syntax Python and JSON Schema
    (ECMA-262) share: no flags (JSON Schema has none), so any case is spelt out per letter, and
    [0-9] rather than \\d (Python's \\d takes any script's digits, ECMA-262's ASCII only)."""

    def spell(unit: str) -> str:
        return "".join(
            f"[{c.upper()}{c.lower()}]" if any_case and c.isalpha() else re.escape(c) for c in unit
        )

    # Longest first, so that an alternation tried in order never stops at a unit's prefix (m / ms).
    alternatives = "|".join(spell(unit) for unit in sorted(units, key=len, reverse=True))
    return rf"^\s*([0-9]+(?:\.[0-9]+)?)\s*({alternatives})\s*$"


DURATION_PATTERN = _unit_pattern(_SECONDS, any_case=False)
SIZE_PATTERN = _unit_pattern(_BYTES, any_case=True)
_DURATION = re.compile(DURATION_PATTERN)
_SIZE = re.compile(SIZE_PATTERN)


def parse_duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit: 500ms, 2s, 1m, 1h")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a duration: write 500ms, 2s, 1m or 1h")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("a size is a number with a unit: 512MB, 10GB")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a size: write 512MB, 10GB (B, KB, MB, GB, TB)")
    return int(float(match.group(1)) * _BYTES[match.group(2).upper()])


class _OrUnitString:
    """JSON Schema of a value the loader takes as a number or as a string with a unit: the
    number's own schema (with the field's bounds, which apply to it) or a string of the pattern.
    A string's value is not bounded by the schema; the loader checks it."""

    def __init__(self, pattern: str, example: str) -> None:
        self.pattern = pattern
        self.example = example

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        text: dict[str, Any] = {"type": "string", "pattern": self.pattern, "examples": [self.example]}
        return {"anyOf": [handler(schema), text]}


Seconds = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: f"{v}s", return_type=str),
    _OrUnitString(DURATION_PATTERN, "2s"),
]
Bytes = Annotated[int, BeforeValidator(parse_size), _OrUnitString(SIZE_PATTERN, "10GB")]
