"""`migrator finish` from PostgreSQL to MongoDB (docs/cutover.md, "Finishing"): after a cutover
with reverse sync, finish drops what the run kept on the source (forward CDC's slot and
publication, reverse sync's checkpoint and replication origin) and the run's records on the
target, and keeps every document, including writes made on the target after the cutover.
Refused before cutover; a second finish reports the run finished; `run` and `rollback` refuse
afterwards; a finish killed between a step's action and its checkpoint is completed by running it
again.

The expectation is written by hand: customer id -> name as the shop schema makes them
(tests/support/shop.py), changed by the writes the test makes on the target."""

from __future__ import annotations

import datetime
import json
import signal
from pathlib import Path

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator import api
from migrator.errors import ChecksFailed, RunInUse
from migrator.operations.finish import FinishResult
from migrator.operations.rollback_after_cutover import KILL_AT_ENV
from migrator.plan.names import publication_name, reverse_origin_name
from tests.support import cli_process
from tests.support.cutover import cutover_plan
from tests.support.docs import Migration
from tests.support.runs import follow, run
from tests.support.shop import CUSTOMERS, SCHEMA

pytestmark = pytest.mark.usefixtures("stop_followers")

STEPS = ["check", "reverse", "slot", "publication", "source-reverse", "target-feed", "release", "done"]


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def _cut_over(mig: Migration, tmp_path: Path, name: str) -> tuple[Path, dict[int, str]]:
    """Run, cut over with reverse sync, then write on the target: the plan, and id -> name as
    the target must hold it."""
    plan = cutover_plan(mig, name, tmp_path / "routing", freeze="10s", reverse=True)
    run(mig, plan, "caught-up")
    api.cutover(plan, state=mig.state_path, env=mig.env)
    assert (tmp_path / "routing").read_text() == "target\n"
    customers = mig.client[mig.database]["customers"]
    customers.update_one({"_id": Int64(7)}, {"$set": {"name": "renamed on target"}})
    assert customers.delete_one({"_id": Int64(8)}).deleted_count == 1
    customers.insert_one(
        {
            "_id": Int64(5000),
            "name": "inserted on target",
            "balance": Decimal128("1.00"),
            "created": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
            "tags": [],
            "orders": [],
        }
    )
    expected = {i: f"customer {i}" for i in range(1, CUSTOMERS + 1)}
    expected[7] = "renamed on target"
    del expected[8]
    expected[5000] = "inserted on target"
    return plan, expected


def _nothing_of_the_run_left(mig: Migration, name: str, expected: dict[int, str]) -> None:
    assert mig.slots() == []
    assert mig.rows("SELECT pubname FROM pg_publication WHERE pubname = %s", [publication_name(name)]) == []
    origin = "SELECT roname FROM pg_replication_origin WHERE roname = %s"
    assert mig.rows(origin, [reverse_origin_name(name)]) == []
    # The checkpoint table held this plan's row only: dropped with it.
    assert mig.rows("SELECT to_regclass('migrator.reverse_checkpoint')") == [(None,)]
    database = mig.client[mig.database]
    names = {int(d["_id"]): d["name"] for d in database["customers"].find({}, {"name": 1})}
    assert names == expected
    assert database["stock"].count_documents({}) == 60  # 3 warehouses x 20 skus, untouched
    # The run's records are gone; `_migrator` itself, which the run created, with them.
    assert "_migrator" not in database.list_collection_names()


def test_finish_keeps_the_target_and_removes_the_run(mig: Migration, tmp_path: Path) -> None:
    plan, expected = _cut_over(mig, tmp_path, "fin")
    preview = api.finish(plan, preview=True, state=mig.state_path, env=mig.env)
    assert isinstance(preview, list)
    assert [s.name for s in preview] == STEPS
    assert mig.slots() != []  # a preview does nothing

    # `run --dry-run` lists the steps finish performs (docs/architecture.md, "Executable actions"):
    # the same, said the same way, but for the run's own names (its slot, its id).
    report = api.dry_run(plan, sample_rows=10, env=mig.env)
    listed = [(e.step, e.action.description) for e in report.journal if e.action.phase == "finish"]
    assert [step for step, _ in listed] == [f"finish.{s}" for s in STEPS]
    shown = dict(zip(STEPS, (s.description for s in preview), strict=True))
    for step, description in listed:
        if step not in ("finish.slot", "finish.done"):
            assert description == shown[step.removeprefix("finish.")], step

    # While a process follows the plan (here `migrator run`, both directions after the cutover),
    # finish is refused by the plan's lease, before it changes anything.
    follower = follow(mig, plan, "fin")
    with pytest.raises(RunInUse, match="migrator run"):
        api.finish(plan, state=mig.state_path, env=mig.env)
    follower.finish()
    assert len(mig.slots()) == 1

    result = api.finish(plan, state=mig.state_path, env=mig.env)
    assert isinstance(result, FinishResult)
    assert [s["name"] for s in result.steps] == STEPS
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert outcomes["slot"] == "dropped" and outcomes["publication"] == "dropped"
    assert outcomes["source-reverse"] == "removed"
    _nothing_of_the_run_left(mig, "fin", expected)

    status = api.status(plan, state=mig.state_path, env=mig.env)
    assert status.run is not None and status.run.status == "succeeded"
    assert ("finish", "done") in [(p.name, p.status) for p in status.phases]

    # Twice is fine: the run is reported finished, nothing is done.
    again = api.finish(plan, state=mig.state_path, env=mig.env)
    assert isinstance(again, FinishResult) and again.already and again.run_id == result.run_id
    # Rollback is refused (reverse sync stopped), and so is a new run in this state file.
    with pytest.raises(ChecksFailed, match="finished"):
        api.rollback(plan, state=mig.state_path, env=mig.env)
    with pytest.raises(ChecksFailed, match="finished"):
        api.run(plan, until="snapshot", state=mig.state_path, env=mig.env)
    _nothing_of_the_run_left(mig, "fin", expected)


