"""Columns added to a mapped table while CDC follows: bringing the documents of every row up to
date (docs/architecture.md, "Schema changes", "A column added while CDC follows").

PostgreSQL logs no row change for ALTER TABLE ... ADD COLUMN (existing rows read NULL or the
default; a volatile default rewrites the table, which is not decoded either), so the documents of
rows that never change again would lack the field. At a point of the stream after the ALTER
(the first Relation message of the table that carries the column, or a marker the schema check
commits once it sees the column in the catalog) CDC applies what came before, then rewrites
every row of the table as read now, through the same ChangeMapper as any change
(ChangeMapper.refresh), then goes on with the stream. Why that converges is in the architecture section.

Done is recorded as "table.column" beside the checkpoint of the next batch: a run resumed before
that backfills again (idempotent writes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from migrator.adapters.base import WriteOp
from migrator.engine.events import Notice
from migrator.errors import BatchTooLarge, TerminalError
from migrator.mapping.changes import ChangeMapper
from migrator.mapping.columns import columns_read

if TYPE_CHECKING:
    from migrator.phases.cdc import CdcPhase

# The logical message (pg_logical_emit_message, transactional) that marks a point after the ALTER.
BACKFILL_PREFIX = "migrator.backfill"
# The checkpoint's field that lists the columns whose documents were brought up to date.
CHECKPOINT_FIELD = "backfilled"


def marker_content(plan: str, table: str, column: str) -> str:
    return json.dumps([plan, table, column])


def marker_column(plan: str, content: bytes) -> tuple[str, str] | None:
    """The (table, column) a backfill marker names, if it is this plan's."""
    try:
        named = json.loads(content)
    except ValueError:
        return None
    if (
        isinstance(named, list)
        and len(named) == 3
        and named[0] == plan
        and all(isinstance(n, str) for n in named[1:])
    ):
        return named[1], named[2]
    return None


class TableShape(Protocol):
    """A mapped table's shape as the snapshot recorded it (the source's schema checks keep it)."""

    @property
    def columns(self) -> Mapping[str, Any]: ...


class AddedColumns:
    """Which mapped columns, added since the snapshot, still need every document brought up to date."""

    def __init__(self) -> None:
        self.done: set[str] = set()  # "table.column"
        self.marked: set[str] = set()  # markers this process emitted, by "table.column"

    def load(self, checkpoint: Mapping[str, Any] | None) -> None:
        if checkpoint is not None:
            self.done.update(str(c) for c in checkpoint.get(CHECKPOINT_FIELD) or ())

    def pending(self, table: str, baseline: Mapping[str, TableShape] | None, mapped: set[str]) -> list[str]:
        """Mapped columns of `table` the snapshot did not read and no backfill has covered. Without
        the snapshot's recorded schema (a run begun before it was recorded), none are known."""
        shape = None if baseline is None else baseline.get(table)
        if shape is None:
            return []
        return sorted(c for c in mapped if c not in shape.columns and f"{table}.{c}" not in self.done)

    def finished(self, table: str, columns: Sequence[str]) -> None:
        self.done.update(f"{table}.{c}" for c in columns)

    def record_fields(self) -> dict[str, Any]:
        return {CHECKPOINT_FIELD: sorted(self.done)} if self.done else {}


def backfill_writes(
    rows: Iterable[list[dict[str, Any]]], table: str, mapper: ChangeMapper
) -> Iterator[tuple[list[dict[str, Any]], list[WriteOp]]]:
    """Every row of `table` as read now (`rows`, chunk by chunk: the source's table_rows), with
    its writes: each row an update whose old row is unknown and new row the whole row
    (ChangeMapper.refresh), so embeds, elements and lookups follow the code paths of any change."""
    for chunk in rows:
        ops: list[WriteOp] = []
        for row in chunk:
            ops.extend(mapper.refresh(table, row))
        yield chunk, ops


