"""The MySQL/MariaDB type table: each server type as the canonical type the shared conversion table
(migrator/mapping/types.py CONVERSIONS) knows, so that the mapping, preflight and the codec need no
MySQL branch (docs/architecture.md, "MySQL and MariaDB sources").

NATIVE_TYPES is the single source of truth: inspection reads a column's canonical type from it, and
docs/plan.md's "Types from MySQL/MariaDB" is generated from it with the conversion table
(type_table_markdown; a unit test keeps the two equal). The values readers and the binlog deliver for each row are the contract's (the
`value` column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo


@dataclass(frozen=True)
class NativeType:
    """Server types (information_schema.COLUMNS.DATA_TYPE) that read as one canonical type."""

    names: tuple[str, ...]
    type_name: str
    value: str  # the Python value readers deliver
    kind: str = "base"
    sign: str | None = None  # integers: 'signed' or 'unsigned' (COLUMN_TYPE says which)
    element_type: str | None = None  # for a canonical array type
    label: str = ""  # the docs' name for the row, where the names do not say it
    note: str | None = None  # the docs' note where the conversion's (in PostgreSQL's words) does not fit

    def column(self, name: str, nullable: bool, position: int, native: str) -> ColumnInfo:
        return ColumnInfo(
            name,
            self.type_name,
            self.kind,
            self.element_type,
            "base" if self.element_type else None,
            nullable,
            None,
            None,
            position,
            native_type=native,
        )


SPATIAL = (
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
)

NATIVE_TYPES: tuple[NativeType, ...] = (
    NativeType(
        ("tinyint", "smallint"),
        "smallint",
        "int",
        sign="signed",
        label="tinyint, smallint (signed; tinyint(1) too)",
        note="tinyint(1) too is an integer by default (`plan` notes each such column); "
        "`types: {column: bool}` makes an integer column holding only 0 and 1 a bool",
    ),
    NativeType(("year",), "smallint", "int"),
    NativeType(("tinyint", "smallint"), "integer", "int", sign="unsigned"),
    NativeType(("mediumint",), "integer", "int", label="mediumint (signed and unsigned)"),
    NativeType(("int",), "integer", "int", sign="signed"),
    NativeType(("int",), "bigint", "int", sign="unsigned"),
    NativeType(("bigint",), "bigint", "int", sign="signed"),
    NativeType(("bigint",), "bigint unsigned", "int; Decimal above 2^63-1", sign="unsigned"),
    NativeType(
        ("decimal",),
        "numeric",
        "Decimal, scale kept",
        label="decimal(p, s)",
        note="exact; decimal(p, s) with p above 34 is refused by `plan`",
    ),
    NativeType(("float",), "real", "float"),
    NativeType(("double",), "double precision", "float"),
    NativeType(("bit",), "bit", "str of '0' and '1', n characters", label="bit(n)"),
    NativeType(
        ("char",),
        "character",
        "str (MySQL returns CHAR without trailing spaces)",
        label="char(n)",
        note="without trailing spaces, as MySQL returns it",
    ),
    NativeType(("varchar",), "character varying", "str", label="varchar(n)"),
    NativeType(
        ("tinytext", "text", "mediumtext", "longtext"),
        "text",
        "str, decoded from the column's charset",
        note="char, varchar and text are decoded from the column's character set (utf8mb4, latin1, ...)",
    ),
    NativeType(
        ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"),
        "bytea",
        "bytes",
        label="binary(n), varbinary(n), tinyblob, blob, mediumblob, longblob",
    ),
    NativeType(
        ("json",),
        "json",
        "as a PostgreSQL json value, its numbers exact (json_values.loads_numbers)",
        label="json (MariaDB: longtext with CHECK (json_valid(col)))",
        note="parsed; object key order kept; a number is an int, a long, or a double where the double "
        "prints back as the same number (1.5, 1.0, -0.0), else a decimal (Decimal128: "
        "12345678901234567890123, 0.1000000000000000055511151231257827, 1e400); one beyond 34 "
        "significant digits stops the run naming the document",
    ),
    NativeType(("enum",), "enum", "str, the label", kind="enum", label="enum(...)"),
    NativeType(
        ("set",),
        "text[]",
        "list of str in definition order ([] for '')",
        kind="array",
        element_type="text",
        label="set(...)",
        note="the members, in the set's definition order; '' is []",
    ),
    NativeType(("date",), "date", "date"),
    NativeType(("datetime",), "timestamp without time zone", "naive datetime", label="datetime(fsp)"),
    NativeType(
        ("timestamp",),
        "timestamp with time zone",
        "datetime in UTC (the session's time zone is +00:00)",
        label="timestamp(fsp)",
        note="read in UTC (the session's time_zone is +00:00)",
    ),
    NativeType(
        ("time",),
        "time without time zone",
        "str 'HH:MM:SS[.ffffff]' as MySQL prints it (may be negative or beyond 24 h)",
        label="time(fsp)",
        note="HH:MM:SS[.ffffff] as MySQL prints it: may be negative or beyond 24 h",
    ),
    NativeType(
        SPATIAL, "geometry", "-", label="geometry, point, linestring, polygon, multi*, geometrycollection"
    ),
)

_BY_NAME: dict[tuple[str, str | None], NativeType] = {
    (name, native.sign): native for native in NATIVE_TYPES for name in native.names
}


def native_type(data_type: str, column_type: str) -> NativeType | None:
    """The row of NATIVE_TYPES for a column (DATA_TYPE, COLUMN_TYPE), or None for a type the table
    does not know (MariaDB's inet6, uuid, ...; preflight refuses it)."""
    data_type = data_type.lower()
    if (data_type, None) in _BY_NAME:
        return _BY_NAME[(data_type, None)]
    sign = "unsigned" if " unsigned" in column_type.lower() else "signed"
    return _BY_NAME.get((data_type, sign))


def column_info(
    name: str,
    data_type: str,
    column_type: str,
    *,
    nullable: bool,
    position: int,
    precision: int | None = None,
    scale: int | None = None,
) -> ColumnInfo:
    """A column as inspection reports it. A type the table does not know keeps the server's name in
    upper case (never a canonical name: no conversion applies to it by accident)."""
    native = native_type(data_type, column_type)
    if native is None:
        return ColumnInfo(
            name,
            data_type.upper(),
            "base",
            None,
            None,
            nullable,
            None,
            None,
            position,
            native_type=column_type,
        )
    column = native.column(name, nullable, position, column_type)
    if native.type_name == "numeric":
        return ColumnInfo(
            name, "numeric", "base", None, None, nullable, precision, scale, position, native_type=column_type
        )
    return column


def type_table_markdown(conversion_for: Callable[[ColumnInfo], Any]) -> str:
    """docs/plan.md's "Types from MySQL/MariaDB", generated so that docs and code cannot drift.
    `conversion_for`: migrator.mapping.types.conversion_for (the mapping sits above the adapters,
    docs/architecture.md "Layers", so it is handed in)."""
    lines = [
        "| MySQL/MariaDB | read as | MongoDB (BSON) | Notes |",
        "|---|---|---|---|",
    ]
    for native in NATIVE_TYPES:
        label = native.label or ", ".join(native.names) + (f" ({native.sign})" if native.sign else "")
        conversion = conversion_for(native.column("c", True, 1, ""))
        if conversion.refused:
            bson, notes = "refused by `plan`", conversion.refused
        else:
            bson = conversion.bson
            note = conversion.note if native.note is None else native.note
            notes = "; ".join(x for x in (note, conversion.precision_warning) if x)
        lines.append(f"| {label} | {native.type_name} | {bson} | {notes} |")
    lines.append(
        "| zero dates ('0000-00-00', '... 00:00:00', a zero month or day) | - | refused by `plan`; null with "
        '`zero_dates: "null"` | refused: a date, datetime or timestamp column holding one is named, with '
        "the UPDATE that sets it to NULL, and one written during the run stops it; with source "
        '`zero_dates: "null"` it becomes null (snapshot and binlog alike); reverse sync keeps one a row still '
        "holds, else writes NULL |"
    )
    lines.append("| NULL (any type) | - | null | the field is present with value null |")
    return "\n".join(lines)
