"""The lock fence: source writes to the mapped tables wait while the switch flips.

`LOCK TABLE ... IN EXCLUSIVE MODE` conflicts with every row write (ROW EXCLUSIVE) but not with
plain reads (ACCESS SHARE), so writers queue and readers carry on. The lock is held by an open
transaction on a connection of its own, which bounds every way it could outstay its welcome:
- taking it waits at most `lock_timeout` (writers queue behind a waiting lock request, so a
  long wait would itself be a freeze): past it the attempt is abandoned (SQLSTATE 55P03);
- `idle_in_transaction_session_timeout` makes the server end the session, and so release the
  locks, should this process hang or vanish while holding them;
- lifting is a ROLLBACK (the transaction wrote nothing); closing the connection does the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import table_identifier
from migrator.errors import FenceNotTaken

LOCK_NOT_AVAILABLE = "55P03"

__all__ = ["FenceNotTaken", "LockFence"]  # FenceNotTaken lives in migrator/errors.py (neutral)


class LockFence:
    def __init__(
        self, endpoint: PgEndpoint, tables: Sequence[str], *, lock_timeout: float, hold_limit: float
    ) -> None:
        self._endpoint = endpoint
        self._tables = list(dict.fromkeys(tables))
        self._lock_timeout_ms = max(1, int(lock_timeout * 1000))
        # The server releases the locks by itself if nothing happens on the connection for this
        # long: well past the longest freeze the plan allows, so never in a healthy cutover.
        self._idle_limit_ms = max(1000, int(hold_limit * 1000 * 3))
        self._conn: psycopg.Connection[Any] | None = None
        self.engaged_at: float | None = None

    def engage(self) -> float:
        """Take the locks; returns the monotonic time they were held from."""
        conn = self._endpoint.connect()
        try:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{self._lock_timeout_ms}ms")))
            conn.execute(
                sql.SQL("SET idle_in_transaction_session_timeout = {}").format(
                    sql.Literal(f"{self._idle_limit_ms}ms")
                )
            )
            conn.execute("BEGIN")
            conn.execute(
                sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                    sql.SQL(", ").join(table_identifier(t) for t in self._tables)
                )
            )
        except psycopg.Error as exc:
            conn.close()
            if exc.sqlstate == LOCK_NOT_AVAILABLE:
                raise FenceNotTaken(
                    f"{self._endpoint.name}: could not lock {', '.join(self._tables)} within "
                    f"{self._lock_timeout_ms} ms: transactions hold them (SQLSTATE {exc.sqlstate})"
                ) from None
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        self._conn = conn
        self.engaged_at = time.monotonic()
        return self.engaged_at

    def waiting_writers(self) -> int:
        """Sessions blocked behind the fence right now (for the report)."""
        if self._conn is None:
            return 0
        try:
            pid = self._conn.info.backend_pid
            with self._endpoint.connect() as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [pid]
                ).fetchone()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return int(row[0]) if row else 0

    def cancel_waiting(self) -> int:
        """Cancel the statements waiting behind the fence (they fail with SQLSTATE 57014,
        query_canceled, which applications retry) until none is left; the count cancelled.
        After the flip, this makes them retry against the new primary instead of committing
        on the old one, where they would race the application's next writes."""
        if self._conn is None:
            return 0
        pid = self._conn.info.backend_pid
        cancelled = 0
        try:
            with self._endpoint.connect() as conn:
                for _ in range(50):
                    row = conn.execute(
                        "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity "
                        "WHERE %s = ANY(pg_blocking_pids(pid))",
                        [pid],
                    ).fetchone()
                    found = int(row[0]) if row else 0
                    cancelled += found
                    if not found:
                        break
                    time.sleep(0.005)
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return cancelled

    def lift(self) -> float | None:
        """Release the locks; returns how long they were held, in seconds."""
        if self._conn is None:
            return None
        held = None if self.engaged_at is None else time.monotonic() - self.engaged_at
        try:
            self._conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the session is gone, and its locks with it
        finally:
            self._conn.close()
            self._conn = None
            self.engaged_at = None
        return held

    def describe(self) -> str:
        return f"LOCK TABLE {', '.join(self._tables)} IN EXCLUSIVE MODE"

    @property
    def engaged(self) -> bool:
        return self._conn is not None
