"""The real CDC phase follows a MariaDB source's binlog into the MongoDB-compatible test server,
after the real snapshot phase (tables as inspection reports them): inserts, updates and deletes of
a root and an embedded table, in transactions, until caught up (markers through
`_migrator_markers`); a second run resumes from the target's checkpoint; many small transactions
are applied in few target batches."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import MongoClient

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.engine.context import RunContext
from migrator.engine.events import BatchApplied, Collector, EventBus
from migrator.mapping.spec import resolve
from migrator.phases.cdc import CdcPhase
from migrator.phases.snapshot import SnapshotPhase
from migrator.plan import load_plan
from migrator.plan.names import slot_name
from migrator.state import SQLiteStateStore
from tests.support.mariadb import connect
from tests.support.owner import claim

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


def _follow(ctx: RunContext) -> Any:
    stop = threading.Event()
    timer = threading.Timer(180, stop.set)  # a safety net only: the phase ends when caught up
    timer.start()
    try:
        return CdcPhase(ctx, stop=stop, until="caught-up").run()
    finally:
        timer.cancel()


def _context(
    plan_text: str,
    store: SQLiteStateStore,
    source: MysqlSource,
    target: MongoTarget,
    tables: list[str],
    bus: EventBus,
) -> RunContext:
    """A run of the plan that owns the target, its tables inspected and mapped (the plan file
    beside the state store)."""
    plan_path = Path(store.path).parent / "plan.yaml"
    plan_path.write_text(plan_text)
    plan = load_plan(plan_path)
    info = source.inspect(tables)
    resolution = resolve(plan.collections, info)
    assert resolution.collections, resolution.findings
    run = store.begin_run(
        plan.name, "digest", run_id="0123456789abcdef", slot=slot_name(plan.name, "0123456789abcdef")
    )
    claim(target, plan.name, run)
    return RunContext(plan, run, store, bus, source, target, info, resolution.collections)


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
    plan = PLAN.format(source=mysql_url, mongo=mongo_url, database=mongo_db_name, schema=schema)
    source = MysqlSource(mysql_url)
    target = MongoTarget(mongo_url, mongo_db_name)
    with SQLiteStateStore(tmp_path / "state.db") as store:
        try:
            tables = [f"{schema}.customers", f"{schema}.orders"]
            ctx = _context(plan, store, source, target, tables, EventBus())
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
            first = _follow(ctx)
            # A second run resumes from the target's checkpoint: only what came after is applied.
            with connect(mysql_url) as conn, conn.cursor() as cur:
                cur.execute("UPDATE customers SET name = 'again' WHERE id = 3")
            again = _follow(ctx)
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


FLAT_PLAN = """\
version: 1
source: {{adapter: mysql, url: "{source}"}}
target: {{adapter: mongodb, url: "{mongo}", database: {database}}}
collections:
  - {{name: counters, from: {schema}.counters, key: id}}
"""
SMALL_TRANSACTIONS = 120


def test_many_small_transactions_are_applied_in_few_batches(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    """A backlog of single-row transactions, each committed alone, reaches the engine as a few
    batches of many transactions (one target transaction and checkpoint each), not one batch per
    source transaction: the stream hands transactions over as fast as it reads them and says it
    has sent everything only at the backlog's end (the server's heartbeat)."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL)")
        cur.execute("INSERT INTO counters SELECT seq, 0 FROM seq_1_to_10")
        cur.execute("SELECT DATABASE()")
        schema = cur.fetchone()[0]
    plan = FLAT_PLAN.format(source=mysql_url, mongo=mongo_url, database=mongo_db_name, schema=schema)
    source = MysqlSource(mysql_url)
    target = MongoTarget(mongo_url, mongo_db_name)
    collector = Collector()
    with SQLiteStateStore(tmp_path / "state.db") as store:
        try:
            ctx = _context(plan, store, source, target, [f"{schema}.counters"], EventBus(collector))
            assert not SnapshotPhase(ctx).run().stopped
            with connect(mysql_url) as conn, conn.cursor() as cur:
                for n in range(SMALL_TRANSACTIONS):  # autocommit: one transaction each
                    cur.execute("UPDATE counters SET n = n + 1 WHERE id = %s", [n % 10 + 1])
            result = _follow(ctx)
        finally:
            target.close()
            source.close()
    assert result.caught_up
    with MongoClient(mongo_url) as client:
        counters = {d["_id"]: d["n"] for d in client[mongo_db_name]["counters"].find()}
    assert counters == {i: SMALL_TRANSACTIONS // 10 for i in range(1, 11)}
    sizes = [e.transactions for e in collector.of(BatchApplied) if e.changes]
    # Every update arrived (the caught-up marker's transaction may share a batch).
    assert sum(e.changes for e in collector.of(BatchApplied)) == SMALL_TRANSACTIONS
    # A batch ages for 0.2 s (phases/follow_loop.py) while the stream is read: even read at a
    # few hundred transactions a second (a busy machine), each batch holds dozens.
    assert len(sizes) <= SMALL_TRANSACTIONS // 10, sizes
    assert max(sizes) >= SMALL_TRANSACTIONS // 4, sizes
