"""The target's ownership record: which run of a plan owns the plan's data in this database.

One document per plan in the target's `_migrator` collection (`_id: owner:<plan>`), beside the
data it speaks for, so that every state file, directory and host sees the same owner
(docs/architecture.md, "One owner"). A run claims it before it creates anything; a run of the
same plan kept in another state file finds it and refuses, naming the owner: its id, when it
started, and where from (host and state file; never a URL or a password). The record also keeps
what the run created (the `_migrator` collection itself, the publication), so that rollback
removes exactly that.

The claim is an insert on the `_id`: of two runs claiming at once, one wins and the other gets a
duplicate key, written with majority write concern so that a failover cannot lose a claim.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pymongo import WriteConcern
from pymongo import errors as mongo
from pymongo.collection import Collection

from migrator.adapters.mongodb.applier import STATE_COLLECTION
from migrator.adapters.mongodb.errors import classify
from migrator.adapters.ownership_record import OwnerRecord, refusal
from migrator.errors import MigratorError
from migrator.plan.names import legacy_slot_name, owner_record_id
from migrator.redact import redact_text

if TYPE_CHECKING:
    from migrator.adapters.mongodb import MongoTarget


class Ownership:
    """The ownership record of one plan in the target's database."""

    def __init__(self, target: MongoTarget, plan_name: str) -> None:
        self._target = target
        self.plan_name = plan_name
        self._id = owner_record_id(plan_name)

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

    def slot(self) -> str:
        """The replication slot of the run that owns the plan's data here: the one its record
        names, else (no record: a run begun before ownership records) the plan-named slot."""
        owner = self.read()
        return owner.slot if owner is not None and owner.slot else legacy_slot_name(self.plan_name)

    def claim(
        self,
        *,
        run_id: str,
        started_at: str,
        host: str,
        state: str,
        slot: str,
        publication: str,
        replaceable: Callable[[OwnerRecord], bool] = lambda _owner: False,
    ) -> OwnerRecord:
        """Make run `run_id` the owner, or raise OwnedByAnotherRun naming the owner. A record of
        this same run is brought up to date (its state file may have moved); one of another run
        is replaced only when `replaceable(record)` says it is a claim whose run never began."""
        fields = {
            "plan": self.plan_name,
            "run_id": run_id,
            "started_at": started_at,
            "host": host,
            "state": redact_text(state),
            "slot": slot,
            "publication": publication,
        }
        try:
            coll = self._collection()
            existed = STATE_COLLECTION in coll.database.list_collection_names()
            now = datetime.datetime.now(datetime.UTC)
            try:
                coll.insert_one(
                    {
                        "_id": self._id,
                        **fields,
                        "created_collection": not existed,
                        "claimed_at": now,
                        "facts": {},
                    }
                )
            except mongo.DuplicateKeyError:
                current = coll.find_one({"_id": self._id})
                if current is None:  # released in between: claim again
                    return self.claim(
                        run_id=run_id,
                        started_at=started_at,
                        host=host,
                        state=state,
                        slot=slot,
                        publication=publication,
                        replaceable=replaceable,
                    )
                owner = OwnerRecord.from_document(current)
                if owner.run_id != run_id and not replaceable(owner):
                    raise refusal(owner, self._target.database) from None
                # Conditional on the run it names: two processes taking over at once, one wins.
                updated = coll.update_one(
                    {"_id": self._id, "run_id": owner.run_id},
                    {"$set": {**fields, "claimed_at": now}},
                )
                if updated.matched_count == 0:
                    latest = self.read()
                    if latest is None or latest.run_id != run_id:
                        raise refusal(latest or owner, self._target.database) from None
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None
        claimed = self.read()
        assert claimed is not None
        return claimed

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
            if owner is not None and owner.run_id != run_id:
                raise refusal(owner, self._target.database, this_run=run_id)
            removed = coll.delete_many({"_id": {"$in": records}}).deleted_count if records else 0
            if owner is None:
                return f"{removed} record(s) deleted; there was no ownership record"
            coll.delete_one({"_id": self._id, "run_id": run_id})
            outcome = f"{removed} record(s) and the ownership record deleted"
            if owner.created_collection:
                if coll.estimated_document_count() == 0 and coll.count_documents({}, limit=1) == 0:
                    coll.drop()
                    return outcome + f"; {STATE_COLLECTION} dropped (the run created it)"
                return outcome + f"; {STATE_COLLECTION} kept: other plans' records are in it"
            return outcome + f"; {STATE_COLLECTION} kept: it existed before the run"
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None
