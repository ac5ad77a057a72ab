"""PostgreSQL source adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import psycopg

from migrator.adapters.base import (
    Capabilities,
    ColumnInfo,
    JoinHop,
    LargestDocument,
    LevelRead,
    MappedColumns,
    SchemaHost,
    SourceInfo,
)
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.fence import LockFence
from migrator.adapters.postgres.inspect import PostgresInspector
from migrator.adapters.postgres.lsn import LsnPositions
from migrator.adapters.postgres.pgoutput import UNCHANGED
from migrator.adapters.postgres.reading import key_text
from migrator.adapters.postgres.replication import PollingStream, ReplicationStream, SlotMonitor
from migrator.adapters.postgres.reverse_writer import ReverseWriter
from migrator.adapters.postgres.schema_watch import SchemaWatch
from migrator.adapters.postgres.snapshot import Coordinator, PublicationManager, RangeReader, SnapshotReader
from migrator.adapters.postgres.table_rows import read_rows
from migrator.adapters.postgres.values import ValueParser


class PostgresSource:
    """The source side: inspection now; snapshot and change stream arrive with their phases."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        change_capture=True, exported_snapshot=True, transactions=True, change_streams=False
    )

    positions: ClassVar[LsnPositions] = LsnPositions()

    def __init__(self, url: str, *, statement_timeout_ms: int = 60_000) -> None:
        self.endpoint = PgEndpoint(url)
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    def _inspector(self) -> PostgresInspector:
        if self._conn is None:
            # A statement timeout bounds every inspection query: preflight must never
            # hang on a production primary.
            self._conn = self.endpoint.connect(options=f"-c statement_timeout={self._statement_timeout_ms}")
        return PostgresInspector(self._conn, self.endpoint.name, self.endpoint.secrets)

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        return self._inspector().inspect(tables)

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        return self._inspector().max_significant_digits(table, column, array=array)

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        return self._inspector().largest_document(root, key, root_overhead, paths)

    # The objects phases and operations work through (adapters/base.py): each opens its own
    # connection(s) on the endpoint; the caller closes it.

    def monitor(self) -> SlotMonitor:
        return SlotMonitor(self.endpoint)

    def capture_setup(self) -> PublicationManager:
        """Publications and replication slots: create, check, drop."""
        return PublicationManager(self.endpoint)

    def snapshot_session(self, snapshot_name: str | None) -> Coordinator:
        """The coordinator of a consistent read: at an exported snapshot, or (None) a fresh one."""
        return Coordinator(self.endpoint, snapshot_name)

    def range_reader(self) -> RangeReader:
        """Reads current rows by key ranges or key sets (verify, lookups, dry-run samples)."""
        return RangeReader(self.endpoint)

    def reverse_writer(
        self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = 30_000
    ) -> ReverseWriter:
        """Writes target changes back into the source (reverse sync, rollback after cutover)."""
        return ReverseWriter(self.endpoint, plan_name, origin, lock_timeout_ms=lock_timeout_ms)

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> LockFence:
        """Blocks the application's writes to `tables` while held (cutover's freeze)."""
        return LockFence(self.endpoint, tables, lock_timeout=lock_timeout, hold_limit=hold_limit)

    # The change path (docs/architecture.md, "A change's path").

    unchanged: ClassVar[object] = UNCHANGED

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> ReplicationStream | PollingStream:
        """The changes of `publication` from `slot` after `start`: SQL polling (pg_logical_slot_peek_*,
        `poll_changes` a time) where given, else a replication connection."""
        if poll_changes is not None:
            return PollingStream(self.endpoint, slot, publication, start, batch=poll_changes)
        return ReplicationStream(self.endpoint, slot, publication, start)

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> SchemaWatch:
        """The schema checks of a CDC run (adapters/postgres/schema_watch.py)."""
        return SchemaWatch(self.endpoint, publication, source_info, mapped, host, recorded)

    @contextlib.contextmanager
    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
    ) -> Iterator[list[Iterator[tuple[Any, ...]]]]:
        """One document's rows, level by level, read as the snapshot reads a chunk (a fresh
        snapshot, from the key before it)."""
        texts = [key_text(v) for v in values]
        coordinator = Coordinator(self.endpoint, None)
        try:
            lo = coordinator.key_before(table, key, key_types, texts)
            reader = SnapshotReader(self.endpoint, coordinator.exported)
            try:
                yield reader.stream(list(reads), table, key, key_types, lo, texts)
            finally:
                reader.close()
        finally:
            coordinator.close()

    def table_rows(
        self, table: str, columns: Mapping[str, ColumnInfo], order: Sequence[str], chunk: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table` now, chunk by chunk, parsed from the text CDC receives (values.py)
        so that a row reads as a change of it would (adapters/postgres/table_rows.py)."""
        names = list(columns)
        parser = ValueParser()
        parsers = [parser.for_column(columns[n]) for n in names]
        for raw in read_rows(self.endpoint, table, [(n, columns[n].type_oid) for n in names], order, chunk):
            yield [
                {n: (None if v is None else p(v)) for n, p, v in zip(names, parsers, values, strict=True)}
                for values in raw
            ]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
