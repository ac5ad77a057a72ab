"""MySQL/MariaDB source adapter (docs/architecture.md, "MySQL and MariaDB sources").

Plan, run (snapshot at a binlog position, CDC from the binlog), verify, cutover, reverse sync and
rollback after cutover. Each section below is built in its own modules; this class only hands their objects out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Literal

import pymysql

from migrator.adapters.base import (
    Capabilities,
    ColumnInfo,
    CutoverNeeds,
    JoinHop,
    KeyOrder,
    LargestDocument,
    LevelRead,
    MappedCollection,
    MappedColumns,
    Positions,
    Prerequisite,
    RowStatistics,
    SchemaHost,
    SourceInfo,
    SourceVocabulary,
)
from migrator.adapters.mysql import charsets, keys, routing, run_privileges, server_checks, triggers
from migrator.adapters.mysql.auto_increment import auto_increment_values, raise_auto_increment
from migrator.adapters.mysql.binlog_link import BinlogEndpoint
from migrator.adapters.mysql.capture import BinlogCapture, SlotStream
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.fence import LockFence
from migrator.adapters.mysql.inspect import MysqlInspector
from migrator.adapters.mysql.load import SourceLoad
from migrator.adapters.mysql.lookup import KeyLookup
from migrator.adapters.mysql.monitor import BinlogMonitor
from migrator.adapters.mysql.positions import BinlogPositions
from migrator.adapters.mysql.prerequisites import prerequisites as _prerequisites
from migrator.adapters.mysql.readers import (
    Coordinator,
    LinkedReader,
    RangeReader,
    SnapshotReader,
    document_rows,
)
from migrator.adapters.mysql.reverse_checkpoint import stored_checkpoint
from migrator.adapters.mysql.reverse_writer import ReverseWriter
from migrator.adapters.mysql.schema_watch import BinlogSchemaWatch
from migrator.adapters.mysql.shapes import read_shapes
from migrator.adapters.mysql.snapshot import SnapshotExport
from migrator.adapters.mysql.table_rows import read_rows
from migrator.adapters.mysql.values import ZeroDates
from migrator.adapters.mysql.vocabulary import VOCABULARY
from migrator.adapters.rows import ReverseCheckpoint
from migrator.errors import MigratorError
from migrator.findings import Finding

STATEMENT_LIMIT_S = 60
_UNCHANGED = object()  # a binlog FULL row image carries every value: nothing is ever left out
_PLAN_DEFAULTS = CutoverNeeds()  # a caller that does not say: the plan's defaults, which ask the most


class MysqlSource:
    """A MySQL 8 or MariaDB 10.5+ server as a migration source: binlog in ROW format."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        change_capture=True,
        exported_snapshot=True,
        transactions=True,
        change_streams=False,
        # A PostgreSQL target's values come back through the type table's inverse (write_values.py).
        reverse_from_own_types=True,
    )  # no replica_lag: a primary does not know its replicas' lag (load.py)
    unchanged: ClassVar[object] = _UNCHANGED

    def __init__(self, url: str, *, zero_dates: ZeroDates = "refuse") -> None:
        # The plan's source.zero_dates: whether readers and the binlog deliver a zero date as None
        # (values.py, binlog_values.py) or preflight refuses it.
        self.zero_dates: ZeroDates = zero_dates
        self.endpoint = MysqlEndpoint(url, zero_dates=zero_dates)  # keeps the password out of every text
        self._inspecting: MysqlInspector | None = None  # its own connection, opened on first use
        # The binlog section's view of the same endpoint (binlog_link.py).
        self._binlog_endpoint = BinlogEndpoint(url)

    # ---------------------------------------------------------------------------------------------
    # Connection, inspection and preflight (connection.py, errors.py, inspect.py, types.py,
    # server_checks.py).

    @property
    def name(self) -> str:
        return self.endpoint.name

    @staticmethod
    def prerequisites(plan_name: str, tables: Sequence[str], info: SourceInfo | None) -> list[Prerequisite]:
        """The runbook's checklist of this source (prerequisites.py)."""
        return _prerequisites(plan_name, tables, info)

    def _inspector(self) -> MysqlInspector:
        if self._inspecting is None:
            inspector = MysqlInspector(self.endpoint.connect(), self.endpoint.name, self.endpoint.secrets)
            # A statement time limit bounds every inspection query and scan: preflight must never
            # hang on a production primary.
            inspector.limit_statements(STATEMENT_LIMIT_S)
            self._inspecting = inspector
        return self._inspecting

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        return self._inspector().inspect(tables)

    def user_tables(self) -> tuple[str, ...]:
        from migrator.adapters.mysql import census  # `migrator init` alone reads it

        return census.user_tables(self._inspector())

    def row_statistics(self, tables: Sequence[str]) -> dict[str, RowStatistics]:
        from migrator.adapters.mysql import census

        return census.row_statistics(self._inspector(), tables)

    @staticmethod
    def key_text(value: Any, type_name: str | None = None) -> str:
        """A key value as the text the readers take (keys.py)."""
        return keys.key_text(value, type_name)

    @staticmethod
    def key_order(type_name: str) -> KeyOrder | None:
        """Integers order by value on every target; text keys by collation (None)."""
        return keys.key_order(type_name)

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        """Only decimal columns are scanned (MySQL has no numeric arrays: `array` is never set)."""
        return self._inspector().max_significant_digits(table, column)

    def values_outside(self, table: str, column: str, allowed: Sequence[Any]) -> int:
        return self._inspector().values_outside(table, column, allowed)

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        return self._inspector().largest_document(root, key, root_overhead, paths)

    @staticmethod
    def describe(info: SourceInfo) -> str:
        return server_checks.describe(info)

    @staticmethod
    def server_findings(info: SourceInfo, plan_name: str) -> list[Finding]:
        """Binlog settings, version, retention, privileges (server_checks.py)."""
        return server_checks.server_findings(info, plan_name)

    def preflight_findings(
        self,
        info: SourceInfo,
        collections: Sequence[MappedCollection],
        read: Mapping[str, set[str]],
        needs: CutoverNeeds = _PLAN_DEFAULTS,
    ) -> list[Finding]:
        """Keys, engines, foreign-key actions, tinyint(1), privileges, zero dates in the date columns
        read (one scan per table), triggers, which matter only to reverse sync, and the routing
        table's privileges where the switch writes one (server_checks.py, triggers.py,
        run_privileges.py)."""
        inspector = self._inspector()
        found: list[Finding] = []
        if needs.reverse_sync:
            found = triggers.trigger_findings(
                server_checks.server_of(info),
                list(info.tables),
                triggers.read_triggers(inspector, list(info.tables)),
            )
        zero: dict[str, dict[str, int]] = {}
        for table, names in server_checks.date_columns(info, read).items():
            try:
                zero[table] = inspector.zero_dates(table, names)
            except MigratorError as exc:
                found.append(server_checks.unscanned(table, names, exc.message))
        if needs.reverse_sync and needs.switch is not None:
            found += charsets.charset_findings(inspector, read)
        if needs.routing_table is not None:
            columns = routing.routing_columns(self.endpoint, needs.routing_table)
            found += run_privileges.routing_findings(
                server_checks.server_of(info), needs.routing_table, columns
            )
        return server_checks.preflight_findings(info, collections, read, zero, self.zero_dates, needs) + found

    def close(self) -> None:
        if self._inspecting is not None:
            inspector, self._inspecting = self._inspecting, None
            inspector.close()

    # ---------------------------------------------------------------------------------------------
    # The consistent snapshot and the readers of current rows (snapshot.py, reading.py, values.py).

    def snapshot_session(self, snapshot_name: str | None) -> Coordinator:
        """Plans chunks in a consistent snapshot of its own; `exported` names the export's
        position (or its own, for a fresh session: a resume's re-read)."""
        return Coordinator(self.endpoint, snapshot_name)

    def export_snapshot(self, slot: str) -> SnapshotExport:
        """The binlog position change capture starts from; its snapshot_name is that position.
        "The slot" (a row on the source, the binlog section's capture.py) is recorded first, at
        the binlog's end just before: no commit of migrator's own lands between the export and
        the copy workers' snapshots (each would read at a later position, a re-read)."""
        BinlogCapture(self._binlog()).record_slot_here(slot)
        return SnapshotExport(self.endpoint)

    def snapshot_reader(self, snapshot_name: str) -> SnapshotReader:
        """A copy worker's reader: a consistent snapshot of its own, at or after the export's
        position; `position` says where (docs/architecture.md, "MySQL and MariaDB sources")."""
        return SnapshotReader(self.endpoint, snapshot_name)

    def range_reader(self) -> RangeReader:
        return RangeReader(self.endpoint)

    def key_lookup(self) -> KeyLookup:
        return KeyLookup(self.endpoint)

    def linked_reader(self) -> LinkedReader:
        return LinkedReader(self.endpoint)

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        """The tables' columns and declared types now (the data dictionary has no snapshot)."""
        return read_shapes(self.endpoint, tables)

    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
        visible: Sequence[Any] = (),
    ) -> AbstractContextManager[list[Iterator[tuple[Any, ...]]]]:
        """One document's rows, level by level, read as a snapshot chunk reads them, now, once
        the source shows the transactions `visible` (as the LinkedReader waits for them)."""
        return document_rows(self.endpoint, table, key, key_types, values, reads, visible)

    def table_rows(
        self,
        table: str,
        columns: Mapping[str, ColumnInfo],
        order: Sequence[str],
        chunk: int,
        visible: Sequence[Any] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table` now, in chunks, its values as a change of the row carries them,
        once the snapshot shows the transactions `visible` (where they begin in the binlog)."""
        return read_rows(self.endpoint, table, columns, order, chunk, visible)

    # ---------------------------------------------------------------------------------------------
    # The binlog: positions, capture setup, the change stream, its monitor and schema checks
    # (positions.py, binlog.py, capture.py, monitor.py, schema_watch.py).

    positions: ClassVar[Positions] = BinlogPositions()
    vocabulary: ClassVar[SourceVocabulary] = VOCABULARY

    def _binlog(self) -> BinlogEndpoint:
        return self._binlog_endpoint

    def capture_setup(self) -> BinlogCapture:
        return BinlogCapture(self._binlog())

    def monitor(self) -> BinlogMonitor:
        return BinlogMonitor(self._binlog())

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> SlotStream:
        """The binlog from `start` (poll_changes: a binlog is always streamed, as a replica reads it);
        its acknowledgements move the slot's recorded position (capture.py)."""
        return SlotStream(self._binlog(), start, slot)

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> BinlogSchemaWatch:
        return BinlogSchemaWatch(
            self._binlog(), publication, source_info, mapped, host, recorded, zero_dates=self.zero_dates
        )

    # ---------------------------------------------------------------------------------------------
    # Cutover, reverse sync and the switch (fence.py, reverse_writer.py, routing.py, load.py).

    def load_probe(self) -> SourceLoad:
        return SourceLoad(self.endpoint)

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> LockFence:
        """LOCK TABLES ... READ on a session of its own (fence.py)."""
        return LockFence(self.endpoint, tables, lock_timeout=lock_timeout, hold_limit=hold_limit)

    def reverse_writer(
        self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = 30_000
    ) -> ReverseWriter:
        """Rows back into the source; each transaction marked by its checkpoint row, written first
        (docs/architecture.md, "Reverse sync and echo prevention")."""
        return ReverseWriter(self.endpoint, plan_name, origin, lock_timeout_ms=lock_timeout_ms)

    def reverse_checkpoint(self, plan_name: str) -> ReverseCheckpoint | None:
        return stored_checkpoint(self.endpoint, plan_name)

    def sequence_values(self, tables: Sequence[str]) -> dict[str, dict[str, int]]:
        """The last value each table's AUTO_INCREMENT counter gave out, now (auto_increment.py):
        what a PostgreSQL target's identity is brought past at cutover."""
        try:
            with contextlib.closing(self.endpoint.connect()) as conn:
                return auto_increment_values(conn, tables)
        except pymysql.MySQLError as exc:
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        """Each table's AUTO_INCREMENT past the target's values, never lower (auto_increment.py)."""
        try:
            with contextlib.closing(self.endpoint.connect()) as conn:
                return raise_auto_increment(conn, values, margin)
        except pymysql.MySQLError as exc:
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def routing_value(self, table: str, plan_name: str, column: str) -> Any:
        return routing.routing_value(self.endpoint, table, plan_name, column)

    def write_routing_row(
        self, table: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        routing.write_routing_row(self.endpoint, table, plan_name, primary, run_id)
