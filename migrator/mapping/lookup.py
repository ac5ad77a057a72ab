"""Documents for a set of keys, on both sides: the source's through the mapping (read as verify
and the snapshot read them, BSON-encoded), the target's raw; and the references of
`migrator.mapping.affected` resolved to those keys.

What the dual-write oracle (phases/oracle.py) and the application library (migrator.dualwrite)
share. Each thread gets its own source connections, so the library can be called from an
application's request threads; a connection that failed is dropped and opened again on next use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import json_util

from migrator.adapters.base import ColumnInfo, KeyLookup, KeyReader, SourceAdapter, TargetAdapter
from migrator.errors import MigratorError
from migrator.mapping import compare
from migrator.mapping.affected import Affected, DocumentId, ElementKey, ParentRow
from migrator.mapping.assemble import Assembler
from migrator.mapping.spec import CollectionMapping

# Keys per source read: one REPEATABLE READ transaction and one query per level each.
KEYS_PER_READ = 1_000

KeyText = tuple[str, ...]


@dataclass
class Keys:
    """What references resolved to, in one collection: _ids (as the change or the target gave
    them) and root keys found in the source (as text)."""

    ids: dict[bytes, Any] = field(default_factory=dict)
    texts: dict[KeyText, None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.ids or self.texts)

    def add(self, other: Keys) -> None:
        self.ids.update(other.ids)
        self.texts.update(other.texts)


@dataclass
class Look:
    """One look at a set of documents: what the source holds through the mapping (read at
    `position`) and what the target holds, by `compare.id_key`; None where a side has none."""

    position: str
    ids: dict[bytes, Any]
    expected: dict[bytes, bytes]
    actual: dict[bytes, bytes]
    # The target's own comparison (TargetAdapter.same_document): a PostgreSQL target's raw
    # documents are not BSON (docs/architecture.md, "Tables as collections").
    same: Callable[[bytes, bytes], bool] = compare.equal

    def equal(self, key: bytes) -> bool:
        expected, actual = self.expected.get(key), self.actual.get(key)
        if expected is None or actual is None:
            return expected is None and actual is None
        return self.same(expected, actual)

    def differing(self) -> list[bytes]:
        return [k for k in self.ids if not self.equal(k)]


def difference(expected: bytes | None, actual: bytes | None) -> tuple[str, tuple[compare.FieldDiff, ...]]:
    """How the target's document differs from the expected one: 'missing' (in the target),
    'extra' (in the target, the source has none) or 'mismatched' with the field differences."""
    if actual is None:
        return "missing", ()
    if expected is None:
        return "extra", ()
    return "mismatched", tuple(compare.explain(compare.decode(expected), compare.decode(actual)))


_JSON = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, uuid_representation=compare.UUID_REPRESENTATION, tz_aware=True
)


def json_id(doc_id: Any) -> Any:
    """An _id as relaxed extended JSON (Int64 as a number, a UUID as {"$uuid": ...}); a value BSON
    has no form for (a PostgreSQL target's Decimal, with more digits than Decimal128) as its text."""
    return json.loads(json_util.dumps({"v": doc_id}, json_options=_JSON, default=str))["v"]


class _Collection:
    def __init__(self, mapping: CollectionMapping, key_text: Callable[[Any, str | None], str]) -> None:
        self.mapping = mapping
        self.key_text = key_text
        self.assembler = Assembler(mapping)
        self.key = mapping.document.key
        columns = {c.name: c for c in mapping.document.all_columns}
        self.key_columns: tuple[ColumnInfo, ...] = tuple(columns[k] for k in self.key)
        self.key_types = [c.type_name for c in self.key_columns]

    def texts(self, doc_id: Any) -> KeyText:
        if len(self.key) == 1:
            return (self.key_text(doc_id, self.key_types[0]),)
        return tuple(self.key_text(doc_id[k], t) for k, t in zip(self.key, self.key_types, strict=True))

    def make_id(self, values: Sequence[Any]) -> Any:
        if len(self.key) == 1:
            return values[0]
        return {k: v for k, v in zip(self.key, values, strict=True)}


class _Connections(threading.local):
    reader: KeyReader | None = None
    lookup: KeyLookup | None = None


class MappedDocuments:
    """The plan's collections read on both sides for given keys."""

    def __init__(
        self, collections: Sequence[CollectionMapping], source: SourceAdapter, target: TargetAdapter
    ) -> None:
        self._source = source
        self._target = target
        self._collections = {c.name: _Collection(c, self._source.key_text) for c in collections}
        self._local = _Connections()
        self._opened: list[KeyReader | KeyLookup] = []
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._collections)

    def mapping(self, collection: str) -> CollectionMapping:
        return self._collection(collection).mapping

    def _collection(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise MigratorError(
                f"collection '{name}' is not in the plan", hint=f"use one of: {', '.join(self._collections)}"
            ) from None

    def remap(self, collections: Sequence[CollectionMapping]) -> None:
        """The mapping changed (a column added on the source)."""
        self._collections = {c.name: _Collection(c, self._source.key_text) for c in collections}

    # -- connections ---------------------------------------------------------------------------

    def _reader(self) -> KeyReader:
        if self._local.reader is None:
            self._local.reader = self._source.range_reader()
            with self._lock:
                self._opened.append(self._local.reader)
        return self._local.reader

    def _lookup(self) -> KeyLookup:
        if self._local.lookup is None:
            self._local.lookup = self._source.key_lookup()
            with self._lock:
                self._opened.append(self._local.lookup)
        return self._local.lookup

    def _drop_connections(self) -> None:
        connections: tuple[KeyReader | KeyLookup | None, ...] = (self._local.reader, self._local.lookup)
        for conn in connections:
            if conn is not None:
                conn.close()
                with self._lock:
                    if conn in self._opened:
                        self._opened.remove(conn)
        self._local.reader = None
        self._local.lookup = None

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local.reader = None
        self._local.lookup = None

    # -- resolving references ------------------------------------------------------------------

    def key_texts(self, collection: str, doc_id: Any) -> KeyText:
        return self._collection(collection).texts(doc_id)

    def resolve(self, refs: Iterable[Affected]) -> dict[str, Keys]:
        """The documents the references name, merged per collection."""
        out: dict[str, Keys] = {}
        for ref, keys in self.resolve_each(list(refs)):
            out.setdefault(ref.collection, Keys()).add(keys)
        return out

    def resolve_each(self, refs: Sequence[Affected]) -> list[tuple[Affected, Keys]]:
        """Each reference with the documents it names: a DocumentId its _id as given, an
        ElementKey the target documents holding the element, a ParentRow the roots of the
        source's current parent rows (several for a lookup's row; none when there is no such row
        now). Lookups of the same kind go to the server together."""
        out = [(ref, Keys()) for ref in refs]
        parents: dict[tuple[Any, ...], list[int]] = {}
        try:
            for i, (ref, keys) in enumerate(out):
                if isinstance(ref, DocumentId):
                    keys.ids[compare.id_key(ref.id)] = ref.id
                elif isinstance(ref, ElementKey):
                    for doc_id in self._holding(ref):
                        keys.ids[compare.id_key(doc_id)] = doc_id
                else:
                    coll = self._collection(ref.collection)
                    names = [c.name for c in ref.columns]
                    if not ref.path and sorted(names) == sorted(coll.key):
                        # The parent is the root row and the link is its key: no lookup.
                        by_name = dict(zip(names, ref.values, strict=True))
                        keys.texts[
                            tuple(
                                coll.key_text(by_name[k], t)
                                for k, t in zip(coll.key, coll.key_types, strict=True)
                            )
                        ] = None
                    else:
                        parents.setdefault((ref.collection, ref.root, ref.path, ref.columns), []).append(i)
            for (collection, root, path, columns), group in parents.items():
                coll = self._collection(collection)
                values = []
                for i in group:
                    ref = out[i][0]
                    assert isinstance(ref, ParentRow)
                    values.append(
                        [coll.key_text(v, c.type_name) for v, c in zip(ref.values, ref.columns, strict=True)]
                    )
                found = self._lookup().root_keys(root, coll.key_columns, path, columns, values)
                for i, roots in zip(group, found, strict=True):
                    for texts in roots:
                        out[i][1].texts[tuple(texts)] = None
        except MigratorError:
            self._drop_connections()
            raise
        return out

    def _holding(self, ref: ElementKey) -> list[Any]:
        return self._target.reader(ref.collection).find_ids(ref.query())

    def typed_ids(self, collection: str, texts: Sequence[KeyText]) -> list[Any]:
        """_ids as the snapshot would build them for these keys (given as text)."""
        coll = self._collection(collection)
        try:
            rows = self._lookup().typed(coll.key_columns, texts)
        except MigratorError:
            self._drop_connections()
            raise
        return [coll.make_id(row) for row in rows]

    # -- reading ---------------------------------------------------------------------------------

    def read_source(
        self, collection: str, texts: Iterable[KeyText]
    ) -> tuple[str, dict[bytes, tuple[Any, bytes]]]:
        """The documents the source holds now for these keys (as text), by id_key: (_id, BSON),
        and the source position the (last) read stood at."""
        coll = self._collection(collection)
        wanted = list(dict.fromkeys(texts))
        found: dict[bytes, tuple[Any, bytes]] = {}
        position = ""
        try:
            for start in range(0, len(wanted), KEYS_PER_READ):
                part = wanted[start : start + KEYS_PER_READ]
                reader = self._reader()
                position = reader.begin()
                try:
                    streams = reader.stream_keys(
                        coll.assembler.reads(), coll.mapping.table, coll.key, coll.key_types, part
                    )
                    for doc_id, document, _ in coll.assembler.documents(streams):
                        found[compare.id_key(doc_id)] = (
                            compare.stored_id(doc_id),
                            self._target.encode_document(document, coll.mapping.name),
                        )
                finally:
                    reader.end()
        except MigratorError:
            self._drop_connections()
            raise
        return position, found

    def read_target(self, collection: str, ids: Iterable[Any]) -> dict[bytes, bytes]:
        reader = self._target.reader(collection)
        return {compare.id_key(doc_id): raw for doc_id, raw in reader.fetch(list(ids))}

    def look(self, collection: str, keys: Keys, *, typed: bool = True) -> Look:
        """Both sides of these documents: the source read first, then the target. `typed`:
        the _ids in `keys` carry the BSON types the mapping gives them (from the change stream,
        or the target); otherwise (an application's values: an int for a bigint key) they are
        typed through the source first."""
        coll = self._collection(collection)
        ids = dict(keys.ids)
        if not typed and ids:
            given = self.typed_ids(collection, [coll.texts(doc_id) for doc_id in ids.values()])
            ids = {compare.id_key(doc_id): doc_id for doc_id in given}
        texts = [coll.texts(doc_id) for doc_id in ids.values()] + list(keys.texts)
        position, source = self.read_source(collection, texts)
        for k, (doc_id, _) in source.items():
            ids.setdefault(k, doc_id)
        actual = self.read_target(collection, list(ids.values()))
        expected = {k: raw for k, (_, raw) in source.items()}
        return Look(position, ids, expected, actual, self._target.same_document)

    # -- writing (the dual-write mirror) ---------------------------------------------------------

    def replace(self, collection: str, doc_id: Any, raw: bytes) -> None:
        self._target.reader(collection).replace(doc_id, raw)

    def delete(self, collection: str, doc_id: Any) -> None:
        self._target.reader(collection).delete(doc_id)
