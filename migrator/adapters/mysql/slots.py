"""A binlog "slot" recorded on the source: a row of the migrator-owned table `_migrator_slots`
(docs/architecture.md, "Change capture from the binlog").

A binlog keeps no state for its readers, so the slot is migrator's own record: the export writes
the row at the snapshot's position, the stream's acknowledgements move it forward, rollback deletes
it. Any process (a resumed run, `migrator status`) reads the same row.

Each update is itself a row event in the binlog (the stream decodes only the mapped tables and the
markers table, so it never sees these rows as changes). Two rules keep those writes few:

- at most one update every SAVE_EVERY_S: the recorded position may lag what was acknowledged,
  which is safe, since it serves only "does the binlog still hold it" and retained bytes (an older
  position is held no longer than a newer one) and a resume starts from the target's checkpoint;
- no update for a position at or before the binlog's end read right after the last update: on an
  idle source the stream acknowledges the slot's own update, which would otherwise write again
  and again, one row event every few seconds, forever.

Whether a stream of the slot is open, seen from any process: the recorder's connection holds a
named lock (GET_LOCK, server-wide, not logged in the binlog) while its stream is open; the server
releases it when the connection ends, also when the process is killed. `held` asks IS_USED_LOCK.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from typing import Any

import pymysql

from migrator.adapters.mysql.binlog_link import BinlogEndpoint, classify, errno_of
from migrator.adapters.mysql.positions import of_file

SLOTS_TABLE = "_migrator_slots"
SAVE_EVERY_S = 2.0
NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE: no slot was ever recorded in this database
_PARSE_ERROR = 1064
# The statements name the table literally (it is migrator's, never the user's).
SLOTS_DDL = (
    "CREATE TABLE IF NOT EXISTS `_migrator_slots` ("
    " name VARCHAR(255) NOT NULL PRIMARY KEY,"
    " position BIGINT NOT NULL,"
    " updated TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
DROP_SLOTS = "DROP TABLE IF EXISTS `_migrator_slots`"
_RECORD = (
    "INSERT INTO `_migrator_slots` (name, position) VALUES (%s, %s) "
    "ON DUPLICATE KEY UPDATE position = VALUES(position), updated = CURRENT_TIMESTAMP(6)"
)
# GREATEST: a slower writer (a stream closing late) never moves a slot back.
_ADVANCE = (
    "UPDATE `_migrator_slots` SET position = GREATEST(position, %s), updated = CURRENT_TIMESTAMP(6) "
    "WHERE name = %s"
)
_READ = "SELECT position FROM `_migrator_slots` WHERE name = %s"
_DELETE = "DELETE FROM `_migrator_slots` WHERE name = %s"
_COUNT = "SELECT COUNT(*) FROM `_migrator_slots`"


def _execute(endpoint: BinlogEndpoint, conn: Any, sql: str, args: Any = None) -> tuple[int, list[Any]]:
    """rowcount and rows; a missing slots table raises pymysql's error (the callers decide)."""
    try:
        with conn.cursor() as cur:
            count = cur.execute(sql, args)
            return count, list(cur.fetchall())
    except pymysql.err.ProgrammingError as exc:
        if errno_of(exc) == NO_SUCH_TABLE:
            raise
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    except pymysql.Error as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None


def _absent(exc: pymysql.Error) -> bool:
    return errno_of(exc) == NO_SUCH_TABLE


def record(endpoint: BinlogEndpoint, conn: Any, slot: str, position: int) -> None:
    """Create (or restart) `slot` at `position`; creates the table if rollback or nobody made it."""
    _execute(endpoint, conn, SLOTS_DDL)
    _execute(endpoint, conn, _RECORD, [slot, position])


def position_of(endpoint: BinlogEndpoint, conn: Any, slot: str) -> int | None:
    """The slot's recorded position; None when it has no row (or the table is gone)."""
    try:
        _, rows = _execute(endpoint, conn, _READ, [slot])
    except pymysql.Error as exc:
        if _absent(exc):
            return None
        raise
    return int(rows[0][0]) if rows else None


