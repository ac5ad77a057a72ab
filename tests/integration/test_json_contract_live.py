"""The `--json` contract of docs/json.md against real servers, in the success and the failure
cases: every stdout line parses; one-shot commands print one object, streaming commands events
then one `result` line, a failure one `failed` line; every `ts` is RFC 3339 UTC with `Z`; exit
codes 0 ok, 1 differences or no run, 2 usage. The cases without a database are in
tests/unit/test_json_contract.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from migrator.cli.main import cli
from tests.support import json_output
from tests.support.cutover import cutover_plan
from tests.support.docs import Migration
from tests.support.json_output import TS
from tests.support.runs import run
from tests.support.shop import CUSTOMERS, SCHEMA, plan


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def cli_json(mig: Migration, *args: str) -> Result:
    env = {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_each_command_keeps_the_contract_through_a_run_and_its_rollback(mig: Migration) -> None:
    plan_file = plan(mig, "json-cycle")

    proposed = cli_json(mig, "init", mig.pg_url, "--tables", "customers,orders", "--json")
    assert proposed.exit_code == 0, proposed.output
    init = json_output.one_object(proposed.stdout)
    assert init["output"] is None and init["plan"].startswith("# yaml-language-server")
    assert [c["table"] for c in init["collections"]] == ["public.customers"]
    assert init["collections"][0]["embeds"][0]["table"] == "public.orders"

    checked = cli_json(mig, "plan", str(plan_file), "--json")
    assert checked.exit_code == 0, checked.output
    report = json_output.one_object(checked.stdout)
    assert report["ready"] is True and report["plan"] == "json-cycle"

    ran = cli_json(mig, "run", str(plan_file), "--until", "caught-up", "--json")
    assert ran.exit_code == 0, ran.output
    events, result = json_output.stream(ran.stdout)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run.started" and "snapshot.chunk_finished" in kinds
    assert "snapshot.rows" in kinds  # progress ticks: in JSON lines by default
    assert result["event"] == "result" and result["cdc"]["caught_up"] is True
    assert mig.client[mig.database]["customers"].count_documents({}) == CUSTOMERS

    # -q: the result line alone; -v: the progress ticks, as by default.
    quiet = cli_json(mig, "-q", "run", str(plan_file), "--until", "caught-up", "--json")
    assert quiet.exit_code == 0 and json_output.one_object(quiet.stdout)["event"] == "result", quiet.output
    loud = cli_json(mig, "-v", "run", str(plan_file), "--until", "caught-up", "--json")
    assert loud.exit_code == 0, loud.output
    assert "cdc.progress" in [e["event"] for e in json_output.stream(loud.stdout)[0]]

    shown = cli_json(mig, "status", str(plan_file), "--json")
    assert shown.exit_code == 0, shown.output
    status = json_output.one_object(shown.stdout)
    assert TS.match(status["ts"]) and TS.match(status["run"]["started_at"])
    assert status["run"]["id"] == result["run_id"] and status["cdc"]["applied_position"]

    throttled = cli_json(mig, "throttle", str(plan_file), "--max-lag", "2s", "--json")
    assert throttled.exit_code == 0, throttled.output
    assert json_output.one_object(throttled.stdout)["controls"]["max_lag"] == 2.0

    equal = cli_json(mig, "verify", str(plan_file), "--json")
    assert equal.exit_code == 0, equal.output
    verified = json_output.result(equal.stdout)
    assert (
        verified["verdict"] == "equal" and verified["checked"] == CUSTOMERS + 60
    )  # stock: 3 warehouses x 20 skus
    mig.client[mig.database]["customers"].update_one({"_id": 3}, {"$set": {"name": "corrupted"}})
    different = cli_json(mig, "verify", str(plan_file), "--json", "--log-format", "json")
    assert different.exit_code == 1, different.output
    found = json_output.result(different.stdout)
    assert found["verdict"] == "different" and [m["id"] for m in found["mismatches"]] == [3]
    logs = [json.loads(line) for line in different.stderr.splitlines()]  # stderr: log lines only
    assert logs and all(TS.match(line["ts"]) for line in logs)
    assert "verify.finished" in [line["event"] for line in logs]

    rolled = cli_json(mig, "rollback", str(plan_file), "--yes", "--json")
    assert rolled.exit_code == 0, rolled.output
    steps, done = json_output.stream(rolled.stdout)
    assert {e["event"] for e in steps} == {"rollback.step"} and done["steps"][-1]["name"] == "finish"
    assert mig.client[mig.database].list_collection_names() in ([], ["_migrator"])

    again = cli_json(mig, "rollback", str(plan_file), "--yes", "--json")
    assert again.exit_code == 1, again.output
    assert json_output.error(again.stdout, 1)["error"] == "NothingToRollBack"
    gone = cli_json(mig, "throttle", str(plan_file), "--pause", "--json")
    assert gone.exit_code == 1 and json_output.error(gone.stdout, 1)["error"] == "NoActiveRun"


def test_cutover_streams_its_steps_then_one_result(mig: Migration, tmp_path: Path) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "json-cutover", switch, freeze="5s")
    run(mig, plan_file, "caught-up")
    done = cli_json(mig, "cutover", str(plan_file), "--exit", "--json")
    assert done.exit_code == 0, done.output
    events, result = json_output.stream(done.stdout)
    steps = [e["step"] for e in events if e["event"] == "cutover.step"]
    assert "switched" in steps and steps.index("fence") < steps.index("switched")
    assert result["event"] == "result" and result["attempts"] >= 1 and result["freeze_ms"] > 0
    assert switch.read_text() == "target\n"
