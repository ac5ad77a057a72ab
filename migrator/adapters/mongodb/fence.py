"""The target-side write fence for rolling back after cutover: a validator that refuses writes.

MongoDB has no table lock that makes writers wait while readers go on. What it has is a
collection validator, set and removed with `collMod` (privilege: the `collMod` action, in
`dbAdmin`): with `validationLevel: strict` and `validationAction: error`, every insert and
update of a fenced collection fails with DocumentValidationFailure (code 121), which an
application treats like PostgreSQL's query_canceled under the lock fence: read the switch
again and retry, on whichever side it names. Reads go on.

What it does not hold: deletes (validators judge documents written, and a delete writes
none). Rollback therefore drains reverse sync once more after the switch flips back, which
carries a delete that reached the target under the fence.

The fence's own validator is recognisable (`_migrator_fence`), and what it replaced is
returned by `engage()` and must be kept by the caller (rollback keeps it in its checkpoint):
a fence left behind by a crash is then found by `engaged()` and lifted back to the
collection's own validator, never to the fence itself. Migrator's own writes pass the fence
with `bypassDocumentValidation` (CDC's applier).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import errors as mongo

from migrator.adapters.mongodb.errors import classify

FENCE_FIELD = "_migrator_fence"
_OPTIONS = ("validator", "validationLevel", "validationAction")


def _fence_validator(plan: str) -> dict[str, Any]:
    # No document has this field, so every document written fails the validator.
    return {FENCE_FIELD: {"$exists": True, "$eq": plan}}


class ValidatorFence:
    def __init__(self, target: Any, collections: Sequence[str], plan: str) -> None:
        self._target = target
        self._collections = list(collections)
        self._plan = plan
        self.engaged_at: float | None = None

    def describe(self) -> str:
        return f"validator refusing writes on {', '.join(self._collections)}"

    def _db(self) -> Any:
        return self._target.client()[self._target.database]

    def _error(self, exc: mongo.PyMongoError) -> Exception:
        return classify(exc, self._target.name, self._target.secrets)

    def current(self) -> dict[str, dict[str, Any]]:
        """Each collection's validation options as they are now."""
        try:
            listed = self._db().list_collections(filter={"name": {"$in": self._collections}})
            found = {c["name"]: dict(c.get("options") or {}) for c in listed}
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None
        return {name: {k: found.get(name, {}).get(k) for k in _OPTIONS} for name in self._collections}

    def engaged(self) -> bool:
        """True if the fence's validator is on any of the collections (a crash left it)."""
        return any(
            isinstance(o["validator"], Mapping) and FENCE_FIELD in o["validator"]
            for o in self.current().values()
        )

    def engage(self) -> dict[str, dict[str, Any]]:
        """Refuse inserts and updates; returns what each collection had before (to restore). A
        collection that already carries the fence keeps it and reports no earlier options:
        the caller keeps those from the first engagement."""
        before = self.current()
        try:
            for name in self._collections:
                self._db().command(
                    "collMod",
                    name,
                    validator=_fence_validator(self._plan),
                    validationLevel="strict",
                    validationAction="error",
                )
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None
        self.engaged_at = time.monotonic()
        return {
            name: options
            for name, options in before.items()
            if not (isinstance(options["validator"], Mapping) and FENCE_FIELD in options["validator"])
        }

    def lift(self, before: Mapping[str, Mapping[str, Any]]) -> float | None:
        """Put back each collection's own validation options (none: no validator); returns how
        long the fence was held by this process, if it engaged it."""
        try:
            for name in self._collections:
                options = before.get(name) or {}
                if options.get("validator"):
                    self._db().command(
                        "collMod",
                        name,
                        validator=options["validator"],
                        validationLevel=options.get("validationLevel") or "strict",
                        validationAction=options.get("validationAction") or "error",
                    )
                else:
                    self._db().command("collMod", name, validator={}, validationLevel="off")
        except mongo.PyMongoError as exc:
            raise self._error(exc) from None
        held = None if self.engaged_at is None else time.monotonic() - self.engaged_at
        self.engaged_at = None
        return held

    def own_options(self) -> dict[str, Any]:
        """The collections' validation options now, without this fence's own: what `lift`
        restores after a crash under the fence."""
        return {
            name: options
            for name, options in self.current().items()
            if not (isinstance(options["validator"], Mapping) and FENCE_FIELD in options["validator"])
        }
