"""The target's ownership record: which run of a plan owns the plan's data in this database.

One document per plan in the target's `_migrator` collection (`_id: owner:<plan>`), beside the
data it speaks for, so that every state file, directory and host sees the same owner
(docs/architecture.md, "One owner"). A run claims it before it creates anything; a run of the
same plan kept in another state file finds it and refuses, naming the owner: its id, when it
started, and where from (host and state file; never a URL or a password). The record also keeps
what the run created (the `_migrator` collection itself, the publication), so that rollback
removes exactly that.

The claim is an insert on the `_id`: of two runs claiming at once, one wins and the other gets a
duplicate key, written with majority write concern so that a failover cannot lose a claim. What a
claim decides is adapters/ownership_claim.py's, the PostgreSQL target's too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo import WriteConcern
from pymongo import errors as mongo
from pymongo.collection import Collection

from migrator.adapters import ownership_claim
from migrator.adapters.mongodb.applier import STATE_COLLECTION
from migrator.adapters.mongodb.errors import classify
from migrator.adapters.ownership_record import OwnerRecord
from migrator.errors import MigratorError
from migrator.plan.names import owner_record_id

if TYPE_CHECKING:
    from migrator.adapters.mongodb import MongoTarget

T = TypeVar("T")


class Ownership(ownership_claim.ClaimingOwnership):
    """The ownership record of one plan in the target's database (claim and slot: ClaimingOwnership)."""

    def __init__(self, target: MongoTarget, plan_name: str) -> None:
        self._target = target
        self.plan_name = plan_name
        self._id = owner_record_id(plan_name)

    @property
    def database_name(self) -> str:
        return self._target.database

    def _collection(self) -> Collection[dict[str, Any]]:
        db = self._target.client()[self._target.database]
        return db.get_collection(STATE_COLLECTION, write_concern=WriteConcern("majority"))

    def _error(self, exc: mongo.PyMongoError) -> MigratorError:
        return classify(exc, self._target.name, self._target.secrets)

    def read(self) -> OwnerRecord | None:
        try:
            doc = self._collection().find_one({"_id": self._id})
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None
        return None if doc is None else OwnerRecord.from_document(doc)

    def _with_store(self, work: Callable[[ownership_claim.ClaimStore], T]) -> T:
        try:
            return work(_ClaimStore(self._collection(), self._id))
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None

    def note(self, run_id: str, facts: Mapping[str, Any]) -> None:
        """Add facts (what the run created) to run `run_id`'s record."""
        try:
            self._collection().update_one(
                {"_id": self._id, "run_id": run_id},
                {"$set": {f"facts.{name}": value for name, value in facts.items()}},
            )
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None

    def release(self, run_id: str, records: list[str]) -> str:
        """Remove run `run_id`'s documents from `_migrator` (`records`, then its ownership record),
        and the collection when the run created it and nothing else is left in it. Returns what
        was done. Another run's record is never touched."""
        try:
            coll = self._collection()
            current = coll.find_one({"_id": self._id})
            owner = None if current is None else OwnerRecord.from_document(current)
            ownership_claim.check_release(owner, run_id, self.database_name)
            removed = coll.delete_many({"_id": {"$in": records}}).deleted_count if records else 0
            outcome = ownership_claim.release_outcome(removed, owner)
            if owner is None:
                return outcome
            coll.delete_one({"_id": self._id, "run_id": run_id})
            if owner.created_collection:
                if coll.estimated_document_count() == 0 and coll.count_documents({}, limit=1) == 0:
                    coll.drop()
                    return outcome + f"; {STATE_COLLECTION} dropped (the run created it)"
                return outcome + f"; {STATE_COLLECTION} kept: other plans' records are in it"
            return outcome + f"; {STATE_COLLECTION} kept: it existed before the run"
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None


class _ClaimStore:
    """The ownership record's document in `_migrator`: each operation one atomic write or read."""

    def __init__(self, coll: Collection[dict[str, Any]], record_id: str) -> None:
        self._coll, self._id = coll, record_id

    def ensure(self) -> bool:
        return STATE_COLLECTION not in self._coll.database.list_collection_names()  # the insert creates it

    def insert(self, record: Mapping[str, Any]) -> bool:
        try:
            self._coll.insert_one({"_id": self._id, **record})
        except mongo.DuplicateKeyError:
            return False
        return True

    def read(self) -> OwnerRecord | None:
        doc = self._coll.find_one({"_id": self._id})
        return None if doc is None else OwnerRecord.from_document(doc)

    def replace(self, previous_run: str, fields: Mapping[str, Any]) -> bool:
        updated = self._coll.update_one({"_id": self._id, "run_id": previous_run}, {"$set": dict(fields)})
        return updated.matched_count > 0
