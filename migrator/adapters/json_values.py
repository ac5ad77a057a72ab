"""JSON values exact both ways between databases (docs/architecture.md, "Tables as collections"):
a JSON number read as a Decimal (`loads_exact`), never a float, so that reverse sync writes back
the digits the target holds (a float would turn 12345678901234567890.5 into 1.2345678901234567e19),
and `json_text`, which writes such a value (json.dumps would need a float for a Decimal).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

loads_exact: Callable[[str | bytes], Any] = functools.partial(json.loads, parse_float=Decimal)


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
