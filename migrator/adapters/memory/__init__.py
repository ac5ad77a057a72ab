"""In-process source and target adapters with fault injection, for fast tests of the phases
(dlt's dummy destination; docs/architecture.md, "Layers": phases see only adapters/base.py).

A test builds a MemoryDatabase, registers it (`register`), and names it in URLs: memory://NAME
for the source and the target alike. Only single-table collections (no embeds) are supported;
the rest is refused with NotImplementedError or a failed preflight finding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import bson

from migrator.adapters.base import (
    Abandoned,
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
    SourceServerInfo,
    SourceVocabulary,
    TableInfo,
    TargetCollectionInfo,
    TargetInfo,
)
from migrator.adapters.documents import CODEC, id_identity, same
from migrator.adapters.memory import source as src
from migrator.adapters.memory import target as tgt
from migrator.adapters.memory.database import MemoryDatabase, database_at, register, unregister
from migrator.adapters.memory.faults import Crash, Faults
from migrator.adapters.vocabulary import ARRAY_ID_REFUSED, DOCUMENT_ID_ROLE, TargetVocabulary
from migrator.errors import OwnedByAnotherRun
from migrator.findings import Finding, Severity

__all__ = ["Crash", "Faults", "MemoryDatabase", "MemorySource", "MemoryTarget", "register", "unregister"]

_UNCHANGED = object()  # never sent: the memory source always carries whole rows
_PLAN_DEFAULTS = CutoverNeeds()  # a caller that does not say: the plan's defaults
# Words of their own, unlike either real source's, so that a test sees whose words a text uses.
VOCABULARY = SourceVocabulary(
    database="the memory source",
    change_log="change log",
    stream="memory slot",
    publication="table set",
    capture_objects="table set {publication}",
    create_capture="create table set {publication} of {tables} (unless it exists)",
    create_stream="create memory slot {stream} at the current position, exporting a snapshot",
    read_how="the memory change log",
    poll_how="the memory change log, polled ({changes:,} changes a poll)",
    acknowledge="move memory slot {stream} to the applied position",
    marker="a marker transaction in the change log",
    statistics="the memory source's row counts",
    reverse_tag="as origin {origin}",
    reverse_state="reverse sync's checkpoint",
    drop_stream_sql="forget memory slot {stream}",
    drop_capture_sql="forget table set {publication}",
)


class MemorySource:
    """The source side over a MemoryDatabase's tables and change log."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        change_capture=True,
        exported_snapshot=True,
        transactions=True,
        change_streams=False,
        replica_lag=True,  # it has no replicas, and says so (source.py LoadProbe)
    )
    positions: ClassVar[Positions] = src.POSITIONS
    unchanged: ClassVar[object] = _UNCHANGED
    vocabulary: ClassVar[SourceVocabulary] = VOCABULARY

    @staticmethod
    def prerequisites(plan_name: str, tables: Sequence[str], info: SourceInfo | None) -> list[Prerequisite]:
        """A registered memory database has every capability: only the tables must be there."""
        del plan_name
        found = [
            Prerequisite("source.reachable", "the memory source is registered", inspected=info is not None)
        ]
        for table in tables:
            read = info is not None and table in info.tables
            found.append(
                Prerequisite("source.tables", f"`{table}` exists", "it does" if read else None, table, read)
            )
        return found

    def __init__(self, url: str) -> None:
        self.db = database_at(url)

    @property
    def name(self) -> str:
        return f"memory://{self.db.name}"

    def _table_info(self, name: str) -> TableInfo:
        table = self.db.table(name)
        columns = tuple(
            ColumnInfo(c, t, "base", None, None, c not in table.key, None, None, i + 1)
            for i, (c, t) in enumerate(table.columns.items())
        )
        return TableInfo(
            name=name,
            columns=columns,
            primary_key=table.key,
            unique_keys=(table.key,),  # the key is the primary key: unique, NOT NULL
            replica_identity="default",
            identity_columns=table.key,
            foreign_keys=(),
            estimated_rows=len(table.rows),
            total_bytes=100 * len(table.rows),
            owned_by_current_user=True,
            primary_key_name=f"{name.split('.')[-1]}_pkey",
        )

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        self.db.faults.check("inspect")
        with self.db.lock:
            server = SourceServerInfo(
                endpoint=self.name,
                version="memory",
                version_num=0,
                settings={},
                used_replication_slots=len(self.db.slots),
                used_wal_senders=0,
                user="memory",
                is_superuser=True,
                has_replication=True,
                can_create_in_database=True,
                existing_slots=tuple(self.db.slots),
                existing_publications=tuple(self.db.publications),
                database=self.db.name,
            )
            found = {t: self._table_info(t) for t in tables if t in self.db.tables}
            return SourceInfo(server, found, tuple(t for t in tables if t not in self.db.tables))

    def user_tables(self) -> tuple[str, ...]:
        with self.db.lock:
            return tuple(sorted(self.db.tables))

    def row_statistics(self, tables: Sequence[str]) -> dict[str, RowStatistics]:
        """100 bytes a row, as _table_info's total_bytes: the memory source has no statistics."""
        return {t: RowStatistics(100) for t in tables}

    def monitor(self) -> src.Monitor:
        return src.Monitor(self.db)

    def close(self) -> None:
        pass

    def capture_setup(self) -> src.CaptureSetup:
        return src.CaptureSetup(self.db)

    def snapshot_session(self, snapshot_name: str | None) -> src.SnapshotSession:
        return src.SnapshotSession(self.db, snapshot_name)

    def range_reader(self) -> src.RowReader:
        return src.RowReader(self.db, None)

    def export_snapshot(self, slot: str) -> src.SnapshotExport:
        return src.SnapshotExport(self.db, slot)

    def snapshot_reader(self, snapshot_name: str) -> src.RowReader:
        self.db.faults.check("snapshot_reader")
        return src.RowReader(self.db, self.positions.parse(snapshot_name))

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        return {t: {"columns": [[c, k] for c, k in self.db.table(t).columns.items()]} for t in tables}

    def key_lookup(self) -> Any:
        raise NotImplementedError("the memory source has no key lookups (embeds are not supported)")

    def linked_reader(self) -> Any:
        raise NotImplementedError("the memory source has no linked reads (embeds are not supported)")

    def key_text(self, value: Any, type_name: str | None = None) -> str:
        return src.key_text(value)

    def key_order(self, type_name: str) -> KeyOrder | None:
        return src.key_order(type_name)

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        values = [
            r[column] for r in self.db.rows_at(table, self.db.position).values() if r[column] is not None
        ]
        return max((len(str(v).replace("-", "").replace(".", "").strip("0")) for v in values), default=0)

    def values_outside(self, table: str, column: str, allowed: Sequence[Any]) -> int:
        rows = self.db.rows_at(table, self.db.position).values()
        return sum(1 for r in rows if r[column] is not None and r[column] not in allowed)

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        return None

    def describe(self, info: SourceInfo) -> str:
        return f"memory database {self.db.name}"

    def server_findings(self, info: SourceInfo, plan_name: str) -> list[Finding]:
        return []

    def preflight_findings(
        self,
        info: SourceInfo,
        collections: Sequence[MappedCollection],
        read: Mapping[str, set[str]],
        needs: CutoverNeeds = _PLAN_DEFAULTS,
    ) -> list[Finding]:
        """Cutover asks nothing of a memory database: `needs` is not read."""
        return [
            Finding(
                "source.memory_single_table",
                Severity.FAIL,
                c.name,
                "the memory source supports single-table collections only (no embeds)",
            )
            for c in collections
            if len(c.levels) != 1
        ]

    def load_probe(self) -> src.LoadProbe:
        return src.LoadProbe()

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> src.WriteFence:
        return src.WriteFence(self.db, tables)

    def reverse_writer(
        self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = None
    ) -> src.ReverseWriter:
        return src.ReverseWriter()

    def reverse_checkpoint(self, plan_name: str) -> None:
        return None

    def sequence_values(self, tables: Sequence[str]) -> dict[str, dict[str, int]]:
        return {}  # the memory source has no sequences

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        return []  # the memory source has no sequences

    def routing_value(self, table: str, plan_name: str, column: str) -> Any:
        return self.db.records.get(f"routing:{table}:{plan_name}", {}).get(column)

    def write_routing_row(
        self, table: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        self.db.faults.check("write_routing_row")
        # The columns engine/switch.py reads back (the switch of kind postgres).
        self.db.records[f"routing:{table}:{plan_name}"] = {"primary_side": primary, "run_id": run_id}

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> src.ChangeStream:
        return src.ChangeStream(self.db, slot, publication, start)

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> src.SchemaWatch:
        return src.SchemaWatch(self.db)

    @contextlib.contextmanager
    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
        visible: Sequence[Any] = (),  # committed transactions are visible at once here
    ) -> Iterator[list[Iterator[tuple[Any, ...]]]]:
        reader = src.RowReader(self.db, None)
        yield reader.stream_keys(reads, table, key, key_types, [[src.key_text(v) for v in values]])

    def table_rows(
        self,
        table: str,
        columns: Mapping[str, ColumnInfo],
        order: Sequence[str],
        chunk: int,
        visible: Sequence[Any] = (),  # committed transactions are visible at once here
    ) -> Iterator[list[dict[str, Any]]]:
        rows = sorted(self.db.rows_at(table, self.db.position).values(), key=lambda r: [r[c] for c in order])
        for start in range(0, len(rows), chunk):
            yield [{c: r[c] for c in columns} for r in rows[start : start + chunk]]


