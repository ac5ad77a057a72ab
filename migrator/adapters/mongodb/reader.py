"""Reading target documents for verification, as raw BSON: no decoding unless they differ."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import bson
from bson.binary import Binary
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import errors as mongo
from pymongo.collection import Collection

from migrator.adapters.base import KeyOrder
from migrator.adapters.mongodb.codec import CODEC
from migrator.adapters.mongodb.errors import classify

RAW: CodecOptions[RawBSONDocument] = CodecOptions(
    document_class=RawBSONDocument,
    uuid_representation=CODEC.uuid_representation,
    tz_aware=True,
    tzinfo=CODEC.tzinfo,
)
# _id values per $in query: large enough to amortise the round trip, small enough for the
# query document to stay far below 16 MB whatever the key.
IDS_PER_QUERY = 2_000
# _id values per $in query when fetching documents: the answer is whole documents, so smaller
# batches cost little more than round trips (fetch is used for at most a few thousand ids: a
# recheck, a check under the cutover fence). Measured on the test server, a 1,000-id $in took
# 0.78 s and ten 100-id ones 0.12 s; on MongoDB the difference is a few round trips.
FETCH_IDS_PER_QUERY = 100

# A shared key order (adapters/base.py KeyOrder) as BSON: the _id value of a source key's text
# (integers as int64, a UUID as binary subtype 4, which BSON compares bytewise as PostgreSQL
# compares uuid) and the $type bracket a range query on it covers.
_BOUND: dict[str, Callable[[str], Any]] = {"integer": lambda text: Int64(int(text)), "uuid": uuid.UUID}
_BRACKET: dict[str, str] = {"integer": "number", "uuid": "binData"}


class DocumentReader:
    def __init__(self, collection: Collection[Any], endpoint: str, secrets: Sequence[str]) -> None:
        self._raw: Collection[RawBSONDocument] = collection.with_options(codec_options=RAW)
        self._typed: Collection[dict[str, Any]] = collection.with_options(codec_options=CODEC)
        self._endpoint = endpoint
        self._secrets = tuple(secrets)

    def fetch(self, ids: Sequence[Any]) -> list[tuple[Any, bytes]]:
        """The stored documents with these _ids as (_id, BSON bytes); absent ones are left out."""
        found: list[tuple[Any, bytes]] = []
        try:
            for start in range(0, len(ids), FETCH_IDS_PER_QUERY):
                part = list(ids[start : start + FETCH_IDS_PER_QUERY])
                found.extend(
                    (_plain_id(doc), bytes(doc.raw)) for doc in self._raw.find({"_id": {"$in": part}})
                )
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        return found

    def fetch_range(self, order: KeyOrder, lo: str | None, hi: str | None) -> list[tuple[Any, bytes]]:
        """The stored documents with lo < _id <= hi (None: unbounded), as (_id, BSON bytes): one
        index range scan. A range query matches only _ids of the bounds' BSON type bracket, so
        an unbounded side is bounded by the bracket itself; ids(outside=order) finds the rest."""
        condition: dict[str, Any] = {"$type": _BRACKET[order]}
        if lo is not None:
            condition["$gt"] = _BOUND[order](lo)
        if hi is not None:
            condition["$lte"] = _BOUND[order](hi)
        query = {"_id": condition}
        try:
            return [(_plain_id(doc), bytes(doc.raw)) for doc in self._raw.find(query)]
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def ids(
        self,
        batch: int = IDS_PER_QUERY,
        sample: int | None = None,
        outside: KeyOrder | None = None,
        after: Any = None,
    ) -> Iterator[list[Any]]:
        """Every _id of the collection in batches, in _id order, starting after `after` (to
        resume where a failed pass stopped); or a random `sample` of them; with `outside`, only
        _ids of another type than the order's bracket. For finding documents the source does
        not have."""
        try:
            if sample is not None:
                cursor: Any = self._typed.aggregate([{"$sample": {"size": sample}}, {"$project": {"_id": 1}}])
            else:
                wanted: dict[str, Any] = {"_id": {"$not": {"$type": _BRACKET[outside]}}} if outside else {}
                if after is not None:
                    wanted = {"$and": [wanted, _after(after)]} if wanted else _after(after)
                cursor = self._typed.find(wanted, {"_id": 1}).sort("_id", 1).batch_size(batch)
            part: list[Any] = []
            for doc in cursor:
                part.append(doc["_id"])
                if len(part) >= batch:
                    yield part
                    part = []
            if part:
                yield part
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def find_ids(self, query: Mapping[str, Any]) -> list[Any]:
        """The _ids of the documents matching `query`, in the order the server returns them (the
        documents that hold an embedded element, for migrator.mapping.lookup)."""
        try:
            return [doc["_id"] for doc in self._typed.find(query, {"_id": 1})]
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def count(self) -> int:
        try:
            return int(self._typed.estimated_document_count())
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def replace(self, doc_id: Any, raw: bytes) -> None:
        """Write the expected document (repair): an upsert, so repeating it is harmless."""
        try:
            self._raw.replace_one({"_id": doc_id}, RawBSONDocument(raw), upsert=True)
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def delete(self, doc_id: Any) -> None:
        try:
            self._raw.delete_one({"_id": doc_id})
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None


# BSON types in the order MongoDB sorts them (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/);
# a range operator matches only values of its operand's type, so the types after it are named.
_TYPE_ORDER = [
    "minKey", "null", "number", "string", "object", "array", "binData", "objectId", "bool", "date",
    "timestamp", "regex", "maxKey",
]  # fmt: skip


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal128):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bytes | uuid.UUID | Binary):
        return "binData"
    if isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, datetime.datetime):
        return "date"
    return "maxKey"  # other types are not _ids migrator writes: resume after everything


def _plain_id(doc: RawBSONDocument) -> Any:
    """A raw document's _id as plain values: a compound _id decoded (it encodes back to the
    stored bytes), a scalar as it is."""
    doc_id = doc["_id"]
    if isinstance(doc_id, RawBSONDocument):
        return bson.decode(bytes(doc_id.raw), codec_options=CODEC)
    return doc_id


def _after(value: Any) -> dict[str, Any]:
    """_ids after `value` in MongoDB's sort order: greater ones of its type, and every later type."""
    later = _TYPE_ORDER[_TYPE_ORDER.index(_type_of(value)) + 1 :]
    return {"$or": [{"_id": {"$gt": value}}, {"_id": {"$type": later}}]} if later else {"_id": {"$gt": value}}
