"""Snapshot writes: insert at insert speed, and never let a duplicate key stop a resume.

A chunk is written with insert_many(ordered=False). When a crashed attempt (or data that
was already there) left documents with the same _id, those inserts fail with
E11000 and exactly those documents are replaced. The first attempt of a chunk thus
runs at insert speed, and a retried one converges to the same result: idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import ReplaceOne
from pymongo import errors as mongo
from pymongo.collection import Collection

from migrator.adapters.base import WriteResult
from migrator.adapters.mongodb.errors import classify
from migrator.errors import TargetError

DUPLICATE_KEY = 11000


class DocumentWriter:
    def __init__(self, collection: Collection[Any], endpoint: str, secrets: tuple[str, ...] = ()) -> None:
        self._collection = collection
        self._endpoint = endpoint
        self._secrets = secrets

    def write(self, batch: Sequence[tuple[Any, bytes]]) -> WriteResult:
        """Write (_id, BSON bytes) pairs; returns how many were inserted and how many replaced."""
        if not batch:
            return WriteResult(0, 0)
        documents = [RawBSONDocument(raw) for _, raw in batch]
        try:
            self._collection.insert_many(documents, ordered=False)
            return WriteResult(len(batch), 0)
        except mongo.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if other:
                first = other[0]
                raise TargetError(
                    f"{self._endpoint}: insert into {self._collection.name} failed for {len(other)} document(s); "
                    f"first: code {first.get('code')}: {first.get('errmsg', '')[:200]}"
                ).caused_by(exc, first.get("code")) from None
            duplicates = [e["index"] for e in errors]
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        replacements = [ReplaceOne({"_id": batch[i][0]}, documents[i], upsert=True) for i in duplicates]
        try:
            self._collection.bulk_write(replacements, ordered=False)
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        return WriteResult(len(batch) - len(duplicates), len(duplicates))
