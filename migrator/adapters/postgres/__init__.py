"""PostgreSQL source adapter."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import psycopg

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
    SchemaObject,
    SourceInfo,
    SourceVocabulary,
)
from migrator.adapters.postgres import copy_out, server_checks
from migrator.adapters.postgres.checksums import SourceChecksums
from migrator.adapters.postgres.connection import READ_TIMEOUT_S, PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.features import source_features
from migrator.adapters.postgres.fence import LockFence
from migrator.adapters.postgres.inspect import PostgresInspector
from migrator.adapters.postgres.linked import LinkedReader
from migrator.adapters.postgres.load import SourceLoad
from migrator.adapters.postgres.lookup import KeyLookup
from migrator.adapters.postgres.lsn import LsnPositions
from migrator.adapters.postgres.pgoutput import UNCHANGED
from migrator.adapters.postgres.prerequisites import prerequisites as _prerequisites
from migrator.adapters.postgres.reading import key_text
from migrator.adapters.postgres.replication import PollingStream, ReplicationStream, SlotMonitor
from migrator.adapters.postgres.reverse_writer import ReverseWriter, stored_checkpoint
from migrator.adapters.postgres.routing import routing_value, write_routing_row
from migrator.adapters.postgres.run_privileges import run_privilege_findings
from migrator.adapters.postgres.schema_watch import SchemaWatch
from migrator.adapters.postgres.secondary import read_objects
from migrator.adapters.postgres.sequences import sequence_values, set_sequences
from migrator.adapters.postgres.shapes import ShapeReader, shapes_to_json
from migrator.adapters.postgres.snapshot import (
    Coordinator,
    PublicationManager,
    RangeReader,
    SlotExporter,
    SnapshotReader,
)
from migrator.adapters.postgres.table_rows import read_rows
from migrator.adapters.postgres.values import TEXT_FORMAT, ValueParser
from migrator.adapters.postgres.visibility import hidden
from migrator.adapters.postgres.vocabulary import VOCABULARY
from migrator.adapters.rows import ReverseCheckpoint
from migrator.adapters.shown import read_when_shown
from migrator.findings import Finding

if TYPE_CHECKING:
    from migrator.adapters.postgres.census import Census

_PLAN_DEFAULTS = CutoverNeeds()  # a caller that does not say: the plan's defaults
_KEY_ORDERS: dict[str, KeyOrder] = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "uuid": "uuid",
}


class PostgresSource:
    """The source side: inspection now; snapshot and change stream arrive with their phases."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        change_capture=True,
        exported_snapshot=True,
        transactions=True,
        change_streams=False,
        replica_lag=True,  # pg_stat_replication.replay_lag (load.py)
        reverse_from_own_types=True,
    )

    positions: ClassVar[Positions] = LsnPositions()
    unchanged: ClassVar[object] = UNCHANGED
    vocabulary: ClassVar[SourceVocabulary] = VOCABULARY

    @staticmethod
    def prerequisites(plan_name: str, tables: Sequence[str], info: SourceInfo | None) -> list[Prerequisite]:
        """The runbook's checklist of this source (prerequisites.py)."""
        return _prerequisites(plan_name, tables, info)

    def __init__(
        self, url: str, *, statement_timeout_ms: int = 60_000, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        self.endpoint = PgEndpoint(url)
        self._statement_timeout_ms = statement_timeout_ms
        self._read_timeout_s = read_timeout_s
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

    def _census(self) -> Census:
        from migrator.adapters.postgres.census import Census  # `migrator init` alone reads it

        self._inspector()  # opens the inspection connection, statement timeout and all
        assert self._conn is not None
        return Census(self._conn, self.endpoint.name, self.endpoint.secrets)

    def user_tables(self) -> tuple[str, ...]:
        return self._census().user_tables()

    def row_statistics(self, tables: Sequence[str]) -> dict[str, RowStatistics]:
        return self._census().row_statistics(tables)

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        return self._inspector().max_significant_digits(table, column, array=array)

    def values_outside(self, table: str, column: str, allowed: Sequence[Any]) -> int:
        return self._inspector().values_outside(table, column, allowed)

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

    def range_checksums(self) -> SourceChecksums:
        """Key ranges hashed in the server (checksums.py): verify's fast path to a PostgreSQL target."""
        return SourceChecksums(self.endpoint)

    def reverse_writer(
        self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = 30_000
    ) -> ReverseWriter:
        """Writes target changes back into the source (reverse sync, rollback after cutover)."""
        return ReverseWriter(self.endpoint, plan_name, origin, lock_timeout_ms=lock_timeout_ms)

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> LockFence:
        """Blocks the application's writes to `tables` while held (cutover's freeze)."""
        return LockFence(self.endpoint, tables, lock_timeout=lock_timeout, hold_limit=hold_limit)

    def load_probe(self) -> SourceLoad:
        """A sampler of the source's load for throttling (its own connection; close it)."""
        return SourceLoad(self.endpoint)

    def sequence_values(self, tables: Sequence[str]) -> dict[str, dict[str, int]]:
        """The last value each mapped column's sequence gave out (sequences.py), now."""
        with self.endpoint.connect(autocommit=True) as conn:
            try:
                return sequence_values(conn, tables)
            except psycopg.Error as exc:
                raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        """The mapped columns' sequences past the target's values, never back (sequences.py)."""
        with self.endpoint.connect(autocommit=True) as conn:
            try:
                return set_sequences(conn, values, margin)
            except psycopg.Error as exc:
                raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def reverse_checkpoint(self, plan_name: str) -> ReverseCheckpoint | None:
        """Reverse sync's stored checkpoint, read on a plain connection (status, rollback)."""
        try:
            return stored_checkpoint(self.endpoint, plan_name)
        except psycopg.Error as exc:  # closing the connection: typed like every source error
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def routing_value(self, table: str, plan_name: str, column: str) -> Any:
        """`column` of plan `plan_name`'s row in the routing table (the switch of kind postgres)."""
        return routing_value(self.endpoint, table, plan_name, column)

    def write_routing_row(
        self, table: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        """Name `primary` in plan `plan_name`'s routing row, with the run that flipped it."""
        write_routing_row(self.endpoint, table, plan_name, primary, run_id)

    # The change path (docs/architecture.md, "A change's path").

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
        visible: Sequence[Any] = (),
    ) -> Iterator[list[Iterator[tuple[Any, ...]]]]:
        """One document's rows, level by level, read as the snapshot reads a chunk (a fresh
        snapshot, from the key before it), once that snapshot shows the transactions `visible`
        (xids, as the LinkedReader waits for them: linked.py)."""
        texts = [key_text(v) for v in values]
        xids = [int(x) for x in visible if x is not None]
        opened: list[Coordinator] = []

        def attempt() -> tuple[Coordinator, str]:
            opened.append(Coordinator(self.endpoint, None))
            missing = hidden(xids, opened[-1].snapshot)
            return opened[-1], ("" if not missing else "transaction " + ", ".join(map(str, missing)))

        coordinator = read_when_shown(attempt, lambda: opened.pop().close(), self.endpoint.name)
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
        self,
        table: str,
        columns: Mapping[str, ColumnInfo],
        order: Sequence[str],
        chunk: int,
        visible: Sequence[Any] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table` now, chunk by chunk, parsed from the text CDC receives (values.py)
        so that a row reads as a change of it would (adapters/postgres/table_rows.py), once the
        snapshot shows the transactions `visible` (xids)."""
        names = list(columns)
        parser = ValueParser()
        parsers = [parser.for_column(columns[n]) for n in names]
        typed = [(n, columns[n].type_oid) for n in names]
        for raw in read_rows(self.endpoint, table, typed, order, chunk, visible):
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

    # The snapshot's, verify's and the mapping's readers (adapters/base.py protocols), and the
    # key rendering they take, so that no SQL is built outside this adapter.

    def export_snapshot(self, slot: str) -> SlotExporter:
        """Create the replication slot `slot` exporting its snapshot (close once imported)."""
        return SlotExporter(self.endpoint, slot)

    def schema_objects(self, tables: Sequence[str]) -> list[SchemaObject]:
        """The secondary indexes and constraints of `tables`, built on the target after the copy
        (secondary.py)."""
        self._inspector()  # opens the inspection connection (its statement timeout)
        assert self._conn is not None
        try:
            return read_objects(self._conn, tables)
        except psycopg.Error as exc:
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    @staticmethod
    def raw_format(table: str, columns: Sequence[ColumnInfo]) -> str | None:
        """Copy readers stream any columns undecoded in PostgreSQL's binary COPY format
        (copy_out.py); whether the target takes it for these columns is the target's call."""
        return copy_out.BINARY

    @staticmethod
    def change_text_format(table: str, columns: Sequence[ColumnInfo]) -> str | None:
        """pgoutput sends every value in its type's text output, in the replication session's
        settings (values.py), which the change stream can hand over undecoded (SourceText); whether
        the target takes it for these columns is the target's call (docs/architecture.md,
        "Undecoded change values")."""
        return TEXT_FORMAT

    def snapshot_reader(self, snapshot_name: str) -> SnapshotReader:
        """A copy worker's reader inside the exported snapshot `snapshot_name`."""
        return SnapshotReader(self.endpoint, snapshot_name, read_timeout_s=self._read_timeout_s)

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        """The tables' shape (as JSON) that CDC checks DDL against, read in `snapshot_name` (or now)."""
        shapes = ShapeReader(self.endpoint, snapshot_name)
        try:
            return shapes_to_json(shapes.read(tables))
        finally:
            shapes.close()

    def key_lookup(self) -> KeyLookup:
        """Key lookups on committed data (an autocommit connection of its own)."""
        return KeyLookup(self.endpoint)

    def linked_reader(self) -> LinkedReader:
        """Reads embedded levels under given link values (fills SourceRead placeholders)."""
        return LinkedReader(self.endpoint)

    @staticmethod
    def key_text(value: Any, type_name: str | None = None) -> str:
        """A key value as the text the readers take (reading.key_text)."""
        return key_text(value, type_name)

    @staticmethod
    def key_order(type_name: str) -> KeyOrder | None:
        """Integers order by value, uuid bytewise (as BSON orders binary subtype 4); text keys
        order by collation, which no target shares."""
        return _KEY_ORDERS.get(type_name)

    # Preflight's PostgreSQL checks (server_checks.py, features.py): what the generic preflight
    # (phases/preflight.py) asks the source for.

    @staticmethod
    def describe(info: SourceInfo) -> str:
        """The server as preflight's 'reachable' finding names it."""
        return server_checks.describe(info)

    @staticmethod
    def server_findings(info: SourceInfo, plan_name: str) -> list[Finding]:
        """Logical decoding, version, privileges, capacity, the run's slot and publication, ownership."""
        return server_checks.server_findings(info, plan_name)

    @staticmethod
    def preflight_findings(
        info: SourceInfo,
        collections: Sequence[MappedCollection],
        read: Mapping[str, set[str]],
        needs: CutoverNeeds = _PLAN_DEFAULTS,
    ) -> list[Finding]:
        """The source-feature matrix: how each mapped table's schema features meet logical
        replication; triggers, which matter only to reverse sync, only where the plan keeps it;
        the privileges reverse sync and rollback after cutover write with (run_privileges.py)."""
        return source_features(
            info, collections, read, reverse_sync=needs.reverse_sync
        ) + run_privilege_findings(info, read, needs)
