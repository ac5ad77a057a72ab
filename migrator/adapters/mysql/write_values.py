"""Values as reverse sync writes them into MySQL/MariaDB columns: the inverse of the type contract
(docs/architecture.md, "MySQL and MariaDB sources", "Reverse sync and echo prevention").

The mapping's inverse (mapping/inverse.py) hands each column the Python value of its canonical type;
this turns it into what PyMySQL must send for the server to store the value the snapshot read:
- bigint (BSON Int64, an int subclass PyMySQL would quote as text) -> int;
- timestamp with or without time zone (a UTC datetime) -> the naive UTC wall clock: every session
  runs under time_zone '+00:00' (connection.py), so a TIMESTAMP stores that instant;
- bit (n characters of '0'/'1') -> the integer they spell (a string would be stored as bytes);
- text[] (a SET's labels) -> the labels joined by commas ('' for none);
- json (a parsed value) -> its JSON text (MariaDB's JSON is LONGTEXT with CHECK json_valid);
- a Decimal that is a whole number for bigint unsigned -> int.
Everything else (str, bytes, Decimal, float, date) is sent as it is.
"""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

from migrator.adapters.base import ColumnInfo

_TIMESTAMPS = frozenset({"timestamp with time zone", "timestamp without time zone"})
_INTEGERS = frozenset({"smallint", "integer", "bigint", "bigint unsigned"})


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"JSON cannot hold {type(value).__name__}")


def write_value(column: ColumnInfo, value: Any) -> Any:
    """`value` (as the inverse mapping gives it for `column`) as PyMySQL must send it."""
    if value is None:
        return None
    name = column.type_name
    if name == "json":
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=_json_default)
    if column.type_kind == "array":  # a SET: MySQL has no other array
        return ",".join(str(v) for v in value)
    if name in _INTEGERS and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return int(value)
    if name in _TIMESTAMPS and isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None)
    if name == "bit" and isinstance(value, str):
        return int(value, 2) if value else 0
    return value
