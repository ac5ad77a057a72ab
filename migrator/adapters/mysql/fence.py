"""The lock fence of a MySQL/MariaDB source: writes to the mapped tables wait while the switch flips
(docs/architecture.md, "MySQL and MariaDB sources", "Cutover and the switch").

`LOCK TABLES t1 READ, t2 READ, ...` held by a session of its own: every other session may still
read the tables (a READ lock shares with reads), and every write to them waits for the table's
metadata lock. Markers (`_migrator_markers`) and reverse sync's checkpoint are written by other
sessions to tables that are not in the lock list, so they are never held. What bounds the hold:
- taking the locks waits at most `lock_timeout` (`lock_wait_timeout`, whole seconds, at least 1):
  an open transaction that wrote a table holds its metadata lock until it ends, and a long wait
  for it would itself be a freeze; past it the attempt is abandoned (errno 1205);
- the session's `wait_timeout` makes the server end the session, and so release the locks, should
  this process hang or vanish while holding them (three times the longest freeze the plan allows);
- lifting is UNLOCK TABLES; closing the connection does the same.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any

import pymysql

from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify, errno_of
from migrator.adapters.mysql.reading import table_sql
from migrator.errors import FenceNotTaken

LOCK_WAIT_TIMEOUT = 1205
# A session whose statement waits for a table's metadata lock, as the server names its state
# (MariaDB and MySQL alike; the state is a fixed name, not a message).
_WAITING_STATE = "Waiting for table metadata lock"
# Sessions waiting for a metadata lock, other than the fence's own, on the fenced database's tables.
_WAITING_SQL = (
    "SELECT ID FROM information_schema.PROCESSLIST WHERE STATE = %s AND ID <> CONNECTION_ID() AND ID <> %s"
)

__all__ = ["FenceNotTaken", "LockFence"]


class LockFence:
    """WriteFence (adapters/base.py) by LOCK TABLES ... READ on a connection of its own."""

    def __init__(
        self, endpoint: MysqlEndpoint, tables: Sequence[str], *, lock_timeout: float, hold_limit: float
    ) -> None:
        self._endpoint = endpoint
        self._tables = list(dict.fromkeys(tables))
        self._lock_wait_s = max(1, math.ceil(lock_timeout))
        # Well past the longest freeze the plan allows, so never in a healthy cutover.
        self._idle_limit_s = max(1, math.ceil(hold_limit * 3))
        self._conn: Any = None
        self._session_id: int | None = None
        self.engaged_at: float | None = None

    def engage(self) -> float:
        """Take the locks; returns the monotonic time they were held from."""
        conn = self._endpoint.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = %s", [self._lock_wait_s])
                cur.execute("SET SESSION wait_timeout = %s", [self._idle_limit_s])
                cur.execute("SELECT CONNECTION_ID()")
                session = int(cur.fetchone()[0])
                cur.execute(self.describe())
        except pymysql.MySQLError as exc:
            conn.close()
            if errno_of(exc) == LOCK_WAIT_TIMEOUT:
                raise FenceNotTaken(
                    f"{self._endpoint.name}: could not lock {', '.join(self._tables)} within "
                    f"{self._lock_wait_s} s: transactions hold them (error {LOCK_WAIT_TIMEOUT})"
                ) from None
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        self._conn = conn
        self._session_id = session
        self.engaged_at = time.monotonic()
        return self.engaged_at

    def _waiting(self, conn: Any) -> list[int]:
        """Sessions waiting for a metadata lock now. The fence is the only long holder of the
        mapped tables' locks during a cutover, so these are the writes it holds (a DDL waiting
        on another table would be counted too: rare, and harmless for the report)."""
        with conn.cursor() as cur:
            cur.execute(_WAITING_SQL, [_WAITING_STATE, self._session_id])
            return [int(r[0]) for r in cur.fetchall()]

    def waiting_writers(self) -> int:
        """Sessions blocked behind the fence right now (for the report)."""
        if self._conn is None:
            return 0
        try:
            with contextlib.closing(self._endpoint.connect()) as conn:
                return len(self._waiting(conn))
        except pymysql.MySQLError as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def cancel_waiting(self) -> int:
        """Interrupt the statements waiting behind the fence (KILL QUERY: they fail with errno
        1317, query interrupted, which applications retry) until none is left; the count
        cancelled. After the flip they then retry against the new primary instead of committing
        on the old one. KILL of another user's session needs the CONNECTION ADMIN (or SUPER)
        privilege; without it the error says so."""
        if self._conn is None:
            return 0
        cancelled = 0
        try:
            with contextlib.closing(self._endpoint.connect()) as conn:
                for _ in range(50):
                    found = self._waiting(conn)
                    for session in found:
                        with conn.cursor() as cur:
                            try:
                                cur.execute("KILL QUERY %s", [session])
                            except pymysql.MySQLError as exc:
                                if errno_of(exc) != _UNKNOWN_THREAD:  # it finished meanwhile
                                    raise
                    cancelled += len(found)
                    if not found:
                        break
                    time.sleep(0.005)
        except pymysql.MySQLError as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return cancelled

    def lift(self) -> float | None:
        """Release the locks; returns how long they were held, in seconds."""
        if self._conn is None:
            return None
        held = None if self.engaged_at is None else time.monotonic() - self.engaged_at
        try:
            with self._conn.cursor() as cur:
                cur.execute("UNLOCK TABLES")
        except pymysql.MySQLError:
            pass  # the session is gone, and its locks with it
        finally:
            with contextlib.suppress(pymysql.MySQLError):
                self._conn.close()
            self._conn = None
            self._session_id = None
            self.engaged_at = None
        return held

    def describe(self) -> str:
        return "LOCK TABLES " + ", ".join(f"{table_sql(t)} READ" for t in self._tables)

    @property
    def engaged(self) -> bool:
        return self._conn is not None


_UNKNOWN_THREAD = 1094  # ER_NO_SUCH_THREAD
