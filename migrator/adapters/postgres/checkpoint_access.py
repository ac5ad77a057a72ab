"""Where reverse sync keeps its checkpoint on a PostgreSQL source, and what the role lacks to keep
it there (docs/architecture.md, "Reverse sync"): the table `migrator.reverse_checkpoint`, which
reverse_writer.py creates on first use (the schema too, where missing), reads, upserts in, and
deletes from at rollback.

- the schema is missing: creating it needs CREATE on the database;
- the schema is there but not the table: USAGE and CREATE on the schema;
- the table is there (another role's run made it): USAGE on the schema and SELECT, INSERT, UPDATE,
  DELETE on the table.

A superuser has them all; the server is asked (has_*_privilege) rather than assuming.
"""

from __future__ import annotations

from typing import Any

import psycopg

from migrator.adapters.inspection import Grant

CHECKPOINT_SCHEMA = "migrator"
CHECKPOINT_TABLE = "reverse_checkpoint"
_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")

_ACCESS_SQL = """
SELECT n.oid IS NOT NULL, c.oid IS NOT NULL,
       has_database_privilege(current_database(), 'CREATE'),
       n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE'),
       n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'CREATE'),
       ARRAY(SELECT p FROM unnest(%(privileges)s::text[]) WITH ORDINALITY u(p, i)
             WHERE c.oid IS NOT NULL AND NOT has_table_privilege(c.oid, p) ORDER BY i)
FROM (SELECT 1) one
LEFT JOIN pg_namespace n ON n.nspname = %(schema)s
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = %(table)s
"""


def checkpoint_denied(cur: psycopg.Cursor[Any], database: str) -> tuple[Grant, ...]:
    """What the current role lacks to keep reverse sync's checkpoint; empty when nothing."""
    row = cur.execute(
        _ACCESS_SQL,
        {"privileges": list(_TABLE_PRIVILEGES), "schema": CHECKPOINT_SCHEMA, "table": CHECKPOINT_TABLE},
    ).fetchone()
    assert row is not None, "a SELECT over one row returned none"
    schema_exists, table_exists, create_database, usage, create_schema, table_missing = row
    if not schema_exists:
        return () if create_database else (Grant("CREATE", "DATABASE", (database,)),)
    # Creating the table needs CREATE on the schema; an existing one only USAGE.
    held = (("USAGE", usage), ("CREATE", create_schema or table_exists))
    missing = [privilege for privilege, has in held if not has]
    denied = [Grant(", ".join(missing), "SCHEMA", (CHECKPOINT_SCHEMA,))] if missing else []
    if table_missing:
        denied.append(
            Grant(", ".join(map(str, table_missing)), "TABLE", (CHECKPOINT_SCHEMA, CHECKPOINT_TABLE))
        )
    return tuple(denied)
