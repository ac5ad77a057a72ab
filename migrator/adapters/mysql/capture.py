"""Change capture on a binlog: what stands for PostgreSQL's slot and publication, and the
markers table (docs/architecture.md, "Change capture from the binlog").

A binlog keeps no state for its readers: there is nothing to create server-side for a slot, and
nothing a reader can hold (the server purges files by age, binlog_expire_logs_seconds, whoever
still needs them). So:

- a slot is a row of the migrator-owned table `_migrator_slots` on the source (slots.py): the
  export records it at the binlog's end just before its snapshot, its stream's acknowledgements move it forward,
  drop_slot deletes it. Every process sees it: a resumed run, `migrator status`. It "exists" while
  its row does and the binlog is on and still holds the recorded position (a new run's slot has
  no row). Whether a stream of it is open, any process can tell: the stream holds a named lock
  while open (slots.py);
- the publication is the markers table: ensure_publication creates it (and the slots table),
  drop_publication (rollback) drops both once no slot is left. Which tables a stream decodes is
  the schema checks' (their mapped tables): rows of `_migrator_slots` are never read as changes.

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

from migrator.adapters.mysql import slots
from migrator.adapters.mysql.binlog import BinlogFiles, BinlogStream
from migrator.adapters.mysql.binlog_link import BinlogEndpoint
from migrator.adapters.mysql.positions import unpack
from migrator.errors import MigratorError, SourceError

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

# (endpoint name, slot) -> how many streams of that slot are open in this process.
_active: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def streaming(endpoint: str, slot: str, delta: int) -> None:
    with _lock:
        key = (endpoint, slot)
        _active[key] = _active.get(key, 0) + delta


def active(endpoint: str, slot: str) -> bool:
    with _lock:
        return _active.get((endpoint, slot), 0) > 0


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
        """Create the markers and slots tables; True when this call created the markers table."""
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            existed = endpoint.query(
                conn,
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [MARKERS_TABLE],
            )
            endpoint.query(conn, MARKERS_DDL)
            endpoint.query(conn, slots.SLOTS_DDL)
        finally:
            conn.close()
        return not existed

    def record_slot(self, slot: str, position: int) -> None:
        """Create (or restart) `slot` at `position`."""
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            slots.record(endpoint, conn, slot, position)
        finally:
            conn.close()

    def record_slot_here(self, slot: str) -> int:
        """Create (or restart) `slot` at the binlog's end now, before the export's snapshot is
        taken: a position at or before the export's, which the binlog holds no longer than the
        export's (MysqlSource.export_snapshot). Its stream's first acknowledgement moves it on."""
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            position = slots.binlog_end(endpoint, conn)
            if position is None:
                raise SourceError(
                    f"{endpoint.name}: the source writes no binary log: change capture has nothing to read",
                    hint="start the server with log_bin, binlog_format=ROW and binlog_row_image=FULL",
                )
            slots.record(endpoint, conn, slot, position)
        finally:
            conn.close()
        return position

    def slot_exists(self, slot: str) -> bool:
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            position = slots.position_of(endpoint, conn, slot)
            if position is None or not binlog_on(endpoint, conn):
                return False
            return holds(BinlogFiles(endpoint, conn), position)
        finally:
            conn.close()

    def drop_slot(self, slot: str) -> bool:
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            return slots.delete(endpoint, conn, slot)
        finally:
            conn.close()

    def drop_publication(self, name: str) -> None:
        """Drop the markers and slots tables, unless a slot is left (another run streams)."""
        endpoint = self._endpoint
        conn = endpoint.connect()
        try:
            if slots.remaining(endpoint, conn):
                return
            endpoint.query(conn, DROP_MARKERS)
            endpoint.query(conn, slots.DROP_SLOTS)
        finally:
            conn.close()


class SlotStream(BinlogStream):
    """A binlog stream that records its slot's acknowledged position (slots.py) and counts itself
    active in this process (see the module's docstring)."""

    def __init__(self, endpoint: BinlogEndpoint, start: int, slot: str) -> None:
        recorder = slots.SlotRecorder(endpoint, slot)
        super().__init__(endpoint, start, on_acknowledge=recorder.acknowledge)
        recorder.hold()
        self._recorder = recorder
        self._slot: str | None = slot
        streaming(endpoint.name, slot, 1)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._slot is not None:
                streaming(self._endpoint.name, self._slot, -1)
                self._slot = None
                self._save_last()

    def _save_last(self) -> None:
        try:
            self._recorder.flush()
        except MigratorError:
            # Closing after the source failed: the slot keeps its last saved position, which only
            # lags (safe: slots.py's docstring); the caller sees the stream's own error, if any.
            pass
        finally:
            self._recorder.close()
