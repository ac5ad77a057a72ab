"""The user-defined types the target tables' columns use, created before the tables
(docs/architecture.md, "Tables as collections"): an enum with the source's labels in their order,
a domain over a built-in type with its NOT NULL and CHECK constraints. Each statement creates its
type only where the target has no type of that name; a type of that name whose labels differ is
refused by `plan` (labels.py). Other kinds (composite, range) are refused with their fix.
"""

from __future__ import annotations

from collections.abc import Iterable

from migrator.adapters.inspection import ColumnInfo, UserType
from migrator.errors import TerminalError


def literal(text: str) -> str:
    """A string literal as PostgreSQL's quote_literal would write it (standard_conforming_strings)."""
    return "'" + text.replace("'", "''") + "'"


def _guarded(kind: UserType, create: str) -> str:
    # A DO block: CREATE TYPE / CREATE DOMAIN have no IF NOT EXISTS.
    return (
        f"DO $migrator$ BEGIN IF to_regtype({literal(kind.name)}) IS NULL THEN {create}; "
        "END IF; END $migrator$"
    )


def create_type(table: str, column: ColumnInfo) -> str | None:
    """The statement that creates `column`'s user-defined type where missing; None for a built-in."""
    kind = column.user_type
    if kind is None:
        return None
    if kind.kind == "enum":
        labels = ", ".join(literal(label) for label in kind.labels)
        return _guarded(kind, f"CREATE TYPE {kind.name} AS ENUM ({labels})")
    if kind.kind == "domain" and kind.base:
        parts = [f"CREATE DOMAIN {kind.name} AS {kind.base}"]
        parts += ["NOT NULL"] * kind.not_null + list(kind.checks)
        return _guarded(kind, " ".join(parts))
    what = "a domain over a user-defined type" if kind.kind == "domain" else f"a {kind.kind} type"
    raise TerminalError(
        f"{table}.{column.name} is of {what}, {kind.name}, which migrator does not create on the target",
        hint=f"create {kind.name} on the target first, as the source defines it (psql: \\dT+ {kind.name} "
        "on the source), then run plan again",
    )


def create_types(table: str, columns: Iterable[ColumnInfo]) -> list[str]:
    """Each type's schema (where the target may lack it), then the type."""
    statements: list[str] = []
    for column in columns:
        statement = create_type(table, column)
        if statement is None or statement in statements:
            continue
        assert column.user_type is not None
        schema = '"' + column.user_type.schema.replace('"', '""') + '"'
        statements += [f"CREATE SCHEMA IF NOT EXISTS {schema}"] * bool(column.user_type.schema)
        statements.append(statement)
    return statements
