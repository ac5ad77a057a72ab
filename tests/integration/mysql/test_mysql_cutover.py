"""The real cutover from a MariaDB source: `migrator run` until verified, `migrator cutover` (gate,
LOCK TABLES fence, marker, final check, switch, reverse sync's start, unfence), then a change made
on the target reaches the MariaDB rows through reverse sync (`migrator run` after cutover), its
checkpoint stored in the source; rollback after cutover switches back with the target's last write
in the source, and rollback to the start removes the checkpoint."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import MongoClient

from migrator import api
from migrator.adapters.mysql import MysqlSource
from tests.support.mariadb import connect
from tests.support.mysql_plans import customers_plan


def _run(plan: Path, state: Path, until: str) -> None:
    stop = threading.Event()
    timer = threading.Timer(240, stop.set)  # a safety net only: the run ends by itself
    timer.start()
    try:
        api.run(plan, until=until, state=state, env={}, stop=stop)  # type: ignore[arg-type]
    finally:
        timer.cancel()


def test_cutover_then_reverse_sync_writes_target_changes_back(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2), "
            "KEY (customer_id))"
        )
        cur.execute("INSERT INTO customers VALUES (1, 'a'), (2, 'b')")
        cur.execute("INSERT INTO orders VALUES (10, 1, '1.00'), (20, 2, '2.00')")
    switch = tmp_path / "routing"
    plan = customers_plan(
        tmp_path / "plan.yaml",
        mysql_url,
        "key: id, order_by: id",
        target=mongo_url,
        target_db=mongo_db_name,
        phases="cdc: {heartbeat_interval: 1s}\n"
        "cutover: {max_write_freeze: 5s, reverse_sync: true, retries: 1, retry_pause: 0.2s, "
        f'switch: {{kind: file, path: "{switch}"}}}}',
    )
    state = tmp_path / "state.db"
    _run(plan, state, "verified")
    outcome = api.cutover(plan, state=state, env={})
    assert switch.read_text() == "target\n"
    assert outcome.report.freeze_ms is not None and outcome.report.freeze_ms > 0
    # The application now writes to the target.
    with MongoClient(mongo_url) as client:
        customers = client[mongo_db_name]["customers"]
        customers.update_one(
            {"_id": 1},
            {
                "$set": {"name": "from mongo"},
                "$push": {"orders": {"id": Int64(11), "total": Decimal128("3.50")}},
            },
        )
        customers.delete_one({"_id": 2})
    _run(plan, state, "caught-up")
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM customers ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "from mongo")]
        cur.execute("SELECT id, customer_id, total FROM orders ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(10, 1, Decimal("1.00")), (11, 1, Decimal("3.50"))]
    # Reverse sync's checkpoint is in the source, beside the rows it wrote.
    checkpoint = MysqlSource(mysql_url).reverse_checkpoint(api.load(plan, env={}).name)
    assert checkpoint is not None and checkpoint.events >= 2
    # The target still holds the documents as written there (forward CDC ran too).
    with MongoClient(mongo_url) as client:
        docs = list(client[mongo_db_name]["customers"].find())
    assert docs == [
        {
            "_id": 1,
            "name": "from mongo",
            "orders": [
                {"id": Int64(10), "total": Decimal128("1.00")},
                {"id": Int64(11), "total": Decimal128("3.50")},
            ],
        }
    ]

    # Rollback after cutover: the target fenced, reverse sync drained, the switch back to the
    # source; then a rollback to the start removes the reverse checkpoint with the rest.
    with MongoClient(mongo_url) as client:
        client[mongo_db_name]["customers"].update_one({"_id": 1}, {"$set": {"name": "last on mongo"}})
    api.rollback(plan, state=state, env={})
    assert switch.read_text() == "source\n"
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM customers ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(1, "last on mongo")]
    api.rollback(plan, to="start", state=state, env={})
    assert MysqlSource(mysql_url).reverse_checkpoint(api.load(plan, env={}).name) is None
