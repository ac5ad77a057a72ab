"""Change capture on a binlog: what stands for PostgreSQL's slot and publication, and the
markers table (docs/architecture.md, "Change capture from the binlog").

A binlog keeps no state for its readers: there is nothing to create server-side for a slot, and
nothing a reader can hold (the server purges files by age, binlog_expire_logs_seconds, whoever
still needs them). So:

- a slot is a name under which this process remembers the position its stream last acknowledged
  (what `state` reports as confirmed and counts retained bytes from); it "exists" once a stream of
  it started in this process, while the binlog is on and still holds that position. A new run's
  slot does not exist (the snapshot phase and `run` ask), and a resume in another process does
  not know its position: slot_exists then says False (docs/architecture.md, "Change capture from
  the binlog": a persisted slot record, or the position passed in, is the open part);
- the publication is the markers table: ensure_publication creates it, drop_publication (rollback)
  drops it. Which tables a stream decodes is the schema checks' (their mapped tables).

Markers. PostgreSQL writes a marker into the WAL with pg_logical_emit_message; a binlog has no
such message a client can write (a user variable or a comment is not logged in ROW format). A row
inserted into a table migrator owns is logged in commit order like any change, needs only INSERT
on that table, and works the same on MySQL and MariaDB: the stream turns each row written there
into a Marker, never into a Change. Each heartbeat deletes the rows before its own, so the table
holds one row.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Any

from migrator.adapters.mysql.binlog import BinlogFiles, BinlogStream
from migrator.adapters.mysql.binlog_link import BinlogEndpoint
from migrator.adapters.mysql.positions import unpack

MARKERS_TABLE = "_migrator_markers"
# The statements name the table literally (it is migrator's, never the user's).
INSERT_MARKER = "INSERT INTO `_migrator_markers` (prefix, content) VALUES (%s, %s)"
DELETE_EARLIER_MARKERS = "DELETE FROM `_migrator_markers` WHERE id < LAST_INSERT_ID()"
DROP_MARKERS = "DROP TABLE IF EXISTS `_migrator_markers`"
MARKERS_DDL = (
    "CREATE TABLE IF NOT EXISTS `_migrator_markers` ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " prefix VARCHAR(255) NOT NULL,"
    " content LONGBLOB NOT NULL,"
    " written TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)

# (endpoint name, slot) -> the position last acknowledged by a stream of that slot in this process.
_confirmed: dict[tuple[str, str], int] = {}
_active: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def confirm(endpoint: str, slot: str, position: int) -> None:
    with _lock:
        key = (endpoint, slot)
        _confirmed[key] = max(position, _confirmed.get(key, 0))


def confirmed(endpoint: str, slot: str) -> int | None:
    with _lock:
        return _confirmed.get((endpoint, slot))


def streaming(endpoint: str, slot: str, delta: int) -> None:
    with _lock:
        key = (endpoint, slot)
        _active[key] = _active.get(key, 0) + delta


def active(endpoint: str, slot: str) -> bool:
    with _lock:
        return _active.get((endpoint, slot), 0) > 0


def forget(endpoint: str, slot: str) -> bool:
    with _lock:
        return _confirmed.pop((endpoint, slot), None) is not None


def markers_table(endpoint: BinlogEndpoint) -> str:
    """The markers table as schema.table (in the source URL's database)."""
    return f"{endpoint.database}.{MARKERS_TABLE}"


def binlog_on(endpoint: BinlogEndpoint, conn: Any) -> bool:
    rows = endpoint.query(conn, "SELECT @@log_bin")
    return bool(rows and int(rows[0][0]))


def holds(files: BinlogFiles, position: int) -> bool:
    """Whether the binlog still holds `position` (its file was not purged)."""
    number, offset = unpack(position)
    size = files.size(number)
    return size is not None and offset <= size


class BinlogCapture:
    """CaptureSetup (adapters/base.py) of a binlog source (see the module's docstring)."""

    def __init__(self, endpoint: BinlogEndpoint) -> None:
        self._endpoint = endpoint

    def ensure_publication(self, name: str, tables: Mapping[str, Collection[str] | None]) -> bool:
        """Create the markers table; True when this call created it."""
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            existed = endpoint.query(
                conn,
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [MARKERS_TABLE],
            )
            endpoint.query(conn, MARKERS_DDL)
        finally:
            conn.close()
        return not existed

    def slot_exists(self, slot: str) -> bool:
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            if not binlog_on(endpoint, conn):
                return False
            position = confirmed(endpoint.name, slot)
            return position is not None and holds(BinlogFiles(endpoint, conn), position)
        finally:
            conn.close()

    def drop_slot(self, slot: str) -> bool:
        return forget(self._endpoint.name, slot)

    def drop_publication(self, name: str) -> None:
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            endpoint.query(conn, DROP_MARKERS)
        finally:
            conn.close()


class SlotStream(BinlogStream):
    """A binlog stream that keeps its slot's confirmed position and activity (see the module's
    docstring)."""

    def __init__(self, endpoint: BinlogEndpoint, start: int, slot: str) -> None:
        super().__init__(
            endpoint, start, on_acknowledge=lambda position: confirm(endpoint.name, slot, position)
        )
        self._slot: str | None = slot
        streaming(endpoint.name, slot, 1)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._slot is not None:
                streaming(self._endpoint.name, self._slot, -1)
                self._slot = None
