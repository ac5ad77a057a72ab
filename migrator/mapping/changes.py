"""Row changes -> document writes, for every place a table appears in the mapping.

Every write is idempotent, so replaying changes after a crash converges (invariant 2):
- a top-level row: upsert of its own fields (embedded arrays kept), field updates,
  delete; a key change moves the whole document (the applier reads it first);
- an embedded row: its element is pulled by its key and pushed again with `$sort`, so an
  insert replayed twice leaves one element, in the snapshot's order; a row whose parent
  changed is pulled from the old parent and pushed into the new one;
- an unchanged TOASTed value is never written: top-level updates leave the field out, and
  an element change that carries one is merged with the stored element by the applier; so is
  a change to an element with embedded arrays of its own, which the row does not carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import WriteOp
from migrator.errors import TerminalError
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping

Row = dict[str, Any]  # column name -> value (or the UNCHANGED marker)


def fill_unchanged(old: Row | None, new: Row, unchanged: Any) -> Row:
    """`new` with each unchanged-TOAST marker replaced by the old tuple's value where it has one.

    PostgreSQL logs the old replica identity of an UPDATE whenever it holds a value stored out of
    line, and the whole old row (flattened) under REPLICA IDENTITY FULL, while the new tuple marks
    such a value "unchanged": so a key or link column may be unchanged in `new` and known in `old`
    (docs/architecture.md, "Unchanged TOASTed values"). A column that stays unchanged was not
    carried by either tuple and must be left out of any write."""
    if old is None or not any(value is unchanged for value in new.values()):
        return new
    return {
        name: old[name] if value is unchanged and name in old and old[name] is not unchanged else value
        for name, value in new.items()
    }


@dataclass(frozen=True)
class Location:
    """Where a parent (document or element) is: a filter for the document, the dotted path
    of the parent inside it ('' for the document itself) and the array filters that path uses."""

    filter: dict[str, Any]
    path: str
    array_filters: tuple[dict[str, Any], ...]

    def child(self, field: str) -> str:
        return f"{self.path}.{field}" if self.path else field


@dataclass
class _Level:
    collection: str
    doc: DocumentMapping
    embed: EmbedMapping | None
    parent: _Level | None
    depth: int
    root_key: tuple[str, ...]

    @property
    def as_path(self) -> str:
        """Path of this level's array/sub-document with `$[]` for every ancestor array."""
        parts: list[str] = []
        node: _Level | None = self
        chain: list[_Level] = []
        while node is not None and node.embed is not None:
            chain.append(node)
            node = node.parent
        chain.reverse()
        for i, lvl in enumerate(chain):
            assert lvl.embed is not None
            parts.append(lvl.embed.as_)
            if i < len(chain) - 1 and lvl.embed.many:
                parts.append("$[]")
        return ".".join(parts)

    @property
    def dotted(self) -> str:
        """Plain dotted path (no positional operators), for queries."""
        names: list[str] = []
        node: _Level | None = self
        while node is not None and node.embed is not None:
            names.append(node.embed.as_)
            node = node.parent
        return ".".join(reversed(names))

    def field_of(self, column: str) -> str | None:
        return next((f.name for f in self.doc.fields if f.column.name == column), None)


