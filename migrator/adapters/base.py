"""What adapters promise: the protocols of a source and a target and of the objects they hand
out. The one module code above adapters/ imports from (docs/architecture.md, "Layers"): it also
names what inspection reports (inspection.py), the mapping as adapters see it (mapped.py) and the
change events (change_events.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from migrator.adapters.change_events import (
    CaptureStream,
    Change,
    ChangeApplier,
    ChangeEvent,
    ChangeEvents,
    ChangeSchema,
    Idle,
    Keepalive,
    MappedColumns,
    Marker,
    Received,
    Replayed,
    SchemaHost,
    TableDescribed,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
)
from migrator.adapters.inspection import (
    Capabilities,
    ColumnInfo,
    CutoverNeeds,
    ForeignKey,
    IdentityIndex,
    JoinHop,
    KeyOrder,
    LargestDocument,
    LeafInfo,
    RowStatistics,
    SequenceGrant,
    SourceInfo,
    SourceServerInfo,
    TableInfo,
    TargetCollectionInfo,
    TargetInfo,
    TriggerInfo,
)
from migrator.adapters.mapped import (
    MappedCollection,
    MappedDocument,
    MappedEmbed,
    MappedField,
    MappedLevel,
)
from migrator.adapters.post_copy import (
    KeysAfterCopyTarget,
    PostCopy,
    PostCopySource,
    PostCopyStatement,
    PostCopyTarget,
    SchemaObject,
)
from migrator.adapters.raw_chunks import (
    RawChunkReader,
    RawChunkSource,
    RawChunkTarget,
    RawColumn,
    RawWriter,
)
from migrator.adapters.source_text import SourceText, SourceTextSource, SourceTextTarget, source_text_reader
from migrator.adapters.vocabulary import Prerequisite, SourceVocabulary, TargetVocabulary
from migrator.findings import Finding

if TYPE_CHECKING:
    from migrator.adapters.rows import DocumentRows, ReverseCheckpoint
    from migrator.errors import OwnedByAnotherRun


class Positions(Protocol):
    """A source's change positions (a WAL LSN, a binlog file and offset, ...). The engine
    orders, stores and compares them as integers; only the adapter writes and reads their
    text form, which is what users see (docs/architecture.md, "Layers")."""

    def text(self, value: int) -> str: ...

    def bytes_between(self, older: int, newer: int) -> int | None:
        """How many bytes of change log lie between two positions (lag in bytes), or None where
        the positions alone cannot tell (binlog positions in different files)."""
        ...

    def parse(self, text: str) -> int: ...


class CaptureMonitor(Protocol):
    """Facts about a change-capture slot for lag, the WAL budget and markers, read without
    consuming anything; `heartbeat` writes a marker into the change stream and returns its
    position's text (Positions.parse reads it)."""

    def state(self, slot: str) -> dict[str, Any] | None:
        """retained_bytes, confirmed (position text), active, current (position text); None if gone."""
        ...

    def unapplied_changes(self, slot: str, publication: str, applied: str, upto: str) -> int | None: ...

    def heartbeat(self, prefix: str, content: str) -> str: ...

    def close(self) -> None: ...


