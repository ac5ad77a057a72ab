"""When a target row and the source's rows through the mapping are the same document
(TargetAdapter.same_document, what verify calls equal: docs/architecture.md, "Tables as
collections").

Both documents hold the Python values the readers give: the source's range reader and this
target's reader (reader.py) read a column of one declared type alike (the same casts, binary
loaders and session settings). They are compared type for type, as BSON documents are: an
Int64 is not an int, a bool not an integer, a numeric keeps its scale ('1.50' is not '1.5'), a
float compares by its bits (NaN equals NaN, -0.0 is not 0.0), and a timestamp to the
microsecond. Field order is not significant; array order is.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

from migrator.adapters.postgres_target.rows import decode


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
    return (type(value).__name__, value)


def same(expected: bytes, actual: bytes) -> bool:
    """Two encoded documents (rows.encode) hold the same values; bytes first, as nearly every
    equal pair is byte for byte."""
    return expected == actual or comparable(decode(expected)) == comparable(decode(actual))
