"""Conformance (issue 15): cutover and rollback after it with an application writing throughout,
from every source adapter. The application (tests/support/routed_app.py) writes to whichever side
the switch names; `migrator cutover` fences the source, drains, flips and starts reverse sync; the
application and an embedded change write to MongoDB; `migrator rollback` fences the target, drains
reverse sync, verifies and flips back. Afterwards the source holds every write made on either side
(read back with its own driver), forward CDC goes on, and the target verifies equal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bson.decimal128 import Decimal128

from migrator import api
from migrator.engine.threads import BackgroundThread
from migrator.operations.rollback_after_cutover import SwitchbackResult
from tests.support.conformance import Case
from tests.support.customer_orders import COLLECTIONS, TABLES, setup
from tests.support.cutover import primary
from tests.support.routed_app import App

KEYS = 8  # the application renames 1..KEYS on the source, KEYS+1..2*KEYS on the target
CUSTOMERS = 20
CHANGED = 2 * KEYS + 1  # a customer whose embedded order is changed on the target


def _wait_for(check: Callable[[], bool], what: str, app: App, timeout: float = 240) -> None:
    """Until `check()`; fails at once should the application have stopped on an error."""
    deadline = time.monotonic() + timeout
    while not check():
        assert not app.counts["failed"], app.errors
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {app.counts}"
        time.sleep(0.1)


def _phases(switch: Path) -> str:
    return (
        "cdc: {heartbeat_interval: 1s}\n"
        # A busy machine may abandon an attempt (lag or freeze over budget): it is retried.
        "cutover: {max_write_freeze: 5s, reverse_sync: true, retries: 5, retry_pause: 0.2s,"
        f" switch: {{kind: file, path: '{switch}'}}}}"
    )


def test_cutover_and_rollback_with_an_application_writing_lose_no_write(case: Case) -> None:
    source = case.source
    source.sql(*setup(CUSTOMERS, 1))
    switch = case.tmp_path / "routing"
    plan = case.plan("conformance-cutover", COLLECTIONS, TABLES, phases=_phases(switch))
    case.run(plan, "caught-up")
    customers = case.target.client[case.target.database]["customers"]
    app = App(source, customers, switch, KEYS).start()
    following = threading.Event()  # ends the cutover's following of both directions
    try:
        # Counted writes, not seconds: a loaded machine makes fewer of them in a given time.
        _wait_for(lambda: app.counts["source"] > KEYS, "writes on the source", app)
        cutover: BackgroundThread[Any] = BackgroundThread(
            "conformance-cutover",
            lambda: api.cutover(plan, follow=True, state=case.state, env={}, stop=following),
        ).start()
        _wait_for(lambda: primary(switch) == "target" or cutover.finished.is_set(), "the flip", app)
        if cutover.finished.is_set():
            cutover.raise_error()  # the cutover gave up: its error says why
        assert primary(switch) == "target"
        # On the target now: the application's writes, and a change to an embedded order.
        customers.update_one({"_id": CHANGED}, {"$set": {"orders.0.total": Decimal128("77.50")}})
        _wait_for(lambda: app.counts["target"] > KEYS, "writes on the target", app)
        following.set()
        cutover.finished.wait(120)
        cutover.raise_error()
        # Rolled back while the application keeps writing (its writes wait on the fence).
        before = app.counts["source"]
        result = api.rollback(plan, state=case.state, env={})
        _wait_for(lambda: app.counts["source"] > before + KEYS, "writes on the source again", app)
    finally:
        app.finish()
    assert isinstance(result, SwitchbackResult)
    assert switch.read_text() == "source\n"
    assert app.counts["failed"] == 0, app.errors
    assert app.counts["target"] > KEYS, app.counts
    # The source holds every write, those made on the target after cutover included.
    rows = source.records(f"SELECT id, name FROM customers WHERE id <= {2 * KEYS}")
    assert {r["id"]: r["name"] for r in rows if r["id"] in app.last} == app.last
    assert len([key for key in app.last if key > KEYS]) == KEYS  # the target's writes, brought back
    (order,) = source.records(f"SELECT total FROM orders WHERE customer_id = {CHANGED}")
    assert str(order["total"]) == "77.50"
    # Forward CDC goes on: the source's later writes reach the target, which verifies equal.
    case.run(plan, "caught-up")
    report = api.verify(plan, state=case.state, env={})
    assert report.equal, report.to_dict()
