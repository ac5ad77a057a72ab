"""The routing table of the switch on a MySQL/MariaDB source (engine/switch.py; the plan calls its
kind `postgres`: a table in the source database): one row per plan naming the primary side and
the run that flipped it. The table is named as one identifier in the source URL's database.

A table made without the `run_id` column gets it on the next flip (ALTER only then: it locks the
table that applications read).
"""

# ruff: noqa: S608 (identifiers are quoted with quote()/table_sql() or constants; values are parameters)
from __future__ import annotations

import contextlib
from typing import Any, Literal

import pymysql

from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.reading import quote

_HAS_COLUMN = (
    "SELECT 1 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
    "AND COLUMN_NAME = %s"
)


def routing_columns(endpoint: MysqlEndpoint, table: str) -> frozenset[str]:
    """The columns of `table` as information_schema shows them to the user: none where the table
    is not there, or the user holds no privilege on it (preflight's check of the routing
    privileges, run_privileges.py)."""
    try:
        with contextlib.closing(endpoint.connect()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = %s",
                [table],
            )
            return frozenset(str(r[0]) for r in cur.fetchall())
    except pymysql.MySQLError as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None


def routing_value(endpoint: MysqlEndpoint, table: str, plan: str, column: str) -> Any:
    """Plan `plan`'s `column` in `table`; None where the table, the column or the row is not there."""
    try:
        with contextlib.closing(endpoint.connect()) as conn, conn.cursor() as cur:
            cur.execute(_HAS_COLUMN, [table, column])
            if cur.fetchone() is None:
                return None
            cur.execute(f"SELECT {quote(column)} FROM {quote(table)} WHERE plan = %s", [plan])
            found = cur.fetchone()
    except pymysql.MySQLError as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    return None if found is None else found[0]


def write_routing_row(
    endpoint: MysqlEndpoint, table: str, plan: str, primary: Literal["source", "target"], run_id: str
) -> None:
    """Name `primary` in plan `plan`'s row of `table` (created when missing), with `run_id`."""
    name = quote(table)
    try:
        with contextlib.closing(endpoint.connect()) as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {name} (plan VARCHAR(255) NOT NULL PRIMARY KEY, "
                "primary_side VARCHAR(6) NOT NULL CHECK (primary_side IN ('source', 'target')), "
                "updated_at TIMESTAMP(6) NOT NULL, run_id VARCHAR(255)) "
                "ENGINE=InnoDB CHARACTER SET utf8mb4"
            )
            cur.execute(_HAS_COLUMN, [table, "run_id"])
            if cur.fetchone() is None:
                cur.execute(f"ALTER TABLE {name} ADD COLUMN run_id VARCHAR(255)")
            cur.execute(
                f"INSERT INTO {name} (plan, primary_side, updated_at, run_id) "
                "VALUES (%s, %s, CURRENT_TIMESTAMP(6), %s) ON DUPLICATE KEY UPDATE "
                "primary_side = VALUES(primary_side), updated_at = VALUES(updated_at), run_id = VALUES(run_id)",
                [plan, primary, run_id],
            )
    except pymysql.MySQLError as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
