"""Which documents a row change touches: the question the dual-write oracle and the dual-write
mirror both ask, answered without I/O.

A change of a table feeds every place the table has in the mapping:
- a top-level row touches its document, and a key change touches the old _id and the new one;
- an embedded row touches the document its parent belongs to; a row that moved to another
  parent touches both. The parent is named by the row's `on` values; the document it belongs to
  is found in the source (`ParentRow`: a join from the root down to the parent), because the
  target is what is being checked and must not be trusted to say where things are;
- an embedded row whose old parent the change does not name (its `on` columns are not in the
  replica identity, so the WAL does not carry them) is looked for in the target by its own key
  (`ElementKey`), which is then unique on its own (ChangeMapper refuses other mappings): a
  document that still holds the element is exactly one that could be wrong about it.

The answers are references; `migrator.mapping.lookup.MappedDocuments.resolve` turns them into
_ids. Over-reporting is harmless (an unchanged document compares equal, a mirrored one is
rewritten as it is); missing a document is not, so every path errs on the side of more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo, JoinHop
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping

Row = dict[str, Any]  # column name -> value (or the stream's UNCHANGED marker)
_NO_MARKER = object()  # rows without an UNCHANGED marker (None is a value: NULL)


@dataclass(frozen=True)
class DocumentId:
    """A top-level row's document: its _id as the row gives it."""

    collection: str
    id: Any


@dataclass(frozen=True)
class ParentRow:
    """The document of the parent row whose `columns` have `values`, reached from the root
    table through `path` (empty: the parent is the root row itself)."""

    collection: str
    root: str
    root_key: tuple[ColumnInfo, ...]
    path: tuple[JoinHop, ...]
    columns: tuple[ColumnInfo, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class ElementKey:
    """The target documents holding an element with these own-key fields in array or
    sub-document `path` (dotted, no positional operators)."""

    collection: str
    path: str
    match: tuple[tuple[str, Any], ...]

    def query(self) -> dict[str, Any]:
        match = dict(self.match)
        if len(match) == 1:
            return {f"{self.path}.{k}": v for k, v in match.items()}
        return {self.path: {"$elemMatch": match}}


Affected = DocumentId | ParentRow | ElementKey


def dedupe(refs: Iterable[Affected]) -> list[Affected]:
    """The references without repeats (by value, as their repr shows it), in first-seen order."""
    seen: dict[str, Affected] = {}
    for ref in refs:
        seen.setdefault(repr(ref), ref)
    return list(seen.values())


@dataclass
class _Level:
    collection: str
    doc: DocumentMapping
    embed: EmbedMapping | None
    parent: _Level | None
    path: tuple[JoinHop, ...]  # from the root down to this level's table
    root: DocumentMapping

    @property
    def dotted(self) -> str:
        names: list[str] = []
        node: _Level | None = self
        while node is not None and node.embed is not None:
            names.append(node.embed.as_)
            node = node.parent
        return ".".join(reversed(names))

    def field_of(self, column: str) -> str | None:
        return next((f.name for f in self.doc.fields if f.column.name == column), None)


class AffectedDocuments:
    """Row changes -> references to the documents they touch, for every level a table feeds."""

    def __init__(
        self,
        collections: list[CollectionMapping],
        identity: dict[str, tuple[str, ...]],
        unchanged: Any = _NO_MARKER,
    ) -> None:
        """`identity`: per table, the columns an old row of a change always carries (the replica
        identity); {} where nothing is promised. `unchanged`: the marker of a value the change
        does not carry (pgoutput's unchanged TOASTed value)."""
        self._unchanged = unchanged
        self._identity = identity
        self._levels: dict[str, list[_Level]] = {}
        for collection in collections:
            made: list[_Level] = []
            for level in collection.levels:  # depth first: a parent before its children
                parent = made[level.parent] if level.parent >= 0 else None
                made.append(
                    _Level(
                        collection.name, level.document, level.embed, parent, level.hops, collection.document
                    )
                )
                self._levels.setdefault(level.table, []).append(made[-1])

    def tables(self) -> set[str]:
        return set(self._levels)

    def insert(self, table: str, new: Row) -> list[Affected]:
        return self._change(table, "insert", None, new)

    def update(self, table: str, old: Row | None, new: Row) -> list[Affected]:
        """`old`: the old row as far as the change carries it (None: its identity did not change)."""
        return self._change(table, "update", old, new)

    def delete(self, table: str, old: Row) -> list[Affected]:
        return self._change(table, "delete", old, None)

    def _change(self, table: str, kind: str, old: Row | None, new: Row | None) -> list[Affected]:
        refs: list[Affected] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                for row in (old, new):
                    doc_id = self._id(level, row)
                    if doc_id is not None:
                        refs.append(DocumentId(level.collection, doc_id))
            else:
                refs.extend(self._element(level, kind, old, new))
        return dedupe(refs)

    # -- top level ------------------------------------------------------------------------------

    def _known(self, row: Row | None, columns: Iterable[str]) -> bool:
        return row is not None and all(c in row and row[c] is not self._unchanged for c in columns)

    def _id(self, level: _Level, row: Row | None) -> Any:
        key = level.doc.key
        if row is None or not self._known(row, key):
            return None
        if len(key) == 1:
            return row[key[0]]
        return {k: row[k] for k in key}

    # -- embedded rows --------------------------------------------------------------------------

    def _element(self, level: _Level, kind: str, old: Row | None, new: Row | None) -> list[Affected]:
        assert level.embed is not None
        on_child = [c for c, _ in level.embed.on]
        refs: list[Affected | None] = []
        if new is not None:
            known = self._known(new, on_child)
            refs.append(self._parent(level, new) if known else self._element_key(level, new))
        if kind == "update":
            old_row = {**(new or {}), **(old or {})}  # the old key where the change carries it
            if old is not None and self._known(old, on_child):
                refs.append(self._parent(level, old))
            elif not set(on_child) <= set(self._identity.get(level.doc.table, ())):
                # The change does not say whether the row moved (its `on` columns are not in
                # the replica identity): whichever document still holds its element is touched.
                refs.append(self._element_key(level, old_row))
            # else: the identity holds the `on` columns and did not change, so neither did
            # the parent.
        elif kind == "delete" and old is not None:
            known = self._known(old, on_child)
            refs.append(self._parent(level, old) if known else self._element_key(level, old))
        return [r for r in refs if r is not None]

    def _parent(self, level: _Level, row: Row) -> ParentRow:
        assert level.embed is not None and level.parent is not None
        parent = level.parent
        columns = {c.name: c for c in parent.doc.all_columns}
        root_columns = {c.name: c for c in level.root.all_columns}
        return ParentRow(
            collection=level.collection,
            root=level.root.table,
            root_key=tuple(root_columns[k] for k in level.root.key),
            path=parent.path,
            columns=tuple(columns[p] for _, p in level.embed.on),
            values=tuple(row[c] for c, _ in level.embed.on),
        )

    def _element_key(self, level: _Level, row: Row) -> ElementKey | None:
        """The element by its own key (the key columns that are not `on` columns), when those
        identify it on their own; None when the key needs the parent to be unique."""
        assert level.embed is not None
        on_child = {c for c, _ in level.embed.on}
        own = [k for k in level.doc.key if k not in on_child]
        if len(own) != len(level.doc.key) or not self._known(row, own):
            return None
        match = []
        for k in own:
            name = level.field_of(k)
            if name is None:
                return None
            match.append((name, row[k]))
        return ElementKey(level.collection, level.dotted, tuple(match))
