"""The secondary indexes and constraints of the mapped tables, as the target builds them after
the copy (docs/architecture.md, "After the copy"): pg_get_indexdef and pg_get_constraintdef, read
with an empty search_path so that every table and type they name is schema-qualified.

Primary keys are not here (the target table is created with its own); nor are indexes that back a
constraint (the constraint builds its index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.post_copy import SchemaObject
from migrator.adapters.postgres.inspect import table_identifier

DIALECT = "postgresql"

# The user-defined functions, operators, collations and operator classes an index or constraint
# depends on (object ids from 16384: not the server's own), which a target database may lack.
_CALLS = """ARRAY(SELECT DISTINCT pg_describe_object(d.refclassid, d.refobjid, 0) FROM pg_depend d
             WHERE d.classid = '{catalog}'::regclass AND d.objid = {oid} AND d.refobjid >= 16384
               AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass,
                                    'pg_collation'::regclass, 'pg_opclass'::regclass))"""
_INDEXES_SQL = """
SELECT ic.relname, quote_ident(ic.relname), pg_get_indexdef(i.indexrelid), i.indisunique,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       ARRAY(SELECT a.attname::text FROM pg_depend d
             JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
               AND d.refobjid = i.indrelid AND d.refobjsubid > 0 ORDER BY a.attnum),
       {calls}
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY ic.relname
"""
_CONSTRAINTS_SQL = """
SELECT k.conname, k.contype, pg_get_constraintdef(k.oid),
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = k.conrelid AND (
             a.attnum = ANY(k.conkey) OR a.attnum IN (
               SELECT d.refobjsubid FROM pg_depend d WHERE d.classid = 'pg_constraint'::regclass
               AND d.objid = k.oid AND d.refobjid = k.conrelid)) ORDER BY a.attnum),
       CASE WHEN k.contype = 'f' THEN rn.nspname || '.' || r.relname END,
       CASE WHEN k.contype = 'f' THEN quote_ident(rn.nspname) || '.' || quote_ident(r.relname) END,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) AS f(attnum)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = f.attnum),
       {calls}
FROM pg_constraint k
LEFT JOIN pg_class r ON r.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE k.conrelid = %s::regclass AND k.contype IN ('u', 'c', 'x', 'f')
ORDER BY k.contype = 'f', k.conname
"""

_INDEXES_SQL = _INDEXES_SQL.replace("{calls}", _CALLS.format(catalog="pg_class", oid="i.indexrelid"))
_CONSTRAINTS_SQL = _CONSTRAINTS_SQL.replace("{calls}", _CALLS.format(catalog="pg_constraint", oid="k.oid"))


def _index(table: str, row: tuple[Any, ...]) -> SchemaObject:
    """An index, its definition after "ON table " ("USING btree (...)"); "" where the server's
    text does not start as expected (the target then skips it, saying so)."""
    name, quoted, definition, unique, qualified, columns, calls = row
    head = f"CREATE {'UNIQUE ' if unique else ''}INDEX {quoted} ON "
    tail = ""
    for only in ("", "ONLY "):
        prefix = f"{head}{only}{qualified} "
        if definition.startswith(prefix):
            tail = definition[len(prefix) :]
    return SchemaObject(DIALECT, "index", table, name, tail, bool(unique), tuple(columns), calls=tuple(calls))


def _constraint(table: str, row: tuple[Any, ...]) -> SchemaObject:
    name, kind, definition, columns, references, reference_text, referenced, calls = row
    if kind == "f":
        return SchemaObject(
            DIALECT,
            "foreign_key",
            table,
            name,
            definition,
            columns=tuple(columns),
            references=references,
            referenced_columns=tuple(referenced),
            reference_text=reference_text,
            calls=tuple(calls),
        )
    return SchemaObject(
        DIALECT, "constraint", table, name, definition, columns=tuple(columns), calls=tuple(calls)
    )


def read_objects(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[SchemaObject]:
    with conn.transaction():
        conn.execute("SET LOCAL search_path = ''")
        found: list[SchemaObject] = []
        for table in tables:
            regclass = table_identifier(table).as_string(conn)
            found += [_index(table, row) for row in conn.execute(_INDEXES_SQL, [regclass]).fetchall()]
            found += [
                _constraint(table, row) for row in conn.execute(_CONSTRAINTS_SQL, [regclass]).fetchall()
            ]
    return found
