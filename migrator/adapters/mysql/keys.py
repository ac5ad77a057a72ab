"""Key values as text, and how key types order (SourceAdapter.key_text, key_order).

The text is what a MySQL comparison reads back as the value when bound as a string parameter
(`col = %s`): digits for integers and decimals, 'YYYY-MM-DD[ HH:MM:SS.ffffff]' for dates and
datetimes (a TIMESTAMP in UTC: connections run with time_zone '+00:00', connection.py), the
string itself for text, and lower-case hex for bytes (a reader compares binary keys with
UNHEX(%s)). `value` is what the source delivered or the BSON value a document holds for it.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128

from migrator.adapters.base import KeyOrder

# Integers order by value on every target (MongoDB compares int32, int64 and Decimal128 by value,
# so a bigint unsigned above 2^63-1, held as Decimal128, still orders among them). Text orders by
# collation, which no target shares: None.
KEY_ORDERS: dict[str, KeyOrder] = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "bigint unsigned": "integer",
}


def key_order(type_name: str) -> KeyOrder | None:
    return KEY_ORDERS.get(type_name)


def key_text(value: Any, type_name: str | None = None) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if type_name == "date":
            return (value.astimezone(datetime.UTC) if value.tzinfo else value).date().isoformat()
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):  # a SET: MySQL's text form joins the members with commas
        return ",".join(str(v) for v in value)
    return str(value)
