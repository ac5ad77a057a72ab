"""Source load of a MySQL/MariaDB server, as throttling reads it (engine/throttle.py).

gh-ost's `max-load` is `Threads_running`; here the same figure is counted from the process list
so that the sampler's own session, idle ones and binlog dumps (replicas, and the migration's own
stream) are left out, as the PostgreSQL source leaves its walsenders out.

Replica lag: a MySQL primary does not know how far its replicas have applied (each replica
reports its own Seconds_Behind_Master), so `replicas` counts the registered replicas (SHOW
SLAVE HOSTS) and `replica_lag_seconds` is None: max_replica_lag cannot be honoured from the
source alone (docs/architecture.md, "MySQL and MariaDB sources", "Cutover and the switch").
"""

# ruff: noqa: S608 (identifiers are quoted with quote()/table_sql() or constants; values are parameters)
from __future__ import annotations

import contextlib
from typing import Any

import pymysql

from migrator.adapters.base import LoadSample
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify, errno_of

_PARSE_ERROR = 1064

# COMMAND values of sessions that are not the application's running statements.
_NOT_RUNNING = ("Sleep", "Daemon", "Binlog Dump", "Binlog Dump GTID", "Killed")
_ACTIVE_SESSIONS = (
    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
    f"AND COMMAND NOT IN ({', '.join(['%s'] * len(_NOT_RUNNING))}) "
    "AND USER NOT IN ('system user', 'event_scheduler')"
)


def _replica_count(cur: Any) -> int:
    """Replicas registered with the source: SHOW SLAVE HOSTS (MariaDB, MySQL before 8.4), or
    SHOW REPLICAS (MySQL 8.4, where the older statement is a syntax error)."""
    try:
        cur.execute("SHOW SLAVE HOSTS")
    except pymysql.err.ProgrammingError as exc:
        if errno_of(exc) != _PARSE_ERROR:
            raise
        cur.execute("SHOW REPLICAS")
    return len(cur.fetchall())


class SourceLoad:
    """Samples the source's load on a connection of its own, opened at the first sample."""

    def __init__(self, endpoint: MysqlEndpoint, *, statement_timeout_s: int = 5) -> None:
        self._endpoint = endpoint
        self._read_timeout = statement_timeout_s
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or not self._conn.open:
            self._conn = self._endpoint.connect(read_timeout=self._read_timeout)
        return self._conn

    def sample(self, *, sessions: bool, replicas: bool) -> LoadSample:
        """Raises a TransientError (or TerminalError) classified like every source error."""
        active: int | None = None
        count: int | None = None
        try:
            conn = self._connection()
            with conn.cursor() as cur:
                if sessions:
                    cur.execute(_ACTIVE_SESSIONS, list(_NOT_RUNNING))
                    row = cur.fetchone()
                    active = int(row[0]) if row is not None else 0
                if replicas:
                    count = _replica_count(cur)
        except pymysql.MySQLError as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return LoadSample(active, count, None)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.MySQLError):
                self._conn.close()
            self._conn = None
