"""A target column's type where the source gives no PostgreSQL declaration (a MySQL/MariaDB
source): the source says what the column is, its read-as type (ColumnInfo.type_name, PostgreSQL's
words) and its own type (ColumnInfo.native_type, e.g. "datetime(6)"), and this table says which
PostgreSQL type holds every value of it exactly (docs/architecture.md, "Tables as collections").

A PostgreSQL source's columns keep their declared type (format_type, as pg_dump writes it); the
plan's `types` decide over both. docs/plan.md's "Types from MySQL/MariaDB into PostgreSQL" is generated
from TYPES (type_table_markdown; a unit test keeps the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from migrator.adapters.base import ColumnInfo
from migrator.errors import TerminalError

# The PostgreSQL type of a field the plan's `types` give (mapping/types.py CASTS).
PLAN_TYPES = {"bool": "boolean"}


@dataclass(frozen=True)
class TargetType:
    """`ddl`: the column's type, with {n} (a length), {fsp} (fractional seconds digits), {p} and
    {s} (numeric precision and scale) filled in from the source column; `note`: why, where it is
    not the read-as type itself."""

    ddl: str
    note: str = ""
    # A zero date read as null (source zero_dates: "null") must fit: the column takes NULL.
    zero_dates: bool = False


_ZERO_DATES = 'without NOT NULL: a zero date arrives as NULL with source `zero_dates: "null"`'

# By read-as type (ColumnInfo.type_name; "enum" for an enum's kind).
TYPES: dict[str, TargetType] = {
    "smallint": TargetType("smallint"),
    "integer": TargetType("integer"),
    "bigint": TargetType("bigint"),
    "bigint unsigned": TargetType("numeric(20,0)", "PostgreSQL has no unsigned bigint; 2^64-1 has 20 digits"),
    "numeric": TargetType("numeric({p},{s})", "precision up to 65 kept (no 34-digit limit: no BSON here)"),
    "real": TargetType("real", "the 4-byte value as stored"),
    "double precision": TargetType("double precision"),
    "bit": TargetType("bit({n})", "n bits, as text of 0 and 1"),
    "character": TargetType(
        "character({n})",
        "blank-padded to n characters, which compare as MySQL's CHAR (stored padded, read without)",
    ),
    "character varying": TargetType("character varying({n})", "n characters, as MySQL counts them"),
    "text": TargetType(
        "text",
        "char, varchar and text: PostgreSQL cannot hold a NUL character, and a value holding one stops the run",
    ),
    "bytea": TargetType("bytea", "binary(n) keeps its zero padding, as MySQL returns it"),
    "json": TargetType(
        "jsonb",
        "parsed (MySQL's own JSON is binary too): key order, duplicate keys and whitespace not kept; "
        "a JSON null arrives as NULL; numbers with their digits (12345678901234567890123, "
        "0.1000000000000000055511151231257827, 1e400: jsonb's numeric holds them), 1.0 kept, -0.0 "
        "as 0.0 (the same number); verify compares them as numbers",
    ),
    "enum": TargetType("text", "the label; no CHECK, since MySQL keeps '' for a label it rejected"),
    "text[]": TargetType("text[]", "the members, in the set's definition order; '' is {}"),
    "date": TargetType("date", _ZERO_DATES, zero_dates=True),
    "timestamp without time zone": TargetType(
        "timestamp({fsp}) without time zone", "the wall-clock value; " + _ZERO_DATES, zero_dates=True
    ),
    "timestamp with time zone": TargetType(
        "timestamp({fsp}) with time zone",
        "the same instant: MySQL stores UTC and is read in UTC (time_zone +00:00); " + _ZERO_DATES,
        zero_dates=True,
    ),
    "time without time zone": TargetType(
        "interval({fsp})",
        "MySQL's TIME is a duration (-838:59:59 to 838:59:59): an interval holds every value, "
        "and prints as MySQL does",
    ),
}

_MODIFIER = re.compile(r"^\s*\w+\s*\(\s*(\d+)\s*\)")


def _modifier(column: ColumnInfo) -> int | None:
    """The number in the source type's parentheses ("varchar(40)" -> 40), None without one."""
    found = _MODIFIER.match(column.native_type)
    return int(found.group(1)) if found else None


def _target_type(column: ColumnInfo) -> TargetType | None:
    return TYPES.get("enum" if column.type_kind == "enum" else column.type_name)


def column_type(column: ColumnInfo, plan_type: str | None = None) -> str:
    """The DDL type of `column`'s target column: the plan's type, else the declared one, else the
    table's choice. A type the table has not (or a modifier it needs that the source does not give)
    is refused: `plan` shows the refusal with its fix."""
    if plan_type is not None:
        return PLAN_TYPES[plan_type]
    if column.declared_type:
        return column.declared_type
    chosen = _target_type(column)
    if chosen is None:
        raise _refused(column, "has no PostgreSQL type that holds its values exactly")
    n = _modifier(column)
    if "{n}" in chosen.ddl and not n:
        # char(0) / bit(0): PostgreSQL's lengths start at 1.
        raise _refused(column, "has a length PostgreSQL cannot declare")
    return chosen.ddl.format(n=n, fsp=n or 0, p=column.numeric_precision or 65, s=column.numeric_scale or 0)


def takes_null(column: ColumnInfo) -> bool:
    """Whether the target column takes NULL although the source's is NOT NULL: a zero date read as
    null (zero_dates: "null"; with "refuse" `plan` fails on one, so no NULL arrives either way)."""
    if column.declared_type:
        return False
    chosen = _target_type(column)
    return chosen is not None and chosen.zero_dates


def _refused(column: ColumnInfo, why: str) -> TerminalError:
    shown = column.native_type or column.type_name
    return TerminalError(
        f"column {column.name} ({shown}) {why}",
        hint=f"exclude the column (`exclude: [{column.name}]`), or change its type at the source "
        'to one of docs/plan.md\'s "Types from MySQL/MariaDB into PostgreSQL"',
    )


class SourceType(Protocol):
    """A row of a source's type table (migrator/adapters/mysql/types.py NativeType)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def type_name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def sign(self) -> str | None: ...

    @property
    def label(self) -> str: ...


_SHOWN = {"{n}": "n", "{fsp}": "fsp", "{p},{s}": "p, s"}


def type_table_markdown(source_types: Iterable[SourceType]) -> str:
    """docs/plan.md's "Types from MySQL/MariaDB into PostgreSQL": each of the source's types (handed
    in: adapters do not import each other) with its read-as type and the column this table makes."""
    lines = ["| MySQL/MariaDB | read as | PostgreSQL column | Notes |", "|---|---|---|---|"]
    for source in source_types:
        label = source.label or ", ".join(source.names) + (f" ({source.sign})" if source.sign else "")
        chosen = TYPES.get("enum" if source.kind == "enum" else source.type_name)
        if chosen is None:
            lines.append(f"| {label} | {source.type_name} | refused by `plan` | exclude the column |")
            continue
        ddl = chosen.ddl
        for placeholder, shown in _SHOWN.items():
            ddl = ddl.replace(placeholder, shown)
        lines.append(f"| {label} | {source.type_name} | {ddl} | {chosen.note} |")
    lines.append(
        "| an integer column with `types: {column: bool}` (tinyint(1)) | smallint | boolean | "
        "`plan` checks it holds only 0, 1 and NULL |"
    )
    lines.append(
        '| zero dates | - | - | refused by `plan`; NULL with source `zero_dates: "null"` (as for MongoDB) |'
    )
    lines.append("| NULL (any type) | - | NULL | |")
    return "\n".join(lines)
