"""Secondary indexes and constraints built after the copy (docs/architecture.md, "After the
copy"), from the source's definitions (adapters/postgres/secondary.py), under the target tables'
names: `CREATE INDEX IF NOT EXISTS`, `ALTER TABLE ... ADD CONSTRAINT`, foreign keys in a second
wave (they need the unique indexes they reference). Each statement is skipped where the target
already has what it builds (by name, in the catalog), so a resumed run builds only what is missing.

An object is not built, and `plan` says why, where the plan changed what it reads: a column left
out or renamed (the definition names the source's columns), or a foreign key to a table the plan
does not copy; or where it calls a function (operator, collation, operator class) defined in the
source database, which the target does not have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from migrator.adapters.base import PostCopy, PostCopyStatement, SchemaObject
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.schema import primary_key, primary_key_name, qualified, quote

DIALECT = "postgresql"
# The memory an index build sorts in, and a foreign key's validation query joins in (PostgreSQL
# runs it with work_mem = maintenance_work_mem): pgcopydb's setting for the same statements. With
# the default 64 MB, the 2,000,000-row key and foreign key of the benchmark spilled to disk
# (docs/architecture.md, "After the copy"). For this transaction only.
BUILD_MEMORY = b"SET LOCAL maintenance_work_mem = '1GB'"
# A foreign key's validation query (an anti-join of the table with the one it references) planned
# without a hash join: the planner then takes a merge join (over the two keys' indexes, or sorted
# in that memory), or a nested loop over the referenced key's index where the table is small. On
# the benchmark's 2,000,000-row key, 2.2 to 3.9 s against 3.3 to 8.1 s hashed, alternating on
# the same tables (docs/architecture.md, "After the copy"). For this transaction only.
VALIDATE_PLAN = b"SET LOCAL enable_hashjoin = off"
Targets = Mapping[str, tuple[str, Mapping[str, str]]]


def _columns_problem(columns: Sequence[str], mapped: Mapping[str, str], table: str) -> str | None:
    left_out = [c for c in columns if c not in mapped]
    if left_out:
        return f"it reads column(s) {', '.join(left_out)} of {table}, which the plan leaves out"
    renamed = [c for c in columns if mapped[c] != c]
    if renamed:
        return f"it reads column(s) {', '.join(renamed)} of {table}, which the plan renames"
    return None


def _problem(obj: SchemaObject, targets: Targets) -> str | None:
    if obj.dialect != DIALECT or not obj.definition:
        return "its definition could not be read as PostgreSQL's"
    if obj.calls:
        # The target database has none of the source's own functions (the build would fail,
        # 42883, and stop the run after the copy): create them there, then build it by hand.
        return f"it calls {', '.join(obj.calls)} of the source database, which the target does not have"
    problem = _columns_problem(obj.columns, targets[obj.table][1], obj.table)
    if problem is not None or obj.kind != "foreign_key":
        return problem
    if obj.references is None or obj.references not in targets:
        return f"it references {obj.references}, which the plan does not copy"
    if f" REFERENCES {obj.reference_text}(" not in obj.definition:
        return "its definition could not be read as PostgreSQL's"
    return _columns_problem(obj.referenced_columns, targets[obj.references][1], obj.references)


def _statement(obj: SchemaObject, targets: Targets) -> PostCopyStatement:
    table = targets[obj.table][0]
    if obj.kind == "index":
        unique = "UNIQUE " if obj.unique else ""
        text = f"CREATE {unique}INDEX IF NOT EXISTS {quote(obj.name)} ON {qualified(table)} {obj.definition}"
        return PostCopyStatement(0, table, obj.name, obj.kind, text)
    definition = obj.definition
    if obj.kind == "foreign_key" and obj.references is not None:
        referenced = qualified(targets[obj.references][0])
        definition = definition.replace(f" REFERENCES {obj.reference_text}(", f" REFERENCES {referenced}(", 1)
    text = f"ALTER TABLE {qualified(table)} ADD CONSTRAINT {quote(obj.name)} {definition}"
    if obj.kind != "foreign_key":
        return PostCopyStatement(0, table, obj.name, obj.kind, text)
    references = None if obj.references is None else targets[obj.references][0]
    return PostCopyStatement(1, table, obj.name, obj.kind, text, references)


def post_copy(objects: Sequence[SchemaObject], targets: Targets) -> PostCopy:
    statements: list[PostCopyStatement] = []
    skipped: list[tuple[SchemaObject, str]] = []
    for obj in objects:
        if obj.table not in targets:
            continue
        problem = _problem(obj, targets)
        if problem is None:
            statements.append(_statement(obj, targets))
        else:
            skipped.append((obj, problem))
    return PostCopy(tuple(sorted(statements, key=lambda s: s.wave)), tuple(skipped))


def primary_keys(tables: Sequence[tuple[str, Sequence[str]]]) -> list[PostCopyStatement]:
    """Each target table's primary key, in the first wave (the foreign keys of the second need
    the keys they reference)."""
    return [
        PostCopyStatement(0, table, primary_key_name(table), "primary_key", primary_key(table, key))
        for table, key in tables
    ]


def _exists(conn: psycopg.Connection[Any], statement: PostCopyStatement) -> bool:
    if statement.kind == "primary_key":  # whatever its name (a table created before the run)
        row = conn.execute(
            "SELECT 1 FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
            [qualified(statement.table)],
        ).fetchone()
        return row is not None
    if statement.kind == "index":
        schema = statement.table.rpartition(".")[0] or "public"
        row = conn.execute("SELECT to_regclass(%s)", [f"{quote(schema)}.{quote(statement.name)}"]).fetchone()
        return row is not None and row[0] is not None
    row = conn.execute(
        "SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
        [qualified(statement.table), statement.name],
    ).fetchone()
    return row is not None


def _unvalidated(conn: psycopg.Connection[Any], statement: PostCopyStatement) -> bool:
    row = conn.execute(
        "SELECT NOT convalidated FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
        [qualified(statement.table), statement.name],
    ).fetchone()
    return row is not None and bool(row[0])


def _build_foreign_key(connections: Connections, statement: PostCopyStatement) -> bool:
    """A foreign key in two transactions: added NOT VALID (reads no row; holds its SHARE ROW
    EXCLUSIVE locks on both tables for a moment), then validated (SHARE UPDATE EXCLUSIVE on its
    table, ROW SHARE on the referenced one), so that the foreign keys of tables that reference one
    another validate side by side: added valid, each held the referenced table's lock through its
    validation query, and the benchmark's two ran one after the other. A run stopped between the
    two finds the key not valid and validates it (docs/architecture.md, "After the copy")."""

    def add(conn: psycopg.Connection[Any]) -> bool:
        if _exists(conn, statement):
            return False
        conn.execute(f"{statement.sql} NOT VALID".encode())
        return True

    def validate(conn: psycopg.Connection[Any]) -> bool:
        if not _unvalidated(conn, statement):
            return False
        conn.execute(BUILD_MEMORY)
        conn.execute(VALIDATE_PLAN)
        conn.execute(
            f"ALTER TABLE {qualified(statement.table)} VALIDATE CONSTRAINT {quote(statement.name)}".encode()
        )
        return True

    added: bool = connections.run(add)
    validated: bool = connections.run(validate)
    return added or validated


def build(connections: Connections, statement: PostCopyStatement) -> bool:
    """Run `statement` unless what it builds exists (in one transaction: an interrupted build
    leaves nothing behind; a foreign key in two, `_build_foreign_key`); whether it ran."""
    if statement.kind == "foreign_key" and not statement.sql.endswith(" NOT VALID"):
        return _build_foreign_key(connections, statement)

    def work(conn: psycopg.Connection[Any]) -> bool:
        if _exists(conn, statement):
            return False
        conn.execute(BUILD_MEMORY)
        conn.execute(statement.sql.encode())
        return True

    ran: bool = connections.run(work)
    return ran
