"""When `migrator verify` cannot complete, it says so, with its own exit code (3) and JSON verdict
("incomplete"), never as a difference (1): nothing follows the source's changes (said within
seconds, not after settle_timeout per key), CDC failed (its recorded error named), CDC is behind
(documents not pinned down), a database is unreachable, timeouts that retries did not outlast.
Timeouts that pass are retried and leave no trace in the verdict."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from pymongo import errors as mongo_errors

from migrator import api
from migrator.adapters.mongodb.errors import classify
from migrator.adapters.mongodb.reader import DocumentReader
from migrator.cli.main import cli
from migrator.engine.events import Collector, Notice, Throttled
from migrator.phases import following
from migrator.phases import verify as verify_phase
from migrator.phases.following import CdcFailed, CdcNotFollowing
from migrator.phases.verify import VerifyReport
from tests.support import json_output
from tests.support.docs import Migration
from tests.support.json_output import stream
from tests.support.runs import follow, run, wait_for

ROWS = 200
SCHEMA = f"""
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, {ROWS}) AS i;
"""
COLLECTIONS = "- {name: items, from: items, key: id}"
# Far longer than any test here may take: a verify that waited it out would fail the test.
LONG_SETTLE = "settle_timeout: 600s"


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grace verify gives a `migrator run` that is starting (30 s), shortened: nothing starts here."""
    monkeypatch.setattr(following, "FOLLOW_GRACE_S", 2.0)


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def plan(mig: Migration, name: str, verify: str = LONG_SETTLE) -> Path:
    return mig.plan(COLLECTIONS, name=name, phases=f"verify: {{{verify}}}\ncdc: {{heartbeat_interval: 1s}}")