def test_finish_before_cutover_is_refused(mig: Migration, tmp_path: Path) -> None:
    plan = cutover_plan(mig, "fin-early", tmp_path / "routing", reverse=True)
    run(mig, plan, "caught-up")
    slots = mig.slots()
    with pytest.raises(ChecksFailed, match="has not cut over") as refused:
        api.finish(plan, state=mig.state_path, env=mig.env)
    assert "rollback --to start" in (refused.value.hint or "")
    with pytest.raises(ChecksFailed, match="has not cut over"):  # before the operator is asked
        api.finish(plan, preview=True, state=mig.state_path, env=mig.env)
    cli = cli_process.start(
        ["finish", str(plan), "--yes"], {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    )
    code, out, err = cli_process.finish(cli)
    assert code == 1, (out, err)
    assert json.loads(out.splitlines()[-1])["error"] == "ChecksFailed"
    assert mig.slots() == slots and len(slots) == 1
    assert mig.client[mig.database]["_migrator"].count_documents({"_id": "owner:fin-early"}) == 1
    # The run goes on as before.
    run(mig, plan, "caught-up")


@pytest.mark.parametrize("step", ["publication", "done"])
def test_a_finish_killed_between_a_step_and_its_checkpoint_completes_on_rerun(
    mig: Migration, tmp_path: Path, step: str
) -> None:
    plan, expected = _cut_over(mig, tmp_path, "fin-kill")
    env = {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    # Killed once the step's action is done, before it is recorded ('done': its checkpoint is
    # written, the run's status not yet).
    killed = cli_process.start(["finish", str(plan), "--yes"], {**env, KILL_AT_ENV: f"finish:{step}"})
    code, out, err = cli_process.finish(killed)
    assert code == -signal.SIGKILL, (code, out[-2000:], err[-2000:])
    assert mig.slots() == []  # the slot's step came before
    # Between the two, rollback and run refuse: the finish must be completed first.
    with pytest.raises(ChecksFailed, match="cut short"):
        api.rollback(plan, state=mig.state_path, env=mig.env)
    with pytest.raises(ChecksFailed, match="cut short"):
        api.run(plan, until="snapshot", state=mig.state_path, env=mig.env)

    rerun = cli_process.start(["finish", str(plan), "--yes"], env)
    code, out, err = cli_process.finish(rerun)
    assert code == 0, (out[-3000:], err[-3000:])
    steps = {
        e["step"]: e["outcome"] for e in map(json.loads, out.splitlines()) if e.get("event") == "finish.step"
    }
    assert steps["slot"] == "done before (resumed finish)"
    if step == "publication":
        assert steps["publication"] == "dropped"  # done again: already gone, dropped IF EXISTS
    else:
        assert steps["release"] == "done before (resumed finish)"
        assert steps["done"].endswith("the target is primary for good")
    _nothing_of_the_run_left(mig, "fin-kill", expected)
    status = api.status(plan, state=mig.state_path, env=mig.env)
    assert status.run is not None and status.run.status == "succeeded"


def test_finish_keeps_what_another_run_of_the_source_may_use(mig: Migration, tmp_path: Path) -> None:
    # Another plan migrates the same source database (into another target database) and follows it.
    other = mig.plan(
        "- {name: stock, from: stock, key: [warehouse, sku]}",
        name="fin-other",
        database=f"{mig.database}_other",
        phases="cdc: {heartbeat_interval: 1s}",
    )
    try:
        run(mig, other, "caught-up")
        (other_slot,) = [name for name, _ in mig.slots()]
        plan, expected = _cut_over(mig, tmp_path, "fin-one")
        result = api.finish(plan, state=mig.state_path, env=mig.env)
        assert isinstance(result, FinishResult)
        # The other run's slot and publication are untouched; reverse sync's checkpoint table stays for
        # it (empty: its reverse sync could use it), with this plan's row gone.
        assert [name for name, _ in mig.slots()] == [other_slot]
        publications = "SELECT pubname FROM pg_publication ORDER BY 1"
        assert mig.rows(publications) == [(publication_name("fin-other"),)]
        assert mig.rows("SELECT count(*) FROM migrator.reverse_checkpoint") == [(0,)]
        names = {
            int(d["_id"]): d["name"] for d in mig.client[mig.database]["customers"].find({}, {"name": 1})
        }
        assert names == expected
        assert (
            mig.client[f"{mig.database}_other"]["_migrator"].count_documents({"_id": "owner:fin-other"}) == 1
        )
    finally:
        mig.client.drop_database(f"{mig.database}_other")
