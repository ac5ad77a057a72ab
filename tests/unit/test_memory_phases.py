"""Every phase over the memory adapters (migrator/adapters/memory): run -> crash -> resume, and
rollback, with the real phases, operations and state store, without servers (pgroll's start ->
rollback -> start -> complete cycle). The expected documents are built here from the rows, not
with the mapping code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.adapters.memory import Crash, MemoryDatabase
from migrator.errors import TerminalError
from migrator.plan.names import cdc_checkpoint_id
from tests.support.memory import MemoryMigration, items_table, memory_migration


@pytest.fixture
def mig(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path)


def expected(db: MemoryDatabase) -> list[dict[str, object]]:
    """The documents the plan promises: _id from the key, the other columns as fields."""
    rows = db.table("public.items").rows.values()
    return sorted(
        ({"_id": r["id"], "name": r["name"], "qty": r["qty"]} for r in rows), key=lambda d: d["_id"]
    )


def test_snapshot_crash_and_resume_copies_the_rest(mig: MemoryMigration) -> None:
    items_table(mig.db, 23)
    mig.db.faults.crash_after("write", 2)  # two chunks of five written, then kill -9
    with pytest.raises(Crash):
        mig.run("snapshot")
    assert len(mig.db.documents("items")) == 10  # what was committed stays
    mig.db.faults.clear()
    outcome = mig.run("snapshot")
    assert outcome.resumed
    assert outcome.snapshot is not None and outcome.snapshot.chunks_copied == 3
    assert mig.db.documents("items") == expected(mig.db)


def application_writes(db: MemoryDatabase) -> None:
    """Inserts, updates and deletes in several transactions, one of them with three changes."""
    db.insert("public.items", {"id": 100, "name": "new", "qty": 1})
    db.update("public.items", [3], {"qty": 333})
    db.delete("public.items", [4])
    with db.transaction() as tx:
        tx.insert("public.items", {"id": 101, "name": "newer", "qty": 2})
        tx.update("public.items", [100], {"name": "renamed"})
        tx.delete("public.items", [5])
    db.update("public.items", [1], {"name": None})
    for i in range(6, 12):
        db.update("public.items", [i], {"qty": -i})


@pytest.fixture
def small_batches(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path, batch_changes=2)


def test_snapshot_retries_a_transient_failure_and_stops_on_a_terminal_one(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.db.faults.fail("stream", "the source refused the read")
    with pytest.raises(TerminalError, match="refused the read"):
        mig.run("snapshot")
    mig.db.faults.clear()
    mig.db.faults.fail_transiently("write", 2)  # a chunk's write fails twice, then goes through
    outcome = mig.run("snapshot")
    assert mig.db.faults.transient_left("write") == 0
    assert outcome.resumed and mig.db.documents("items") == expected(mig.db)


def test_writes_during_the_copy_reach_the_target_through_cdc(mig: MemoryMigration) -> None:
    items_table(mig.db, 23)
    fresh = iter(range(1000, 2000))

    def application_meanwhile() -> None:  # each chunk write is "slow": the application writes meanwhile
        new = next(fresh)
        mig.db.insert("public.items", {"id": new, "name": "meanwhile", "qty": new})
        mig.db.update("public.items", [1], {"qty": new})

    mig.db.faults.slow("write", application_meanwhile)
    mig.run("snapshot")
    # The copy reads the snapshot the slot was created at: none of those writes is in it.
    assert len(mig.db.documents("items")) == 23
    mig.db.faults.clear()
    outcome = mig.run("caught-up")
    assert outcome.cdc is not None and outcome.cdc.changes == 10
    assert mig.db.documents("items") == expected(mig.db)


def test_cdc_applies_changes(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("snapshot")
    application_writes(mig.db)
    outcome = mig.run("caught-up")
    assert outcome.cdc is not None and outcome.cdc.caught_up
    assert mig.db.documents("items") == expected(mig.db)


def test_cdc_crash_mid_stream_resumes_each_change_once(small_batches: MemoryMigration) -> None:
    mig = small_batches
    items_table(mig.db, 12)
    mig.run("snapshot")
    mig.db.update("public.items", [2], {"qty": 2})
    mig.run("caught-up")
    checkpoint = mig.db.records[cdc_checkpoint_id(mig.plan.name)]["position"]
    application_writes(mig.db)
    # The first batch of two writes committed (within a transaction: no checkpoint with it), then kill -9.
    mig.db.faults.crash_after("apply", 1)
    with pytest.raises(Crash):
        mig.run("caught-up")
    assert mig.db.records[cdc_checkpoint_id(mig.plan.name)]["position"] == checkpoint  # data first
    assert mig.db.documents("items") != expected(mig.db)
    mig.db.faults.clear()
    outcome = mig.run("caught-up")
    assert outcome.resumed and outcome.cdc is not None and outcome.cdc.caught_up
    assert mig.db.documents("items") == expected(mig.db)
    # The changes after the checkpoint were handed over once each (applied again idempotently
    # where the crash came after their writes), none before it.
    assert outcome.cdc.changes == sum(len(c.changes) for c in mig.db.log[checkpoint:])


def plant_difference(db: MemoryDatabase, doc_id: int) -> None:
    key, (stored_id, document) = next((k, v) for k, v in db.collections["items"].items() if v[0] == doc_id)
    db.collections["items"][key] = (stored_id, {**document, "qty": 999_999})


def test_verify_equal_then_a_planted_difference(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("snapshot")
    application_writes(mig.db)
    first = mig.run("verified").verify
    assert first is not None and first.equal and not first.mismatches
    assert first.totals.checked == len(expected(mig.db))
    plant_difference(mig.db, 7)
    second = mig.run("verified").verify
    assert second is not None and not second.equal
    assert [(m.id, m.kind) for m in second.mismatches] == [(7, "mismatched")]


def test_verify_retries_a_transient_failure_never_a_difference(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("snapshot")
    mig.db.faults.fail_transiently("fetch_range", 1)
    mig.db.faults.fail_transiently("fetch", 1)
    report = mig.run("verified").verify
    assert mig.db.faults.transient_left("fetch_range") == 0  # the failure came, and was retried
    assert report is not None and report.equal and not report.mismatches


def test_rollback_before_cutover_removes_what_the_run_created(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.db.faults.crash_after("write", 1)
    with pytest.raises(Crash):
        mig.run("snapshot")
    mig.db.faults.clear()
    mig.run("snapshot")
    application_writes(mig.db)
    mig.run("caught-up")
    assert mig.db.slots and mig.db.publications and mig.db.documents("items")
    result = mig.rollback()
    assert result.steps[-1]["name"] == "finish"
    assert "items" not in mig.db.collections
    assert mig.db.slots == {} and mig.db.publications == {}
    assert not [r for r in mig.db.records if not r.startswith("routing:")]  # checkpoint, ownership
    # Start again from scratch: the cycle completes (pgroll's start -> rollback -> start -> complete).
    outcome = mig.run("caught-up")
    assert not outcome.resumed
    assert mig.db.documents("items") == expected(mig.db)


def test_cutover_flips_the_switch(mig: MemoryMigration, tmp_path: Path) -> None:
    items_table(mig.db, 12)
    mig.run("caught-up")
    application_writes(mig.db)
    outcome = mig.cutover()
    assert outcome.report.to_dict()
    assert (tmp_path / "primary").read_text().strip() == "target"
    assert mig.db.fenced == set()  # the fence was lifted
    assert mig.db.documents("items") == expected(mig.db)


def test_cutover_after_a_crash_before_the_fence(mig: MemoryMigration, tmp_path: Path) -> None:
    items_table(mig.db, 12)
    mig.run("caught-up")
    application_writes(mig.db)
    mig.db.faults.crash_after("fence_engage", 0)
    with pytest.raises(Crash):
        mig.cutover()
    assert not (tmp_path / "primary").exists() or (tmp_path / "primary").read_text().strip() != "target"
    mig.db.faults.clear()
    mig.cutover()
    assert (tmp_path / "primary").read_text().strip() == "target"
    assert mig.db.documents("items") == expected(mig.db)


def test_rollback_resumes_after_a_crash(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("caught-up")
    mig.db.faults.crash_after("drop_collection", 0)  # slot, publication, checkpoint gone; then kill -9
    with pytest.raises(Crash):
        mig.rollback()
    assert mig.db.slots == {} and "items" in mig.db.collections
    mig.db.faults.clear()
    result = mig.rollback()
    assert result.resumed
    assert "done before (resumed rollback)" in [s["outcome"] for s in result.steps]
    assert "items" not in mig.db.collections and mig.db.publications == {}


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path, switch="mongodb")


def test_cutover_completes_a_flip_a_crash_interrupted(routed: MemoryMigration) -> None:
    mig = routed
    items_table(mig.db, 12)
    mig.run("caught-up")
    application_writes(mig.db)
    mig.db.faults.crash_after("write_routing_document", 0)  # under the fence, the flip recorded as begun
    with pytest.raises(Crash):
        mig.cutover()
    mig.db.sessions_ended()
    assert mig.db.records.get(f"routing:migrator_routing:{mig.plan.name}") is None
    mig.db.faults.clear()
    mig.cutover()
    routing = mig.db.records.get(f"routing:migrator_routing:{mig.plan.name}")
    assert routing is not None and routing["primary"] == "target"
    assert mig.db.documents("items") == expected(mig.db)


def test_verify_after_a_crash(mig: MemoryMigration) -> None:
    items_table(mig.db, 12)
    mig.run("snapshot")
    mig.db.faults.crash_after("fetch_range", 0)  # CDC follows, the verify pass reads the target: kill -9
    with pytest.raises(Crash):
        mig.run("verified")
    mig.db.sessions_ended()
    mig.db.faults.clear()
    report = mig.run("verified").verify
    assert report is not None and report.equal and report.totals.checked == 12
