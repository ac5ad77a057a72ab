"""Row changes -> document writes, for every place a table appears in the mapping.

Every write is idempotent, so replaying changes after a crash converges (invariant 2):
- a top-level row: upsert of its own fields (embedded arrays kept), field updates,
  delete; a key change moves the whole document (the applier reads it first);
- an embedded row whose parent it references (an owner embed): its element is pulled by its key
  and pushed again with `$sort`, so an insert replayed twice leaves one element, in the
  snapshot's order; a row whose parent changed is pulled from the old parent and pushed into
  the new one;
- an embedded row that its parents reference (a lookup, `EmbedMapping.lookup`): its
  sub-document is set, changed field by field or cleared in every document and element whose
  link fields name it (update_many, with array filters where those parents are array elements);
- a row that appears as a parent (insert), or whose link columns may have changed, gets the
  content of its embeds from the source, read when the batch is applied (a `SourceRead`,
  mapping/reads.py): the referenced row of a lookup, the children of an owner embed. Children
  that an enforced foreign key ties to their parent can exist before it only inside one source
  transaction, so for those the read happens only when an earlier write of the same
  transaction placed a child under that link or removed a parent holding it (WriteOp.tags);
- an unchanged TOASTed value is never written: top-level updates leave the field out, and
  an element change that carries one is merged with the stored element by the applier (or, for
  an element that several documents embed, read whole from the source); so is a change to an
  element with embedded arrays of its own, which the row does not carry. A link column that
  stays unchanged (outside the replica identity) means the link did not change.

docs/architecture.md ("Embeds: owner and lookup", "Embedded content read from the source") says
why this converges.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson.decimal128 import Decimal128

from migrator.adapters.base import SourceRead, WriteOp
from migrator.errors import TerminalError
from migrator.mapping.reads import EmbedRead, element_read, embed_read
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping

Row = dict[str, Any]  # column name -> value (or the UNCHANGED marker)


def fill_unchanged(old: Row | None, new: Row, unchanged: Any) -> Row:
    """`new` with each unchanged-TOAST marker replaced by the old tuple's value where it has one.

    PostgreSQL logs the old replica identity of an UPDATE whenever it holds a value stored out of
    line, and the whole old row (flattened) under REPLICA IDENTITY FULL, while the new tuple marks
    such a value "unchanged": so a key or link column may be unchanged in `new` and known in `old`
    (docs/architecture.md, "Unchanged TOASTed values"). A column that stays unchanged was not
    carried by either tuple and must be left out of any write."""
    if old is None:
        return new
    for value in new.values():  # a loop, not any() of a generator: every UPDATE comes here
        if value is unchanged:
            break
    else:
        return new
    return {
        name: old[name] if value is unchanged and name in old and old[name] is not unchanged else value
        for name, value in new.items()
    }


def _hashable(value: Any) -> Hashable:
    """A hashable stand-in equal only for values of the same type and value (1, 1.0 and True
    differ), for comparing link values and tagging them."""
    if isinstance(value, dict):
        return ("dict", tuple((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(_hashable(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return (type(value).__name__, value)


def _exact(value: Any) -> Hashable:
    """A stand-in equal only for values that become the same BSON value. Python (and MongoDB's
    `_id` comparison) finds numeric 1.0 equal to 1.00 and 0.0 to -0.0, but the document of the
    new row holds its own form, as a snapshot of it would (docs/architecture.md, "Keys")."""
    if isinstance(value, dict):
        return ("dict", tuple((k, _exact(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(_exact(v) for v in value))
    if isinstance(value, float | decimal.Decimal | Decimal128):
        return (type(value).__name__, repr(value))  # keeps the scale, the sign of zero, NaN
    return _hashable(value)


def _identical(a: Any, b: Any) -> bool:
    """Whether a key that may have changed is written in the same form (see `_exact`)."""
    return a is b or _exact(a) == _exact(b)


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return _hashable(list(a)) == _hashable(list(b))


def _reads_in(values: Iterable[Any]) -> tuple[SourceRead, ...]:
    return tuple(v for v in values if isinstance(v, SourceRead))


@dataclass(frozen=True)
class Location:
    """Where a parent (document or element) is: a filter for the document, the dotted path
    of the parent inside it ('' for the document itself) and the array filters that path uses.
    `many`: the filter may match several documents (the write is an update_many)."""

    filter: dict[str, Any]
    path: str
    array_filters: tuple[dict[str, Any], ...]
    many: bool = False

    def child(self, field: str) -> str:
        return f"{self.path}.{field}" if self.path else field

    @property
    def kind(self) -> str:
        return "update_many" if self.many else "update"


@dataclass(eq=False)
class _Level:
    collection: str
    doc: DocumentMapping
    embed: EmbedMapping | None
    parent: _Level | None
    depth: int
    root_key: tuple[str, ...]
    children: dict[str, _Level] = field(default_factory=dict)  # embed name -> its level
    reads: dict[str, EmbedRead] = field(default_factory=dict)  # embed name -> its content under a row
    whole: EmbedRead | None = None  # this level's element, read whole by its key

    @property
    def multi(self) -> bool:
        """Whether one row of this level may sit in several places: it is a lookup, or lies
        under one."""
        if self.embed is None or self.parent is None:
            return False
        return self.embed.lookup or self.parent.multi

    def chain(self) -> list[_Level]:
        """The embedded levels from the top (a child of the document) down to this one."""
        chain: list[_Level] = []
        node: _Level | None = self
        while node is not None and node.embed is not None:
            chain.append(node)
            node = node.parent
        return list(reversed(chain))

    @property
    def as_path(self) -> str:
        """Path of this level's array/sub-document with `$[]` for every ancestor array."""
        chain = self.chain()
        parts: list[str] = []
        for i, lvl in enumerate(chain):
            assert lvl.embed is not None
            parts.append(lvl.embed.as_)
            if i < len(chain) - 1 and lvl.embed.many:
                parts.append("$[]")
        return ".".join(parts)

    @property
    def dotted(self) -> str:
        """Plain dotted path (no positional operators), for queries."""
        return ".".join(lvl.embed.as_ for lvl in self.chain() if lvl.embed is not None)

    def field_of(self, column: str) -> str | None:
        return next((f.name for f in self.doc.fields if f.column.name == column), None)


