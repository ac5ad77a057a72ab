"""The binlog section's view of the source endpoint (connection.py's MysqlEndpoint, errors.py's
classification by errno): a query helper and the settings the binlog reader connects with."""

from __future__ import annotations

from typing import Any

import pymysql

from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import BINLOG_UNREADABLE, classify, errno_of

__all__ = ["BINLOG_UNAVAILABLE", "BinlogEndpoint", "classify", "errno_of"]

BINLOG_UNAVAILABLE = BINLOG_UNREADABLE  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, or no binlog position
SAME_REPLICA_ID = 4052  # ER_SLAVE_SAME_ID (MariaDB): a dump with this server_id is still connected


class BinlogEndpoint(MysqlEndpoint):
    """MysqlEndpoint with what the binlog section asks of it."""

    def query(self, conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.Error as exc:
            raise classify(exc, self.name, self.secrets) from None

    def settings(self, **options: Any) -> dict[str, Any]:
        """mysql-replication's connection_settings (the password included: never show them)."""
        return self.connect_kwargs(**options)
