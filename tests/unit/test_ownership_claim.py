"""The claim rules every target shares (adapters/ownership_claim.py), over a store kept in a dict.

The store is the smallest thing that keeps a record as a target would; what the claim leaves in
it is read back and compared with the record each rule should leave."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from migrator.adapters import ownership_claim
from migrator.adapters.ownership_record import OwnerRecord
from migrator.errors import OwnedByAnotherRun, TransientError


class DictStore:
    def __init__(self, record: dict[str, Any] | None = None, *, exists: bool = True) -> None:
        self.record = record
        self.exists = exists
        self.lose_replace_to: str | None = None  # another process takes over first
        self.vanish = 0  # reads that find nothing after a failed insert (released in between)

    def ensure(self) -> bool:
        created, self.exists = not self.exists, True
        return created

    def insert(self, record: Mapping[str, Any]) -> bool:
        if self.record is not None:
            return False
        self.record = dict(record)
        return True

    def read(self) -> OwnerRecord | None:
        if self.vanish:
            self.vanish -= 1
            return None
        return None if self.record is None else OwnerRecord.from_document(self.record)

    def replace(self, previous_run: str, fields: Mapping[str, Any]) -> bool:
        assert self.record is not None
        if self.lose_replace_to is not None:
            self.record["run_id"] = self.lose_replace_to
        if self.record["run_id"] != previous_run:
            return False
        self.record.update(fields)
        return True


def _claim(store: DictStore, run_id: str = "run-b", replaceable: Any = lambda _o: False) -> OwnerRecord:
    return ownership_claim.claim(
        store,
        plan="shop",
        database="appdb",
        run_id=run_id,
        started_at="2027-01-15T08:00:00Z",
        host="h2",
        state="postgresql://u:secret@h/db.sqlite",
        slot="migrator_shop_b",
        publication="migrator_shop",
        replaceable=replaceable,
    )


def _record(run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "plan": "shop",
        "run_id": run_id,
        "started_at": "2027-01-14T08:00:00Z",
        "host": "h1",
        "state": "/srv/a/state.sqlite",
        "slot": "migrator_shop_a",
        "publication": "migrator_shop",
        "created_collection": True,
        "claimed_at": "2027-01-14T08:00:00Z",
        "facts": {"publication_created": True},
        **extra,
    }


def test_no_record_inserts_one_that_says_whether_the_run_made_the_state_collection() -> None:
    store = DictStore(exists=False)
    owner = _claim(store)
    assert store.record is not None
    assert (owner.run_id, owner.slot, owner.host, owner.facts) == ("run-b", "migrator_shop_b", "h2", {})
    assert store.record["created_collection"] is True and owner.created_collection is True
    assert "secret" not in store.record["state"]  # a password in the state path never lands in the record
    assert _claim(DictStore(exists=True)).created_collection is False


def test_another_runs_record_refuses_naming_the_owner_and_stays_as_it_was() -> None:
    store = DictStore(_record("run-a"))
    with pytest.raises(OwnedByAnotherRun) as refused:
        _claim(store)
    assert "run run-a" in str(refused.value) and "/srv/a/state.sqlite" in (refused.value.hint or "")
    assert store.record == _record("run-a")


def test_the_same_run_brings_its_record_up_to_date_and_keeps_its_facts() -> None:
    store = DictStore(_record("run-b"))
    owner = _claim(store)
    assert (owner.host, owner.slot) == ("h2", "migrator_shop_b")
    assert owner.facts == {"publication_created": True} and owner.created_collection is True


def test_a_claim_whose_run_never_began_is_taken_over() -> None:
    store = DictStore(_record("run-a"))
    owner = _claim(store, replaceable=lambda o: o.run_id == "run-a")
    assert owner.run_id == "run-b" and store.record is not None and store.record["run_id"] == "run-b"


def test_of_two_takeovers_at_once_the_loser_refuses_naming_the_winner() -> None:
    store = DictStore(_record("run-a"))
    store.lose_replace_to = "run-c"
    with pytest.raises(OwnedByAnotherRun) as refused:
        _claim(store, replaceable=lambda _o: True)
    assert "run run-c" in str(refused.value)


def test_a_record_released_in_between_is_claimed_again_a_bounded_number_of_times() -> None:
    store = DictStore(_record("run-a"))
    store.vanish = 1
    with pytest.raises(OwnedByAnotherRun):  # the second try finds run-a's record again
        _claim(store)
    store.vanish = ownership_claim.ATTEMPTS
    with pytest.raises(TransientError):
        _claim(store)


def test_release_refuses_another_runs_record_and_says_what_it_removed() -> None:
    with pytest.raises(OwnedByAnotherRun) as refused:
        ownership_claim.check_release(OwnerRecord.from_document(_record("run-a")), "run-b", "appdb")
    assert "this state file's run is run-b" in str(refused.value)
    ownership_claim.check_release(None, "run-b", "appdb")
    ownership_claim.check_release(OwnerRecord.from_document(_record("run-b")), "run-b", "appdb")
    assert ownership_claim.release_outcome(2, None) == "2 record(s) deleted; there was no ownership record"
    owner = OwnerRecord.from_document(_record("run-b"))
    assert ownership_claim.release_outcome(3, owner) == "3 record(s) and the ownership record deleted"
    assert ownership_claim.owned_slot(owner, "shop") == "migrator_shop_a"
