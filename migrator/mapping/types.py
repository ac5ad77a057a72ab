"""How each PostgreSQL type becomes a BSON value: the documented conversion table.

This table is the single source of truth: preflight refuses what it refuses, the
docs/plan.md's type table is checked against it by a test, and the snapshot and CDC
converters implement exactly what it says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo
from migrator.errors import TerminalError


@dataclass(frozen=True)
class Conversion:
    bson: str  # what the target holds
    note: str = ""  # how, where it is not obvious
    precision_warning: str | None = None  # a loss the operator should know about
    refused: str | None = None  # why plan refuses it, and the fix

    @property
    def supported(self) -> bool:
        return self.refused is None


_INT32 = Conversion("int (int32)")
_INT64 = Conversion("long (int64)")
_TIMESTAMP_MS = "microseconds are truncated to milliseconds (BSON dates hold milliseconds)"
_TEXT_FORM = "PostgreSQL's text form"

# Canonical names as format_type() prints them.
CONVERSIONS: dict[str, Conversion] = {
    "smallint": _INT32,
    "integer": _INT32,
    "bigint": _INT64,
    "oid": Conversion("long (int64)"),
    "numeric": Conversion(
        "decimal (Decimal128)",
        "exact up to 34 significant digits; NaN and ±Infinity are kept",
    ),
    "money": Conversion("decimal (Decimal128)", "read as money::numeric, so no currency symbol or locale"),
    "real": Conversion("double", "widened to double"),
    "double precision": Conversion("double"),
    "text": Conversion("string"),
    "character varying": Conversion("string"),
    "character": Conversion("string", "char(n) keeps its blank padding, as PostgreSQL returns it"),
    "name": Conversion("string"),
    "citext": Conversion("string"),
    "xml": Conversion(
        "string", "PostgreSQL's text form (its output: an XML declaration without its encoding, or none)"
    ),
    "boolean": Conversion("bool"),
    "timestamp with time zone": Conversion("date (UTC)", precision_warning=_TIMESTAMP_MS),
    "timestamp without time zone": Conversion(
        "date (UTC)", "the wall-clock value is taken as UTC", precision_warning=_TIMESTAMP_MS
    ),
    "date": Conversion("date (UTC)", "the day at 00:00 UTC"),
    "uuid": Conversion("binData subtype 4 (UUID)"),
    "bytea": Conversion("binData subtype 0"),
    "json": Conversion("document / array / scalar", "parsed; object key order kept"),
    "jsonb": Conversion("document / array / scalar", "parsed; jsonb's key order (by length, then bytes)"),
    "interval": Conversion("string", "ISO 8601 duration, e.g. P1Y2M3DT4H5M6S (months are not days)"),
    "time without time zone": Conversion("string", "HH:MM:SS[.ffffff]"),
    "time with time zone": Conversion("string", "HH:MM:SS[.ffffff]+HH[:MM]"),
    "inet": Conversion("string", "PostgreSQL's text form (its output: a host without /32 or /128)"),
    "cidr": Conversion("string", _TEXT_FORM),
    "macaddr": Conversion("string", _TEXT_FORM),
    "macaddr8": Conversion("string", _TEXT_FORM),
    "bit": Conversion("string", "of 0 and 1"),
    "bit varying": Conversion("string", "of 0 and 1"),
    "point": Conversion("string", _TEXT_FORM),
    "line": Conversion("string", _TEXT_FORM),
    "lseg": Conversion("string", _TEXT_FORM),
    "box": Conversion("string", _TEXT_FORM),
    "path": Conversion("string", _TEXT_FORM),
    "polygon": Conversion("string", _TEXT_FORM),
    "circle": Conversion("string", _TEXT_FORM),
    "tsvector": Conversion(
        "",
        refused="full-text vectors are derived data: exclude the column and build a text index on the target",
    ),
    "tsquery": Conversion("", refused="a query is not data to migrate: exclude the column"),
}

# Canonical names of types no PostgreSQL type has, which other sources' adapters read columns as
# (adapters/base.py ColumnInfo.type_name). The PostgreSQL table in docs/plan.md leaves them out.
OTHER_SOURCES: dict[str, Conversion] = {
    "bigint unsigned": Conversion(
        "long (int64); decimal (Decimal128) above 2^63-1", "a value above 2^63-1 is delivered as a Decimal"
    ),
    "geometry": Conversion(
        "",
        refused="spatial values have no defined conversion: exclude the column, or add a generated column "
        "ST_AsText(col) and map that",
    ),
}
CONVERSIONS.update(OTHER_SOURCES)

ENUM = Conversion("string", "the label")
RANGE = Conversion("string", "PostgreSQL's text form, e.g. [1,10)")
ARRAY_NOTE = "array of the element's conversion; NULL elements kept; multidimensional arrays nest"
_REFUSED_KINDS = {
    "composite": "composite types have no defined conversion: exclude the column, or store its parts in columns of supported types",
    "multirange": "multiranges have no defined conversion: exclude the column",
    "pseudo": "pseudo-types hold no data to migrate: exclude the column",
}


def conversion_for(column: ColumnInfo) -> Conversion:
    """The conversion a column gets; arrays take their element's, refused when it is refused."""
    if column.type_kind == "array":
        element = _scalar(column.element_type or "", column.element_kind or "base")
        if not element.supported:
            return Conversion("", refused=f"array of {column.element_type}: {element.refused}")
        return Conversion(f"array of {element.bson}", ARRAY_NOTE, precision_warning=element.precision_warning)
    return _scalar(column.type_name, column.type_kind)


