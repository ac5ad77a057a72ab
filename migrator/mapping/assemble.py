"""Rows -> documents: merge a root row stream with one stream per embedded level.

Every stream comes ordered by the root key (the same ORDER BY in the same snapshot), so
documents are assembled in one pass with one root document's rows in memory at a time:
no query per parent, and memory bounded by the largest document, not by the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo, LevelRead
from migrator.errors import TerminalError
from migrator.mapping.spec import CollectionMapping, EmbedMapping, Level

_END = object()


@dataclass(frozen=True)
class _Positions:
    """How to read one level's row tuples: a spec Level (mapping/spec.py) compiled to row
    positions. Its index, parent, embed and children are the Level's, copied for the per-row
    loops."""

    index: int
    parent: int  # index of the parent level; -1 for the root
    embed: EmbedMapping | None  # None for the root
    read: LevelRead
    offset: int  # where this level's own columns start in its rows (after the root key)
    fields: tuple[tuple[str, int], ...]  # (field name, row position)
    casts: tuple[tuple[str, Callable[[Any], Any]], ...]  # (field name, the plan's cast of its value)
    link_to_parent: tuple[int, ...]  # positions of the `on` child columns
    links_for_children: dict[int, tuple[int, ...]]  # child level -> positions of its `on` parent columns
    children: tuple[int, ...]


class Assembler:
    """Builds the documents of one collection from level row streams."""

    def __init__(self, mapping: CollectionMapping) -> None:
        self.mapping = mapping
        self.key = mapping.document.key
        self.levels: list[_Positions] = [self._positions(level) for level in mapping.levels]

    def reads(self) -> list[LevelRead]:
        return [level.read for level in self.levels]

    def _positions(self, level: Level) -> _Positions:
        doc, embed = level.document, level.embed
        columns: list[ColumnInfo] = []

        def position(column: ColumnInfo) -> int:
            for i, c in enumerate(columns):
                if c.name == column.name:
                    return i
            columns.append(column)
            return len(columns) - 1

        # Hidden columns (keys and links) are read too, though no field shows them.
        table_columns = {c.name: c for c in doc.all_columns}
        if embed is None:
            for k in doc.key:
                position(table_columns[k])
        link_to_parent = tuple(position(table_columns[c]) for c in level.link)
        fields = tuple((f.name, position(f.column)) for f in doc.fields)
        casts = tuple((f.name, f.forward) for f in doc.fields if f.forward is not None)
        links = {
            child: tuple(position(table_columns[p]) for p in self.mapping.levels[child].parent_link)
            for child in level.children
        }
        offset = 0 if embed is None else len(self.key)
        order_names = embed.order_by + tuple(k for k in doc.key if k not in embed.order_by) if embed else ()
        order = tuple(table_columns[n] for n in order_names)
        return _Positions(
            index=level.index,
            parent=level.parent,
            embed=embed,
            read=LevelRead(level.hops, tuple(columns), order),
            offset=offset,
            fields=fields,
            casts=casts,
            link_to_parent=link_to_parent,
            links_for_children=links,
            children=level.children,
        )

    def document_id(self, row: tuple[Any, ...]) -> Any:
        if len(self.key) == 1:
            return row[0]
        return {k: row[i] for i, k in enumerate(self.key)}

    def documents(
        self, streams: list[Iterator[tuple[Any, ...]]]
    ) -> Iterator[tuple[Any, dict[str, Any], int]]:
        """Yield (_id, document, rows used) in root key order."""
        if len(streams) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} row streams, got {len(streams)}")
        heads: list[Any] = [_END] + [next(s, _END) for s in streams[1:]]
        width = len(self.key)
        for root_row in streams[0]:
            root_key = root_row[:width]
            elements: list[list[tuple[dict[str, Any], tuple[Any, ...]]]] = [[] for _ in self.levels]
            document = self._element(self.levels[0], root_row)
            document = {"_id": self.document_id(root_row), **document}
            elements[0] = [(document, root_row)]
            rows = 1
            for level in self.levels[1:]:
                stream = streams[level.index]
                head = heads[level.index]
                while head is not _END and head[:width] == root_key:
                    elements[level.index].append((self._element(level, head), head))
                    rows += 1
                    head = next(stream, _END)
                heads[level.index] = head
            self._attach(elements, root_key)
            yield document["_id"], document, rows
        for level in self.levels[1:]:
            if heads[level.index] is not _END:
                # Same ORDER BY, same snapshot: a leftover row means the streams disagree,
                # and dropping it silently would lose data.
                raise TerminalError(
                    f"rows of {level.read.path[-1].table} for key {heads[level.index][:width]!r} matched no "
                    f"{self.mapping.table} row in the same key range",
                    hint="the key's ordering differs between queries; report this as a bug",
                )

    def _element(self, level: _Positions, row: tuple[Any, ...]) -> dict[str, Any]:
        base = level.offset
        element = {name: row[base + pos] for name, pos in level.fields}
        for name, cast in level.casts:
            element[name] = cast(element[name])
        for child_index in level.children:
            child = self.levels[child_index]
            assert child.embed is not None
            element[child.embed.as_] = [] if child.embed.many else None
        return element

    def _attach(
        self, elements: list[list[tuple[dict[str, Any], tuple[Any, ...]]]], root_key: tuple[Any, ...]
    ) -> None:
        for level in self.levels[1:]:
            embed = level.embed
            assert embed is not None
            parent_level = self.levels[level.parent]
            if not elements[level.index]:
                continue
            if level.parent == 0:
                parents = {(): elements[0][0][0]}
                link_of_child = lambda row: ()  # noqa: E731
            else:
                positions = parent_level.links_for_children[level.index]
                pbase = parent_level.offset
                parents = {tuple(row[pbase + p] for p in positions): el for el, row in elements[level.parent]}
                cbase = level.offset

                def link_of_child(
                    row: tuple[Any, ...], cbase: int = cbase, level: _Positions = level
                ) -> tuple[Any, ...]:
                    return tuple(row[cbase + p] for p in level.link_to_parent)

            for element, row in elements[level.index]:
                parent = parents.get(link_of_child(row))
                if parent is None:
                    continue  # its parent row is not in this document (joined away): nothing to attach to
                if embed.many:
                    parent[embed.as_].append(element)
                elif parent[embed.as_] is None:
                    parent[embed.as_] = element
                else:
                    raise TerminalError(
                        f"embed '{embed.as_}' is many: false, but {embed.child.table} holds more than one row "
                        f"for the document with key {root_key!r}",
                        hint="declare it many: true, or add a unique constraint on the child's 'on' columns",
                    )