def cli_verify(mig: Migration, plan_file: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    env = {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    result = CliRunner().invoke(cli, ["verify", str(plan_file), "--json", *args], env=env)
    return result, stream(result.stdout)[1]


def test_nothing_following_is_said_at_once_and_at_rest_verify_is_exact(mig: Migration) -> None:
    plan_file = plan(mig, "verify-unfollowed")
    run(mig, plan_file, "snapshot")
    mig.sql("UPDATE items SET name = 'changed' WHERE id IN (10, 20)", "DELETE FROM items WHERE id = 30")
    started = time.monotonic()
    with pytest.raises(CdcNotFollowing) as raised:
        api.verify(plan_file, state=mig.state_path, env=mig.env)
    # Not after settle_timeout (600 s) per differing key: at once, plus a grace for a run starting.
    assert time.monotonic() - started < 300
    error = raised.value
    assert not isinstance(error, CdcFailed)
    assert "is not in use" in error.message and "2 transaction(s)" in error.message
    assert "since the snapshot" in error.message and error.hint is not None and "migrator run" in error.hint
    result, data = cli_verify(mig, plan_file)
    assert result.exit_code == 3, result.output
    assert data["verdict"] == "incomplete" and data["error"] == "CdcNotFollowing"
    assert "not applied to the target" in data["message"] and "migrator run" in data["hint"]

    # Once CDC has applied everything and stopped, nothing changes: the target is at rest at the
    # source's position and a plain comparison is exact, both ways.
    run(mig, plan_file, "caught-up")
    at_rest = api.verify(plan_file, state=mig.state_path, env=mig.env)
    [(count,)] = mig.rows("SELECT count(*) FROM items")
    assert at_rest.verdict == "equal" and at_rest.totals.checked == count == ROWS - 1
    mig.client[mig.database]["items"].update_one({"_id": 40}, {"$set": {"name": "corrupted"}})
    result, data = cli_verify(mig, plan_file)
    assert result.exit_code == 1, result.output
    assert data["verdict"] == "different" and data["mismatched"] == 1 and data["incomplete"] is None
    [m] = data["mismatches"]
    assert m["id"] == 40 and "/" in m["position"]
    text = CliRunner().invoke(
        cli, ["verify", str(plan_file)], env={**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    )
    assert (
        text.exit_code == 1 and "source read at ?" not in text.output and "source read at 0/" in text.output
    )


def test_failed_cdc_is_named_at_once_by_verify_and_by_run_until_verified(mig: Migration) -> None:
    plan_file = plan(mig, "verify-cdc-failed")
    run(mig, plan_file, "snapshot")
    mig.sql("TRUNCATE items")  # stops CDC by default (phases.cdc.on_truncate: stop)
    with pytest.raises(Exception, match="TRUNCATE"):
        run(mig, plan_file, "caught-up")
    with pytest.raises(CdcFailed) as raised:
        api.verify(plan_file, state=mig.state_path, env=mig.env)
    assert "TRUNCATE" in raised.value.message and "not applied to the target" in raised.value.message
    result, data = cli_verify(mig, plan_file)
    assert result.exit_code == 3, result.output
    assert data["verdict"] == "incomplete" and data["error"] == "CdcFailed" and "TRUNCATE" in data["message"]
    # `run --until verified` resumes CDC first, which meets the same TRUNCATE: the run fails,
    # naming it (it never gets to a verify pass that would wait for markers).
    env = {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    again = CliRunner().invoke(cli, ["run", str(plan_file), "--until", "verified"], env=env)
    assert again.exit_code == 3 and "TRUNCATE" in again.output, again.output


def test_a_target_behind_a_following_cdc_is_incomplete_never_different(mig: Migration) -> None:
    plan_file = plan(mig, "verify-behind", "settle_timeout: 1s, rechecks: 2")
    run(mig, plan_file, "snapshot")
    follower = follow(mig, plan_file, "verify-behind")
    try:
        api.throttle(plan_file, pause=True, state=mig.state_path, env=mig.env)  # CDC holds, still streaming
        wait_for(lambda: bool(follower.events.of(Throttled)), "CDC to hold", 60)
        mig.sql("UPDATE items SET name = 'changed' WHERE id IN (10, 20)")
        report = api.verify(plan_file, state=mig.state_path, env=mig.env)
        totals = report.totals
        assert (totals.mismatched, totals.missing, totals.extra, totals.unsettled) == (0, 0, 0, 2)
        assert report.verdict == "incomplete" and not report.equal
        assert report.incomplete is not None and "settle_timeout" in report.incomplete
        assert all(m.position for m in report.mismatches)
        result, data = cli_verify(mig, plan_file)
        assert result.exit_code == 3 and data["verdict"] == "incomplete", result.output
        api.throttle(plan_file, pause=False, state=mig.state_path, env=mig.env)
        after = api.verify(plan_file, state=mig.state_path, env=mig.env)
        assert after.verdict == "equal" and after.totals.checked == ROWS
    finally:
        follower.finish()


def set_statement_timeout(mig: Migration, value: str | None) -> None:
    """For new sessions of the test database (migrator's readers open theirs as they go)."""
    with psycopg.connect(mig.pg_url, autocommit=True) as conn:
        name = conn.info.dbname
        if value is None:
            conn.execute(f'ALTER DATABASE "{name}" RESET statement_timeout')
        else:
            conn.execute(f"ALTER DATABASE \"{name}\" SET statement_timeout = '{value}'")


def test_timeouts_are_retried_and_never_reported_as_differences(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Enough rows that splitting them into ranges (a keyset walk) outlasts a 1 ms statement_timeout.
    mig.sql(f"INSERT INTO items SELECT i, 'item ' || i FROM generate_series({ROWS + 1}, 30000) AS i")
    plan_file = plan(mig, "verify-timeouts", "chunk_rows: 10000")
    run(mig, plan_file, "caught-up")
    set_statement_timeout(mig, "1ms")
    events = Collector()
    outcome: dict[str, Any] = {}

    def verify() -> None:
        try:
            outcome["report"] = api.verify(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
        except BaseException as exc:  # noqa: BLE001 - checked by the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=verify, daemon=True)
    thread.start()
    try:
        wait_for(lambda: any("57014" in n.message for n in events.of(Notice)), "a retried timeout", 120)
    finally:
        set_statement_timeout(mig, None)
    thread.join(300)
    assert not thread.is_alive() and "error" not in outcome, outcome
    report: VerifyReport = outcome["report"]
    assert report.verdict == "equal" and report.totals.checked == 30000
    assert any("retrying" in n.message for n in events.of(Notice))

    # A timeout that outlasts the retries: could not complete (3), never different (1).
    monkeypatch.setattr(verify_phase, "RETRY_BUDGET_S", 2.0)
    set_statement_timeout(mig, "1ms")
    try:
        result, data = cli_verify(mig, plan_file)
    finally:
        set_statement_timeout(mig, None)
    assert result.exit_code == 3, result.output
    assert data["verdict"] == "incomplete" and "57014" in data["message"]


def test_an_unreachable_database_could_not_complete(mig: Migration) -> None:
    plan_file = plan(mig, "verify-unreachable")
    run(mig, plan_file, "snapshot")
    with psycopg.connect(mig.pg_url) as conn:
        port = conn.info.port
    env = {
        **mig.env,
        "MIGRATOR_SOURCE_URL": mig.pg_url.replace(f":{port}/", ":1/"),
        "MIGRATOR_STATE": str(mig.state_path),
    }
    result = CliRunner().invoke(cli, ["verify", str(plan_file), "--json"], env=env)
    assert result.exit_code == 3, result.output
    data = json_output.error(result.stdout, 3)
    assert data["verdict"] == "incomplete" and "cannot connect" in data["message"], data
    text = CliRunner().invoke(cli, ["verify", str(plan_file)], env=env)
    assert text.exit_code == 3 and "could not complete" in text.output


def test_a_cancelled_target_read_is_retried_not_a_difference(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pymongo cancels operations in flight when its monitor clears the pool after a missed
    heartbeat ("operation cancelled", what ended scripts/demo's live verify on a loaded machine)."""
    plan_file = plan(mig, "verify-cancelled")
    run(mig, plan_file, "caught-up")
    failures = {"left": 3}
    real = DocumentReader.fetch_range

    def flaky(self: DocumentReader, order: Any, lo: Any, hi: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise classify(mongo_errors._OperationCancelled("operation cancelled"), "target", ())
        return real(self, order, lo, hi)

    monkeypatch.setattr(DocumentReader, "fetch_range", flaky)
    events = Collector()
    report = api.verify(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
    assert failures["left"] == 0 and report.verdict == "equal" and report.totals.checked == ROWS
    assert any("operation cancelled" in n.message and "retrying" in n.message for n in events.of(Notice))
