"""Every phase over the memory adapters (migrator/adapters/memory): run -> crash -> resume, and
rollback, with the real phases, operations and state store, without servers (pgroll's start ->
rollback -> start -> complete cycle). The expected documents are built here from the rows, not
with the mapping code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.adapters.memory import Crash, MemoryDatabase
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
