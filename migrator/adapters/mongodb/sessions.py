"""The logical sessions a run's appliers write the target in, recorded for the next process.

MongoDB keeps a transaction after the process that opened it is gone (sessions are not bound to
connections), with its document locks, until transactionLifetimeLimitSeconds (60 s by default)
aborts it: the next process's batches on those documents meet WriteConflict until then. So each
applier writes in one long-lived session whose id (`ClientSession.session_id`) is added to the
plan's ownership record (`_migrator`, `owner:<plan>`, field `sessions`) before its first
transaction, and the next process that takes the run over (its lease held, the record naming its
run) sends `killSessions` with those ids, which aborts their unprepared transactions, and
forgets them (docs/architecture.md, "Transactions a killed process left open").

Errors are classified by code: a server or proxy that refuses the command (unauthorized, no such
command) leaves the old transactions to the server's limit, and the run goes on with a notice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import WriteConcern
from pymongo import errors as mongo
from pymongo.collection import Collection
from pymongo.database import Database

from migrator.adapters.base import Abandoned
from migrator.adapters.mongodb.applier import STATE_COLLECTION
from migrator.adapters.mongodb.errors import classify
from migrator.errors import TargetError
from migrator.plan.names import owner_record_id

FIELD = "sessions"  # in the ownership record: the session ids (UUIDs) of the run's appliers
# A server or proxy that will not end the sessions, by code: the old transactions are then left to
# the server's lifetime limit. Unauthorized (a user may always end its own sessions on MongoDB; a
# proxy or a managed service may refuse), CommandNotFound, CommandNotSupported, and Atlas's shared
# tiers' AtlasError (8000) for a command they do not offer.
_REFUSED = {
    13: "Unauthorized",
    59: "CommandNotFound",
    115: "CommandNotSupported",
    8000: "AtlasError",
}


class SessionLog:
    """Run `run_id`'s applier sessions in plan `plan_name`'s ownership record on `database`."""

    def __init__(
        self, database: Database[Any], plan_name: str, run_id: str, endpoint: str, secrets: tuple[str, ...]
    ) -> None:
        self._db = database
        self.plan_name, self.run_id = plan_name, run_id
        self._filter = {"_id": owner_record_id(plan_name), "run_id": run_id}
        self._endpoint, self._secrets = endpoint, secrets
        # Those this process recorded: never ended by it (a second command of the run in one
        # process, rollback --to start after its switch back, finds them recorded).
        self._own: list[Any] = []

    def _records(self) -> Collection[Any]:
        # Majority: a record a failover could lose would name sessions the next process never ends.
        return self._db.get_collection(STATE_COLLECTION, write_concern=WriteConcern("majority"))

    def record(self, session_id: Mapping[str, Any]) -> None:
        """Add an applier's session id before its first transaction: one write per session, not
        per batch."""
        try:
            written = self._records().update_one(self._filter, {"$addToSet": {FIELD: session_id["id"]}})
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        self._own.append(session_id["id"])
        if written.matched_count == 0:
            raise TargetError(
                f"{self._endpoint}: the run's ownership record ({STATE_COLLECTION} {self._filter['_id']}) "
                "is gone, or names another run: this process no longer owns the target's data",
                hint="run `migrator status` to see which run owns the plan's data",
            )

    def forget_own(self) -> None:
        """After this process ended its sessions cleanly (no transaction left open): take them
        off the record, so that the next process ends, and reports, only what a crash left."""
        if not self._own:
            return
        own, self._own = self._own, []
        try:
            self._records().update_one(self._filter, {"$pullAll": {FIELD: own}})
        except mongo.PyMongoError:
            # Not raised: this runs while the process closes, maybe after the error that ends
            # it, and a session left on the record costs only a killSessions of an ended session
            # (and its notice) in the next process.
            return

    def end_recorded(self) -> Abandoned:
        """`killSessions` with the ids an earlier process recorded, then forget them."""
        try:
            found = self._records().find_one(self._filter, {FIELD: 1})
            ids = [i for i in (found or {}).get(FIELD) or [] if i not in self._own]
            if not ids:
                return Abandoned()
            refused = self._kill(ids)
            self._records().update_one(self._filter, {"$pullAll": {FIELD: ids}})
        except mongo.PyMongoError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        return Abandoned(ended=0 if refused else len(ids), refused=refused)

    def _kill(self, ids: list[Any]) -> str:
        """'' once the server ended the sessions; why not, when it refuses the command."""
        try:
            self._db.client.admin.command({"killSessions": [{"id": i} for i in ids]})
        except mongo.OperationFailure as exc:
            name = _REFUSED.get(exc.code or 0)
            if name is None:
                raise
            return (
                f"{self._endpoint} refused killSessions ({name}, code {exc.code}): the {len(ids)} session(s) an "
                "earlier process of this run wrote in are left to the server, so a batch on the documents an "
                "open transaction of theirs holds may wait up to the target's transactionLifetimeLimitSeconds "
                "(60 s by default) until the server aborts it"
            )
        return ""
