"""The real CDC phase follows a MariaDB source's binlog into the MongoDB-compatible test server,
after the real snapshot phase (tables as inspection reports them): inserts, updates and deletes of
a root and an embedded table, in transactions, until caught up (markers through
`_migrator_markers`); a second run resumes from the target's checkpoint."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import MongoClient

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.engine.context import RunContext
from migrator.engine.events import EventBus
from migrator.mapping.spec import resolve
from migrator.phases.snapshot import SnapshotPhase
from migrator.plan import load_plan
from migrator.plan.names import slot_name
from migrator.state import SQLiteStateStore
from tests.support.mariadb import connect
from tests.support.phase_runs import claimed_run, follow_until_caught_up

PLAN = """\
version: 1
source: {{adapter: mysql, url: "{source}"}}
target: {{adapter: mongodb, url: "{mongo}", database: {database}}}
collections:
  - name: customers
    from: {schema}.customers
    key: id
    embed:
      - as: orders
        from: {schema}.orders
        on: {{customer_id: id}}
        order_by: id
"""


def _order(oid: int, total: str) -> dict[str, Any]:
    return {"id": Int64(oid), "total": Decimal128(Decimal(total))}


def test_cdc_follows_the_binlog_after_the_snapshot(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), joined TIMESTAMP(3) NULL)")
        cur.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, total DECIMAL(10,2))")
        cur.executemany(
            "INSERT INTO customers VALUES (%s, %s, '2023-06-01 12:00:00.250')",
            [(c, f"c{c}") for c in (1, 2, 3)],
        )
        cur.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s)", [(100, 1, "1.00"), (300, 3, "3.00"), (301, 3, "3.01")]
        )
        cur.execute("SELECT DATABASE()")
        schema = cur.fetchone()[0]
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(
        PLAN.format(source=mysql_url, mongo=mongo_url, database=mongo_db_name, schema=schema)
    )
    plan = load_plan(plan_path)
    source = MysqlSource(mysql_url)
    target = MongoTarget(mongo_url, mongo_db_name)
    with SQLiteStateStore(tmp_path / "state.db") as store:
        try:
            info = source.inspect([f"{schema}.customers", f"{schema}.orders"])
            resolution = resolve(plan.collections, info)
            assert resolution.collections, resolution.findings
            run_id = "0123456789abcdef"
            run = claimed_run(store, target, plan.name, run_id=run_id, slot=slot_name(plan.name, run_id))
            ctx = RunContext(plan, run, store, EventBus(), source, target, info, resolution.collections)
            assert not SnapshotPhase(ctx).run().stopped
            with connect(mysql_url) as conn, conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("INSERT INTO customers VALUES (4, 'new one', '2024-05-06 07:08:09.500')")
                cur.execute("INSERT INTO orders VALUES (400, 4, '9.99')")
                cur.execute("COMMIT")
                cur.execute("UPDATE customers SET name = 'renamed' WHERE id = 1")
                cur.execute("DELETE FROM orders WHERE id = 301")
                cur.execute("UPDATE orders SET total = '1.50' WHERE id = 100")
                cur.execute("DELETE FROM customers WHERE id = 2")
            first = follow_until_caught_up(ctx)
            # A second run resumes from the target's checkpoint: only what came after is applied.
            with connect(mysql_url) as conn, conn.cursor() as cur:
                cur.execute("UPDATE customers SET name = 'again' WHERE id = 3")
            again = follow_until_caught_up(ctx)
        finally:
            target.close()
            source.close()
    assert first.caught_up and not first.stopped
    assert again.caught_up and again.changes == 1  # the update of customer 3 alone (a marker is no change)
    assert MysqlSource.positions.parse(again.position) > MysqlSource.positions.parse(first.position)
    joined = datetime.datetime(2023, 6, 1, 12, 0, 0, 250000)
    with MongoClient(mongo_url) as client:
        documents = list(client[mongo_db_name]["customers"].find().sort("_id", 1))
    assert documents == [
        {"_id": 1, "name": "renamed", "joined": joined, "orders": [_order(100, "1.50")]},
        {"_id": 3, "name": "again", "joined": joined, "orders": [_order(300, "3.00")]},
        {
            "_id": 4,
            "name": "new one",
            "joined": datetime.datetime(2024, 5, 6, 7, 8, 9, 500000),
            "orders": [_order(400, "9.99")],
        },
    ]
