"""Every phase over the memory adapters (migrator/adapters/memory): run -> crash -> resume, and
rollback, with the real phases, operations and state store, without servers (pgroll's start ->
rollback -> start -> complete cycle). The expected documents are built here from the rows, not
with the mapping code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.adapters.memory import Crash, MemoryDatabase
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
