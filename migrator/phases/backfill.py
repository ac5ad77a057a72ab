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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from migrator.adapters.base import ColumnInfo, WriteOp
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.shapes import TableShape
from migrator.adapters.postgres.table_rows import read_rows
from migrator.adapters.postgres.values import ValueParser
from migrator.mapping.changes import ChangeMapper

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
    endpoint: PgEndpoint,
    table: str,
    columns: Mapping[str, ColumnInfo],
    order: Sequence[str],
    mapper: ChangeMapper,
    parser: ValueParser,
    chunk: int,
) -> Iterator[tuple[list[dict[str, Any]], list[WriteOp]]]:
    """Every row of `table` as read now, chunk by chunk, with its writes: each row an update
    whose old row is unknown and new row the whole row (ChangeMapper.refresh), so embeds, elements
    and lookups follow the code paths of any change."""
    names = list(columns)
    parsers = [parser.for_column(columns[n]) for n in names]
    for raw in read_rows(endpoint, table, [(n, columns[n].type_oid) for n in names], order, chunk):
        rows = [
            {n: (None if v is None else p(v)) for n, p, v in zip(names, parsers, values, strict=True)}
            for values in raw
        ]
        ops: list[WriteOp] = []
        for row in rows:
            ops.extend(mapper.refresh(table, row))
        yield rows, ops
