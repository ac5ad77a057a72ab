"""Facts about a binlog stream's slot for lag and the binlog budget, and the markers that CDC
and cutover wait for (docs/architecture.md, "Change capture from the binlog")."""

from __future__ import annotations

import contextlib
from typing import Any

import pymysql

from migrator.adapters.mysql.binlog import BinlogFiles
from migrator.adapters.mysql.binlog_link import BinlogEndpoint, classify, errno_of
from migrator.adapters.mysql.capture import (
    DELETE_EARLIER_MARKERS,
    INSERT_MARKER,
    active,
    binlog_on,
    holds,
)
from migrator.adapters.mysql.positions import BinlogPositions, of_file
from migrator.adapters.mysql.slots import held, position_of
from migrator.errors import SourceError

_PARSE_ERROR = 1064


def current_position(endpoint: BinlogEndpoint, conn: Any) -> int | None:
    """Where the server writes its binlog now; None when the binlog is off. SHOW MASTER STATUS is
    MariaDB's and MySQL 8.0's; MySQL 8.4 knows only SHOW BINARY LOG STATUS."""
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SHOW MASTER STATUS")
            except pymysql.err.ProgrammingError as exc:
                if errno_of(exc) != _PARSE_ERROR:
                    raise
                cur.execute("SHOW BINARY LOG STATUS")
            row = cur.fetchone()
    except pymysql.Error as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    return None if row is None else of_file(str(row[0]), int(row[1]))


class BinlogMonitor:
    """CaptureMonitor (adapters/base.py): its own connection, opened when first asked."""

    def __init__(self, endpoint: BinlogEndpoint) -> None:
        self._endpoint = endpoint
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or not self._conn.open:
            self._conn = self._endpoint.connect()
        return self._conn

    def state(self, slot: str) -> dict[str, Any] | None:
        """retained_bytes: binlog bytes from the slot's recorded position (its row in
        `_migrator_slots`, capture.py) to the end (SHOW BINARY LOGS); None when the slot has no
        row, or the binlog is off or no longer holds that position."""
        endpoint = self._endpoint
        try:
            conn = self._connection()
            if not binlog_on(endpoint, conn):
                return None
            position = position_of(endpoint, conn, slot)
            if position is None:
                return None
            files = BinlogFiles(endpoint, conn)
            current = current_position(endpoint, conn)
            streaming = active(endpoint.name, slot) or held(endpoint, conn, slot)
        except BaseException:
            self.close()
            raise
        if current is None or not holds(files, position):
            return None
        return {
            "retained_bytes": files.retained_from(position),
            "confirmed": BinlogPositions.text(position),
            "active": streaming,
            "current": BinlogPositions.text(current),
        }

    def unapplied_changes(self, slot: str, publication: str, applied: str, upto: str) -> int | None:
        """Not known without reading the binlog (no peek as a slot has): None, wait for the stream."""
        return None

    def heartbeat(self, prefix: str, content: str) -> str:
        """Commit a marker row (capture.py) and return a position the stream reaches only with a
        transaction committed after this call began: one past the binlog's end read before the
        insert. Every transaction that ends after that position committed after it was read, so
        once CDC has applied up to it, everything committed before this call is applied; the
        marker's own transaction ends after it, so it is reached (PostgreSQL returns the message's
        position, inside its transaction, to the same effect)."""
        endpoint = self._endpoint
        try:
            conn = self._connection()
            before = current_position(endpoint, conn)
            if before is None:
                # No position to wait for: nothing would ever reach the marker.
                raise SourceError(
                    f"{endpoint.name}: the source writes no binary log: change capture has no stream to follow",
                    hint="start the server with log_bin, binlog_format=ROW and binlog_row_image=FULL",
                )
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(INSERT_MARKER, [prefix, content.encode()])
                cur.execute(DELETE_EARLIER_MARKERS)
                cur.execute("COMMIT")
        except pymysql.Error as exc:
            self.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        except BaseException:
            self.close()
            raise
        return BinlogPositions.text(before + 1)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a connection that may already be gone
                self._conn.close()
            self._conn = None
