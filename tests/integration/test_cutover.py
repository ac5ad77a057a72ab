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
import pymongo.errors
import pytest
from bson.int64 import Int64

from migrator import api
from migrator.engine.events import Collector, CutoverAbandoned, CutoverStep
from migrator.errors import TerminalError
from migrator.phases.cutover import CheckFailed
from tests.integration.test_cdc import run, wait_for
from tests.integration.test_verify import mig, plan  # noqa: F401 - mig is a fixture
from tests.support.docs import Migration

KEYS = 40
QUERY_CANCELED = "57014"
FENCED_BY_VALIDATOR = 121  # DocumentValidationFailure


def cutover_plan(
    m: Migration, name: str, switch: Path, extra: str = "", freeze: str = "2s", reverse: bool = False
) -> Path:
    cutover = (
        f"{{max_write_freeze: {freeze}, reverse_sync: {str(reverse).lower()}, retries: 1, retry_pause: 0.2s, "
        f"switch: {{kind: file, path: '{switch}'}}{extra}}}"
    )
    return m.plan(
        """
- name: customers
  from: customers
  key: id
  embed:
    - {as: orders, from: orders, on: {customer_id: id}, key: id,
       embed: [{as: lines, from: lines, on: {order_id: id}, key: [order_id, line_no], order_by: line_no}]}
- name: stock
  from: stock
  key: [warehouse, sku]
""",
        name=name,
        phases=f"cdc: {{heartbeat_interval: 1s}}\ncutover: {cutover}",
    )


class App:
    """Writes customer names, one at a time, to whichever side the switch names; a statement the
    fence's cancellation ends (SQLSTATE 57014) or a write the target's rollback fence refuses
    (error 121) is retried after reading the switch again."""

    def __init__(self, m: Migration, switch: Path, pause: float = 0.005) -> None:
        self.m, self.switch, self.pause = m, switch, pause
        self.stop = threading.Event()
        self.last: dict[int, str] = {}
        self.counts = {"source": 0, "target": 0, "retried": 0, "failed": 0}
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._body, daemon=True)
        self._thread.start()

    def primary(self) -> str:
        try:
            return self.switch.read_text().strip() or "source"
        except FileNotFoundError:
            return "source"

    def _body(self) -> None:
        customers = self.m.client[self.m.database]["customers"]
        with psycopg.connect(self.m.pg_url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                key, value = n % KEYS + 1, f"w{n}"
                started = time.monotonic()
                while True:
                    side = self.primary()
                    try:
                        if side == "source":
                            conn.execute("UPDATE customers SET name = %s WHERE id = %s", [value, key])
                        else:
                            customers.update_one({"_id": Int64(key)}, {"$set": {"name": value}})
                        break
                    except psycopg.Error as exc:
                        if exc.sqlstate == QUERY_CANCELED:
                            self.counts["retried"] += 1
                            continue
                        self.counts["failed"] += 1
                        self.errors.append(str(exc))
                        break
                    except pymongo.errors.WriteError as exc:
                        if exc.code == FENCED_BY_VALIDATOR:
                            self.counts["retried"] += 1
                            time.sleep(0.005)
                            continue
                        self.counts["failed"] += 1
                        self.errors.append(str(exc))
                        break
                    except Exception as exc:  # noqa: BLE001 - counted and reported by the test
                        self.counts["failed"] += 1
                        self.errors.append(repr(exc))
                        break
                self.latencies.append(time.monotonic() - started)
                self.counts[side] += 1
                self.last[key] = value
                time.sleep(
                    self.pause
                )  # 0.005: a steady ~150 writes/s, which CDC on the test server keeps up with

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(120)


def steps(events: Collector) -> list[str]:
    return [e.step for e in events.of(CutoverStep)]


def test_cutover_with_a_writing_application_loses_nothing_and_measures_the_freeze(
    mig: Migration,  # noqa: F811
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
    mig: Migration,  # noqa: F811
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
    mig: Migration,  # noqa: F811
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


def test_the_postpone_file_holds_the_gate(mig: Migration, tmp_path: Path) -> None:  # noqa: F811
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


def test_a_target_that_differs_never_gets_the_switch(mig: Migration, tmp_path: Path) -> None:  # noqa: F811
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "co-differs", switch)
    run(mig, plan_file, "caught-up")
    mig.client[mig.database]["customers"].update_one({"_id": 5}, {"$set": {"name": "drifted"}})
    with pytest.raises(CheckFailed, match="mismatched 1"):
        api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert not switch.exists()