class SourceAdapter(Protocol):
    """What every phase, operation and the mapping may ask of a source. Each method returns an
    object the adapter owns; nothing outside adapters/ names its classes."""

    capabilities: ClassVar[Capabilities]
    positions: ClassVar[Positions]
    # What a change carries for a value the source did not send (an unchanged TOASTed value):
    # leave that field out of the update (docs/architecture.md, "Unchanged TOASTed values").
    unchanged: ClassVar[object]
    # The words users read for this source's change capture (vocabulary.py).
    vocabulary: ClassVar[SourceVocabulary]

    @property
    def name(self) -> str:
        """The endpoint as users may see it: host, port, database; never a password."""
        ...

    def inspect(self, tables: Sequence[str]) -> SourceInfo: ...

    def user_tables(self) -> tuple[str, ...]:
        """Every table of the source's database a plan could map (qualified as TableInfo.name), not
        migrator's own: what `migrator init` proposes a plan for."""
        ...

    def row_statistics(self, tables: Sequence[str]) -> dict[str, RowStatistics]:
        """Each table's average row width and most common values (inspection.py RowStatistics),
        read from the server's statistics: what `migrator init` estimates document sizes from."""
        ...

    @staticmethod
    def prerequisites(plan_name: str, tables: Sequence[str], info: SourceInfo | None) -> list[Prerequisite]:
        """What the source must offer, in the runbook's checklist (vocabulary.py): its server's
        settings and grants, then each of `tables`; `info` None when it was not inspected."""
        ...

    def monitor(self) -> CaptureMonitor:
        """A new monitor of the change-capture slots (its own connection; close it)."""
        ...

    def close(self) -> None: ...

    def capture_setup(self) -> CaptureSetup:
        """Publications and replication slots: create, check, drop."""
        ...

    def snapshot_session(self, snapshot_name: str | None) -> SnapshotSession:
        """The coordinator of a consistent read: at an exported snapshot, or (None) a fresh one."""
        ...

    def range_reader(self) -> KeyReader:
        """Reads current rows by key ranges or key sets (verify, lookups, dry-run samples)."""
        ...

    def export_snapshot(self, slot: str) -> SnapshotExport:
        """Create the change-capture slot `slot` exporting its snapshot (close once imported)."""
        ...

    def snapshot_reader(self, snapshot_name: str) -> RowStreams:
        """A copy worker's reader inside the exported snapshot `snapshot_name`."""
        ...

    def table_shapes(self, tables: Sequence[str], snapshot_name: str | None = None) -> dict[str, Any]:
        """The tables' shape (as JSON) that schema-change detection compares against, read in
        `snapshot_name` (or now)."""
        ...

    def key_lookup(self) -> KeyLookup:
        """Key lookups: root keys of given rows, and _id values typed from their text."""
        ...

    def linked_reader(self) -> LinkedReader:
        """Reads embedded levels under given link values (fills SourceRead placeholders)."""
        ...

    def key_text(self, value: Any, type_name: str | None = None) -> str:
        """A key value as the text the readers take (of the key's type `type_name`)."""
        ...

    def key_order(self, type_name: str) -> KeyOrder | None:
        """How a key column of this type orders, where that order is one every target can
        share (verify then reads the target by key range); None where it depends on the
        source (a collation) and the target is read by the source's keys instead."""
        ...

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        """The most significant digits a numeric column holds today (a full scan)."""
        ...

    def values_outside(self, table: str, column: str, allowed: Sequence[Any]) -> int:
        """How many rows of `table` hold a value of `column` other than `allowed` and NULL today (a
        full scan): what a cast of the plan's `types` could not carry."""
        ...

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        """The root key whose document (with its embedded rows) would be the largest, estimated."""
        ...

    def describe(self, info: SourceInfo) -> str:
        """The server as preflight's 'reachable' finding names it (product, version, user)."""
        ...

    def server_findings(self, info: SourceInfo, plan_name: str) -> list[Finding]:
        """Preflight's checks of the server and the tables' ownership (before mapping resolution)."""
        ...

    def preflight_findings(
        self,
        info: SourceInfo,
        collections: Sequence[MappedCollection],
        read: Mapping[str, set[str]],
        needs: CutoverNeeds = ...,
    ) -> list[Finding]:
        """How each mapped table's features meet change capture; `read`: columns read per table;
        `needs`: what cutover asks of the source (privileges and features it alone needs)."""
        ...

    # operations, cutover, reverse sync, the switch (issue 13)

    def load_probe(self) -> LoadProbe:
        """A sampler of the source's load for throttling (its own connection; close it)."""
        ...

    def write_fence(self, tables: Sequence[str], *, lock_timeout: float, hold_limit: float) -> WriteFence:
        """Blocks the application's writes to `tables` while held (cutover's freeze)."""
        ...

    def reverse_writer(
        self, plan_name: str, origin: str, *, lock_timeout_ms: int | None = ...
    ) -> ReverseWriter:
        """Writes target changes back into the source (reverse sync, rollback after cutover)."""
        ...

    def reverse_checkpoint(self, plan_name: str) -> ReverseCheckpoint | None:
        """Reverse sync's stored checkpoint, read on a plain connection (status, rollback)."""
        ...

    def sequence_values(self, tables: Sequence[str]) -> dict[str, dict[str, int]]:
        """table -> column -> the last value the column's sequence gave out, now (cutover brings
        a target's sequences past it; docs/architecture.md, "Sequences at cutover")."""
        ...

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        """Bring the source's sequences past the target's last values (`values`: source table ->
        source column -> value) by `margin` steps, never back, at rollback after cutover under the
        target's fence (docs/architecture.md, "Sequences at rollback after cutover"); what was
        done, a line each."""
        ...

    def routing_value(self, table: str, plan_name: str, column: str) -> Any:
        """`column` of plan `plan_name`'s row in the routing table (the switch of kind postgres);
        None where the table, the column or the row is not there."""
        ...

    def write_routing_row(
        self, table: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        """Name `primary` in plan `plan_name`'s routing row, with the run that flipped it."""
        ...

    # The change path (docs/architecture.md, "A change's path").

    def change_stream(
        self, slot: str, publication: str, start: int, *, poll_changes: int | None = None
    ) -> CaptureStream:
        """The changes of `publication` from `slot` after position `start` (polling `poll_changes`
        a time where given, else a streaming connection); close it."""
        ...

    def schema_watch(
        self,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
    ) -> ChangeSchema:
        """The schema checks of a CDC run (and the relations its streams are read with); close it."""
        ...

    def rows_at_key(
        self,
        table: str,
        key: Sequence[str],
        key_types: Sequence[str],
        values: Sequence[Any],
        reads: Sequence[LevelRead],
        visible: Sequence[Any] = (),
    ) -> AbstractContextManager[list[Iterator[tuple[Any, ...]]]]:
        """The rows of each level of one document (root key `values`) as a snapshot chunk reads
        them, now, once the source shows the transactions `visible` (as LinkedReader.begin)."""
        ...

    def table_rows(
        self,
        table: str,
        columns: Mapping[str, ColumnInfo],
        order: Sequence[str],
        chunk: int,
        visible: Sequence[Any] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table` now, in chunks, its values as a change of the row carries them,
        read once the source shows the transactions `visible` (as LinkedReader.begin)."""
        ...


class TargetAdapter(Protocol):
    """What every phase, operation and the mapping may ask of a target."""

    capabilities: ClassVar[Capabilities]
    # The words of plan's target checks for this target (vocabulary.py).
    vocabulary: ClassVar[TargetVocabulary]
    name: str

    def inspect(self, collections: Sequence[str]) -> TargetInfo: ...

    def close(self) -> None: ...

    @property
    def database(self) -> str:
        """Where the collections live (findings name a collection as database.collection)."""
        ...

    @property
    def max_document_bytes(self) -> int:
        """The largest document the target stores (an encoded document above it is refused)."""
        ...

    def reader(self, collection: str) -> CollectionReader:
        """Reads (and repairs) `collection`'s documents by _id."""
        ...

    def writer(self, collection: str) -> CollectionWriter:
        """Writes snapshot batches of encoded documents into `collection`, idempotently."""
        ...

    def encode_document(self, document: dict[str, Any], collection: str) -> bytes:
        """A document as the target stores it (what readers give back, and writers take)."""
        ...

    def decode_document(self, raw: bytes) -> dict[str, Any]:
        """A document `encode_document` encoded (dry-run's examples, verify's explanations)."""
        ...

    def same_document(self, expected: bytes, actual: bytes) -> bool:
        """Whether two encoded documents hold the same fields with the same values of the same
        types, in any field order: what verify calls equal."""
        ...

    def id_identity(self, doc_id: Any) -> Hashable:
        """What the target's unique key compares: two _ids with equal identities are one
        document there (dry-run's key collisions)."""
        ...

    def describe(self, info: TargetInfo) -> str:
        """The server as preflight's 'reachable' finding names it (product, version, topology)."""
        ...

    def table_statements(self, collections: Sequence[MappedCollection]) -> list[str]:
        """The DDL that creates the collections' target tables before the copy (shown by `plan`
        and `run --dry-run`); [] for a target that needs none (docs/architecture.md, "Tables as
        collections")."""
        ...

    def schema_findings(self, collections: Sequence[MappedCollection]) -> list[Finding]:
        """What the target already holds that `table_statements`' DDL would clash with (`plan`
        shows these); [] for a target that needs no DDL."""
        ...

    def role_findings(self, collections: Sequence[str], needs: CutoverNeeds) -> list[Finding]:
        """What the plan's role may not do on the target that the plan needs (`target.privileges`,
        each FAIL with the statement that grants it); [] where the target checks none."""
        ...

    def execute_schema(self, statements: Sequence[str]) -> None:
        """Run `table_statements`' DDL."""
        ...

    # operations, cutover, reverse sync, the switch (issue 13)

    def ownership(self, plan_name: str) -> Ownership:
        """The plan's ownership record in the target (which run owns the data)."""
        ...

    def refusal(self, owner: OwnerRecord, *, this_run: str | None = None) -> OwnedByAnotherRun:
        """The error that names the owning run (`owner`, as `ownership().read()` gave it)."""
        ...

    def write_fence(self, collections: Sequence[str], plan_name: str) -> TargetWriteFence:
        """Refuses the application's writes on `collections` (rollback after cutover)."""
        ...

    def change_stream(
        self, plan_name: str, collections: Iterable[str], *, max_await_ms: int = ...
    ) -> TargetChanges:
        """The change stream of `collections` for plan `plan_name`'s reverse sync."""
        ...

    def set_sequences(self, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
        """Bring the target's sequences past the source's last values (`values`: target table ->
        target column -> value) by `margin` steps, at cutover under the fence; what was done, a
        line each ([] for a target without sequences)."""
        ...

    def sequence_values(self, collections: Sequence[str]) -> dict[str, dict[str, int]]:
        """collection -> field -> the last value the column's sequence gave out, now (rollback
        after cutover brings the source's past it); {} for a target without sequences."""
        ...

    def checkpoint_record(self, checkpoint_id: str) -> dict[str, Any] | None:
        """CDC's checkpoint record written with the data, or None before CDC wrote one."""
        ...

    def existing_collections(self) -> dict[str, int]:
        """Collections of the target database and their estimated document counts."""
        ...

    def routing_document(self, collection: str, plan_name: str) -> Mapping[str, Any] | None:
        """Plan `plan_name`'s routing document (the switch of kind mongodb), or None."""
        ...

    def write_routing_document(
        self, collection: str, plan_name: str, primary: Literal["source", "target"], run_id: str
    ) -> None:
        """Name `primary` in plan `plan_name`'s routing document, with the run that flipped it."""
        ...

    def applied_position(self, checkpoint_id: str) -> int | None:
        """The source position CDC has applied up to (its checkpoint written with the data)."""
        ...

    def delete_state(self, state_id: str) -> bool:
        """Remove one of migrator's state documents (a checkpoint); True if it existed."""
        ...

    def drop_reverse_feed(self, plan_name: str) -> list[str]:
        """Drop what plan `plan_name`'s reverse sync reads the target through and what tags
        forward CDC's writes there (a PostgreSQL target: the plan's slot, publication and forward
        replication origin), at `migrator finish`; what was dropped, named ([] where the target
        keeps nothing of the kind, or it was gone)."""
        ...

    def empty_collection(self, collection: str) -> int:
        """Delete every document of `collection` and the indexes migrator created on it."""
        ...

    def drop_collection(self, collection: str) -> None:
        """Drop `collection`."""
        ...

    def applier(
        self,
        checkpoint_id: str,
        *,
        transactions: bool,
        current: Callable[[str, Any], dict[str, Any] | None] | None = None,
        reads: Callable[[Sequence[SourceRead]], Sequence[Any]] | None = None,
    ) -> ChangeApplier:
        """CDC's writer: batches with their checkpoint `checkpoint_id` (in one transaction where
        `transactions`); `current` reads a document as the source holds it, `reads` fills in
        SourceReads."""
        ...

    def end_abandoned(self, plan_name: str, run_id: str) -> Abandoned:
        """End what an earlier process of run `run_id` left open on the target and the server
        keeps after that process is gone (MongoDB: its writers' sessions, whose open transaction
        holds its documents until transactionLifetimeLimitSeconds), and from now on record what
        this process's appliers open, for the next one (docs/architecture.md, "Transactions a
        killed process left open"). Called only by a process that holds the run's lease and
        whose run the ownership record names: a live owner's sessions are never ended."""
        ...


@dataclass(frozen=True)
class Abandoned:
    """What `TargetAdapter.end_abandoned` did: `ended` sessions of an earlier process ended (their
    open transactions aborted); `refused`, when the server would not end them, says why and
    what the next writes may wait for (a notice), else ''."""

    ended: int = 0
    refused: str = ""


@dataclass(frozen=True)
class LevelRead:
    """What to read for one level of a document: the root table (empty path) or an embedded
    table reached from the root through `path`. Rows come ordered by the root key, then
    `order_by`; non-root rows start with the root key's values.

    Elements are ordered the way MongoDB's `$push ... $sort` orders them (binary string
    comparison, nulls first), so that CDC can keep arrays in the snapshot's order."""

    path: tuple[JoinHop, ...]
    columns: tuple[ColumnInfo, ...]
    order_by: tuple[ColumnInfo, ...]
    # json/jsonb columns of the root level read as their exact text (json_values.JsonText), for a
    # target that holds them in a column of the very same type (verify on a PostgreSQL target).
    json_text: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class SourceRead:
    """A value a change does not carry: the content of an embed for the given link values (the
    referenced row of a lookup, a parent's children), filled in from the source when the batch is
    applied, by the reader the phase gives the applier (docs/architecture.md, "Embedded content
    read from the source"). `spec` says what to read and is opaque to target adapters.

    `only_if`: read only when an earlier write of the same source transaction carries one of these
    tags (WriteOp.tags); otherwise the value is `otherwise`, and nothing is read."""

    spec: Any
    values: tuple[Any, ...]
    literal: bool = False  # inside an aggregation pipeline: the content is wrapped in $literal
    only_if: tuple[Hashable, ...] | None = None
    otherwise: Any = None


@dataclass(slots=True)
class WriteOp:
    """One target write, in target-neutral terms; the target adapter executes it. Not frozen
    (nothing changes one once made, dataclasses.replace makes another): CDC builds one for every
    change, and a frozen dataclass of nine fields took 1.8 us to build against 0.4 us.

    kinds: 'update' (update_one), 'update_many', 'replace' (replace_one, `update` the document),
    'delete' (delete_one), 'delete_many',
    'rekey' (move a whole document to a new _id: needs a read, see the applier),
    'merge_element' (change an element whose unchanged TOASTed values must be kept,
    possibly moving it to another parent: needs a read).

    `reads`: the SourceRead placeholders inside `update` or `extra`, which the applier fills in
    before it writes. `tags`: what this write tells later writes of the same source transaction
    (a child placed under a parent's link values, a parent removed), for SourceRead.only_if.
    """

    collection: str
    kind: str
    filter: dict[str, Any]
    update: Any = None
    array_filters: tuple[dict[str, Any], ...] = ()
    upsert: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    reads: tuple[SourceRead, ...] = ()
    tags: tuple[Hashable, ...] = ()


# -- what operations, cutover and reverse sync ask of the adapters (issue 13) --------------------
# Declared here so that operations/, phases/cutover.py, phases/reverse.py and engine/switch.py
# type against them and never name an adapter's classes (docs/architecture.md, "Layers").


class LoadProbe(Protocol):
    """Samples the source's load for throttling (engine/throttle.py's LoadSampler)."""

    def sample(self, *, sessions: bool, replicas: bool) -> Any: ...

    def close(self) -> None: ...


class WriteFence(Protocol):
    """Holds the application's writes while the switch flips (cutover); lifting is always safe."""

    def engage(self) -> float: ...

    def describe(self) -> str: ...

    def waiting_writers(self) -> int: ...

    def cancel_waiting(self) -> int: ...

    def lift(self) -> float | None: ...


class TargetWriteFence(Protocol):
    """Refuses the application's writes on the target (rollback after cutover). `lift(before)`
    restores the options recorded before the fence; `own_options()` reads them now, without a
    fence's own."""

    def engage(self) -> object: ...

    def describe(self) -> str: ...

    def lift(self, before: Mapping[str, Mapping[str, Any]]) -> float | None: ...

    def own_options(self) -> dict[str, Any]: ...


class ReverseWriter(Protocol):
    """Writes target changes back into the source with reverse sync's checkpoint, tagged so that
    the forward stream skips them."""

    def setup(self) -> None: ...

    def checkpoint(self) -> ReverseCheckpoint | None: ...

    def forget(self, *, drop_empty: bool = False) -> bool:
        """Remove the plan's checkpoint and echo tag (rollback, finish); True if a checkpoint
        existed. `drop_empty` (finish): also the checkpoint table when no plan's is left in it."""
        ...

    def apply(self, documents: Sequence[DocumentRows], checkpoint: ReverseCheckpoint | None) -> int: ...

    def close(self) -> None: ...


class OwnerRecord(Protocol):
    """Which run owns a plan's data in a target (docs/architecture.md, "One owner")."""

    @property
    def plan(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def slot(self) -> str: ...
    @property
    def facts(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


class Ownership(Protocol):
    """A plan's ownership record in the target: read, claimed by a run, released by it."""

    def read(self) -> OwnerRecord | None: ...

    def claim(
        self,
        *,
        run_id: str,
        started_at: str,
        host: str,
        state: str,
        slot: str,
        publication: str,
        replaceable: Callable[[OwnerRecord], bool] = ...,
    ) -> OwnerRecord: ...

    def release(self, run_id: str, records: list[str]) -> str: ...

    def note(self, run_id: str, facts: Mapping[str, Any]) -> None:
        """Add facts (what the run created) to run `run_id`'s record."""
        ...

    def slot(self) -> str:
        """The replication slot of the run that owns the plan's data (or the plan-named one)."""
        ...


class ChangedDocument(Protocol):
    """A document a target change names, by collection and `_id`; `key` is its exact identity."""

    @property
    def collection(self) -> str: ...
    @property
    def document_id(self) -> Any: ...
    @property
    def key(self) -> bytes: ...


class ChangeGroup(Protocol):
    """The changes of one target transaction (or one change outside a transaction). `echo`:
    forward CDC's own; `token`: where a stream resumed after it reads on; `cluster_time`: an
    ordered integer (the target's `cluster_seconds`/`cluster_iso` show it)."""

    @property
    def documents(self) -> Sequence[ChangedDocument]: ...
    @property
    def echo(self) -> bool: ...
    @property
    def events(self) -> int: ...
    @property
    def token(self) -> Mapping[str, Any] | None: ...
    @property
    def cluster_time(self) -> int | None: ...


class ChangeStep(Protocol):
    """One read of an open stream: the groups it completed, and whether it had nothing more."""

    @property
    def idle(self) -> bool: ...
    @property
    def transactions(self) -> Sequence[ChangeGroup]: ...


class OpenChanges(Protocol):
    """An open target change stream, read one step at a time."""

    marker_seen: int

    @property
    def in_transaction(self) -> bool: ...
    @property
    def position(self) -> Mapping[str, Any] | None: ...

    def next(self) -> ChangeStep: ...

    def confirm(self, token: Mapping[str, Any]) -> None:
        """Everything up to `token` is durable on the source (reverse sync's checkpoint): a feed
        that retains the target's log for it (a PostgreSQL target's slot) may free it."""
        ...


class TargetChanges(Protocol):
    """The target's change stream for reverse sync (docs/architecture.md, "Reverse sync")."""

    def position_now(self) -> Mapping[str, Any]: ...

    def write_marker(self) -> int: ...

    def follow(self, after: Mapping[str, Any]) -> AbstractContextManager[OpenChanges]: ...

    def current(self, documents: Sequence[ChangedDocument]) -> dict[bytes, Mapping[str, Any]]: ...

    def cluster_seconds(self, cluster_time: int) -> int: ...

    def cluster_iso(self, cluster_time: int | None) -> str | None: ...


@dataclass(frozen=True)
class WriteResult:
    """What a CollectionWriter did with a batch: documents inserted, and replaced (the _id existed)."""

    inserted: int
    replaced: int


class CollectionWriter(Protocol):
    """A target collection's snapshot writer: (_id, encoded document) pairs, idempotently."""

    def write(self, batch: Sequence[tuple[Any, bytes]]) -> WriteResult: ...


class CollectionReader(Protocol):
    """A target collection's documents by _id, encoded (verify, lookups, repair)."""

    def fetch(self, ids: Sequence[Any]) -> list[tuple[Any, bytes]]: ...

    def fetch_range(self, order: KeyOrder, lo: str | None, hi: str | None) -> list[tuple[Any, bytes]]:
        """The documents with lo < _id <= hi (None: unbounded), the bounds being the source's
        key text of a single key column ordered as `order` says."""
        ...

    def ids(
        self,
        batch: int = ...,
        sample: int | None = None,
        outside: KeyOrder | None = None,
        after: Any = None,
    ) -> Iterator[list[Any]]:
        """Every _id in batches, in _id order, after `after`; a random `sample` of them; or,
        with `outside`, only those a range read in that order can never see (another type)."""
        ...

    def find_ids(self, query: Mapping[str, Any]) -> list[Any]: ...

    def count(self) -> int: ...

    def replace(self, doc_id: Any, raw: bytes) -> None: ...

    def delete(self, doc_id: Any) -> None: ...


@dataclass(frozen=True)
class RangeDigest:
    """A key range's rows hashed in the server: how many, their digest, and (on a source) the
    change position the read stood at."""

    rows: int
    digest: str
    position: str | None = None


class RangeChecksums(Protocol):
    """Hashes of a table's rows per key range, computed by the server, so that verify compares
    row by row only the ranges whose hashes differ (docs/architecture.md, "Verify by
    checksums"). One connection, used by one thread at a time; close it."""

    def forms(self, table: str, columns: Sequence[str], key: Sequence[str]) -> Sequence[str]:
        """The ways this side can hash `columns` of `table` (`key` its key columns, among
        `columns`), the fastest first: each names the hash, the server's family, its encoding
        and text settings, each column's declared type. Two sides hashing in one form hash equal
        rows to equal digests; none where this side cannot hash the table."""
        ...

    def checksum(
        self,
        form: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> RangeDigest:
        """The rows of `table` with lo < key <= hi (the source's key text; None: unbounded), each
        hashed over `columns` in that order, in `form` (one of `forms`), now (on a source: in one
        consistent read, whose position the digest carries)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class OffersRangeChecksums(Protocol):
    """An optional capability of a source and a target: verify uses it where both offer it
    and offer a common form for a table (isinstance tells)."""

    def range_checksums(self) -> RangeChecksums:
        """A new checksum session (its own connection where it needs one; close it)."""
        ...


@runtime_checkable
class FollowsAddedColumns(Protocol):
    """An optional capability of a target whose collections have a fixed set of fields (a
    PostgreSQL target's tables): CDC hands it the collections of a table whose mapping changed
    (a column added on the source that the mapping takes), before any change carrying the column
    is applied; it adds what its tables lack and returns the statements it ran
    (docs/architecture.md, "A column added while CDC follows")."""

    def add_columns(self, collections: Sequence[MappedCollection]) -> list[str]: ...


class CaptureSetup(Protocol):
    """The source's change-capture objects of a run (a publication, a slot): create, check, drop."""

    def ensure_publication(self, name: str, tables: Mapping[str, Collection[str] | None]) -> bool: ...

    def slot_exists(self, slot: str) -> bool: ...

    def drop_slot(self, slot: str) -> bool: ...

    def drop_publication(self, name: str) -> None: ...


class SnapshotStart(Protocol):
    """Where a created slot starts: its consistent point and the snapshot it exported."""

    @property
    def position(self) -> str: ...

    @property
    def snapshot_name(self) -> str: ...


class SnapshotExport(Protocol):
    """A created slot holding its exported snapshot until a SnapshotSession imported it."""

    @property
    def start(self) -> SnapshotStart: ...

    def close(self) -> None: ...


class SnapshotSession(Protocol):
    """A consistent read that copy workers share (`exported`) and that splits tables into key ranges."""

    @property
    def exported(self) -> str: ...

    @property
    def position(self) -> str:
        """Where a fresh snapshot stands among the change positions (text)."""
        ...

    def key_boundaries(
        self, table: str, key: Sequence[str], key_types: Sequence[str], every: int
    ) -> list[list[str]]: ...

    def close(self) -> None: ...


class RowStreams(Protocol):
    """Streams a collection's levels (LevelRead) for the root key range (lo, hi], in the reader's
    current read: one row stream per level, each ordered by the root key."""

    def stream(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> list[Iterator[tuple[Any, ...]]]: ...

    @property
    def read_position(self) -> str | None:
        """Where this reader reads, where that is not the exported snapshot (a source whose
        readers cannot share one: docs/architecture.md, "MySQL and MariaDB sources"); None when
        it reads the exported snapshot itself."""
        ...

    def close(self) -> None: ...


class KeyReader(RowStreams, Protocol):
    """Reads current rows, each read in a short consistent transaction of its own (begin/end)."""

    def begin(self) -> str:
        """Start a read; the position (text) its snapshot stands at. A commit before it may not
        be shown yet (written to the log first): verify's rechecks read again once CDC has
        applied the position, and CDC applies a marker only once the source shows everything
        before it (docs/architecture.md, "Why reading 'now' converges")."""
        ...

    def end(self) -> None: ...

    def stream_keys(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        keys: Sequence[Sequence[str]],
    ) -> list[Iterator[tuple[Any, ...]]]:
        """As `stream`, for the root keys `keys` (as text) alone."""
        ...

    def stream_sample(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        fraction: float,
        seed: int,
    ) -> list[Iterator[tuple[Any, ...]]]:
        """As `stream`, for a deterministic `fraction` of the keys (the same for the same seed)."""
        ...

    def first_keys(self, table: str, key: Sequence[str], limit: int) -> list[list[str]]: ...

    def missing_keys(
        self, table: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
    ) -> list[int]: ...


class LinkedReader(Protocol):
    """Reads embedded levels under a derived parent of given link values (SourceRead)."""

    def begin(self, visible: Sequence[Any] = ()) -> str:
        """Start a read whose snapshot shows the transactions `visible` (each the `visibility` of a
        TransactionBegun or Replayed, the adapter's own value; None: nothing to wait for),
        waiting for them (docs/architecture.md, "Why reading 'now' converges"); the position the
        read stands at. Raises NotShownYet past a generous deadline."""
        ...

    def unshown(self, visible: Sequence[Any]) -> Sequence[Any]:
        """Those of `visible` (as `begin` takes them) a later read may still have to wait for, as
        few as stand for all of them, found without waiting (at most one short statement): what
        CDC carries from batches that read nothing stays bounded."""
        ...

    def end(self) -> None: ...

    def stream_linked(
        self,
        levels: Sequence[LevelRead],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
        ordinal: str,
    ) -> list[Iterator[tuple[Any, ...]]]: ...

    def close(self) -> None: ...


class KeyLookup(Protocol):
    """Key lookups on committed data: the root keys of given rows, _id values typed from text."""

    def root_keys(
        self,
        root: str,
        root_key: Sequence[ColumnInfo],
        path: Sequence[JoinHop],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
    ) -> list[list[list[str]]]: ...

    def typed(self, key: Sequence[ColumnInfo], values: Sequence[Sequence[str]]) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoadSample:
    """Source load, as throttling reads it (engine/throttle.py). `active_sessions` None: not
    asked. `replica_lag_seconds` None: not asked, or no replica (`replicas` 0); 0.0 for a replica
    that is caught up."""

    active_sessions: int | None
    replicas: int | None
    replica_lag_seconds: float | None


__all__ = [
    "Capabilities",
    "CaptureMonitor",
    "CaptureSetup",
    "CaptureStream",
    "Change",
    "ChangeApplier",
    "ChangeEvent",
    "ChangeEvents",
    "ChangeGroup",
    "ChangeSchema",
    "ChangeStep",
    "ChangedDocument",
    "CollectionReader",
    "CollectionWriter",
    "ColumnInfo",
    "CutoverNeeds",
    "ForeignKey",
    "IdentityIndex",
    "Idle",
    "JoinHop",
    "Keepalive",
    "KeyLookup",
    "KeyOrder",
    "KeyReader",
    "KeysAfterCopyTarget",
    "LargestDocument",
    "LeafInfo",
    "LevelRead",
    "LinkedReader",
    "LoadProbe",
    "LoadSample",
    "MappedCollection",
    "MappedColumns",
    "MappedDocument",
    "MappedEmbed",
    "MappedField",
    "MappedLevel",
    "Marker",
    "OpenChanges",
    "OwnerRecord",
    "Ownership",
    "Positions",
    "PostCopy",
    "PostCopySource",
    "PostCopyStatement",
    "PostCopyTarget",
    "Prerequisite",
    "RawChunkReader",
    "RawChunkSource",
    "RawChunkTarget",
    "RawColumn",
    "RawWriter",
    "Received",
    "Replayed",
    "ReverseWriter",
    "RowStatistics",
    "RowStreams",
    "SchemaHost",
    "SchemaObject",
    "SequenceGrant",
    "SnapshotExport",
    "SnapshotSession",
    "SnapshotStart",
    "SourceAdapter",
    "SourceInfo",
    "SourceRead",
    "SourceServerInfo",
    "SourceText",
    "SourceTextSource",
    "SourceTextTarget",
    "SourceVocabulary",
    "TableDescribed",
    "TableInfo",
    "TargetAdapter",
    "TargetChanges",
    "TargetCollectionInfo",
    "TargetInfo",
    "TargetVocabulary",
    "TargetWriteFence",
    "TransactionBegun",
    "TransactionCommitted",
    "TriggerInfo",
    "Truncated",
    "WriteFence",
    "WriteOp",
    "WriteResult",
    "source_text_reader",
]
