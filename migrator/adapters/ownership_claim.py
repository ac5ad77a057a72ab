"""How a run claims and releases a plan's ownership record, for every target that stores one
(docs/architecture.md, "One owner"): the decisions, apart from how each target stores the record.

A target's Ownership derives from `ClaimingOwnership` and hands `claim` a `ClaimStore`: its few
storage operations on the one record, inside one transaction where the target has them
(adapters/postgres_target/ownership.py) or as single atomic writes where it does not
(adapters/mongodb/ownership.py). The rules, the same for each:

- No record: insert one; of two runs inserting at once, one wins and the other finds its record.
- A record of this same run is brought up to date (its state file may have moved).
- A record of another run refuses with `OwnedByAnotherRun` naming the owner, unless
  `replaceable(record)` says it is a claim whose run never began: then it is taken over, on the
  condition that it still names that run (of two processes taking over at once, one wins).
- Release refuses another run's record and removes only this run's.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from migrator.adapters.ownership_record import OwnerRecord, refusal
from migrator.errors import TransientError
from migrator.plan.names import legacy_slot_name
from migrator.redact import redact_text

ATTEMPTS = 3  # a record released between the insert and the read: claim again, this often
T = TypeVar("T")


class ClaimStore(Protocol):
    """One target's storage of one plan's ownership record, for the span of one claim."""

    def ensure(self) -> bool:
        """Where records are kept exists (or will, with the first insert); True when it did not
        before this claim: the run created it (rollback drops it once empty)."""
        ...

    def insert(self, record: Mapping[str, Any]) -> bool:
        """Insert the record unless one exists; False: one exists (nothing written)."""
        ...

    def read(self) -> OwnerRecord | None: ...

    def replace(self, previous_run: str, fields: Mapping[str, Any]) -> bool:
        """Set `fields` on the record while it names run `previous_run`; False: it no longer does."""
        ...


def claim(
    store: ClaimStore,
    *,
    plan: str,
    database: str,
    run_id: str,
    started_at: str,
    host: str,
    state: str,
    slot: str,
    publication: str,
    replaceable: Callable[[OwnerRecord], bool],
) -> OwnerRecord:
    """Make run `run_id` the owner of plan `plan`'s data in `database`, or raise
    OwnedByAnotherRun naming the owner. Returns the record as stored."""
    fields = {
        "plan": plan,
        "run_id": run_id,
        "started_at": started_at,
        "host": host,
        "state": redact_text(state),
        "slot": slot,
        "publication": publication,
        "claimed_at": datetime.datetime.now(datetime.UTC),
    }
    created = store.ensure()
    for _ in range(ATTEMPTS):
        if store.insert({**fields, "created_collection": created, "facts": {}}):
            return _stored(store)
        owner = store.read()
        if owner is None:
            continue  # released in between: claim again
        if owner.run_id != run_id and not replaceable(owner):
            raise refusal(owner, database)
        if not store.replace(owner.run_id, fields):
            latest = store.read()
            if latest is None or latest.run_id != run_id:
                raise refusal(latest or owner, database)
        return _stored(store)
    raise TransientError(
        f"plan {plan}'s ownership record in target database {database} was released and claimed "
        f"again {ATTEMPTS} times while this run claimed it",
        hint="run the command again",
    )


def _stored(store: ClaimStore) -> OwnerRecord:
    record = store.read()
    assert record is not None  # a record is deleted only by its run's release
    return record


def check_release(owner: OwnerRecord | None, run_id: str, database: str) -> None:
    """Run `run_id` may release the plan's records here: no record, or its own; else refuse."""
    if owner is not None and owner.run_id != run_id:
        raise refusal(owner, database, this_run=run_id)


def release_outcome(removed: int, owner: OwnerRecord | None) -> str:
    """What release did with the records (the target adds what it did with the rest)."""
    if owner is None:
        return f"{removed} record(s) deleted; there was no ownership record"
    return f"{removed} record(s) and the ownership record deleted"


def owned_slot(owner: OwnerRecord | None, plan: str) -> str:
    """The replication slot of the run that owns the plan's data: the one its record names, else
    (no record: a run begun before ownership records) the plan-named slot."""
    return owner.slot if owner is not None and owner.slot else legacy_slot_name(plan)


class ClaimingOwnership:
    """What a target's Ownership (adapters/base.py) shares: `claim` and `slot` by the rules above.
    A target gives `read`, `note`, `release`, and `_with_store` (run work on a ClaimStore)."""

    plan_name: str

    @property
    def database_name(self) -> str:
        raise NotImplementedError

    def read(self) -> OwnerRecord | None:
        raise NotImplementedError

    def _with_store(self, work: Callable[[ClaimStore], T]) -> T:
        raise NotImplementedError

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
        return self._with_store(
            lambda store: claim(
                store,
                plan=self.plan_name,
                database=self.database_name,
                run_id=run_id,
                started_at=started_at,
                host=host,
                state=state,
                slot=slot,
                publication=publication,
                replaceable=replaceable,
            )
        )

    def slot(self) -> str:
        """The replication slot of the run that owns the plan's data here (owned_slot)."""
        return owned_slot(self.read(), self.plan_name)
