"""The memory target's objects: collection writer and reader, the CDC applier that commits a
batch with its checkpoint atomically, the ownership record and the write fence."""

from __future__ import annotations

import copy
import datetime
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import bson
from bson.decimal128 import Decimal128

from migrator.adapters import ownership_claim, ownership_record
from migrator.adapters.base import KeyOrder, WriteOp, WriteResult
from migrator.adapters.documents import CODEC
from migrator.adapters.memory.database import MemoryDatabase
from migrator.adapters.ownership_record import OwnerRecord
from migrator.errors import OwnedByAnotherRun, TerminalError

T = TypeVar("T")

# A key order's bound from the source's key text, and the _ids a range read in it can see.
_BOUND: dict[str, Callable[[str], Any]] = {"integer": int, "uuid": uuid.UUID}
_IN_ORDER: dict[str, Callable[[Any], bool]] = {
    "integer": lambda i: not isinstance(i, bool) and isinstance(i, int | float | Decimal128),
    "uuid": lambda i: isinstance(i, uuid.UUID),
}

Stored = dict[bytes, tuple[Any, dict[str, Any]]]  # id key -> (_id, document as decoded)


def encode(document: Mapping[str, Any]) -> bytes:
    return bson.encode(document, codec_options=CODEC)


def decode(raw: bytes) -> dict[str, Any]:
    return bson.decode(raw, codec_options=CODEC)


def id_key(doc_id: Any) -> bytes:
    return encode({"_id": doc_id})


