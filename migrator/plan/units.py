"""Durations ("2s", "500ms", "1m") and sizes ("10GB", "512MB") in plans."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


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


Seconds = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(lambda v: f"{v}s", return_type=str)
]
Bytes = Annotated[int, BeforeValidator(parse_size)]
