"""The relations announced on a pgoutput stream: how each mapped table's changes are read.

A Relation message describes a table's columns as the changes that follow were logged; the
consumer decides what they must be (its mapping) and registers a RelationState here: the
RowReader that decodes the table's tuples straight into rows of parsed values, the table's
name as the plan says it (the root for a leaf partition), and, for a table whose stored
generated columns pgoutput leaves out, what computes them (docs/architecture.md, "Stored
generated columns").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo
from migrator.adapters.postgres.generated import Generated, GeneratedColumns, StoredColumn
from migrator.adapters.postgres.partitions import quoted
from migrator.adapters.postgres.pgoutput import (
    UNCHANGED,
    Delete,
    Insert,
    Parse,
    Relation,
    Row,
    RowChange,
    RowReader,
    Tuple,
    Update,
)
from migrator.adapters.postgres.values import ValueParser, undecoded_parser
from migrator.errors import SourceError, TerminalError


class RelationState(RowReader):
    """A mapped table's current Relation message: how to read its rows, and the table's name.

    For a leaf partition of a mapped partitioned table, `table` is the root (its changes are
    the root's) and `leaf` the partition's own name. `unsure`: the leaf's replica identity
    lacked columns the mapping needs when these changes were logged (fixed since): its
    updates and deletes are checked one by one."""

    __slots__ = ("computed", "leaf", "table", "unsure")

    def __init__(
        self,
        table: str,
        names: Sequence[str],
        parsers: Sequence[Parse | None],
        is_key: Sequence[bool],
        *,
        leaf: str | None = None,
        unsure: tuple[str, ...] = (),
        computed: Computed | None = None,
    ) -> None:
        super().__init__(names, parsers, is_key)
        self.table = table
        self.leaf = leaf
        self.unsure = unsure
        self.computed = computed

    def row_change(self, message: Insert | Update | Delete) -> RowChange:
        """A change decoded without this reader (its raw values kept, see Computed), as the
        RowChange the reader would have given."""
        if isinstance(message, Insert):
            return RowChange("I", message.xid, message.relation_id, None, False, self._row(message.new))
        old = None if message.old is None else self._row(message.old, key_only=message.old_is_key)
        if isinstance(message, Delete):
            return RowChange("D", message.xid, message.relation_id, old, message.old_is_key, None)
        return RowChange(
            "U", message.xid, message.relation_id, old, message.old_is_key, self._row(message.new)
        )

    def _row(self, values: Tuple, key_only: bool = False) -> Row:
        if len(values) != self._width:
            raise SourceError(f"pgoutput tuple has {len(values)} columns, its Relation message {self._width}")
        row = {
            name: parse(value) if type(value) is bytes else value
            for (name, parse), value in zip(self._columns, values, strict=True)
            if not key_only or name in self._keys
        }
        for name in self._left_out:
            row.pop(name, None)
        return row

    def check_placeable(self, kind: str, old: Row | None) -> None:
        """An update or delete of a mapped table (or leaf partition) logged while its replica
        identity lacked the columns the mapping needs: placed only if its old row carries them."""
        if old is not None and all(c in old for c in self.unsure):
            return
        what = "an UPDATE" if kind == "U" else "a DELETE"
        of = self.table if self.leaf is None else f"partition {self.leaf} of {self.table}"
        raise TerminalError(
            f"{what} of {of} was logged while its replica identity lacked "
            f"{', '.join(c for c in self.unsure if old is None or c not in old)}: which document it changes "
            "is not known",
            hint="roll back (`migrator rollback`) and run again: the new snapshot starts after it",
        )


@dataclass(frozen=True)
class Computed:
    """A relation's stored generated columns that its changes lack (docs/architecture.md,
    "Stored generated columns"): what computes them, how to parse the results, and where in a
    tuple the columns they read are. Its changes are decoded raw, so that those columns' text
    (PostgreSQL's own, what the expressions are fed) is at hand; tables without such columns
    keep the one-pass reader."""

    generated: Generated
    parsers: dict[str, Parse]  # generated column -> parser of its text
    inputs: dict[str, tuple[int, bool]]  # column read -> (its index in a tuple, whether it is a key column)

    def texts(self, message: Insert | Update) -> dict[str, Any]:
        """The text of each column read (None: NULL; UNCHANGED: neither tuple carries it). An
        unchanged TOASTed value is taken from the old tuple where it has it, as fill_unchanged."""
        old = message.old if isinstance(message, Update) else None
        key_only = isinstance(message, Update) and message.old_is_key
        out: dict[str, Any] = {}
        for name, (index, is_key) in self.inputs.items():
            value = message.new[index]
            if value is UNCHANGED and old is not None and (is_key or not key_only):
                value = old[index]
            out[name] = value.decode() if isinstance(value, bytes) else value
        return out

    def to_compute(self, table: str, new: Row, texts: dict[str, Any]) -> frozenset[str]:
        """The generated columns to compute for this insert or update. One whose every input is
        unchanged (stored out of line, not updated) is itself unchanged, and left out like them
        (marked so in `new`); one that reads such an input beside others cannot be computed from
        the change: stop."""
        lacking = {c for c, v in texts.items() if v is UNCHANGED}
        if not lacking:
            return frozenset(self.generated.columns)
        out = set()
        for name, reads in self.generated.reads.items():
            unsent = [c for c in reads if c in lacking]
            if not unsent:
                out.add(name)
            elif len(unsent) == len(reads):
                new[name] = UNCHANGED
            else:
                raise TerminalError(
                    f"generated column {table}.{name} cannot be computed for an UPDATE: it reads "
                    f"{', '.join(unsent)}, which the change does not carry (a value stored out of line that the "
                    "UPDATE did not change, and not in the replica identity)",
                    hint=f"ALTER TABLE {quoted(table)} REPLICA IDENTITY FULL, so that PostgreSQL logs it; then roll "
                    "back (`migrator rollback`) and run again, since changes logged before cannot be computed",
                )
        return frozenset(out)


def column_parsers(
    message: Relation,
    expected: dict[str, ColumnInfo],
    parser: ValueParser,
    undecoded: Collection[str] = (),
) -> list[Parse | None]:
    """A parser for each column of the message that the table has as `expected` (None: the
    column is not read). A column of `undecoded` still of its expected type keeps its text, as a
    SourceText or a plain str (docs/architecture.md, "Undecoded change values", values.py
    undecoded_parser)."""
    parsers: list[Parse | None] = []
    for column in message.columns:
        info = expected.get(column.name)
        if info is None:
            parsers.append(None)
            continue
        parse = parser.for_column(info)
        if column.name in undecoded and column.type_oid == info.type_oid:
            parsers.append(undecoded_parser(column.type_oid, parse))
        else:
            parsers.append(parse)
    return parsers


def computed_columns(
    message: Relation,
    table: str,
    columns: dict[str, StoredColumn],
    expected: dict[str, ColumnInfo],
    generated: GeneratedColumns,
    parser: ValueParser,
) -> Computed | None:
    """How to compute the mapped stored generated columns (`columns`) the relation's changes lack."""
    if not columns:
        return None
    sent = {c.name: (i, c.is_key) for i, c in enumerate(message.columns)}
    for name, column in columns.items():
        unsent = [c for c in column.reads if c not in sent]
        if unsent:
            raise TerminalError(
                f"generated column {table}.{name} cannot be computed: it reads {', '.join(unsent)}, which the "
                f"change stream of {message.table} does not carry",
                hint=f"publish every column {table}.{name} reads (a publication column list must include them)",
            )
    computing = generated.computing(message.relation_id, columns)
    parsers = {name: parser.for_column(expected[name]) for name in columns}
    return Computed(computing, parsers, {c: sent[c] for c in computing.inputs})


class Relations:
    """The relations announced on the stream, by relation id, and what decoding reads rows with:
    every relation but those whose changes are read raw (generated columns to compute)."""

    def __init__(self) -> None:
        self.states: dict[int, RelationState] = {}
        self.readers: dict[int, RowReader] = {}

    def register(self, relation_id: int, state: RelationState) -> None:
        self.states[relation_id] = state
        if state.computed is None:
            self.readers[relation_id] = state
        else:
            self.readers.pop(relation_id, None)

    def __contains__(self, relation_id: int) -> bool:
        return relation_id in self.states

    def get(self, relation_id: int) -> RelationState | None:
        return self.states.get(relation_id)

    def clear(self) -> None:
        """A new stream sends its Relation messages again. (Emptied in place: a reader holds
        these dicts.)"""
        self.states.clear()
        self.readers.clear()
