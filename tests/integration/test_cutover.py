"""`migrator cutover` against real servers, with an application writing through the switch: the
freeze is measured and bounded, writes held by the fence are retried on the new primary and
nothing is lost; an attempt that cannot take the fence is abandoned and retried; the postpone
file holds the gate; a target that differs never gets the switch."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrator import api
from migrator.engine.events import Collector, CutoverAbandoned, CutoverStep
from migrator.errors import TerminalError
from migrator.phases.cutover import CheckFailed
from tests.support.cutover import KEYS, App, cutover_plan
from tests.support.docs import Migration
from tests.support.runs import run, wait_for
from tests.support.shop import SCHEMA


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def steps(events: Collector) -> list[str]:
    return [e.step for e in events.of(CutoverStep)]


def test_cutover_with_a_writing_application_loses_nothing_and_measures_the_freeze(
    mig: Migration,
    tmp_path: Path,
) -> None:
    switch = tmp_path / "routing"
    # A budget the freeze fits even on a loaded machine: the freeze's size is the benchmark's
    # business; this test holds the protocol to its own budget and to losing nothing.
    plan_file = cutover_plan(mig, "co-app", switch, freeze="5s")
    run(mig, plan_file, "caught-up")
    app = App(mig, switch)
    events = Collector()
    try:
        # Counted writes, not seconds: a loaded machine makes fewer of them in a given time.
        wait_for(lambda: app.counts["source"] > 20, "the application's writes to the source", 300)
        outcome = api.cutover(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
        # The application goes on writing, now to the target.
        wait_for(lambda: app.counts["target"] > 20, "the application's writes to the target", 300)
    finally:
        app.finish()
    report = outcome.report
    assert switch.read_text() == "target\n"
    assert app.counts["failed"] == 0, app.errors
    assert app.counts["source"] > 20 and app.counts["target"] > 20, app.counts
    assert report.freeze_ms is not None and 0 < report.freeze_ms < 5000
    assert report.attempts == len(report.abandoned) + 1
    order = steps(events)
    for earlier, later in zip(
        ["lag", "gate", "fence", "drained", "checked", "switched", "unfenced"],
        ["gate", "fence", "drained", "checked", "switched", "unfenced", None],
        strict=True,
    ):
        assert earlier in order and (later is None or order.index(earlier) < order.index(later)), order
    # Nothing lost: every document holds the application's last write, wherever it went.
    docs = {d["_id"]: d["name"] for d in mig.client[mig.database]["customers"].find({"_id": {"$lte": KEYS}})}
    assert {k: docs[k] for k in app.last} == app.last
    # How long the application waited is reported, not asserted: on a loaded machine a write
    # may wait for the CPU however short the freeze (the freeze itself is held to its budget).
    print(
        f"freeze {report.freeze_ms:.0f} ms, app max write latency {max(app.latencies) * 1000:.0f} ms, {app.counts}"
    )


def test_an_attempt_that_cannot_take_the_fence_is_abandoned_and_retried(
    mig: Migration,
    tmp_path: Path,
) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "co-abandon", switch, ", fence: {lock_timeout: 200ms}")
    run(mig, plan_file, "caught-up")
    events = Collector()
    with psycopg.connect(mig.pg_url) as blocker:
        blocker.execute("LOCK TABLE stock IN ROW EXCLUSIVE MODE")  # a long transaction writing stock
        with pytest.raises(TerminalError, match="abandoned 2 time"):
            api.cutover(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
        blocker.rollback()
    abandoned = events.of(CutoverAbandoned)
    assert [a.attempt for a in abandoned] == [1, 2] and all("could not lock" in a.reason for a in abandoned)
    assert not switch.exists()
    # Writes were never refused meanwhile, and once the long transaction ends, cutover succeeds.
    mig.sql("UPDATE customers SET name = 'after' WHERE id = 1")
    outcome = api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert switch.read_text() == "target\n" and outcome.report.attempts == 1
    assert mig.client[mig.database]["customers"].find_one({"_id": 1})["name"] == "after"


def test_the_gate_measures_the_lag_again_once_a_backlog_is_applied(
    mig: Migration,
    tmp_path: Path,
) -> None:
    # Changes made while nothing followed: the cutover's first marker waits for all of them, far
    # over max_lag; that is catching up, and the gate measures again rather than refuse.
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "co-backlog", switch)
    plan_file.write_text(
        plan_file.read_text().replace(
            "cdc: {heartbeat_interval: 1s}", "cdc: {heartbeat_interval: 1s, max_lag: 200ms}"
        )
    )
    run(mig, plan_file, "caught-up")
    mig.sql(
        "INSERT INTO customers (id, name, balance, created) "
        "SELECT i, 'backlog ' || i, 1, now() FROM generate_series(100001, 105000) i"
    )
    events = Collector()
    outcome = api.cutover(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
    assert switch.read_text() == "target\n" and outcome.report.attempts == 1
    lag_steps = [e.message for e in events.of(CutoverStep) if e.step == "lag"]
    assert "measuring again" in lag_steps[0], lag_steps
    assert "a fresh marker was applied" in lag_steps[-1], lag_steps
    assert mig.client[mig.database]["customers"].count_documents({"_id": {"$gt": 100000}}) == 5000


def test_the_postpone_file_holds_the_gate(mig: Migration, tmp_path: Path) -> None:
    switch = tmp_path / "routing"
    postpone = tmp_path / "postpone"
    postpone.touch()
    plan_file = cutover_plan(mig, "co-postpone", switch, f", postpone_file: '{postpone}'")
    run(mig, plan_file, "caught-up")
    events = Collector()
    result: dict[str, Any] = {}

    def body() -> None:
        try:
            result["outcome"] = api.cutover(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
        except BaseException as exc:  # noqa: BLE001 - checked below
            result["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    # Until the gate says it is postponed (however long preflight takes on a loaded machine).
    wait_for(lambda: "postponed" in steps(events) or not thread.is_alive(), "the gate to postpone", 300)
    time.sleep(1)  # and it stays held
    assert thread.is_alive() and not switch.exists()
    assert "postponed" in steps(events) and "fence" not in steps(events)
    postpone.unlink()
    thread.join(600)  # generous: a loaded machine; the test asserts what happens, not how fast
    assert not thread.is_alive(), "cutover did not return once the postpone file was gone"
    assert "error" not in result, result.get("error")
    assert switch.read_text() == "target\n"


def test_a_target_that_differs_never_gets_the_switch(mig: Migration, tmp_path: Path) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "co-differs", switch)
    run(mig, plan_file, "caught-up")
    mig.client[mig.database]["customers"].update_one({"_id": 5}, {"$set": {"name": "drifted"}})
    with pytest.raises(CheckFailed, match="mismatched 1"):
        api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert not switch.exists()