class Backfills:
    """Columns added to mapped tables while one CDC phase follows (see the module's docstring):
    the marker that shows the stream is past the ALTER, which described relations carry such
    columns, and bringing every document of the table up to date there."""

    def __init__(self, phase: CdcPhase) -> None:
        self.phase = phase

    def mark(self, table: str, column: str) -> None:
        """Commit a marker naming `table` and `column`, once the catalog has `column`, mapped and not
        read by the snapshot: it reaches the stream after the ALTER, which a table no row change
        touches again never shows otherwise (docs/architecture.md, "A column added while CDC
        follows")."""
        phase = self.phase
        key = f"{table}.{column}"
        if phase.oracle is not None or key in phase.added.done or key in phase.added.marked:
            return
        phase.added.marked.add(key)
        phase.monitor.heartbeat(BACKFILL_PREFIX, marker_content(phase.ctx.plan.name, table, column))

    def due(self, relation: Any) -> tuple[str, list[str]]:
        """The mapped table, and the columns added since the snapshot that this described relation
        carries but its documents lack: the message is at a point of the stream after the ALTER
        that added them (pgoutput describes a relation by the catalog as of the change that
        follows). Only these: the catalog may already have columns added later in the stream."""
        phase = self.phase
        found = phase.schema.columns_of(relation)
        if found is None or phase.oracle is not None:
            return "", []
        table, names = found
        pending = phase.added.pending(table, phase.schema.baseline, phase.mapped.columns(table))
        return table, [c for c in pending if c in names]

    def run(self, table: str, added: set[str], tick: Callable[[], None]) -> None:
        """Bring every document of `table`'s rows up to date with `added`, columns added since the
        snapshot whose ALTER lies before this point of the stream: each row as read now, written
        through the mapper (ChangeMapper.refresh). Called with everything before this point of
        the stream applied, and nothing after it: see docs/architecture.md, "A column added while
        CDC follows", for why the documents then converge to the source. `tick` runs between
        chunks: status updates to the replication connection, which reads nothing meanwhile
        (wal_sender_timeout)."""
        phase = self.phase
        info = phase.schema.table(table)
        if info is None:
            raise TerminalError(f"table {table} disappeared from the source while the migration ran")
        if {c.name for c in info.columns} - {c.name for c in phase.ctx.source_info.tables[table].columns}:
            # Reached by a marker before any Relation message showed the columns: the mapping
            # takes them from here on, as on that message.
            phase.schema.columns_changed(table, {c.name: c.type_oid for c in info.columns})
        pending = [
            c
            for c in phase.added.pending(table, phase.schema.baseline, phase.mapped.columns(table))
            if c in added
        ]
        if not pending:
            return
        read = columns_read(phase.ctx.collections).get(table, set())
        columns = {c.name: c for c in phase.ctx.source_info.tables[table].columns if c.name in read}
        order = list(phase.ctx.source_info.tables[table].primary_key or ())
        rows = 0
        # Read once the source shows every transaction CDC applied before this point that no
        # read has shown yet: a row read before such a commit shows is older than what CDC
        # applied, and this write would put it back (docs/architecture.md, "Why reading 'now'
        # converges").
        visible = phase.reads.visible
        source_rows = phase.ctx.source.table_rows(table, columns, order, phase.batch_limit.limit, visible)
        for chunk, ops in backfill_writes(source_rows, table, phase.mapper):
            tick()
            if ops:
                # No checkpoint: the writes are idempotent, and a run resumed before the next
                # checkpoint (which records them done) writes them again.
                try:
                    phase.applier.apply(ops, None, None)
                except BatchTooLarge as exc:
                    # Smaller chunks when CDC goes on from the checkpoint (docs/architecture.md,
                    # "Batches that adapt"); a TerminalError for a single write.
                    phase.batch_limit.shrink(
                        exc, writes=len(ops), where=f"bringing the documents of {table} up to date"
                    )
                    raise
            for row in chunk:
                for observer in phase.observers:
                    observer(table, None, row, "update")
            rows += len(chunk)
        phase.added.finished(table, pending)
        phase.ctx.events.emit(
            Notice(
                "info",
                f"column(s) {', '.join(pending)} added to {table} since the snapshot: the documents of its "
                f"{rows:,} row(s) were brought up to date",
            )
        )
