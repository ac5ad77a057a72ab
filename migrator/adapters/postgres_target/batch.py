"""A CDC batch as few statements per table (docs/architecture.md, "Tables as collections").

Between two barriers (any write not of one row named by its key), the writes of one row fold,
in their order, into the one state the row ends in:
- a `replace` is the whole row: it stands, with later `$set`s over it;
- a `delete` leaves the row absent, and an `update` of an absent row leaves it absent (an
  update without upsert, as the single-statement apply does);
- `update`s with nothing whole before them stay column writes of a row that may not exist.
Rows of one table commute, so each table's rows are written as one DELETE of the absent keys,
the whole rows as one upsert and the column updates as one UPDATE per set of columns: through a
staging table for many rows (staging.py), as prepared statements sent in a pipeline for a few
(writer.py). A barrier (a key change, a TRUNCATE) is written alone, after everything before it.

The fold is the whole merge: it is not preceded by the document targets' coalescing
(adapters/coalesce.py), which gives the same result here (consecutive `$set`s of a row merged, in
order) and cost a sixth of CDC's CPU on the pg-cdc benchmark (docs/architecture.md, "Tables as
collections").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.adapters.base import WriteOp


@dataclass
class TableWrites:
    """One table's rows between two barriers, each in the state it ends in."""

    table: str
    deletes: dict[str, Any] = field(default_factory=dict)  # repr(_id) -> _id
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # repr(_id) -> whole row
    updates: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)  # -> (_id, columns)

    def fold(self, op: WriteOp) -> None:
        doc_id = op.filter["_id"]
        # repr tells 1, 1.0 and True apart, as the snapshot writer's key does (writer.py).
        key = repr(doc_id)
        if op.kind == "delete":
            self.rows.pop(key, None)
            self.updates.pop(key, None)
            self.deletes[key] = doc_id
        elif op.kind == "replace":
            self.deletes.pop(key, None)
            self.updates.pop(key, None)
            self.rows[key] = dict(op.update)
        elif key in self.rows:
            self.rows[key].update(op.update.get("$set", {}))
        elif key not in self.deletes:
            _, columns = self.updates.setdefault(key, (doc_id, {}))
            columns.update(op.update.get("$set", {}))

    def __len__(self) -> int:
        return len(self.deletes) + len(self.rows) + len(self.updates)

    def column_updates(self) -> Iterator[tuple[tuple[str, ...], list[tuple[Any, dict[str, Any]]]]]:
        """The column updates grouped by the columns they set (one statement each)."""
        groups: dict[tuple[str, ...], list[tuple[Any, dict[str, Any]]]] = {}
        for doc_id, columns in self.updates.values():
            if columns:
                groups.setdefault(tuple(columns), []).append((doc_id, columns))
        yield from groups.items()


Step = TableWrites | WriteOp


def steps(ops: Sequence[WriteOp]) -> list[Step]:
    """`ops` as steps to run in order: folded table writes, and barriers alone."""
    out: list[Step] = []
    pending: dict[str, TableWrites] = {}
    for op in ops:
        if op.kind in ("replace", "update", "delete") and len(op.filter) == 1 and "_id" in op.filter:
            writes = pending.get(op.collection)
            if writes is None:  # not setdefault: that would build a TableWrites for every op
                writes = pending[op.collection] = TableWrites(op.collection)
            writes.fold(op)
            continue
        out.extend(pending.values())
        pending.clear()
        out.append(op)
    out.extend(pending.values())
    return out
