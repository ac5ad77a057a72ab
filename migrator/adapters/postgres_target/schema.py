"""Target tables from the source's definitions: the DDL run before the copy.

Pure (no connection), so that `migrator plan` and `run --dry-run` show exactly what `run`
executes. The form follows `pg_dump --schema-only --section=pre-data -t TABLE`: each column's
declared type (format_type with its modifier; from a source that has none, MySQL's, the type
column_types.py chooses), NOT NULL, a default where it names no other object, and the primary key. Secondary indexes, constraints, foreign keys, sequences and identity come
after the copy, in a later step (docs/architecture.md, "Tables as collections").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from migrator.adapters.base import ColumnInfo, MappedCollection
from migrator.adapters.postgres_target.column_types import column_type, takes_null
from migrator.errors import TerminalError

# Functions a default may call and still be safe on another server: built in, and naming no
# object the target lacks (nextval names a sequence, which the target does not have yet).
_SAFE_FUNCTIONS = frozenset(
    {
        "now",
        "clock_timestamp",
        "statement_timestamp",
        "transaction_timestamp",
        "timeofday",
        "gen_random_uuid",
        "random",
        "timezone",
        "lower",
        "upper",
    }
)
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_$.]*)\s*\(")


def quote(name: str) -> str:
    """An identifier quoted as PostgreSQL's quote_ident would (always quoted)."""
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str) -> str:
    schema, _, name = table.rpartition(".")
    return f"{quote(schema or 'public')}.{quote(name)}"


def safe_default(expression: str | None) -> str | None:
    """The default to keep on the target, or None where it may name an object the target lacks."""
    if expression is None:
        return None
    # String literals may hold anything; only calls outside them count.
    code = re.sub(r"'(?:[^']|'')*'", "''", expression)
    calls = {name.rsplit(".", 1)[-1].lower() for name in _CALL.findall(code)}
    if any("." in name and not name.startswith("pg_catalog.") for name in _CALL.findall(code)):
        return None
    return expression if calls <= _SAFE_FUNCTIONS else None


def _column(name: str, column: ColumnInfo, key: bool, plan_type: str | None = None) -> str:
    # The type: declared by a PostgreSQL source, else chosen through the type table (column_types.py).
    parts = [quote(name), column_type(column, plan_type)]
    if key or not (column.nullable or takes_null(column)):
        parts.append("NOT NULL")
    default = safe_default(column.default)
    if default is not None:
        parts.append(f"DEFAULT {default}")
    return " ".join(parts)


def create_table(collection: MappedCollection) -> list[str]:
    """The statements that create `collection`'s target table (named as the collection) where it
    does not exist: its schema, then the table with the key columns and the mapped fields, in the
    source's column order, under their target names."""
    document = collection.levels[0].document
    if document.embeds:
        raise TerminalError(f"{collection.name}: a PostgreSQL target takes flat tables, without embeds")
    names = {f.column.name: f.name for f in document.fields}
    typed = {f.column.name: f.plan_type for f in document.fields}
    key = set(document.key)
    lines = [
        _column(c.name if c.name in key else names[c.name], c, c.name in key, typed.get(c.name))
        for c in sorted(document.all_columns, key=lambda c: c.position)
        if c.name in key or c.name in names
    ]
    primary = ", ".join(quote(k) for k in document.key)
    lines.append(f"PRIMARY KEY ({primary})")
    schema = collection.name.rpartition(".")[0] or "public"
    body = ",\n    ".join(lines)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}",
        f"CREATE TABLE IF NOT EXISTS {qualified(collection.name)} (\n    {body}\n)",
    ]


def create_tables(collections: Sequence[MappedCollection]) -> list[str]:
    statements: list[str] = []
    for collection in collections:
        for statement in create_table(collection):
            if statement not in statements:  # one CREATE SCHEMA per schema
                statements.append(statement)
    return statements