class ChangeMapper:
    """Maps one table's row changes to target writes, for every level the table feeds."""

    def __init__(
        self, collections: list[CollectionMapping], identity: dict[str, tuple[str, ...]], unchanged: Any
    ) -> None:
        self._unchanged = unchanged
        self._levels: dict[str, list[_Level]] = {}
        self._identity = identity
        for collection in collections:
            self._walk(collection.name, collection.document, None, None, 0, collection.document.key)
        for levels in self._levels.values():
            for level in levels:
                self._check_locatable(level)

    def tables(self) -> set[str]:
        return set(self._levels)

    def index_paths(self) -> dict[str, set[str]]:
        """Fields that writes use to find a document other than by _id: an element's own key
        under its array path where a change may not name its parent, and parent link fields.
        Without indexes on them such a change would scan its collection; with one it costs
        every write of the document an index update, so none is made where it is not used."""
        paths: dict[str, set[str]] = {}
        for levels in self._levels.values():
            for level in levels:
                if level.embed is None:
                    continue
                on_child = {c for c, _ in level.embed.on}
                if self._found_by_own_key(level):
                    own = [level.field_of(k) for k in level.doc.key if k not in on_child]
                    for name in own:
                        if name is not None:
                            paths.setdefault(level.collection, set()).add(f"{level.dotted}.{name}")
                parent = level.parent
                assert parent is not None
                if parent.embed is None and {p for _, p in level.embed.on} != set(parent.doc.key):
                    for _, p in level.embed.on:
                        name = parent.field_of(p)
                        if name is not None:
                            paths.setdefault(level.collection, set()).add(name)
        return paths

    def _found_by_own_key(self, level: _Level) -> bool:
        """Whether a write may look for the element of `level` by its own key, anywhere in the
        collection: when its replica identity leaves out its parent link (an update or delete
        then does not name the parent), or when it has elements of its own (their changes name
        it, but not its parent)."""
        assert level.embed is not None
        on_child = {c for c, _ in level.embed.on}
        return not on_child <= set(self._identity.get(level.doc.table, ())) or bool(level.doc.embeds)

    def _walk(
        self,
        collection: str,
        doc: DocumentMapping,
        embed: EmbedMapping | None,
        parent: _Level | None,
        depth: int,
        root_key: tuple[str, ...],
    ) -> None:
        level = _Level(collection, doc, embed, parent, depth, root_key)
        self._levels.setdefault(doc.table, []).append(level)
        for child in doc.embeds:
            self._walk(collection, child.child, child, level, depth + 1, root_key)

    def _check_locatable(self, level: _Level) -> None:
        if level.embed is None:
            return
        on_child = {c for c, _ in level.embed.on}
        identity = set(self._identity.get(level.doc.table, ()))
        if on_child <= identity:
            return
        own_key = [k for k in level.doc.key if k not in on_child]
        if len(own_key) == len(level.doc.key):
            return  # the element key alone is unique: it can be found without its parent
        raise TerminalError(
            f"changes to {level.doc.table} cannot be placed: a delete carries only its replica identity "
            f"({', '.join(sorted(identity)) or 'none'}), which does not name the parent ({', '.join(sorted(on_child))})",
            hint=f"ALTER TABLE {level.doc.table} REPLICA IDENTITY FULL; or give the embed a key that does not "
            "include the 'on' columns",
        )

    # -- public entry points -------------------------------------------------------------------

    def insert(self, table: str, new: Row) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.extend(self._root_upsert(level, new))
            else:
                ops.extend(self._element_upsert(level, None, new))
        return ops

    def update(self, table: str, old: Row | None, new: Row) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.extend(self._root_update(level, old, new))
            else:
                ops.extend(self._element_update(level, old, new))
        return ops

    def delete(self, table: str, old: Row) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.append(WriteOp(level.collection, "delete", {"_id": self._id(level, old)}))
            else:
                ops.extend(self._element_delete(level, old))
        return ops

    def truncate(self, table: str) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.append(WriteOp(level.collection, "delete_many", {}))
            else:
                empty: Any = [] if level.embed.many else None
                ops.append(WriteOp(level.collection, "update_many", {}, {"$set": {level.as_path: empty}}))
        return ops

    # -- top level -----------------------------------------------------------------------------

    def _id(self, level: _Level, row: Row) -> Any:
        key = level.doc.key
        if len(key) == 1:
            return row[key[0]]
        return {k: row[k] for k in key}

    def _fields(self, doc: DocumentMapping, row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in doc.fields:
            if f.column.name in row:
                value = row[f.column.name]
                if value is not self._unchanged:
                    out[f.name] = value
        return out

    @staticmethod
    def _defaults(doc: DocumentMapping) -> dict[str, Any]:
        return {e.as_: [] if e.many else None for e in doc.embeds}

    def _root_upsert(self, level: _Level, new: Row) -> list[WriteOp]:
        """Insert the document, or refresh its own fields if it exists (a replay), keeping its
        embedded arrays. A pipeline update, because operators like $set would add new fields
        in lexicographic order; $mergeObjects keeps the snapshot's field order."""
        doc_id = self._id(level, new)
        if not level.doc.embeds:
            # Nothing stored to keep: the row is the whole document, and a replacement costs the
            # target less than a pipeline.
            document = {"_id": doc_id, **self._fields(level.doc, new)}
            return [WriteOp(level.collection, "replace", {"_id": doc_id}, document, upsert=True)]
        fields = {k: {"$literal": v} for k, v in self._fields(level.doc, new).items()}
        defaults = {k: {"$literal": v} for k, v in self._defaults(level.doc).items()}
        shape = {"_id": {"$literal": doc_id}, **fields, **defaults}
        pipeline = [{"$replaceWith": {"$mergeObjects": [shape, "$$ROOT", fields]}}]
        return [WriteOp(level.collection, "update", {"_id": doc_id}, pipeline, upsert=True)]

    def _root_update(self, level: _Level, old: Row | None, new: Row) -> list[WriteOp]:
        new_id = self._id(level, new)
        old_id = self._id(level, old) if old is not None and all(k in old for k in level.doc.key) else new_id
        fields = self._fields(level.doc, new)
        if old_id != new_id:
            return [
                WriteOp(
                    level.collection,
                    "rekey",
                    {"_id": old_id},
                    extra={"new_id": new_id, "set": fields, "defaults": self._defaults(level.doc)},
                )
            ]
        if not fields:
            return []
        return [WriteOp(level.collection, "update", {"_id": new_id}, {"$set": fields})]

    # -- embedded elements ---------------------------------------------------------------------

    def _element(self, level: _Level, row: Row) -> dict[str, Any]:
        element = self._fields(level.doc, row)
        element.update(self._defaults(level.doc))
        return element

    def _has_unchanged(self, level: _Level, row: Row) -> bool:
        return any(row.get(f.column.name) is self._unchanged for f in level.doc.fields)

    def _element_match(self, level: _Level, row: Row) -> dict[str, Any]:
        """The element's own key fields (the 'on' columns are constant within a parent)."""
        assert level.embed is not None
        on_child = {c for c, _ in level.embed.on}
        match: dict[str, Any] = {}
        for k in level.doc.key:
            if k in on_child:
                continue
            name = level.field_of(k)
            assert name is not None, "preflight guarantees element keys are fields"
            match[name] = row[k]
        return match

    def _sort(self, level: _Level) -> dict[str, int]:
        assert level.embed is not None
        on_child = {c for c, _ in level.embed.on}
        spec: dict[str, int] = {}
        for column in (*level.embed.order_by, *level.doc.key):
            name = level.field_of(column)
            if column not in on_child and name is not None and name not in spec:
                spec[name] = 1
        return spec

    def _parent_location(self, level: _Level, row: Row) -> Location | None:
        """Where the parent of `row` (a row of `level`) is, from the row's 'on' values."""
        assert level.embed is not None and level.parent is not None
        values = {p: row[c] for c, p in level.embed.on if c in row}
        if len(values) < len(level.embed.on):
            return None
        return self._locate(level.parent, values, 0)

    def _locate(self, level: _Level, values: dict[str, Any], depth: int) -> Location:
        """Location of the document or element of `level` whose columns have `values`."""
        if level.embed is None:
            if set(values) == set(level.doc.key):
                return Location({"_id": self._id(level, values)}, "", ())
            return Location({level.field_of(c) or c: v for c, v in values.items()}, "", ())
        match = {level.field_of(c) or c: v for c, v in values.items()}
        name = f"p{depth}"
        own_filter = {f"{name}.{k}": v for k, v in match.items()}
        assert level.parent is not None
        up = {p: values[c] for c, p in level.embed.on if c in values}
        if level.embed.many:
            segment = f"{level.embed.as_}.$[{name}]"
            filters: tuple[dict[str, Any], ...] = (own_filter,)
        else:
            segment = level.embed.as_
            filters = ()
        if len(up) == len(level.embed.on):
            parent = self._locate(level.parent, up, depth + 1)
            return Location(parent.filter, parent.child(segment), parent.array_filters + filters)
        # The parent's 'on' values are unknown: find the document by this element's unique
        # values anywhere in it, and pass over the ancestors' arrays with $[].
        prefix = level.parent.as_path if level.parent.embed is not None else ""
        path = f"{prefix}.{segment}" if prefix else segment
        query = (
            {f"{level.dotted}.{k}": v for k, v in match.items()}
            if len(match) == 1
            else {level.dotted: {"$elemMatch": match}}
        )
        return Location(query, path, filters)

    def _push(self, level: _Level, loc: Location, element: dict[str, Any]) -> list[WriteOp]:
        assert level.embed is not None
        target = loc.child(level.embed.as_)
        if not level.embed.many:
            return [
                WriteOp(
                    level.collection, "update", loc.filter, {"$set": {target: element}}, loc.array_filters
                )
            ]
        return [
            WriteOp(
                level.collection,
                "update",
                loc.filter,
                {"$push": {target: {"$each": [element], "$sort": self._sort(level)}}},
                loc.array_filters,
            )
        ]

    def _pull(self, level: _Level, loc: Location | None, row: Row) -> list[WriteOp]:
        """Remove the element keyed like `row` from the parent at `loc` (anywhere when None)."""
        assert level.embed is not None
        match = self._element_match(level, row)
        if loc is None:
            # The parent is unknown: the element's own key is unique (checked at construction).
            query = (
                {f"{level.dotted}.{k}": v for k, v in match.items()}
                if len(match) == 1
                else {level.dotted: {"$elemMatch": match}}
            )
            if level.embed.many:
                update: Any = {"$pull": {level.as_path: match}}
            else:
                update = {"$set": {level.as_path: None}}
            return [WriteOp(level.collection, "update_many", query, update)]
        target = loc.child(level.embed.as_)
        if not level.embed.many:
            return [
                WriteOp(level.collection, "update", loc.filter, {"$set": {target: None}}, loc.array_filters)
            ]
        return [
            WriteOp(level.collection, "update", loc.filter, {"$pull": {target: match}}, loc.array_filters)
        ]

    def _element_upsert(self, level: _Level, old_loc: Location | None, new: Row) -> list[WriteOp]:
        loc = self._parent_location(level, new)
        if loc is None:
            return []
        return self._pull(level, loc, new) + self._push(level, loc, self._element(level, new))

    def _element_update(self, level: _Level, old: Row | None, new: Row) -> list[WriteOp]:
        assert level.embed is not None
        on_child = [c for c, _ in level.embed.on]
        identity = set(self._identity.get(level.doc.table, ()))
        new_loc = self._parent_location(level, new)
        old_row = old if old is not None else {}
        key_cols = level.doc.key
        # What the old row was: its key (from the old tuple when the key changed) and its parent.
        old_key_row = {**new, **{k: old_row[k] for k in key_cols if k in old_row}}
        if all(c in old_row for c in on_child):
            old_loc: Location | None = self._parent_location(level, old_row)
            parent_known = True
        elif set(on_child) <= identity:
            old_loc = new_loc  # the identity did not change, so neither did the 'on' columns
            parent_known = True
        else:
            old_loc, parent_known = None, False
        in_place = self._update_in_place(level, old_loc if parent_known else None, new_loc, old_key_row, new)
        if in_place is not None:
            return in_place
        moving = self._update_moving(
            level, old_loc if parent_known else None, parent_known, new_loc, old_key_row, new
        )
        if moving is not None:
            return moving
        if self._has_unchanged(level, new) or level.doc.embeds:
            # Read and merge the stored element: it keeps the unchanged TOASTed values and the
            # element's own embedded arrays (grandchildren), which the row change does not carry.
            if new_loc is None:
                return []
            return [
                WriteOp(
                    level.collection,
                    "merge_element",
                    new_loc.filter,
                    extra={
                        "old": None if old_loc is None else old_loc,
                        "old_parent_known": parent_known,
                        "old_global": self._pull(level, None, old_key_row)[0] if not parent_known else None,
                        "as": level.embed.as_,
                        "many": level.embed.many,
                        "new": new_loc,
                        "match": self._element_match(level, old_key_row),
                        "set": self._fields(level.doc, new),
                        "defaults": self._defaults(level.doc),
                        "sort": self._sort(level) if level.embed.many else {},
                    },
                )
            ]
        ops = self._pull(level, old_loc if parent_known else None, old_key_row)
        if new_loc is not None:
            same_element = new_loc == old_loc and self._element_match(
                level, old_key_row
            ) == self._element_match(level, new)
            if not same_element:
                # A replay may find the new element already there: pull it too.
                ops += self._pull(level, new_loc, new)
            ops += self._push(level, new_loc, self._element(level, new))
        return ops

    def _update_in_place(
        self, level: _Level, old_loc: Location | None, new_loc: Location | None, old_key_row: Row, new: Row
    ) -> list[WriteOp] | None:
        """The common update: same parent, same key, and an order that only key or 'on' columns
        decide, so the element keeps its place. One `$set` of its changed fields, which leaves
        unchanged TOASTed values and the element's own embedded arrays as they are. An element
        not (yet) there is left alone: a replay converges through the later changes."""
        assert level.embed is not None
        if not level.embed.many or new_loc is None or old_loc != new_loc:
            return None
        match = self._element_match(level, new)
        if not match or self._element_match(level, old_key_row) != match:
            return None
        return self._set_in_place(level, new_loc, match, new) + self._resort(level, new_loc)

    def _set_in_place(self, level: _Level, loc: Location, match: dict[str, Any], new: Row) -> list[WriteOp]:
        assert level.embed is not None
        fields = self._fields(level.doc, new)
        target = loc.child(level.embed.as_)
        assignments = {f"{target}.$[e].{k}": v for k, v in fields.items() if k not in match}
        if not assignments:
            return []
        element_filter = {f"e.{k}": v for k, v in match.items()}
        return [
            WriteOp(
                level.collection,
                "update",
                loc.filter,
                {"$set": assignments},
                (*loc.array_filters, element_filter),
            )
        ]

    def _resort(self, level: _Level, loc: Location) -> list[WriteOp]:
        """Re-sort the array when an order_by column that is not the key may have changed."""
        assert level.embed is not None
        fixed = set(level.doc.key) | {c for c, _ in level.embed.on}
        if set(level.embed.order_by) <= fixed:
            return []
        target = loc.child(level.embed.as_)
        update = {"$push": {target: {"$each": [], "$sort": self._sort(level)}}}
        return [WriteOp(level.collection, "update", loc.filter, update, loc.array_filters)]

    def _update_moving(
        self,
        level: _Level,
        old_loc: Location | None,
        parent_known: bool,
        new_loc: Location | None,
        old_key_row: Row,
        new: Row,
    ) -> list[WriteOp] | None:
        """An element directly under the document whose parent may have changed (its 'on'
        columns are not in the replica identity, so the change does not say), without reading:
        pull it from any other parent, update it in place in the new one, push it there if it is
        not there. Elements with unchanged TOASTed values or embedded arrays of their own need
        the stored element, so they take the merge path instead."""
        assert level.embed is not None and level.parent is not None
        if not level.embed.many or level.parent.embed is not None or new_loc is None:
            return None
        if self._has_unchanged(level, new) or level.doc.embeds:
            return None
        match = self._element_match(level, new)
        if not match or self._element_match(level, old_key_row) != match:
            return None
        as_ = level.embed.as_
        element_query: dict[str, Any] = (
            {f"{as_}.{k}": v for k, v in match.items()} if len(match) == 1 else {as_: {"$elemMatch": match}}
        )
        if parent_known and old_loc is not None:
            pull = [WriteOp(level.collection, "update", old_loc.filter, {"$pull": {as_: match}})]
        else:
            elsewhere = {**element_query, "$nor": [new_loc.filter]}
            pull = [WriteOp(level.collection, "update_many", elsewhere, {"$pull": {as_: match}})]
        absent = {**new_loc.filter, "$nor": [element_query]}
        push = {"$push": {as_: {"$each": [self._element(level, new)], "$sort": self._sort(level)}}}
        return (
            pull
            + self._set_in_place(level, new_loc, match, new)
            + [WriteOp(level.collection, "update", absent, push)]
            + self._resort(level, new_loc)
        )

    def _element_delete(self, level: _Level, old: Row) -> list[WriteOp]:
        assert level.embed is not None
        on_child = [c for c, _ in level.embed.on]
        loc = self._parent_location(level, old) if all(c in old for c in on_child) else None
        return self._pull(level, loc, old)
