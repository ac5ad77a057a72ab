"""The sequences behind the mapped tables' columns (serial defaults and identity columns), with
the value each last gave out: what cutover brings a PostgreSQL target's sequences to
(docs/architecture.md, "Sequences at cutover").

A sequence belongs to a column through pg_depend ('a' for a serial's OWNED BY, 'i' for an
identity's). `pg_sequence_last_value` is NULL for a sequence never used: nothing was given out, so
nothing needs to be passed on. Reading it needs SELECT or USAGE on the sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.postgres.inspect import table_identifier

_SQL = """
SELECT n.nspname || '.' || c.relname, a.attname, pg_sequence_last_value(d.objid)
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_class c ON c.oid = d.refobjid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjid = ANY(%s::regclass[])
"""


def sequence_values(conn: psycopg.Connection[Any], tables: Sequence[str]) -> dict[str, dict[str, int]]:
    """table -> column -> the last value its sequence gave out (columns never served left out)."""
    names = [table_identifier(t).as_string(conn) for t in tables]
    found: dict[str, dict[str, int]] = {}
    for table, column, last in conn.execute(_SQL, [names]).fetchall():
        if last is not None:
            found.setdefault(_plan_name(str(table), tables), {})[str(column)] = int(last)
    return found


def _plan_name(table: str, tables: Sequence[str]) -> str:
    """`table` as the plan names it (a table in `public` may be named without its schema)."""
    schema, _, name = table.partition(".")
    return name if schema == "public" and name in tables else table
