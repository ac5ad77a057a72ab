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
from migrator.adapters.mysql.binlog_link import BinlogEndpoint
from migrator.adapters.mysql.capture import BinlogCapture, SlotStream, confirm
from migrator.adapters.mysql.monitor import BinlogMonitor
from migrator.adapters.mysql.positions import BinlogPositions
from migrator.adapters.mysql.schema_watch import BinlogSchemaWatch
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
        # The binlog section's own endpoint until connection.py's is merged (binlog_link.py).
        self._binlog_endpoint: BinlogEndpoint | None = None

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

    def snapshot_session(self, snapshot_name: str | None) -> Any:
        raise _todo("open a snapshot session")

    def export_snapshot(self, slot: str) -> Any:
        raise _todo("export a snapshot")

    def snapshot_reader(self, snapshot_name: str) -> Any:
        raise _todo("read a snapshot")

    def range_reader(self) -> Any:
        raise _todo("read key ranges")

    def key_lookup(self) -> Any:
        raise _todo("look keys up")

    def linked_reader(self) -> Any:
        raise _todo("read embedded levels")

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        raise _todo("read table shapes")

    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
    ) -> AbstractContextManager[list[Iterator[tuple[Any, ...]]]]:
        raise _todo("read one document's rows")

    def table_rows(
        self, table: str, columns: Mapping[str, ColumnInfo], order: Sequence[str], chunk: int
    ) -> Iterator[list[dict[str, Any]]]:
        raise _todo("read whole tables")

    # ---------------------------------------------------------------------------------------------
    # The binlog: positions, capture setup, the change stream, its monitor and schema checks
    # (positions.py, binlog.py, capture.py, monitor.py, schema_watch.py).

    positions: ClassVar[Positions] = BinlogPositions()

    def _binlog(self) -> BinlogEndpoint:
        if self._binlog_endpoint is None:
            self._binlog_endpoint = BinlogEndpoint(self.url)
        return self._binlog_endpoint

    def capture_setup(self) -> BinlogCapture:
        return BinlogCapture(self._binlog())

    def monitor(self) -> BinlogMonitor:
        return BinlogMonitor(self._binlog())

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> SlotStream:
        """The binlog from `start` (poll_changes: a binlog is always streamed, as a replica reads it)."""
        endpoint = self._binlog()
        confirm(endpoint.name, slot, start)
        return SlotStream(endpoint, start, slot)

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> BinlogSchemaWatch:
        return BinlogSchemaWatch(self._binlog(), publication, source_info, mapped, host, recorded)

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
