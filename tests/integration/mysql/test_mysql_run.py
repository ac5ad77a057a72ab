"""A MariaDB source end to end, through the API and the installed `migrator` command: a shop
(customers with their orders embedded, each order with its lines) run until caught up, changed
(children moving between parents, a 5,000-row transaction), caught up again, verified, rolled back
to the start and run again. The expected documents are built by hand from the rows the test wrote
(tests/support/mysql_shop.py), never by the mapping. Runs killed with SIGKILL during the snapshot
and during CDC are the conformance suite's, for every source adapter
(tests/integration/conformance/test_conformance_snapshot_kill.py, test_conformance_kill_resume.py)."""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import threading
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymongo
import pytest
from bson.codec_options import CodecOptions

from migrator import api
from migrator.adapters.mysql import MysqlSource, binlog
from migrator.operations.rollback import RollbackResult
from migrator.state import SQLiteStateStore
from tests.support.cli_process import migrator_script
from tests.support.mariadb import connect
from tests.support.mysql_shop import Shop, write_plan

SEED = 20_261_203
# Larger than several CDC batches (phases.cdc.batch_changes, 2,000) and than the binlog reader's
# read-ahead queue, which the test shrinks (QUEUE_EVENTS rows events of about 8 KiB of rows each):
# the reader waits on the full queue in the middle of the transaction.
BIG_TRANSACTION_ROWS = 5_000
QUEUE_EVENTS = 4


def _documents(mongo_url: str, database: str) -> list[dict[str, Any]]:
    with pymongo.MongoClient(mongo_url) as client:
        db = client.get_database(database, codec_options=CodecOptions())
        return list(db["customers"].find().sort("_id", 1))


def _target_leftovers(mongo_url: str, database: str) -> dict[str, Any]:
    with pymongo.MongoClient(mongo_url) as client:
        db = client[database]
        names = db.list_collection_names()
        return {
            "collections": sorted(n for n in names if n != "_migrator"),
            "_migrator": sorted(d["_id"] for d in db["_migrator"].find({}, {"_id": 1}))
            if "_migrator" in names
            else None,
        }


def _source_tables(url: str) -> set[str]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE '\\_migrator\\_%%'")
        return {str(row[0]) for row in cur.fetchall()}


def _slot_rows(url: str) -> list[str]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM _migrator_slots")
        return [str(row[0]) for row in cur.fetchall()]


def _slot_position(url: str, slot: str) -> str:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT position FROM _migrator_slots WHERE name = %s", [slot])
        (position,) = cur.fetchone()
    return MysqlSource.positions.text(int(position))


def _status(plan: Path, state: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
    done = subprocess.run(
        [migrator_script(), "status", str(plan), "--state", str(state), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


class _WatchedQueue(queue.Queue[Any]):
    """The binlog reader's queue, noting when the reader found it full (and so waited)."""

    found_full = threading.Event()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self.full():
            self.found_full.set()
        super().put(item, block, timeout)


def _run(plan: Path, state: Path) -> Any:
    return api.run(plan, until="caught-up", state=state, env={})


def _changes(shop: Shop, rng: random.Random) -> None:
    """Inserts, updates and deletes, children moving between parents, each its own transaction."""
    customers = sorted(shop.customers)
    with_orders = sorted({cid for cid, _ in shop.orders.values()})
    with connect(shop.url) as conn, conn.cursor() as cur:
        shop.transaction(cur, lambda c: shop.add_customer(c, rng))
        shop.transaction(cur, lambda c: shop.rename(c, customers[0], "first, renamed"))
        order = min(shop.orders)
        shop.transaction(cur, lambda c: shop.reprice(c, order, Decimal("12.34")))
        # An order moves to another customer, with its lines.
        moved = next(o for o, (cid, _) in sorted(shop.orders.items()) if cid == with_orders[1])
        shop.transaction(cur, lambda c: shop.move_order(c, moved, with_orders[2]))
        # A line moves to an order of another customer, and one moves within a customer.
        line = min(shop.lines)
        other = next(o for o, (cid, _) in sorted(shop.orders.items()) if cid != shop.orders[line[0]][0])
        shop.transaction(cur, lambda c: shop.move_line(c, line, other))
        # Both in one transaction: an order leaves, a line of it comes back to the first customer.
        leaving = next(
            o for o, (cid, _) in sorted(shop.orders.items(), reverse=True) if cid == with_orders[3]
        )

        def swap(c: Any) -> None:
            shop.move_order(c, leaving, with_orders[4])
            shop.add_line(c, leaving, rng)

        shop.transaction(cur, swap)
        shop.transaction(cur, lambda c: shop.delete_line(c, max(shop.lines)))
        shop.transaction(cur, lambda c: shop.delete_order(c, max(shop.orders)))
        shop.transaction(cur, lambda c: shop.delete_customer(c, customers[-1]))
        # One large transaction (BIG_TRANSACTION_ROWS): lines added to every order, round robin.
        orders = sorted(shop.orders)

        def big(c: Any) -> None:
            for i in range(BIG_TRANSACTION_ROWS):
                shop.add_line(c, orders[i % len(orders)], rng)

        shop.transaction(cur, big)


def test_run_change_verify_roll_back_and_run_again(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # api.run is in this process: the binlog reader's queue is smaller, and watched.
    monkeypatch.setattr(binlog, "QUEUE_EVENTS", QUEUE_EVENTS)
    monkeypatch.setattr(
        binlog, "queue", SimpleNamespace(Queue=_WatchedQueue, Full=queue.Full, Empty=queue.Empty)
    )
    rng = random.Random(SEED)
    shop = Shop(mysql_url)
    shop.create()
    shop.load(300, rng)
    plan = write_plan(tmp_path / "shop.yaml", mysql_url, mongo_url, mongo_db_name, chunk_rows=50)
    state = tmp_path / "state.db"

    first = _run(plan, state)
    assert _documents(mongo_url, mongo_db_name) == shop.documents()
    assert _source_tables(mysql_url) == {"_migrator_markers", "_migrator_slots"}
    with SQLiteStateStore(state) as store:
        (run,) = store.runs()
    assert _slot_rows(mysql_url) == [run.slot]
    # Another process reads the slot from its row on the source.
    slot = _status(plan, state)["cdc"]["slot"]
    assert slot["name"] == run.slot and slot["exists"] is True and slot["active"] is False, slot
    assert slot["confirmed_position"] == _slot_position(mysql_url, run.slot), slot
    assert isinstance(slot["retained_wal_bytes"], int), slot

    _changes(shop, rng)
    _WatchedQueue.found_full.clear()
    again = _run(plan, state)
    assert _WatchedQueue.found_full.is_set(), "the large transaction never filled the reader's queue"
    assert again.run_id == first.run_id and again.resumed
    expected = shop.documents()
    assert _documents(mongo_url, mongo_db_name) == expected
    assert sum(len(o["lines"]) for d in expected for o in d["orders"]) > BIG_TRANSACTION_ROWS

    report = api.verify(plan, state=state, env={})
    assert report.verdict == "equal", report.mismatches[:5]
    assert report.totals.checked == len(expected)

    result = api.rollback(plan, to="start", state=state, env={})
    assert isinstance(result, RollbackResult)
    assert _target_leftovers(mongo_url, mongo_db_name) == {"collections": [], "_migrator": None}
    assert _source_tables(mysql_url) == set()
    with SQLiteStateStore(state) as store:
        assert [r.status for r in store.runs()] == ["rolled_back"]

    second = _run(plan, state)
    assert second.run_id != first.run_id and not second.resumed
    assert _documents(mongo_url, mongo_db_name) == expected
