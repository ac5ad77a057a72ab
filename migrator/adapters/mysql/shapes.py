"""The shape of the mapped tables that a run's checkpoints were taken against: each table's
columns with their declared types (COLUMN_TYPE), as the snapshot records it and CDC's schema
checks compare against (docs/architecture.md, "Schema changes").

MySQL's data dictionary is not read through a transaction's snapshot: the shape is the one at the
moment of reading, a moment after the snapshot opened (DDL in between is what the binlog's schema
checks are for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql

from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify

_COLUMNS_SQL = (
    "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION"
)


def read_shapes(endpoint: MysqlEndpoint, tables: Sequence[str]) -> dict[str, Any]:
    """Per table found: {"name": "schema.table", "columns": [[name, column type], ...]}."""
    shapes: dict[str, Any] = {}
    conn = endpoint.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()", [])
            row = cur.fetchone()
            current = None if row is None else row[0]
            for table in tables:
                schema, dot, name = table.partition(".")
                where: tuple[str | None, str] = (schema, name) if dot else (current, table)
                cur.execute(_COLUMNS_SQL, list(where))
                columns = [[str(c), str(t)] for c, t in cur.fetchall()]
                if columns:
                    shapes[table] = {"name": f"{where[0]}.{where[1]}", "columns": columns}
    except pymysql.MySQLError as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    finally:
        conn.close()
    return shapes
