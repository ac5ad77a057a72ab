"""MySQL/MariaDB source adapter (docs/architecture.md, "MySQL and MariaDB sources").

Under construction (issue 15): the methods that still raise NotImplementedError are the parts not
built yet; the plan model does not accept `adapter: mysql` until the chain works end to end.
Each section below is built in its own modules; this class only hands their objects out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Literal

from migrator.adapters.base import (
    Capabilities,
    ColumnInfo,
    JoinHop,
    KeyOrder,
    LargestDocument,
    LevelRead,
    MappedCollection,
    MappedColumns,
    Positions,
    SchemaHost,
    SourceInfo,
)
from migrator.adapters.mysql._interim import Endpoint
from migrator.adapters.mysql.lookup import KeyLookup
from migrator.adapters.mysql.readers import (
    Coordinator,
    LinkedReader,
    RangeReader,
    SnapshotReader,
    document_rows,
)
from migrator.adapters.mysql.shapes import read_shapes
from migrator.adapters.mysql.snapshot import SnapshotExport
from migrator.adapters.mysql.table_rows import read_rows
from migrator.adapters.rows import ReverseCheckpoint
from migrator.findings import Finding

_UNCHANGED = object()  # a binlog FULL row image carries every value: nothing is ever left out


def _todo(what: str) -> NotImplementedError:
    return NotImplementedError(f"the MySQL/MariaDB source does not {what} yet (issue 15)")


class MysqlSource:
    """A MySQL 8 or MariaDB 10.5+ server as a migration source: binlog in ROW format."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        change_capture=True, exported_snapshot=True, transactions=True, change_streams=False
    )
    unchanged: ClassVar[object] = _UNCHANGED

    def __init__(self, url: str) -> None:
        self.url = url  # replaced by an endpoint object that keeps the password out of text
        # The readers' connections (snapshot section); H1's MysqlEndpoint replaces it.
        self._reads = Endpoint(url)

    # ---------------------------------------------------------------------------------------------
    # Connection, inspection and preflight (connection.py, errors.py, inspect.py, types.py,
    # server_checks.py).

    @property
    def name(self) -> str:
        raise _todo("name its endpoint")

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        raise _todo("inspect tables")

    def key_text(self, value: Any, type_name: str | None = None) -> str:
        raise _todo("render keys")

    def key_order(self, type_name: str) -> KeyOrder | None:
        raise _todo("order keys")

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        raise _todo("count digits")

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        raise _todo("estimate document sizes")

    def describe(self, info: SourceInfo) -> str:
        raise _todo("describe the server")

    def server_findings(self, info: SourceInfo, plan_name: str) -> list[Finding]:
        raise _todo("check the server")

    def preflight_findings(
        self, info: SourceInfo, collections: Sequence[MappedCollection], read: Mapping[str, set[str]]
    ) -> list[Finding]:
        raise _todo("check table features")

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------------------------------------
    # The consistent snapshot and the readers of current rows (snapshot.py, reading.py, values.py).

    def snapshot_session(self, snapshot_name: str | None) -> Coordinator:
        """Plans chunks in a consistent snapshot of its own; `exported` names the export's
        position (or its own, for a fresh session: a resume's re-read)."""
        return Coordinator(self._reads, snapshot_name)

    def export_snapshot(self, slot: str) -> SnapshotExport:
        """The binlog position change capture starts from (MySQL has no slot: `slot` names
        nothing here); its snapshot_name is that position."""
        return SnapshotExport(self._reads)

    def snapshot_reader(self, snapshot_name: str) -> SnapshotReader:
        """A copy worker's reader: a consistent snapshot of its own, at or after the export's
        position; `position` says where (docs/architecture.md, "MySQL and MariaDB sources")."""
        return SnapshotReader(self._reads, snapshot_name)

    def range_reader(self) -> RangeReader:
        return RangeReader(self._reads)

    def key_lookup(self) -> KeyLookup:
        return KeyLookup(self._reads)

    def linked_reader(self) -> LinkedReader:
        return LinkedReader(self._reads)

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        """The tables' columns and declared types now (the data dictionary has no snapshot)."""
        return read_shapes(self._reads, tables)

    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
    ) -> AbstractContextManager[list[Iterator[tuple[Any, ...]]]]:
        """One document's rows, level by level, read as a snapshot chunk reads them, now."""
        return document_rows(self._reads, table, key, key_types, values, reads)

    def table_rows(
        self, table: str, columns: Mapping[str, ColumnInfo], order: Sequence[str], chunk: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table` now, in chunks, its values as a change of the row carries them."""
        return read_rows(self._reads, table, columns, order, chunk)

    # ---------------------------------------------------------------------------------------------
    # The binlog: positions, capture setup, the change stream, its monitor and schema checks
    # (positions.py, binlog.py, capture.py, monitor.py, schema_watch.py).

    positions: ClassVar[Positions]  # set by positions.py

    def capture_setup(self) -> Any:
        raise _todo("set change capture up")

    def monitor(self) -> Any:
        raise _todo("monitor the binlog")

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> Any:
        raise _todo("stream the binlog")

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> Any:
        raise _todo("watch schema changes")

    # ---------------------------------------------------------------------------------------------
    # Cutover, reverse sync and the switch (fence.py, reverse_writer.py, routing.py, load.py).

    def load_probe(self) -> Any:
        raise _todo("sample load")

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> Any:
        raise _todo("fence writes")

    def reverse_writer(self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = 30_000) -> Any:
        raise _todo("write back")

    def reverse_checkpoint(self, plan_name: str) -> ReverseCheckpoint | None:
        raise _todo("read reverse checkpoints")

    def routing_value(self, table: str, plan_name: str, column: str) -> Any:
        raise _todo("read routing rows")

    def write_routing_row(
        self, table: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        raise _todo("write routing rows")