def delete(endpoint: BinlogEndpoint, conn: Any, slot: str) -> bool:
    try:
        count, _ = _execute(endpoint, conn, _DELETE, [slot])
    except pymysql.Error as exc:
        if _absent(exc):
            return False
        raise
    return count > 0


def remaining(endpoint: BinlogEndpoint, conn: Any) -> int:
    """How many slots are recorded (0 when the table is gone)."""
    try:
        _, rows = _execute(endpoint, conn, _COUNT)
    except pymysql.Error as exc:
        if _absent(exc):
            return 0
        raise
    return int(rows[0][0])


def binlog_end(endpoint: BinlogEndpoint, conn: Any) -> int | None:
    """Where the server writes its binlog now (SHOW BINARY LOG STATUS on MySQL 8.4)."""
    for statement in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                row = cur.fetchone()
        except pymysql.err.ProgrammingError as exc:
            if errno_of(exc) == _PARSE_ERROR:
                continue
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        except pymysql.Error as exc:
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        return None if row is None else of_file(str(row[0]), int(row[1]))
    return None


def lock_name(endpoint: BinlogEndpoint, slot: str) -> str:
    """The named lock of a slot: server-wide, so the database is in it; hashed, since a lock's
    name has at most 64 characters."""
    digest = hashlib.sha1(f"{endpoint.database}.{slot}".encode(), usedforsecurity=False).hexdigest()
    return f"migrator_slot_{digest}"


def held(endpoint: BinlogEndpoint, conn: Any, slot: str) -> bool:
    """Whether a stream of `slot` is open, in any process (its recorder holds the lock)."""
    _, rows = _execute(endpoint, conn, "SELECT IS_USED_LOCK(%s)", [lock_name(endpoint, slot)])
    return bool(rows and rows[0][0] is not None)


class SlotRecorder:
    """A stream's acknowledgements written to its slot's row (see the module's docstring); its own
    connection, opened at the first write."""

    def __init__(self, endpoint: BinlogEndpoint, slot: str, *, every_s: float = SAVE_EVERY_S) -> None:
        self._endpoint = endpoint
        self._slot = slot
        self._every_s = every_s
        self._conn: Any = None
        self._pending: int | None = None
        self._saved_at = float("-inf")
        self._quiet_until = -1  # the binlog's end right after the last update

    def _connection(self) -> Any:
        if self._conn is None or not self._conn.open:
            self._conn = self._endpoint.connect()
        return self._conn

    def hold(self) -> None:
        """Take the slot's named lock for as long as this recorder's connection lives (see the
        module's docstring). Not taken (another stream of the slot holds it): the slot is
        reported active all the same, which is the truth."""
        try:
            _execute(
                self._endpoint,
                self._connection(),
                "SELECT GET_LOCK(%s, 0)",
                [lock_name(self._endpoint, self._slot)],
            )
        except BaseException:
            self.close()
            raise

    def acknowledge(self, position: int) -> None:
        if position <= self._quiet_until:
            return
        self._pending = position
        if time.monotonic() - self._saved_at >= self._every_s:
            self.flush()

    def flush(self) -> None:
        position, self._pending = self._pending, None
        if position is None:
            return
        endpoint = self._endpoint
        try:
            conn = self._connection()
            _execute(endpoint, conn, _ADVANCE, [position, self._slot])
            end = binlog_end(endpoint, conn)
        except pymysql.Error as exc:  # the table is gone: rollback dropped the slot meanwhile
            self._pending = position
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        except BaseException:
            self._pending = position
            self.close()
            raise
        self._saved_at = time.monotonic()
        self._quiet_until = max(self._quiet_until, end or -1)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a connection that may already be gone
                self._conn.close()
            self._conn = None