class MemoryTarget:
    """The target side over a MemoryDatabase's collections and records."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        transactions=True, change_streams=False, routing_documents=True
    )
    # Words of its own, as the memory source's, so that a test sees whose words a text uses.
    vocabulary: ClassVar[TargetVocabulary] = TargetVocabulary(
        reverse_feed="memory change feed",
        transactions_fix="use a memory target with transactions",
        reverse_feed_fix="use a memory target with a change feed",
        database="the memory target",
        collection="memory collection",
        document="memory document",
        becomes="memory documents (`_id` <- {key})",
        value_types="BSON types",
        transactions_requirement="memory transactions: data and checkpoint commit together",
        reverse_feed_requirement="a memory change feed: reverse sync, hence rollback after cutover",
        replica_sets=False,
        rollback_fence="the memory fence refuses the application's writes",
        copy_speed="a figure for tests",
        oversize="memory documents over 16 MB (`phases.snapshot.on_oversize: skip`): re-plan the embedding",
        switch_kinds="file, command, postgres or mongodb",
        key_role=DOCUMENT_ID_ROLE,
        array_key=ARRAY_ID_REFUSED,
        finish_feed="nothing to drop on the memory target: its change feed keeps nothing",
        records="the memory records",
    )
    max_document_bytes = 16 * 1024 * 1024

    def __init__(self, url: str, database: str, **options: Any) -> None:
        self.db = database_at(url)
        self.name = f"memory://{self.db.name}"
        self._database = database

    @property
    def database(self) -> str:
        return self._database

    def inspect(self, collections: Sequence[str]) -> TargetInfo:
        self.db.faults.check("target_inspect")
        with self.db.lock:
            found = {
                c: TargetCollectionInfo(c, c in self.db.collections, len(self.db.collections.get(c, {})))
                for c in collections
            }
        return TargetInfo(self.name, "memory", "memory", True, False, found)

    def close(self) -> None:
        pass

    def reader(self, collection: str) -> tgt.Reader:
        return tgt.Reader(self.db, collection)

    def writer(self, collection: str) -> tgt.Writer:
        return tgt.Writer(self.db, collection)

    def encode_document(self, document: dict[str, Any], collection: str) -> bytes:
        return tgt.encode(document)

    def decode_document(self, raw: bytes) -> dict[str, Any]:
        return bson.decode(raw, codec_options=CODEC)

    def same_document(self, expected: bytes, actual: bytes) -> bool:
        return same(expected, actual)

    def id_identity(self, doc_id: Any) -> Hashable:
        return id_identity(doc_id)

    def describe(self, info: TargetInfo) -> str:
        return f"memory database {self.db.name}"

    def table_statements(self, collections: Sequence[MappedCollection]) -> list[str]:
        return []  # collections need no DDL

    def schema_findings(self, collections: Sequence[MappedCollection]) -> list[Finding]:
        return []  # no DDL, nothing to clash with

    def role_findings(self, collections: Sequence[str], needs: CutoverNeeds) -> list[Finding]:
        return []  # no roles

    def execute_schema(self, statements: Sequence[str]) -> None:
        """Nothing to run."""

    def ownership(self, plan_name: str) -> tgt.Ownership:
        return tgt.Ownership(self.db, plan_name)

    def refusal(self, owner: Any, *, this_run: str | None = None) -> OwnedByAnotherRun:
        return tgt.refusal(owner, self.db.name, this_run=this_run)

    def write_fence(self, collections: Sequence[str], plan_name: str) -> tgt.TargetWriteFence:
        return tgt.TargetWriteFence(self.db, collections)

    def change_stream(self, plan_name: str, collections: Iterable[str], *, max_await_ms: int = 1000) -> Any:
        raise NotImplementedError("the memory target has no change stream (no reverse sync)")

    def checkpoint_record(self, checkpoint_id: str) -> dict[str, Any] | None:
        with self.db.lock:
            stored = self.db.records.get(checkpoint_id)
            return None if stored is None else dict(stored)

    def existing_collections(self) -> dict[str, int]:
        with self.db.lock:
            return {name: len(docs) for name, docs in self.db.collections.items()}

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        return []  # documents have no sequences

    def sequence_values(self, collections: Sequence[str]) -> dict[str, dict[str, int]]:
        return {}  # documents have no sequences

    def routing_document(self, collection: str, plan_name: str) -> Mapping[str, Any] | None:
        return self.db.records.get(f"routing:{collection}:{plan_name}")

    def write_routing_document(
        self, collection: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        self.db.faults.check("write_routing_document")
        self.db.records[f"routing:{collection}:{plan_name}"] = {
            "_id": plan_name,
            "primary": primary,
            "run_id": run_id,
        }

    def applied_position(self, checkpoint_id: str) -> int | None:
        stored = self.checkpoint_record(checkpoint_id)
        return None if stored is None or stored.get("position") is None else int(stored["position"])

    def delete_state(self, state_id: str) -> bool:
        with self.db.lock:
            return self.db.records.pop(state_id, None) is not None

    def drop_reverse_feed(self, plan_name: str) -> list[str]:
        self.db.faults.check("drop_reverse_feed")
        return []

    def empty_collection(self, collection: str) -> int:
        self.db.faults.check("empty_collection")
        with self.db.lock:
            docs = self.db.collections.get(collection, {})
            removed = len(docs)
            docs.clear()
            return removed

    def drop_collection(self, collection: str) -> None:
        self.db.faults.check("drop_collection")
        with self.db.lock:
            self.db.collections.pop(collection, None)

    def applier(
        self,
        checkpoint_id: str,
        *,
        transactions: bool,
        current: Callable[[str, Any], dict[str, Any] | None] | None = None,
        reads: Callable[[Sequence[Any]], Sequence[Any]] | None = None,
    ) -> tgt.Applier:
        return tgt.Applier(self.db, checkpoint_id)

    def end_abandoned(self, plan_name: str, run_id: str) -> Abandoned:
        """Nothing outlives a process here."""
        return Abandoned()
