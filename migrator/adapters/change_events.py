"""Change capture's vocabulary: what a source's change stream yields, in commit order, and the
protocols of the stream, its schema checks and the target's applier (docs/architecture.md,
"A change's path"). The adapter reads its own protocol into these; phases read only these.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from migrator.adapters.inspection import SourceInfo, TableInfo

if TYPE_CHECKING:
    from migrator.adapters.base import WriteOp


@dataclass(frozen=True)
class Idle:
    """Nothing arrived within the wait; `wal_end` is the server's last reported position."""

    wal_end: int


@dataclass(frozen=True)
class Keepalive:
    """The server has sent everything before `wal_end`. Once every change received so far is
    applied, the consumer acknowledges it: a fast shutdown of the source waits until its
    walsender's client has confirmed all that was sent."""

    wal_end: int


@dataclass(slots=True)
class Change:  # not frozen: built for every change, and its new row may be completed in place
    """A row change of a mapped table (`table`: as the plan names it, the root for a leaf
    partition's). `kind`: 'insert', 'update' or 'delete'. `old`: the old key columns or whole
    old row (None for an insert, or an update that kept its key); `new`: None for a delete.
    A value may be the source's `unchanged` (a TOASTed value the update did not change).
    `computed` and `texts`: for a table whose stored generated columns the change lacks, what
    computes them and the text of the columns they read (None for the others, and for deletes):
    the adapter's, opaque to phases (ChangeSchema.to_compute, ChangeSchema.complete)."""

    table: str
    kind: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    computed: Any = None
    texts: dict[str, Any] | None = None


@dataclass(frozen=True)
class Truncated:
    """TRUNCATE of these mapped tables (a partitioned table's when every leaf was truncated)."""

    tables: tuple[str, ...]


@dataclass(frozen=True)
class TableDescribed:
    """A table's columns as the changes that follow were logged (`relation`: the adapter's own
    description, handed back to ChangeSchema.relation). Sent before a relation's first change
    and again whenever its catalog entry changed (DDL), also inside a transaction. `spooled`:
    inside a block of a streamed transaction being received (it is seen again when that
    transaction is replayed)."""

    relation: Any
    spooled: bool = False


@dataclass(frozen=True)
class TransactionBegun:
    """A transaction begins, committed at `commit_position`; its changes follow as they arrive.
    `visibility`: what a read of the source made for its changes waits to be shown (the adapter's
    own value, handed back to LinkedReader.begin; None: nothing)."""

    commit_position: int
    visibility: Any = None


@dataclass(frozen=True)
class TransactionCommitted:
    """The end of the transaction begun last: `end_position` is where the stream resumes after
    it. `skipped`: applied already (committed before the applied position) or written by
    reverse sync (its origin): its changes were not handed over."""

    commit_position: int
    end_position: int
    commit_time: datetime
    skipped: bool


@dataclass(frozen=True)
class Replayed:
    """A streamed transaction at its commit: `changes` reads its changes back from the spool
    (empty when `skipped`), to be read before the next event (and closed, which closes the
    spool, if not read to its end)."""

    commit_position: int
    end_position: int
    commit_time: datetime
    skipped: bool
    changes: Generator[Change | Truncated | TableDescribed, None, None]
    visibility: Any = None  # as TransactionBegun's


@dataclass(frozen=True)
class Marker:
    """A logical message (pg_logical_emit_message): a marker someone may wait for."""

    prefix: str
    content: bytes


@dataclass(frozen=True)
class Received:
    """A message with nothing to hand over (spooled, skipped, or of no interest). `behind`: a
    block of a transaction still in progress starts: the source is ahead of what is applied."""

    behind: bool = False


ChangeEvent = (
    Keepalive
    | Idle
    | TransactionBegun
    | Change
    | Truncated
    | TableDescribed
    | Marker
    | TransactionCommitted
    | Replayed
    | Received
)


class CaptureStream(Protocol):
    """The connection a source's changes arrive on (a replication connection, or SQL polling)."""

    # How long to wait for more before reporting Idle, while a batch lingers (None: the reader's
    # wait).
    linger: float | None

    def keepalive(self, interval: float = ..., /) -> None:
        """Send a status update if one is due within `interval` seconds of the last."""
        ...

    def acknowledge(self, position: int, /) -> None:
        """Everything before `position` is durable on the target: the source may free it."""
        ...

    def close(self) -> None: ...


class ChangeEvents(Protocol):
    """A capture stream read as typed events in commit order (ChangeEvent)."""

    in_transaction: bool

    @property
    def in_stream(self) -> bool:
        """Inside a block of a transaction still in progress (streamed before its commit)."""
        ...

    @property
    def streams_pending(self) -> bool:
        """A transaction streamed in part has not committed or aborted yet."""
        ...

    def events(self, wait_s: float) -> Iterator[ChangeEvent]: ...