def _scalar(type_name: str, kind: str) -> Conversion:
    if kind == "enum":
        return ENUM
    if kind == "range":
        return RANGE
    if kind in _REFUSED_KINDS:
        return Conversion("", refused=_REFUSED_KINDS[kind])
    known = CONVERSIONS.get(type_name)
    if known is not None:
        return known
    return Conversion(
        "",
        refused=f"type {type_name} has no defined conversion: exclude the column, or store the value in a column of a supported type",
    )


def type_table_markdown() -> str:
    """docs/plan.md's conversion table, generated so that docs and code cannot drift."""
    lines = ["| PostgreSQL | MongoDB (BSON) | Notes |", "|---|---|---|"]
    rows: list[tuple[str, str, str]] = []
    for name, conv in CONVERSIONS.items():
        if name in OTHER_SOURCES:
            continue
        if conv.refused:
            rows.append((name, "refused by `plan`", conv.refused))
        else:
            notes = "; ".join(x for x in (conv.note, conv.precision_warning) if x)
            rows.append((name, conv.bson, notes))
    rows.append(("enum types", ENUM.bson, ENUM.note))
    rows.append(("range types (int4range, tstzrange, ...)", RANGE.bson, RANGE.note))
    rows.append(("arrays of any supported type", "array", ARRAY_NOTE))
    rows.append(("domains", "as their base type", "constraints are not re-checked"))
    for kind, why in _REFUSED_KINDS.items():
        rows.append((f"{kind} types", "refused by `plan`", why))
    rows.append(("NULL (any type)", "null", "the field is present with value null"))
    lines.extend(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return "\n".join(lines)


# -- casts: the plan's `types` (a field's target type where it is not its column's) -----------------

INTEGER_TYPES = frozenset({"smallint", "integer", "bigint", "bigint unsigned"})


class CastError(TerminalError):
    """A value a cast cannot carry exactly (a 2 in a column cast to bool): the run stops rather
    than store another value (docs/architecture.md, "Types chosen by the plan")."""


@dataclass(frozen=True)
class Cast:
    """How `types: {column: NAME}` turns a column's values into the field's and back.

    `accepts`: the column types it applies to; `exact_values`: the only values it carries, which
    preflight scans the column for (None: every value of those types); `forward`: the column's
    value -> the field's; `backward`: the field's value (BSON, as the target gives it) -> the
    column's, raising ValueError for one the cast never produces."""

    name: str
    conversion: Conversion
    accepts: frozenset[str]
    exact_values: tuple[Any, ...] | None
    forward: Callable[[Any], Any]
    backward: Callable[[Any], Any]


def _to_bool(value: Any) -> Any:
    if value == 0 or value == 1:
        return bool(value)
    raise ValueError(f"{value!r} is neither 0 nor 1")


def _from_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    raise ValueError(f"expected bool, found {type(value).__name__} {value!r}")


CASTS: dict[str, Cast] = {
    "bool": Cast(
        "bool",
        Conversion("bool", "the plan's `types: {column: bool}`: 0 is false, 1 is true; written back as 0/1"),
        INTEGER_TYPES,
        (0, 1),
        _to_bool,
        _from_bool,
    ),
}


def cast_forward(cast: Cast, table: str, column: str) -> Callable[[Any], Any]:
    """`cast.forward` for one column, stopping the run on a value it cannot carry (None stays None)."""

    def convert(value: Any) -> Any:
        if value is None:
            return None
        try:
            return cast.forward(value)
        except ValueError as exc:
            raise CastError(
                f"{table}.{column} holds {value!r}, which `types: {{{column}: {cast.name}}}` cannot carry ({exc})",
                hint=f"remove '{column}' from 'types' (its values then migrate as they are), or change the "
                "value at the source",
            ) from None

    return convert
