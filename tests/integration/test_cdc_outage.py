"""A target outage during CDC loses nothing (issue 17 defect 14(a); docs/architecture.md
invariant 3): CDC follows a workload, the target server is killed (SIGKILL, its data directory
kept) and started again after an outage, the run resumes and catches up, and every document
equals what the source holds, built here from the source rows with SQL (not migrator's mapping).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest

from migrator import api
from migrator.plan.names import cdc_checkpoint_id
from tests.support.docs import Migration
from tests.support.servers import MongoServer, start_mongo, unique_name

OUTAGE_S = 20.0
TIMEOUT = 300.0
ROWS = 200


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[MongoServer]:
    """A target of this test's own (it is killed and restarted), with its data on disk."""
    server = start_mongo(tmp_path / "target")
    try:
        yield server
    finally:
        server.stop()


def _workload(url: str, stop: threading.Event, seed: int) -> None:
    """Small transactions of updates, inserts and deletes, each committed on its own."""
    rnd = random.Random(seed)
    next_id = ROWS + 1
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            with conn.transaction():
                for _ in range(rnd.randint(1, 4)):
                    choice = rnd.random()
                    row = rnd.randint(1, next_id)
                    if choice < 0.6:
                        conn.execute(
                            "UPDATE items SET qty = qty + 1, note = %s WHERE id = %s",
                            [f"u{rnd.random():.6f}", row],
                        )
                    elif choice < 0.85:
                        conn.execute(
                            "INSERT INTO items VALUES (%s, %s, %s)", [next_id, rnd.randint(0, 9), "new"]
                        )
                        next_id += 1
                    else:
                        conn.execute("DELETE FROM items WHERE id = %s", [row])
            time.sleep(0.02)


@pytest.mark.xfail(
    reason="issue 17 defect 14(a), not fixed yet: reproduced here once in three runs (a source DELETE "
    "lost across the target's kill and restart: the document stays); cause not found",
    strict=False,
)
def test_a_target_outage_and_restart_during_cdc_loses_nothing(
    pg_url: str, target: MongoServer, tmp_path: Path, tmp_state_path: Path
) -> None:
    database = unique_name("outage")
    mongo_url = target.url_for(database)
    mig = Migration(pg_url, mongo_url, database, tmp_path, tmp_state_path)
    mig.sql(
        "CREATE TABLE items (id integer PRIMARY KEY, qty integer NOT NULL, note text)",
        f"INSERT INTO items SELECT g, g % 10, 'n' || g FROM generate_series(1, {ROWS}) g",
    )
    plan = mig.plan(
        "- {name: items, from: items, key: id}",
        name="outageplan",
        phases="cdc: {max_lag: 1s, heartbeat_interval: 1s, batch_changes: 50}",
    )
    mig.run(plan)

    stop_run, stop_load = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            api.run(plan, until="stopped", state=mig.state_path, env=mig.env, stop=stop_run)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    runner = threading.Thread(target=follow, daemon=True)
    load = threading.Thread(target=_workload, args=(pg_url, stop_load, 17), daemon=True)
    runner.start()
    load.start()
    try:
        time.sleep(5)  # CDC follows the workload
        target.shutdown(graceful=False)  # the outage: killed, its data directory kept
        time.sleep(OUTAGE_S)
        target.start()
        time.sleep(5)  # the workload goes on once the target is back
    finally:
        stop_load.set()
        load.join(60)
    assert runner.is_alive(), f"the run ended during the outage: {errors}"
    mig.close()  # its client knew the server before the kill

    # Caught up: a marker committed now is applied (the target's checkpoint passes it).
    ((marker,),) = mig.rows("SELECT pg_logical_emit_message(true, 'test.outage', 'done')::text")

    def lsn(text: str) -> int:
        high, _, low = text.partition("/")
        return (int(high, 16) << 32) + int(low, 16)

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        target.url, serverSelectionTimeoutMS=10_000
    )
    try:
        checkpoints = client[database]["_migrator"]

        def applied() -> bool:
            doc = checkpoints.find_one({"_id": cdc_checkpoint_id("outageplan")})
            return doc is not None and int(doc["position"]) >= lsn(marker)

        _wait_for(applied, "CDC to apply everything after the outage")
        stop_run.set()
        runner.join(TIMEOUT)
        assert not runner.is_alive() and not errors, errors

        # The expectation, from the source with SQL: one document per row, fields as stored.
        expected = {
            int(row_id): {"_id": int(row_id), "qty": int(qty), "note": note}
            for row_id, qty, note in mig.rows("SELECT id, qty, note FROM items ORDER BY id")
        }
        actual = {int(doc["_id"]): doc for doc in client[database]["items"].find()}
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        different = sorted(k for k in set(expected) & set(actual) if actual[k] != expected[k])
        assert (missing, extra, different) == ([], [], []), {
            "missing": missing[:10],
            "extra": extra[:10],
            "different": [(expected[k], actual[k]) for k in different[:5]],
        }
    finally:
        client.close()
