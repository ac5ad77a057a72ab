"""`migrator rollback` before cutover, against real servers: the pgroll cycle (run -> rollback ->
run again) leaves nothing behind, pre-existing collections are respected, a following run is
never pulled from under, and an interrupted rollback resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.adapters.postgres.snapshot import PublicationManager
from migrator.cli.main import cli
from migrator.errors import SourceError, TerminalError
from migrator.operations.rollback import NothingToRollBack, RollbackResult
from migrator.plan.names import publication_name
from migrator.state import SQLiteStateStore
from tests.support.docs import Migration
from tests.support.runs import follow, run
from tests.support.shop import CUSTOMERS, SCHEMA, plan


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def leftovers(m: Migration, name: str) -> dict[str, Any]:
    """What a run leaves on both sides: slot, publication, collections, CDC checkpoint."""
    db = m.client[m.database]
    return {
        "slot": bool(m.rows("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [m.slot(name)])),
        "publication": bool(
            m.rows("SELECT 1 FROM pg_publication WHERE pubname = %s", [publication_name(name)])
        ),
        "collections": sorted(c for c in db.list_collection_names() if c != "_migrator"),
        "checkpoint": db["_migrator"].find_one({"_id": f"cdc:{name}"}) is not None,
        # The run's own records (the ownership record among them), and the collection it made.
        "_migrator": sorted(d["_id"] for d in db["_migrator"].find({}, {"_id": 1}))
        if "_migrator" in db.list_collection_names()
        else None,
    }


def rollback(m: Migration, plan_file: Path, **options: Any) -> RollbackResult:
    result = api.rollback(plan_file, state=m.state_path, env=m.env, **options)
    assert isinstance(result, RollbackResult)
    return result


def run_status(m: Migration, name: str) -> list[str]:
    with SQLiteStateStore(m.state_path) as store:
        return [r.status for r in store.runs(name)]


def test_run_rollback_run_again_leaves_nothing_behind(mig: Migration) -> None:
    name = "rb-cycle"
    plan_file = plan(mig, name)
    nothing = {"slot": False, "publication": False, "collections": [], "checkpoint": False, "_migrator": None}
    for cycle in range(2):
        run(mig, plan_file, "caught-up")
        assert leftovers(mig, name) == {
            "slot": True,
            "publication": True,
            "collections": ["customers", "stock"],
            "checkpoint": True,
            "_migrator": [f"cdc:{name}", f"owner:{name}"],
        }
        assert mig.client[mig.database]["customers"].count_documents({}) == CUSTOMERS
        result = rollback(mig, plan_file)
        assert leftovers(mig, name) == nothing
        assert [s["name"] for s in result.steps] == [
            "check",
            "cdc_checkpoint",
            "slot",
            "publication",
            "reverse",
            "collection:customers",
            "collection:stock",
            "release",
            "finish",
        ]
        assert run_status(mig, name) == ["rolled_back"] * (cycle + 1)
    with pytest.raises(NothingToRollBack):
        rollback(mig, plan_file)


def test_collections_that_existed_before_are_respected(mig: Migration) -> None:
    name = "rb-existing"
    db = mig.client[mig.database]
    db["stock"].insert_one({"_id": "kept", "note": "held before the run"})
    db.create_collection("customers")  # exists, empty
    db["customers"].create_index("name", name="app_name")
    plan_file = plan(mig, name)
    run(mig, plan_file, "caught-up")
    assert "migrator_orders.id" in db["customers"].index_information()
    steps = api.rollback(plan_file, preview=True, state=mig.state_path, env=mig.env)
    assert isinstance(steps, list)
    described = {s.name: s.description for s in steps}
    assert "existed, empty" in described["collection:customers"]
    assert "held 1 documents before the run" in described["collection:stock"]
    assert leftovers(mig, name)["slot"]  # a preview changes nothing

    result = rollback(mig, plan_file)
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert outcomes["collection:stock"].startswith("kept")
    assert outcomes["collection:customers"].startswith(f"emptied ({CUSTOMERS:,} documents")
    assert db["customers"].count_documents({}) == 0
    assert sorted(db["customers"].index_information()) == ["_id_", "app_name"]
    assert db["stock"].find_one({"_id": "kept"}) is not None

    # With --force, a collection that held data before is dropped.
    run(mig, plan_file, "snapshot")
    rollback(mig, plan_file, force=True)
    assert "stock" not in db.list_collection_names()


def test_rollback_refuses_while_a_run_follows_changes(mig: Migration) -> None:
    name = "rb-following"
    plan_file = plan(mig, name)
    run(mig, plan_file, "snapshot")
    follower = follow(mig, plan_file, name)
    try:
        with pytest.raises(TerminalError, match="is in use") as caught:
            rollback(mig, plan_file)
        assert "SIGTERM" in (caught.value.hint or "")
        assert leftovers(mig, name)["slot"] and leftovers(mig, name)["collections"] == ["customers", "stock"]
    finally:
        follower.finish()
    rollback(mig, plan_file)
    assert leftovers(mig, name)["slot"] is False


def test_an_interrupted_rollback_resumes(mig: Migration, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "rb-resume"
    plan_file = plan(mig, name)
    run(mig, plan_file, "snapshot")

    def fail(self: PublicationManager, publication: str) -> None:
        raise SourceError("connection lost (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(PublicationManager, "drop_publication", fail)
        with pytest.raises(SourceError):
            rollback(mig, plan_file)
    state = leftovers(mig, name)
    assert state["slot"] is False and state["publication"] is True  # stopped half way
    assert run_status(mig, name) == ["active"]

    result = rollback(mig, plan_file)
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert result.resumed and outcomes["slot"] == "done before (resumed rollback)"
    assert outcomes["publication"].startswith("dropped")
    assert leftovers(mig, name) == {
        "slot": False,
        "publication": False,
        "collections": [],
        "checkpoint": False,
        "_migrator": None,
    }
    assert run_status(mig, name) == ["rolled_back"]


def test_cli_rollback_asks_unless_yes(mig: Migration) -> None:
    name = "rb-cli"
    plan_file = plan(mig, name)
    run(mig, plan_file, "snapshot")
    env = {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    refused = CliRunner().invoke(cli, ["rollback", str(plan_file)], env=env)
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert leftovers(mig, name)["slot"]
    done = CliRunner().invoke(cli, ["rollback", str(plan_file), "--yes", "--json"], env=env)
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["step"] for e in lines if e["event"] == "rollback.step"][-1] == "finish"
    assert lines[-1]["event"] == "result" and lines[-1]["steps"][-1]["name"] == "finish"
    assert leftovers(mig, name)["collections"] == []
