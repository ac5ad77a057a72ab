"""The write fence on a PostgreSQL target for the switch back after cutover (docs/architecture.md,
"Rollback after cutover to a PostgreSQL target").

A statement-level trigger on each mapped table, BEFORE INSERT, UPDATE, DELETE and TRUNCATE,
refuses the application's writes with SQLSTATE 25006 (read_only_sql_transaction), which an
application treats as the MongoDB target's validator failure or the source's lock fence: read the
switch again and retry on the side it names. Reads go on. Unlike MongoDB's validator it holds
deletes too. It outlives the process that set it (a crash under the fence leaves the tables
fenced, as rollback's resume expects) and is recognisable by its name (`target_fence_name`).

Forward CDC's own batches pass: they are committed under the plan's replication origin
(origin.py), and the trigger lets a session with an origin bound through. The trigger's function
is SECURITY DEFINER (the origin functions are not granted to PUBLIC) and is the plan's own,
dropped with the triggers when the fence is lifted; nothing is left behind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres_target import records
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.schema import qualified
from migrator.plan.names import target_fence_name

READ_ONLY = "25006"
LOCK_TIMEOUT = "10s"  # taking the fence waits for the writers in flight, at most this long

_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog AS $fence$
BEGIN
  IF pg_replication_origin_session_is_setup() THEN
    RETURN NULL;  -- migrator's forward CDC (its batches carry the plan's origin)
  END IF;
  RAISE EXCEPTION USING ERRCODE = '{code}',
    MESSAGE = 'table ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME
      || ' is fenced by migrator: writes are switching back to the source',
    HINT = 'read the switch again and retry on the side it names';
END
$fence$
"""


class TriggerFence:
    """TargetWriteFence of a PostgreSQL target (see the module doc)."""

    def __init__(self, connections: Connections, tables: Sequence[str], plan: str) -> None:
        self._connections = connections
        self._tables = list(tables)
        self._name = target_fence_name(plan)
        self._function = sql.Identifier(records.SCHEMA, self._name)
        self.engaged_at: float | None = None

    def describe(self) -> str:
        return f"trigger {self._name} refusing writes on {', '.join(self._tables)}"

    def engage(self) -> dict[str, Any]:
        """Fence every table (again, where a crash left it fenced); nothing to restore after."""

        def work(conn: psycopg.Connection[Any]) -> None:
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(records.SCHEMA)))
            conn.execute(sql.SQL(_FUNCTION).format(function=self._function, code=sql.SQL(READ_ONLY)))
            for table in self._tables:
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE TRIGGER {} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
                    ).format(sql.Identifier(self._name), sql.SQL(qualified(table)), self._function)
                )

        self._connections.run(work)
        self.engaged_at = time.monotonic()
        return {}

    def lift(self, before: Mapping[str, Mapping[str, Any]]) -> float | None:
        """Drop the triggers and their function; how long this process held the fence."""

        def work(conn: psycopg.Connection[Any]) -> None:
            for table in self._tables:
                if conn.execute("SELECT to_regclass(%s)", [qualified(table)]).fetchone() in (None, (None,)):
                    continue
                conn.execute(
                    sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(self._name), sql.SQL(qualified(table))
                    )
                )
            conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(self._function))

        self._connections.run(work)
        held = None if self.engaged_at is None else time.monotonic() - self.engaged_at
        self.engaged_at = None
        return held

    def own_options(self) -> dict[str, Any]:
        return {}  # the fence replaces nothing of the tables' own
