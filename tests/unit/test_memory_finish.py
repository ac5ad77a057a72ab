"""`migrator finish` over the memory adapters (docs/cutover.md, "Finishing"): refused before cutover;
after it, the slot, the publication and the run's records go and the target's documents stay;
a finish that fails part way is completed by running it again; a second finish reports the run
finished, and `run` and `rollback` refuse it. The expected documents are written here from the
rows the test loads, not with the mapping code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.adapters.memory import Crash
from migrator.errors import ChecksFailed
from tests.support.memory import MemoryMigration, items_table, memory_migration


@pytest.fixture
def mig(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path)


def _left(mig: MemoryMigration) -> list[str]:
    """migrator's records still in the memory target (the switch's routing records aside)."""
    return [r for r in mig.db.records if not r.startswith("routing:")]


def test_finish_before_cutover_is_refused(mig: MemoryMigration) -> None:
    items_table(mig.db, 6)
    mig.run("caught-up")
    with pytest.raises(ChecksFailed, match="has not cut over"):
        mig.finish()
    assert mig.db.slots and mig.db.publications and _left(mig)


def test_finish_after_cutover_keeps_the_documents_and_completes_after_a_crash(
    mig: MemoryMigration, tmp_path: Path
) -> None:
    items_table(mig.db, 6)
    mig.run("caught-up")
    mig.db.update("public.items", [2], {"name": "renamed"})
    mig.cutover()
    assert (tmp_path / "primary").read_text().strip() == "target"
    expected = [{"_id": i, "name": f"item {i}", "qty": i * 10} for i in range(1, 7)]
    expected[1]["name"] = "renamed"

    # The process dies at the target's first step: the source's steps are done and recorded.
    mig.db.faults.crash_after("drop_reverse_feed", 0)
    with pytest.raises(Crash):
        mig.finish()
    mig.db.faults.clear()
    assert mig.db.slots == {} and mig.db.publications == {}
    assert _left(mig)  # the target's records are not released yet
    with pytest.raises(ChecksFailed, match="cut short"):
        mig.rollback()
    with pytest.raises(ChecksFailed, match="cut short"):
        mig.run("caught-up")

    result = mig.finish()
    assert result.resumed and not result.already
    assert [s["outcome"] for s in result.steps if s["name"] in ("slot", "publication")] == [
        "done before (resumed finish)"
    ] * 2
    assert _left(mig) == []
    assert mig.db.documents("items") == expected
    with mig.store() as store:
        (run,) = store.runs(mig.plan.name)
        assert run.status == "succeeded"

    assert mig.finish().already
    with pytest.raises(ChecksFailed, match="finished"):
        mig.rollback()
    with pytest.raises(ChecksFailed, match="finished"):
        mig.run("caught-up")
    assert mig.db.documents("items") == expected
