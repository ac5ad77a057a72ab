"""Documents as source rows: what reverse sync hands to a row store (the inverse of `WriteOp`).

The mapping layer (migrator/mapping/inverse.py) turns one document into these plain structures;
a row-store adapter (migrator/adapters/postgres/reverse_writer.py) applies them. They name
tables and columns only, so adapters need nothing from the mapping layer (imports run one way).

A document is a tree of levels: the root table, then each embedded table under its parent
(depth-first, so a parent's index is always lower than its children's). The new state of one
document is, per level, the rows it holds now; every row of that level that belongs to the
document (through its parents) and is not among them is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Forward conversions that lose information, so that a value written back may differ from the
# stored one although both map to the same document value. The row store then keeps the stored
# value: 'milliseconds' (timestamps: BSON dates hold milliseconds), 'json' (json/jsonb: the
# document holds the parsed value, not the text: spacing, key order of json, 1.50 vs 1.5),
# 'numeric' (a numeric of more than 34 digits whose trailing zeros Decimal128 could not keep).
Equivalence = Literal["milliseconds", "json", "numeric"]


@dataclass(frozen=True)
class TableLevel:
    """One level of a collection's documents: the root table or an embedded table."""

    table: str  # schema.table
    key: tuple[str, ...]  # columns that identify a row (the document _id, or the element key)
    parent: int = -1  # index of the parent level in `DocumentRows.levels`; -1 for the root
    on: tuple[tuple[str, str], ...] = ()  # (child column, parent column): the link to the parent
    many: bool = True  # false: at most one row per parent (a sub-document)
    # Columns whose forward conversion is lossy (see Equivalence): kept when equivalent.
    equivalent: tuple[tuple[str, Equivalence], ...] = ()

    @property
    def link(self) -> tuple[str, ...]:
        """This level's link columns, in `on` order."""
        return tuple(c for c, _ in self.on)

    @property
    def parent_link(self) -> tuple[str, ...]:
        """The parent's columns the link matches, in `on` order."""
        return tuple(p for _, p in self.on)


@dataclass
class LevelRows:
    """The new state of one level of one document.

    `rows`: column -> value, each holding the key, the link to its parent and every column the
    document carries (a field missing from the document leaves its column as stored, or at its
    default for a new row; columns the mapping does not carry are never written).
    `carried`: the parents (their values of `TableLevel.parent_link`) whose array or sub-document
    the document holds: their other rows of this level are deleted.
    `exempt`: parents present in the document without this level's field at all: their rows of
    this level are left alone.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    carried: list[tuple[Any, ...]] = field(default_factory=list)
    exempt: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class DocumentRows:
    """One document's new state as rows, or its deletion (`state` None)."""

    collection: str
    document_id: Any
    levels: tuple[TableLevel, ...]
    root_key: dict[str, Any]  # the root table's key column -> value (from _id)
    state: list[LevelRows] | None  # one per level, same order; None: the document is gone

    @property
    def deleted(self) -> bool:
        return self.state is None


@dataclass(frozen=True)
class ReverseCheckpoint:
    """Where reverse sync stands in the target's change stream, stored with the rows it covers."""

    resume_token: dict[str, Any]  # the change stream's resume token (a document)
    cluster_time: int | None = None  # BSON Timestamp of the last event covered, as (time << 32) | inc
    events: int = 0  # events covered since the start (applied and skipped)
