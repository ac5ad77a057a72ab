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
from typing import Any

from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, TypeEncoder, TypeRegistry
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument


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


class _DateEncoder(TypeEncoder):
    python_type = datetime.date

    def transform_python(self, value: Any) -> Any:
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC)


CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    type_registry=TypeRegistry([_DecimalEncoder(), _DateEncoder()]),
    uuid_representation=UuidRepresentation.STANDARD,
    tz_aware=True,
    tzinfo=datetime.UTC,
)
