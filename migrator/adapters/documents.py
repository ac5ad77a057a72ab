"""The documents the mapping builds, as bytes: Python values -> BSON, as the conversion table
(migrator/mapping/types.py) says. One codec for the target's writes and reads (snapshot, CDC,
verify) and the mapping's comparison (migrator/mapping/compare.py), which must encode an _id or a
value exactly as the target stores it. Like adapters/rows.py, it names no database: adapters
need nothing from the mapping layer, and the mapping no concrete adapter (docs/architecture.md,
"Layers").

The source adapter delivers values already in the form the table promises (labels,
ISO text, Decimal, datetime); the BSON encoder does the rest in C, with Python callbacks
only for the two types BSON has no direct form for (Decimal, date).
"""

from __future__ import annotations

import datetime
import decimal
import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, TypeEncoder, TypeRegistry
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument

from migrator.adapters.json_values import JsonNumber


class _DecimalEncoder(TypeEncoder):
    python_type = decimal.Decimal

    def transform_python(self, value: Any) -> Any:
        # Decimal128 keeps 34 significant digits; beyond that it would round, so refuse
        # (preflight warns before a run gets here). Trailing zeros are not significant:
        # 1e300 or 1.5000...0 (numeric keeps the scale it was given) fit exactly, only with
        # fewer zeros, as preflight's own count says.
        if value.is_finite():
            significant = "".join(map(str, value.as_tuple().digits)).rstrip("0")
            if len(significant) > 34:
                raise InvalidDocument(
                    f"numeric value with {len(significant)} significant digits exceeds Decimal128"
                )
        return Decimal128(value)


class _JsonNumberEncoder(TypeEncoder):
    """A JSON number no int64 holds, or with a fraction or an exponent (json_values.JsonNumber):
    a double where the double prints back as the same number (1.5, -0.0, 1.0), else a Decimal128
    (0.1000000000000000055511151231257827, 1e400, 12345678901234567890123); beyond Decimal128
    (35 significant digits or more, an exponent past 6144) refused as a numeric is."""

    python_type = JsonNumber

    def transform_python(self, value: Any) -> Any:
        double = float(value)
        if math.isfinite(double) and decimal.Decimal(repr(double)) == value:
            return double
        return _DecimalEncoder().transform_python(decimal.Decimal(value))


class _DateEncoder(TypeEncoder):
    python_type = datetime.date

    def transform_python(self, value: Any) -> Any:
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC)


CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    type_registry=TypeRegistry([_DecimalEncoder(), _JsonNumberEncoder(), _DateEncoder()]),
    uuid_representation=UuidRepresentation.STANDARD,
    tz_aware=True,
    tzinfo=datetime.UTC,
)


def canonical(value: Any) -> Any:
    """`value` with every document's fields in sorted order; arrays keep their order."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def canonical_bytes(raw: bytes) -> bytes:
    """A BSON document re-encoded with its fields (and its sub-documents') in sorted order."""
    return bson.encode(canonical(bson.decode(raw, codec_options=CODEC)), codec_options=CODEC)


def same(expected: bytes, actual: bytes) -> bool:
    """Whether two BSON documents hold the same fields with the same values of the same types,
    in any field order (a BSON target's TargetAdapter.same_document). The fast path is a byte
    comparison, which holds for nearly every document."""
    return expected == actual or canonical_bytes(expected) == canonical_bytes(actual)


@dataclass(frozen=True)
class Identity:
    """An _id as a unique _id index tells values apart; `value` is one _id with it."""

    canonical: Any
    value: Any = field(compare=False, hash=False)


def id_identity(doc_id: Any) -> Hashable:
    """What a BSON store's _id index compares: the _id after encoding (dates to the millisecond,
    numerics as Decimal128), with numbers compared by value whatever their type (MongoDB's
    index holds 1, Int64(1) and Decimal128('1.00') as one key)."""
    stored = bson.decode(bson.encode({"_id": doc_id}, codec_options=CODEC), codec_options=CODEC)["_id"]
    return Identity(_canonical(stored), doc_id)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float | Decimal128 | decimal.Decimal):
        number = value.to_decimal() if isinstance(value, Decimal128) else decimal.Decimal(value)
        return ("number", str(number) if number.is_nan() else number.normalize())
    if isinstance(value, dict):
        return ("object", tuple((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, datetime.datetime):
        return ("date", value)
    return (type(value).__name__, value)