@dataclass(frozen=True)
class MappedColumns:
    """What the mapping takes of each source table, as plain data for the source's schema checks
    (ChangeSchema): `read`, the columns it reads; `mapped`, those whose loss or change of type
    it cannot follow (fields, keys, link columns); `locating`, the key columns that say which
    document or element a row is; `open_shapes`, per table the columns excluded by each level of
    the plan that lists no `fields` there (so it takes every other column); `undecoded`, per
    table the columns whose changed values the source hands over undecoded (SourceText,
    adapters/source_text.py) where it can, since the target takes them as they are."""

    read: Mapping[str, set[str]]
    mapped: Mapping[str, frozenset[str]]
    locating: Mapping[str, tuple[str, ...]]
    open_shapes: Mapping[str, tuple[frozenset[str], ...]]
    undecoded: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def columns(self, table: str) -> set[str]:
        return set(self.mapped.get(table, ()))

    def takes_by_default(self, table: str, column: str) -> bool:
        """Whether the plan would map `column` of `table`: it lists no `fields` there (so every
        column is taken) and does not exclude it."""
        return any(column not in excluded for excluded in self.open_shapes.get(table, ()))


class SchemaHost(Protocol):
    """What a source's schema checks ask of the phase that follows its changes."""

    def notice(self, level: str, message: str) -> None:
        """Tell the user (an event)."""
        ...

    def table_changed(self, table: str, info: TableInfo) -> None:
        """The catalog's `table` has columns the mapping was not built on: map it as it is now
        (and give the checks the new MappedColumns), or raise what stops the run."""
        ...

    def reads_with(self, table: str, info: TableInfo) -> dict[str, set[str]] | None:
        """The columns the mapping would read per mapped table (in the plan's order) with `table`
        as `info` says; None where the mapping would not resolve."""
        ...

    def column_added(self, table: str, column: str) -> None:
        """A column the mapping takes was added to `table` since the snapshot (now published)."""
        ...


class ChangeSchema(Protocol):
    """A source's checks that the tables and the publication still are what the mapping was
    built on (docs/architecture.md, "Schema changes", "The run's publication"): each raises a
    TerminalError that says what changed and how to go on. It also keeps the state the change
    stream is decoded with (the relations announced on it)."""

    @property
    def vouched(self) -> int:
        """The source position before the last publication check that found it whole."""
        ...

    @property
    def baseline(self) -> Mapping[str, Any] | None:
        """The mapped tables' shape changes are checked against (each with `columns`)."""
        ...

    def reader(self, stream: CaptureStream, *, applied: Callable[[], int], skip_origin: str) -> ChangeEvents:
        """`stream` read as typed events with the relations announced on it."""
        ...

    def relation(self, relation: Any) -> None:
        """A TableDescribed's relation: check it against the mapping and read its changes so."""
        ...

    def columns_of(self, relation: Any) -> tuple[str, frozenset[str]] | None:
        """The mapped table a described relation's changes are, and the columns it carries."""
        ...

    def check_schema(self) -> None: ...

    def check_publication(self) -> None: ...

    def check_located(self, table: str, new: dict[str, Any]) -> None:
        """Raise when an update's new row lacks a key column that places it."""
        ...

    def to_compute(self, change: Change) -> frozenset[str]:
        """The generated columns of `change` to compute (those its update may have changed)."""
        ...

    def complete(self, pending: Sequence[tuple[Change, frozenset[str]]]) -> None:
        """Compute the given generated columns of each change into its new row."""
        ...

    def table(self, table: str) -> TableInfo | None:
        """`table` as the catalog has it now."""
        ...

    def columns_changed(self, table: str, current: dict[str, int]) -> None:
        """The stream (or catalog) shows `table` with `current` columns (name -> type id)."""
        ...

    def remap(self, source_info: SourceInfo, mapped: MappedColumns) -> None:
        """The mapping was built again on `source_info`."""
        ...

    def restart(self) -> None:
        """A new stream: its relations are announced again."""
        ...

    def close(self) -> None: ...


class ChangeApplier(Protocol):
    """A target's writer of CDC batches: data and checkpoint commit together."""

    def apply(
        self,
        ops: Sequence[WriteOp],
        position: int | None,
        position_text: str | None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None: ...

    def checkpoint(self) -> dict[str, Any] | None:
        """The stored checkpoint record (position, commit time, ...), or None."""
        ...

    def ensure_indexes(self, paths: dict[str, set[str]]) -> list[str]: ...
