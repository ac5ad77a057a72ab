"""Consistent reads of a MySQL/MariaDB source: a transaction's snapshot together with the binlog
position it stands at, and the coordinator that splits tables into key ranges.

MySQL cannot hand one snapshot to several connections. Every reader (the coordinator, each copy
worker, each verify read) opens a consistent snapshot of its own and learns where it stands in the
binlog (docs/architecture.md, "MySQL and MariaDB sources", "Parallel copy workers"):

- MariaDB, without any lock: `START TRANSACTION WITH CONSISTENT SNAPSHOT`, then the status
  variables Binlog_snapshot_file / Binlog_snapshot_position, which the server keeps consistent
  with what that transaction sees (its commit order is the binlog's).
- MySQL 8 has no such status: the snapshot opens under a short FLUSH TABLES WITH READ LOCK,
  which stops commits while the snapshot and SHOW MASTER STATUS are taken (mydumper's way); how
  long the lock was held is measured and kept (`SnapshotPoint.lock_seconds`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pymysql

from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify, errno_of
from migrator.errors import SourceError

_STATUS = "SHOW STATUS LIKE 'binlog_snapshot_%%'"
# MySQL 8.4 renamed SHOW MASTER STATUS; 8.0 and MariaDB know the old name only.
_BINLOG_STATUS = ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS")
_PARSE_ERROR = 1064
# How long FLUSH TABLES WITH READ LOCK may wait for running statements (seconds): while it waits,
# the application's writes queue behind it, so a long query makes the snapshot fail (and be
# retried) rather than stall the application.
FLUSH_WAIT_S = 5


def position_text(binlog_file: str, offset: int) -> str:
    """A binlog coordinate as the position text of the contract: '<file number>:<offset>' (the
    file's numeric suffix, six digits). The binlog stream's positions.py owns the format; this
    is the only place here that writes it."""
    number = int(binlog_file.rsplit(".", 1)[-1])
    return f"{number:06d}:{int(offset)}"


def position_value(text: str) -> int:
    """The position text as one monotonic int: file_number << 32 | offset."""
    number, _, offset = text.partition(":")
    return int(number) << 32 | int(offset)


@dataclass(frozen=True)
class SnapshotPoint:
    """Where a consistent snapshot stands: the binlog after the last transaction it sees."""

    position: str  # '<file number>:<offset>', where the binlog resumes after this snapshot
    binlog_file: str
    offset: int
    gtid: str  # @@gtid_binlog_pos (MariaDB) or @@gtid_executed (MySQL); '' when none
    lock_seconds: float | None = None  # MySQL 8: how long FLUSH TABLES WITH READ LOCK was held


def open_snapshot(conn: pymysql.connections.Connection[Any], *, lock: bool = False) -> SnapshotPoint:
    """Start a read-only consistent-snapshot transaction on `conn` and say where it stands.
    `lock`: take the MySQL 8 path (a short global read lock) even where MariaDB's status exists."""
    with conn.cursor() as cur:
        # WITH CONSISTENT SNAPSHOT means something under REPEATABLE READ only: under a server
        # default of READ COMMITTED it is ignored (a warning), and each statement would see newer rows.
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", [])
        if not lock:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", [])
            cur.execute(_STATUS, [])
            status = {str(name).lower(): value for name, value in cur.fetchall()}
            if "binlog_snapshot_file" in status:
                cur.execute("SELECT @@gtid_binlog_pos", [])
                row = cur.fetchone()
                return _point(str(status["binlog_snapshot_file"]), status["binlog_snapshot_position"], row)
            cur.execute("ROLLBACK", [])
        return _locked_snapshot(cur)


def _point(binlog_file: str, offset: Any, gtid_row: Any, lock_seconds: float | None = None) -> SnapshotPoint:
    if not binlog_file:
        raise SourceError(
            "the source writes no binary log: a consistent snapshot has no position for change capture to start from",
            hint="start the server with log_bin, binlog_format=ROW and binlog_row_image=FULL",
        )
    gtid = "" if gtid_row is None or gtid_row[0] is None else str(gtid_row[0])
    return SnapshotPoint(
        position_text(binlog_file, int(offset)), binlog_file, int(offset), gtid, lock_seconds
    )


def _locked_snapshot(cur: Any) -> SnapshotPoint:
    """MySQL 8's way: no commit can land between the snapshot and the binlog position read while
    FLUSH TABLES WITH READ LOCK is held. UNLOCK TABLES releases it without ending the transaction."""
    cur.execute("SELECT @@session.lock_wait_timeout", [])
    row = cur.fetchone()
    cur.execute(f"SET SESSION lock_wait_timeout = {FLUSH_WAIT_S}", [])
    try:
        cur.execute("FLUSH TABLES WITH READ LOCK", [])
        taken = time.monotonic()
    finally:
        # The reader's own statements wait for metadata locks as long as the server says.
        cur.execute("SET SESSION lock_wait_timeout = %s", [int(row[0]) if row else 31536000])
    try:
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", [])
        status = _binlog_status(cur)
        cur.execute("SELECT @@global.gtid_executed" if _is_mysql(cur) else "SELECT @@gtid_binlog_pos", [])
        gtid = cur.fetchone()
    finally:
        cur.execute("UNLOCK TABLES", [])
        held = time.monotonic() - taken
    if status is None:
        return _point("", 0, None)
    return _point(str(status[0]), status[1], gtid, held)


def _binlog_status(cur: Any) -> tuple[Any, ...] | None:
    for statement in _BINLOG_STATUS:
        try:
            cur.execute(statement, [])
        except pymysql.err.ProgrammingError as exc:
            if errno_of(exc) == _PARSE_ERROR:
                continue
            raise
        row = cur.fetchone()
        return None if row is None else tuple(row)
    return None


def _is_mysql(cur: Any) -> bool:
    cur.execute("SELECT @@version", [])
    row = cur.fetchone()
    return row is not None and "mariadb" not in str(row[0]).lower()


@dataclass(frozen=True)
class ExportStart:
    position: str  # where the binlog stream starts: no change after it is in the snapshot
    snapshot_name: str  # the position again: MySQL has no snapshot to name (see snapshot_reader)
    gtid: str
    lock_seconds: float | None


class SnapshotExport:
    """The position change capture starts from. MySQL has no slot and no exportable snapshot: the
    export is one consistent snapshot's binlog position, taken and let go; every reader then opens
    a snapshot at that position or later, which CDC's replay from here makes consistent
    (docs/architecture.md, "MySQL and MariaDB sources")."""

    def __init__(self, endpoint: MysqlEndpoint, *, lock: bool = False) -> None:
        conn = endpoint.connect()
        try:
            point = open_snapshot(conn, lock=lock)
            conn.rollback()
        except pymysql.MySQLError as exc:
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        finally:
            conn.close()
        self.start = ExportStart(point.position, point.position, point.gtid, point.lock_seconds)

    def close(self) -> None:
        pass
