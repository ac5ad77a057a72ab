"""Source load, as throttling reads it (engine/throttle.py): active sessions and replica lag.

Read-only, one small connection, two catalog queries. gh-ost's `max-load` (Threads_running)
becomes the count of active client sessions in pg_stat_activity, migrator's own left out (so
that its copy never throttles itself); its replica lag becomes pg_stat_replication.replay_lag
of the source's physical standbys (logical walsenders, the migration's own stream among them,
are left out: their "lag" is how far a consumer has applied, not how far a replica is behind).
"""

from __future__ import annotations

from typing import Any

import psycopg

from migrator.adapters.base import LoadSample
from migrator.adapters.postgres.connection import APPLICATION_NAME, PgEndpoint
from migrator.adapters.postgres.errors import classify

_ACTIVE_SESSIONS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE state = 'active' AND backend_type = 'client backend'
      AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM %s
"""
# A physical walsender has no database; a logical one (replication=database) has one.
_REPLICA_LAG = """
    SELECT count(*), max(extract(epoch FROM r.replay_lag))::float8
    FROM pg_stat_replication r JOIN pg_stat_activity a ON a.pid = r.pid
    WHERE a.datname IS NULL
"""


class SourceLoad:
    """Samples the source's load on a connection of its own, opened at the first sample."""

    def __init__(self, endpoint: PgEndpoint, *, statement_timeout_ms: int = 5_000) -> None:
        self._endpoint = endpoint
        self._timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._endpoint.connect(options=f"-c statement_timeout={self._timeout_ms}")
        return self._conn

    def sample(self, *, sessions: bool, replicas: bool) -> LoadSample:
        """Raises a TransientError (or TerminalError) classified like every source error."""
        active: int | None = None
        count: int | None = None
        lag: float | None = None
        try:
            conn = self._connection()
            if sessions:
                row = conn.execute(_ACTIVE_SESSIONS, [APPLICATION_NAME]).fetchone()
                active = int(row[0]) if row is not None else 0
            if replicas:
                row = conn.execute(_REPLICA_LAG).fetchone()
                count = int(row[0]) if row is not None else 0
                if row is not None and count:
                    lag = float(row[1] or 0.0)
        except psycopg.Error as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return LoadSample(active, count, lag)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