class ChangeMapper:
    """Maps one table's row changes to target writes, for every level the table feeds."""

    def __init__(
        self, collections: list[CollectionMapping], identity: dict[str, tuple[str, ...]], unchanged: Any
    ) -> None:
        self._unchanged = unchanged
        self._levels: dict[str, list[_Level]] = {}
        # Per document mapping (by id, kept alive beside it): its fields' (column, name, cast).
        self._field_plans: dict[int, tuple[DocumentMapping, tuple[tuple[str, str, Any], ...]]] = {}
        self._identity = identity
        for collection in collections:
            self._add_levels(collection)
        for levels in self._levels.values():
            for level in levels:
                self._check_locatable(level)

    def tables(self) -> set[str]:
        return set(self._levels)

    def index_paths(self) -> dict[str, set[str]]:
        """Fields that writes use to find a document other than by _id: an element's own key
        under its array path where a change may not name its parent, and parent link fields
        (those of a lookup at any depth: its changes find every parent that names it).
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
                if parent.embed is None and {p for _, p in level.embed.on} == set(parent.doc.key):
                    continue  # found by _id
                if parent.embed is None or level.embed.lookup:
                    for _, p in level.embed.on:
                        name = parent.field_of(p)
                        if name is not None:
                            dotted = f"{parent.dotted}.{name}" if parent.dotted else name
                            paths.setdefault(level.collection, set()).add(dotted)
        return paths

    def _found_by_own_key(self, level: _Level) -> bool:
        """Whether a write may look for the element of `level` by its own key, anywhere in the
        collection: when its replica identity leaves out its parent link (an update or delete
        then does not name the parent), or when it has elements of its own (their changes name
        it, but not its parent)."""
        assert level.embed is not None
        if level.embed.lookup:
            return False  # found through the parents' link fields
        on_child = {c for c, _ in level.embed.on}
        return not on_child <= set(self._identity.get(level.doc.table, ())) or bool(level.doc.embeds)

    def _add_levels(self, collection: CollectionMapping) -> None:
        made: list[_Level] = []
        for spec in collection.levels:  # depth first: a parent before its children
            parent = made[spec.parent] if spec.parent >= 0 else None
            doc = spec.document
            level = _Level(collection.name, doc, spec.embed, parent, spec.depth, collection.document.key)
            level.reads = {e.as_: embed_read(e, doc.all_columns) for e in doc.embeds}
            if spec.embed is not None:
                level.whole = element_read(doc)
                assert parent is not None
                parent.children[spec.embed.as_] = level
            self._levels.setdefault(doc.table, []).append(level)
            made.append(level)

    def _check_locatable(self, level: _Level) -> None:
        if level.embed is None:
            return
        on_child = {c for c, _ in level.embed.on}
        identity = set(self._identity.get(level.doc.table, ()))
        if on_child <= identity:
            return
        if level.embed.lookup:
            raise TerminalError(
                f"changes to {level.doc.table} cannot be placed: an update or delete carries only its replica "
                f"identity ({', '.join(sorted(identity)) or 'none'}), which does not say which documents embed the "
                f"row ({', '.join(sorted(on_child))})",
                hint=f"ALTER TABLE {level.doc.table} REPLICA IDENTITY FULL; or REPLICA IDENTITY USING INDEX on a "
                f"unique index of ({', '.join(sorted(on_child))})",
            )
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
            elif level.embed.lookup:
                ops.extend(self._lookup_insert(level, new))
            else:
                ops.extend(self._element_upsert(level, new))
        return ops

    def update(self, table: str, old: Row | None, new: Row) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.extend(self._root_update(level, old, new))
            elif level.embed.lookup:
                ops.extend(self._lookup_update(level, old, new))
            else:
                ops.extend(self._element_update(level, old, new))
        return ops

    def refresh(self, table: str, row: Row) -> list[WriteOp]:
        """`row` re-read whole from the source (a column added while CDC follows, phases/backfill.py):
        an update whose old row is unknown, except that a document's own fields are written as an
        insert writes them (upserted, merged over what is stored in the snapshot's field order):
        `$set` would put a field new to the document after its embedded arrays."""
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.extend(self._root_upsert(level, row))
            elif level.embed.lookup:
                ops.extend(self._lookup_update(level, None, row))
            else:
                ops.extend(self._element_update(level, None, row))
        return ops

    def delete(self, table: str, old: Row) -> list[WriteOp]:
        ops: list[WriteOp] = []
        for level in self._levels.get(table, ()):
            if level.embed is None:
                ops.append(
                    WriteOp(
                        level.collection,
                        "delete",
                        {"_id": self._id(level, old)},
                        tags=self._removed_tags(level, old, level.children.values())
                        if level.children
                        else (),
                    )
                )
            elif level.embed.lookup:
                ops.extend(self._lookup_delete(level, old))
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

    # -- values --------------------------------------------------------------------------------

    def _known(self, row: Row | None, columns: Iterable[str]) -> bool:
        """Whether `row` carries every one of `columns` (not as an unchanged TOASTed value)."""
        return row is not None and all(c in row and row[c] is not self._unchanged for c in columns)

    @staticmethod
    def _values(row: Row, columns: Iterable[str]) -> tuple[Any, ...]:
        return tuple(row[c] for c in columns)

    def _id(self, level: _Level, row: Row) -> Any:
        key = level.doc.key
        unchanged = self._unchanged
        for k in key:  # a loop, not _carried's list: this runs for every change
            if row.get(k) is unchanged:
                self._carried(level, row, key)
        if len(key) == 1:
            return row[key[0]]
        return {k: row[k] for k in key}

    def _carried(self, level: _Level, row: Row, columns: Iterable[str]) -> None:
        """Stop where a key value that a write must name is an unchanged TOASTed value neither
        tuple carried (a key outside the replica identity): the marker must never be written."""
        missing = [c for c in columns if row.get(c) is self._unchanged]
        if missing:
            raise TerminalError(
                f"a change of {level.doc.table} does not carry key column(s) {missing} (unchanged values stored "
                "out of line, outside the replica identity), so its document or element cannot be found",
                hint=f"ALTER TABLE {level.doc.table} REPLICA IDENTITY FULL; (or make the key the replica identity)",
            )

    def _fields(self, doc: DocumentMapping, row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        unchanged = self._unchanged
        # Every change of every table comes here: the fields as plain tuples, made once a level.
        plan = self._field_plans.get(id(doc))
        if plan is None:
            plan = self._field_plans[id(doc)] = (
                doc,
                tuple((f.column.name, f.name, f.forward) for f in doc.fields),
            )
        for column, name, forward in plan[1]:
            value = row.get(column, unchanged)
            if value is not unchanged:
                # The plan's cast (`types`), as the snapshot's assembler applies it.
                out[name] = value if forward is None else forward(value)
        return out

    @staticmethod
    def _defaults(doc: DocumentMapping) -> dict[str, Any]:
        return {e.as_: [] if e.many else None for e in doc.embeds}

    # -- embedded content read from the source ------------------------------------------------

    @staticmethod
    def _tag(child: _Level, values: Sequence[Any] | None) -> Hashable:
        """What a write says about the link `values` of embed `child` (None: any of them)."""
        return (child.collection, child.dotted, None if values is None else _hashable(list(values)))

    def _placed_tags(self, level: _Level, row: Row) -> tuple[Hashable, ...]:
        """A row of owner level `level` placed under the parent its link values name."""
        assert level.embed is not None
        columns = [c for c, _ in level.embed.on]
        if level.embed.lookup or not self._known(row, columns):
            return ()
        return (self._tag(level, self._values(row, columns)),)

    def _removed_tags(
        self, level: _Level, old: Row | None, children: Iterable[_Level]
    ) -> tuple[Hashable, ...]:
        """A row of `level` no longer holds the link values `old` gives for these embeds: their
        child rows may stay behind for a parent that takes those values in the same transaction."""
        tags = []
        for child in children:
            assert child.embed is not None
            if child.embed.lookup:
                continue
            columns = [p for _, p in child.embed.on]
            known = old is not None and self._known(old, columns)
            tags.append(self._tag(child, self._values(old, columns) if old is not None and known else None))
        return tuple(tags)

    def _relinked(self, level: _Level, old: Row | None, new: Row) -> list[_Level]:
        """The embeds of `level` whose link columns (the parent's `on` columns) an update of its
        row may have changed: those the change shows changed, or cannot show unchanged (neither
        the old tuple nor the replica identity holds them). An unchanged TOASTed link did not."""
        identity = set(self._identity.get(level.doc.table, ()))
        changed = []
        for child in level.children.values():
            assert child.embed is not None
            columns = [p for _, p in child.embed.on]
            if not self._known(new, columns):
                continue
            if old is not None and self._known(old, columns):
                if _same(self._values(old, columns), self._values(new, columns)):
                    continue
            elif set(columns) <= identity:
                continue  # the identity did not change (no old tuple), nor did these
            changed.append(child)
        return changed

    def _content(
        self, level: _Level, row: Row, children: Iterable[_Level], *, appears: bool, pipeline: bool = False
    ) -> dict[str, Any]:
        """Embed name -> the content of these embeds under `row` of `level`, as SourceReads (or the
        empty value for a NULL link). `appears`: the row has just appeared as this parent (an
        insert), so children that a foreign key ties to it exist only if its own transaction
        put them there; otherwise its link changed and they are read in any case. `pipeline`:
        the values go into an aggregation pipeline (literal, and "keep what is stored" when not
        read)."""
        out: dict[str, Any] = {}
        for child in children:
            embed = child.embed
            assert embed is not None
            columns = [p for _, p in embed.on]
            if not self._known(row, columns):
                continue  # an unchanged link: the stored content stays
            values = self._values(row, columns)
            empty: Any = [] if embed.many else None
            if any(v is None for v in values):
                out[embed.as_] = {"$literal": empty} if pipeline else empty
                continue
            spec = level.reads[embed.as_]
            if appears and embed.foreign_key:
                stored = {"$ifNull": [f"${embed.as_}", {"$literal": empty}]} if pipeline else empty
                out[embed.as_] = SourceRead(
                    spec,
                    values,
                    literal=pipeline,
                    only_if=(self._tag(child, values), self._tag(child, None)),
                    otherwise=stored,
                )
            else:
                out[embed.as_] = SourceRead(spec, values, literal=pipeline)
        return out

    def _new_element(
        self, level: _Level, row: Row, *, appears: bool = True
    ) -> tuple[dict[str, Any], tuple[SourceRead, ...]]:
        """The element of a row that appears in a parent: its fields, and its embeds' content."""
        element = self._fields(level.doc, row)
        content = self._content(level, row, level.children.values(), appears=appears)
        for name, empty in self._defaults(level.doc).items():
            element[name] = content.get(name, empty)
        return element, _reads_in(content.values())

    def _whole(self, level: _Level, row: Row) -> SourceRead:
        """The element of `row` read whole from the source (fields, unchanged values, embeds)."""
        assert level.whole is not None
        return SourceRead(level.whole, self._values(row, level.doc.key))

    # -- top level -----------------------------------------------------------------------------

    def _root_upsert(self, level: _Level, new: Row) -> list[WriteOp]:
        """Insert the document, or refresh its own fields if it exists (a replay), keeping its
        embedded arrays. A pipeline update, because operators like $set would add new fields
        in lexicographic order; $mergeObjects keeps the snapshot's field order. The embeds'
        content comes from the source (or, for children that a foreign key ties to it and that
        its transaction did not place before it, is what is stored, else empty)."""
        doc_id = self._id(level, new)
        if not level.doc.embeds:
            # Nothing stored to keep: the row is the whole document, and a replacement costs the
            # target less than a pipeline.
            document = {"_id": doc_id, **self._fields(level.doc, new)}
            return [WriteOp(level.collection, "replace", {"_id": doc_id}, document, upsert=True)]
        fields = {k: {"$literal": v} for k, v in self._fields(level.doc, new).items()}
        defaults = {k: {"$literal": v} for k, v in self._defaults(level.doc).items()}
        shape = {"_id": {"$literal": doc_id}, **fields, **defaults}
        content = self._content(level, new, level.children.values(), appears=True, pipeline=True)
        pipeline = [{"$replaceWith": {"$mergeObjects": [shape, "$$ROOT", fields, content]}}]
        return [
            WriteOp(
                level.collection,
                "update",
                {"_id": doc_id},
                pipeline,
                upsert=True,
                reads=_reads_in(content.values()),
            )
        ]

    def _root_update(self, level: _Level, old: Row | None, new: Row) -> list[WriteOp]:
        new_id = self._id(level, new)
        old_id = self._id(level, old) if old is not None and self._known(old, level.doc.key) else new_id
        fields = self._fields(level.doc, new)
        if level.children:
            relinked = self._relinked(level, old, new)
            content = self._content(level, new, relinked, appears=False)
            reads = _reads_in(content.values())
            tags = self._removed_tags(level, old, relinked)
        else:
            # Nothing embedded (a flat table: CDC's every change): no content, reads or tags.
            content, reads, tags = {}, (), ()
        if not _identical(old_id, new_id):
            # Also when MongoDB finds the two equal (numeric 1.0 and 1.00): the document takes
            # the new row's form of its key, as the snapshot of that row would give.
            return [
                WriteOp(
                    level.collection,
                    "rekey",
                    {"_id": old_id},
                    extra={
                        "new_id": new_id,
                        "set": {**fields, **content},
                        "defaults": self._defaults(level.doc),
                    },
                    reads=reads,
                    tags=tags,
                )
            ]
        if not fields and not content:
            return []
        return [
            WriteOp(
                level.collection,
                "update",
                {"_id": new_id},
                {"$set": {**fields, **content} if content else fields},
                reads=reads,
                tags=tags,
            )
        ]

    # -- finding parents and elements ----------------------------------------------------------

    def _element_match(self, level: _Level, row: Row) -> dict[str, Any]:
        """The element's own key fields (the 'on' columns are constant within a parent)."""
        assert level.embed is not None
        on_child = {c for c, _ in level.embed.on}
        self._carried(level, row, [k for k in level.doc.key if k not in on_child])
        match: dict[str, Any] = {}
        for k in level.doc.key:
            if k in on_child:
                continue
            name = level.field_of(k)
            assert name is not None, "preflight guarantees element keys are fields"
            match[name] = row[k]
        return match

    @staticmethod
    def _element_query(level: _Level, match: dict[str, Any]) -> dict[str, Any]:
        """A query for the documents holding an element of `level` with these own fields."""
        assert level.embed is not None
        if len(match) == 1 or not level.embed.many:
            return {f"{level.dotted}.{k}": v for k, v in match.items()}
        return {level.dotted: {"$elemMatch": match}}

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
        """Where the parent of `row` (a row of `level`) is, from the row's 'on' values; None
        when the row does not carry them."""
        assert level.embed is not None and level.parent is not None
        columns = [c for c, _ in level.embed.on]
        if not self._known(row, columns):
            return None
        location = self._locate(level.parent, {p: row[c] for c, p in level.embed.on}, 0)
        return dataclasses.replace(location, many=True) if level.multi else location

    def _locate(
        self, level: _Level, values: dict[str, Any], depth: int, where: dict[str, Any] | None = None
    ) -> Location:
        """Location of the document or element(s) of `level` whose columns have `values`;
        `where`: further conditions on paths inside that document or element."""
        where = where or {}
        if level.embed is None:
            if set(values) == set(level.doc.key):
                return Location({"_id": self._id(level, values), **where}, "", ())
            fields = {level.field_of(c) or c: v for c, v in values.items()}
            return Location({**fields, **where}, "", (), many=True)
        match = {level.field_of(c) or c: v for c, v in values.items()}
        assert level.parent is not None
        up = {p: values[c] for c, p in level.embed.on if c in values}
        as_ = level.embed.as_
        if len(up) == len(level.embed.on):
            if level.embed.many:
                name = f"p{depth}"
                own = {f"{name}.{k}": v for k, v in {**match, **where}.items()}
                parent = self._locate(level.parent, up, depth + 1)
                return Location(
                    parent.filter, parent.child(f"{as_}.$[{name}]"), (*parent.array_filters, own), parent.many
                )
            # A sub-document: its parent decides which one it is; the conditions move up. Writes go
            # inside it, so it must be there: a lookup's place holds null until its row is read.
            inside = {as_: {"$type": "object"}, **{f"{as_}.{k}": c for k, c in where.items()}}
            parent = self._locate(level.parent, up, depth + 1, inside)
            return Location(parent.filter, parent.child(as_), parent.array_filters, parent.many)
        # The parent's 'on' values are unknown: find the element by its own values anywhere.
        return self._find(level, match, where, f"p{depth}")

    def _find(self, level: _Level, match: dict[str, Any], where: dict[str, Any], name: str) -> Location:
        """The element(s) of `level` whose fields equal `match` (and meet `where`), anywhere in
        the collection: the innermost array on the way down is filtered (array filter `name`),
        arrays above it are passed with `$[]`."""
        chain = level.chain()
        query = self._element_query(level, match)
        arrays = [i for i, lvl in enumerate(chain) if lvl.embed is not None and lvl.embed.many]
        if not arrays:
            path = ".".join(lvl.embed.as_ for lvl in chain if lvl.embed is not None)
            return Location({**query, **{f"{path}.{k}": c for k, c in where.items()}}, path, (), many=True)
        inner = arrays[-1]
        parts: list[str] = []
        for i, lvl in enumerate(chain):
            assert lvl.embed is not None
            parts.append(lvl.embed.as_)
            if lvl.embed.many:
                parts.append(f"$[{name}]" if i == inner else "$[]")
        below = "".join(f"{lvl.embed.as_}." for lvl in chain[inner + 1 :] if lvl.embed is not None)
        conditions = {f"{name}.{below}{k}": c for k, c in {**match, **where}.items()}
        return Location(query, ".".join(parts), (conditions,), many=True)

    # -- embedded elements (owner embeds) ------------------------------------------------------

    def _element(self, level: _Level, row: Row) -> dict[str, Any]:
        element = self._fields(level.doc, row)
        element.update(self._defaults(level.doc))
        return element

    def _has_unchanged(self, level: _Level, row: Row) -> bool:
        return any(row.get(f.column.name) is self._unchanged for f in level.doc.fields)

    def _push(
        self,
        level: _Level,
        loc: Location,
        element: Any,
        reads: tuple[SourceRead, ...] = (),
        tags: tuple[Hashable, ...] = (),
    ) -> list[WriteOp]:
        assert level.embed is not None
        target = loc.child(level.embed.as_)
        if not level.embed.many:
            update: dict[str, Any] = {"$set": {target: element}}
        else:
            update = {"$push": {target: {"$each": [element], "$sort": self._sort(level)}}}
        return [
            WriteOp(level.collection, loc.kind, loc.filter, update, loc.array_filters, reads=reads, tags=tags)
        ]

    def _pull(self, level: _Level, loc: Location | None, row: Row) -> list[WriteOp]:
        """Remove the element keyed like `row` from the parent at `loc` (anywhere when None)."""
        assert level.embed is not None
        match = self._element_match(level, row)
        if loc is None:
            # The parent is unknown: the element's own key is unique (checked at construction).
            if level.embed.many:
                update: Any = {"$pull": {level.as_path: match}}
                return [WriteOp(level.collection, "update_many", self._element_query(level, match), update)]
            found = self._find(level, match, {}, "p0")
            return [
                WriteOp(
                    level.collection,
                    "update_many",
                    found.filter,
                    {"$set": {found.path: None}},
                    found.array_filters,
                )
            ]
        target = loc.child(level.embed.as_)
        update = {"$pull": {target: match}} if level.embed.many else {"$set": {target: None}}
        return [WriteOp(level.collection, loc.kind, loc.filter, update, loc.array_filters)]

    def _element_upsert(self, level: _Level, new: Row) -> list[WriteOp]:
        loc = self._parent_location(level, new)
        if loc is None:
            return []
        element, reads = self._new_element(level, new)
        return self._pull(level, loc, new) + self._push(
            level, loc, element, reads, self._placed_tags(level, new)
        )

    def _element_update(self, level: _Level, old: Row | None, new: Row) -> list[WriteOp]:
        assert level.embed is not None
        on_child = [c for c, _ in level.embed.on]
        identity = set(self._identity.get(level.doc.table, ()))
        old_row = old if old is not None else {}
        key_cols = level.doc.key
        # What the old row was: its key (from the old tuple when the key changed) and its parent.
        old_key_row = {**new, **{k: old_row[k] for k in key_cols if k in old_row}}
        relinked = self._relinked(level, old, new)
        content = self._content(level, new, relinked, appears=False)
        reads = _reads_in(content.values())
        tags = self._placed_tags(level, new) + self._removed_tags(level, old, relinked)
        ops = self._element_update_ops(level, on_child, identity, old_row, old_key_row, new, content, reads)
        if tags and ops:
            ops[0] = dataclasses.replace(ops[0], tags=ops[0].tags + tags)
        return ops

    def _element_update_ops(
        self,
        level: _Level,
        on_child: list[str],
        identity: set[str],
        old_row: Row,
        old_key_row: Row,
        new: Row,
        content: dict[str, Any],
        reads: tuple[SourceRead, ...],
    ) -> list[WriteOp]:
        assert level.embed is not None
        if not self._known(new, on_child):
            # The link is an unchanged TOASTed value outside the replica identity: the element
            # stays in its parent, which the change does not name; found by its own key.
            return self._update_unplaced(level, old_key_row, new, content, reads)
        new_loc = self._parent_location(level, new)
        assert new_loc is not None
        if self._known(old_row, on_child):
            old_loc: Location | None = self._parent_location(level, old_row)
            parent_known = True
        elif set(on_child) <= identity:
            old_loc = new_loc  # the identity did not change, so neither did the 'on' columns
            parent_known = True
        else:
            old_loc, parent_known = None, False
        in_place = self._update_in_place(
            level, old_loc if parent_known else None, new_loc, old_key_row, new, content, reads
        )
        if in_place is not None:
            return in_place
        moving = self._update_moving(
            level, old_loc if parent_known else None, parent_known, new_loc, old_key_row, new
        )
        if moving is not None:
            return moving
        element: Any
        if self._has_unchanged(level, new) or level.doc.embeds:
            if level.multi:
                # Several documents hold the element: no one stored copy is the one to merge
                # with, so the source's is taken (whole: unchanged values and embeds).
                element = self._whole(level, new)
                reads = (element,)
            else:
                # Read and merge the stored element: it keeps the unchanged TOASTed values and the
                # element's own embedded arrays (grandchildren), which the row change does not carry.
                return [
                    WriteOp(
                        level.collection,
                        "merge_element",
                        new_loc.filter,
                        extra={
                            "old": None if old_loc is None else old_loc,
                            "old_parent_known": parent_known,
                            "old_global": self._pull(level, None, old_key_row)[0]
                            if not parent_known
                            else None,
                            "as": level.embed.as_,
                            "many": level.embed.many,
                            "new": new_loc,
                            "match": self._element_match(level, old_key_row),
                            "set": {**self._fields(level.doc, new), **content},
                            "defaults": self._defaults(level.doc),
                            "sort": self._sort(level) if level.embed.many else {},
                        },
                        reads=reads,
                    )
                ]
        else:
            element = self._element(level, new)
        ops = self._pull(level, old_loc if parent_known else None, old_key_row)
        same_element = new_loc == old_loc and _identical(
            self._element_match(level, old_key_row), self._element_match(level, new)
        )
        if not same_element:
            # A replay may find the new element already there: pull it too.
            ops += self._pull(level, new_loc, new)
        return ops + self._push(level, new_loc, element, reads)

    def _update_in_place(
        self,
        level: _Level,
        old_loc: Location | None,
        new_loc: Location | None,
        old_key_row: Row,
        new: Row,
        content: dict[str, Any],
        reads: tuple[SourceRead, ...],
    ) -> list[WriteOp] | None:
        """The common update: same parent, same key, and an order that only key or 'on' columns
        decide, so the element keeps its place. One `$set` of its changed fields, which leaves
        unchanged TOASTed values and the element's own embedded arrays as they are. An element
        not (yet) there is left alone: a replay converges through the later changes."""
        assert level.embed is not None
        if not level.embed.many or new_loc is None or old_loc != new_loc:
            return None
        match = self._element_match(level, new)
        if not match or not _identical(self._element_match(level, old_key_row), match):
            return None
        return self._set_in_place(level, new_loc, match, new, content, reads) + self._resort(level, new_loc)

    def _set_in_place(
        self,
        level: _Level,
        loc: Location,
        match: dict[str, Any],
        new: Row,
        content: dict[str, Any] | None = None,
        reads: tuple[SourceRead, ...] = (),
    ) -> list[WriteOp]:
        assert level.embed is not None
        fields = self._fields(level.doc, new)
        target = loc.child(level.embed.as_)
        assignments = {f"{target}.$[e].{k}": v for k, v in fields.items() if k not in match}
        assignments.update({f"{target}.$[e].{k}": v for k, v in (content or {}).items()})
        if not assignments:
            return []
        element_filter = {f"e.{k}": v for k, v in match.items()}
        return [
            WriteOp(
                level.collection,
                loc.kind,
                loc.filter,
                {"$set": assignments},
                (*loc.array_filters, element_filter),
                reads=reads,
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
        return [WriteOp(level.collection, loc.kind, loc.filter, update, loc.array_filters)]

    def _update_unplaced(
        self,
        level: _Level,
        old_key_row: Row,
        new: Row,
        content: dict[str, Any],
        reads: tuple[SourceRead, ...],
    ) -> list[WriteOp]:
        """An update whose link columns the change does not carry (unchanged): the element is
        changed where it is, found by its (old) own key, which is unique on its own there
        (ChangeMapper refuses other mappings)."""
        assert level.embed is not None
        found = self._find(level, self._element_match(level, old_key_row), {}, "p0")
        changes = {**self._fields(level.doc, new), **content}
        if not changes:
            return []
        ops = [
            WriteOp(
                level.collection,
                "update_many",
                found.filter,
                {"$set": {f"{found.path}.{k}": v for k, v in changes.items()}},
                found.array_filters,
                reads=reads,
            )
        ]
        rekeyed = not _identical(self._element_match(level, old_key_row), self._element_match(level, new))
        if level.embed.many and (rekeyed or not set(level.embed.order_by) <= set(level.doc.key)):
            query = self._element_query(level, self._element_match(level, new))
            resort = {"$push": {level.as_path: {"$each": [], "$sort": self._sort(level)}}}
            ops.append(WriteOp(level.collection, "update_many", query, resort))
        return ops

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
        if not match or not _identical(self._element_match(level, old_key_row), match):
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
        loc = self._parent_location(level, old) if self._known(old, on_child) else None
        ops = self._pull(level, loc, old)
        tags = self._removed_tags(level, old, level.children.values())
        if tags:
            ops[0] = dataclasses.replace(ops[0], tags=tags)
        return ops

    # -- lookups: rows that their parents reference -------------------------------------------

    def _places(self, level: _Level, row: Row, where: dict[str, Any] | None = None) -> Location:
        """Every parent document or element that embeds lookup `level`'s row whose `on` columns
        hold `row`'s values: those whose link fields hold them."""
        assert level.embed is not None and level.parent is not None
        values = {p: row[c] for c, p in level.embed.on}
        return dataclasses.replace(self._locate(level.parent, values, 0, where), many=True)

    def _lookup_insert(self, level: _Level, new: Row) -> list[WriteOp]:
        assert level.embed is not None
        element, reads = self._new_element(level, new)
        loc = self._places(level, new)
        update = {"$set": {loc.child(level.embed.as_): element}}
        return [WriteOp(level.collection, "update_many", loc.filter, update, loc.array_filters, reads=reads)]

    def _lookup_update(self, level: _Level, old: Row | None, new: Row) -> list[WriteOp]:
        """The row changed in every place that embeds it: field by field where it stays the row
        those places name; moved (cleared there, set in full where the new key is named) when
        its `on` columns changed."""
        assert level.embed is not None
        on_child = [c for c, _ in level.embed.on]
        as_ = level.embed.as_
        # The `on` columns are in the replica identity (ChangeMapper checks): the old tuple
        # carries them when they changed, and there is none when they did not.
        old_on = {c: (old[c] if old is not None and self._known(old, [c]) else new[c]) for c in on_child}
        relinked = self._relinked(level, old, new)
        tags = self._removed_tags(level, old, relinked)
        if not _same(self._values(old_on, on_child), self._values(new, on_child)):
            before = self._places(level, old_on)
            after = self._places(level, new)
            element: Any
            if self._has_unchanged(level, new):
                element = self._whole(level, new)
                reads: tuple[SourceRead, ...] = (element,)
            else:
                # Its key changed: the children it owns come along from the source too.
                element, reads = self._new_element(level, new, appears=False)
            return [
                WriteOp(
                    level.collection,
                    "update_many",
                    before.filter,
                    {"$set": {before.child(as_): None}},
                    before.array_filters,
                    tags=tags,
                ),
                WriteOp(
                    level.collection,
                    "update_many",
                    after.filter,
                    {"$set": {after.child(as_): element}},
                    after.array_filters,
                    reads=reads,
                ),
            ]
        # Only where the sub-document is there: a field cannot be set inside a null. A place
        # that names the row but holds null is one whose read (or insert) is still to come.
        loc = self._places(level, new, where={as_: {"$type": "object"}})
        content = self._content(level, new, relinked, appears=False)
        changes = {**self._fields(level.doc, new), **content}
        if not changes:
            return []
        target = loc.child(as_)
        update = {"$set": {f"{target}.{k}": v for k, v in changes.items()}}
        return [
            WriteOp(
                level.collection,
                "update_many",
                loc.filter,
                update,
                loc.array_filters,
                reads=_reads_in(content.values()),
                tags=tags,
            )
        ]

    def _lookup_delete(self, level: _Level, old: Row) -> list[WriteOp]:
        assert level.embed is not None
        loc = self._places(level, old)
        update = {"$set": {loc.child(level.embed.as_): None}}
        tags = self._removed_tags(level, old, level.children.values())
        return [WriteOp(level.collection, "update_many", loc.filter, update, loc.array_filters, tags=tags)]