def normal(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` as the target stores it (Decimal as Decimal128, date as datetime, ...)."""
    return decode(encode(document))


class Writer:
    """Snapshot batches: insert, or replace where the _id exists (idempotent)."""

    def __init__(self, db: MemoryDatabase, collection: str) -> None:
        self._db = db
        self._collection = collection

    def write(self, batch: Sequence[tuple[Any, bytes]]) -> WriteResult:
        self._db.faults.check("write")
        with self._db.lock:
            docs = self._db.collections.setdefault(self._collection, {})
            replaced = 0
            for _, raw in batch:
                document = decode(raw)
                key = id_key(document["_id"])
                replaced += key in docs
                docs[key] = (document["_id"], document)
            return WriteResult(len(batch) - replaced, replaced)


class Reader:
    def __init__(self, db: MemoryDatabase, collection: str) -> None:
        self._db = db
        self._collection = collection

    def _docs(self) -> Stored:
        return self._db.collections.get(self._collection, {})

    def fetch(self, ids: Sequence[Any]) -> list[tuple[Any, bytes]]:
        self._db.faults.check("fetch")
        with self._db.lock:
            docs = self._docs()
            found = (docs.get(id_key(i)) for i in ids)
            return [(doc_id, encode(doc)) for doc_id, doc in (f for f in found if f is not None)]

    def fetch_range(
        self, order: KeyOrder, lo_text: str | None, hi_text: str | None
    ) -> list[tuple[Any, bytes]]:
        """lo < _id <= hi (None: unbounded), _ids of the order's type only."""
        self._db.faults.check("fetch_range")
        lo = None if lo_text is None else _BOUND[order](lo_text)
        hi = None if hi_text is None else _BOUND[order](hi_text)
        with self._db.lock:
            return [
                (doc_id, encode(doc))
                for doc_id, doc in sorted(
                    (d for d in self._docs().values() if _IN_ORDER[order](d[0])), key=lambda d: d[0]
                )
                if (lo is None or doc_id > lo) and (hi is None or doc_id <= hi)
            ]

    def ids(
        self,
        batch: int = 1000,
        sample: int | None = None,
        outside: KeyOrder | None = None,
        after: Any = None,
    ) -> Iterator[list[Any]]:
        self._db.faults.check("ids")
        with self._db.lock:
            ids = sorted(doc_id for doc_id, _ in self._docs().values())
        if outside is not None:
            ids = [i for i in ids if not _IN_ORDER[outside](i)]
        if sample is not None:
            ids = ids[:sample]
        elif after is not None:
            ids = [i for i in ids if i > after]
        for start in range(0, len(ids), batch):
            yield ids[start : start + batch]

    def find_ids(self, query: Mapping[str, Any]) -> list[Any]:
        with self._db.lock:
            return [doc_id for doc_id, doc in self._docs().values() if _matches(doc, query)]

    def count(self) -> int:
        return len(self._docs())

    def replace(self, doc_id: Any, raw: bytes) -> None:
        self._db.faults.check("replace")
        with self._db.lock:
            document = decode(raw)
            self._db.collections.setdefault(self._collection, {})[id_key(document["_id"])] = (
                document["_id"],
                document,
            )

    def delete(self, doc_id: Any) -> None:
        self._db.faults.check("delete")
        with self._db.lock:
            self._docs().pop(id_key(doc_id), None)


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for name, wanted in query.items():
        if isinstance(wanted, Mapping) or "." in name:
            raise NotImplementedError(
                f"the memory target matches plain top-level equality only, not {name!r}"
            )
        if document.get(name) != normal({"v": wanted})["v"]:
            return False
    return True


def _by_id(filter_: Mapping[str, Any]) -> bytes:
    if set(filter_) != {"_id"} or (
        isinstance(filter_["_id"], Mapping) and any(str(k).startswith("$") for k in filter_["_id"])
    ):
        raise NotImplementedError(f"the memory target applies writes by _id only, not {dict(filter_)!r}")
    return id_key(filter_["_id"])


def _update(document: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    changed = dict(document)
    for operator, fields in update.items():
        if operator == "$set":
            for name, value in fields.items():
                if "." in name:
                    raise NotImplementedError(f"the memory target sets top-level fields only, not {name!r}")
                changed[name] = normal({"v": value})["v"]
        elif operator == "$unset":
            for name in fields:
                changed.pop(name, None)
        else:
            raise NotImplementedError(f"the memory target does not apply {operator}")
    return changed


class Applier:
    """CDC batches: the writes and the checkpoint commit together (under the database's lock,
    all or nothing: the batch is applied to a copy that replaces the collections at the end)."""

    def __init__(self, db: MemoryDatabase, checkpoint_id: str) -> None:
        self._db = db
        self._id = checkpoint_id

    def ensure_indexes(self, paths: dict[str, set[str]]) -> list[str]:
        return []

    def checkpoint(self) -> dict[str, Any] | None:
        self._db.faults.check("checkpoint")
        with self._db.lock:
            stored = self._db.records.get(self._id)
            return None if stored is None or stored.get("position") is None else dict(stored)

    def apply(
        self,
        ops: Sequence[WriteOp],
        position: int | None,
        position_text: str | None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        self._db.faults.check("apply")
        with self._db.lock:
            touched: dict[str, Stored] = {}
            for op in ops:
                if op.reads:
                    raise NotImplementedError("the memory target does not read from the source (SourceRead)")
                docs = touched.get(op.collection)
                if docs is None:
                    docs = touched[op.collection] = dict(self._db.collections.get(op.collection, {}))
                _apply(docs, op)
            for name, docs in touched.items():
                self._db.collections[name] = docs
            if position is not None:
                record = self._db.records.setdefault(self._id, {"_id": self._id})
                record.update(copy.deepcopy(dict(fields or {})))
                record.update(
                    position=position,
                    position_text=position_text,
                    updated_at=datetime.datetime.now(datetime.UTC),
                )


def _apply(docs: Stored, op: WriteOp) -> None:
    if op.kind == "replace":
        key = _by_id(op.filter)
        if key not in docs and not op.upsert:
            return
        document = normal({**op.update, "_id": op.filter["_id"]})
        docs[key] = (document["_id"], document)
    elif op.kind == "update":
        key = _by_id(op.filter)
        if op.array_filters:
            raise NotImplementedError("the memory target does not apply array filters")
        found = docs.get(key)
        if found is None:
            if not op.upsert:
                return
            found = (normal({"_id": op.filter["_id"]})["_id"], normal({"_id": op.filter["_id"]}))
        docs[key] = (found[0], _update(found[1], op.update))
    elif op.kind == "delete":
        docs.pop(_by_id(op.filter), None)
    else:
        raise NotImplementedError(f"the memory target does not apply writes of kind {op.kind!r}")


def refusal(owner: OwnerRecord, database: str, *, this_run: str | None = None) -> OwnedByAnotherRun:
    """The refusal every target gives (adapters/ownership_record.py)."""
    return ownership_record.refusal(owner, database, this_run=this_run)


class Ownership(ownership_claim.ClaimingOwnership):
    """The plan's ownership record among the database's records: the claim rules every target
    follows (adapters/ownership_claim.py), over a dict."""

    def __init__(self, db: MemoryDatabase, plan_name: str) -> None:
        self._db = db
        self.plan_name = plan_name
        self._id = f"owner:{plan_name}"

    @property
    def database_name(self) -> str:
        return self._db.name

    def read(self) -> OwnerRecord | None:
        with self._db.lock:
            stored = self._db.records.get(self._id)
            return None if stored is None else OwnerRecord.from_document(copy.deepcopy(stored))

    def _with_store(self, work: Callable[[ownership_claim.ClaimStore], T]) -> T:
        self._db.faults.check("claim")
        with self._db.lock:
            return work(_ClaimStore(self._db, self._id))

    def note(self, run_id: str, facts: Mapping[str, Any]) -> None:
        with self._db.lock:
            stored = self._db.records.get(self._id)
            if stored is not None and stored["run_id"] == run_id:
                stored["facts"] = {**stored["facts"], **facts}

    def release(self, run_id: str, records: list[str]) -> str:
        with self._db.lock:
            owner = self.read()
            ownership_claim.check_release(owner, run_id, self._db.name)
            removed = sum(self._db.records.pop(r, None) is not None for r in records)
            if owner is not None:
                del self._db.records[self._id]
            return ownership_claim.release_outcome(removed, owner)

    def slot(self) -> str:
        owner = self.read()
        if owner is None:
            raise TerminalError(f"plan {self.plan_name} has no owner in memory database {self._db.name}")
        return owner.slot


class _ClaimStore:
    """The record in the database's records, under its lock (held by the caller)."""

    def __init__(self, db: MemoryDatabase, record_id: str) -> None:
        self._db, self._id = db, record_id

    def ensure(self) -> bool:
        return False  # the records are always there

    def insert(self, record: Mapping[str, Any]) -> bool:
        if self._id in self._db.records:
            return False
        self._db.records[self._id] = {"_id": self._id, **copy.deepcopy(dict(record))}
        return True

    def read(self) -> OwnerRecord | None:
        stored = self._db.records.get(self._id)
        return None if stored is None else OwnerRecord.from_document(copy.deepcopy(stored))

    def replace(self, previous_run: str, fields: Mapping[str, Any]) -> bool:
        stored = self._db.records.get(self._id)
        if stored is None or stored["run_id"] != previous_run:
            return False
        stored.update(copy.deepcopy(dict(fields)))
        return True


class TargetWriteFence:
    def __init__(self, db: MemoryDatabase, collections: Sequence[str]) -> None:
        self._db = db
        self._collections = tuple(collections)

    def engage(self) -> object:
        with self._db.lock:
            self._db.target_fenced.update(self._collections)
        return {}

    def describe(self) -> str:
        return f"application writes to {', '.join(self._collections)} refused (memory fence)"

    def lift(self, before: Mapping[str, Mapping[str, Any]]) -> float | None:
        with self._db.lock:
            self._db.target_fenced.difference_update(self._collections)
        return 0.0

    def own_options(self) -> dict[str, Any]:
        return {}
