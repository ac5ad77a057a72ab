"""The real CDC phase follows a MariaDB source's binlog into the MongoDB-compatible test server,
after the real snapshot phase: inserts, updates and deletes of a root and an embedded table, in
transactions, until caught up (markers through `_migrator_markers`); a second run resumes from the
target's checkpoint."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.engine.context import RunContext
from migrator.engine.events import EventBus
from migrator.phases.cdc import CdcPhase
from migrator.phases.snapshot import SnapshotPhase
from migrator.state import SQLiteStateStore
from tests.integration.mysql.test_snapshot_phase import _begin, _documents, _expected_documents, _setup
from tests.support.mariadb import connect


def _order(oid: int, total: str, placed: str) -> dict[str, Any]:
    return {
        "id": Int64(oid),
        "total": Decimal128(Decimal(total)),
        "placed": datetime.datetime.fromisoformat(placed),
    }


def _follow(ctx: RunContext) -> Any:
    stop = threading.Event()
    timer = threading.Timer(180, stop.set)  # a safety net only: the phase ends when caught up
    timer.start()
    try:
        return CdcPhase(ctx, stop=stop, until="caught-up").run()
    finally:
        timer.cancel()


def test_cdc_follows_the_binlog_after_the_snapshot(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    setup = _setup(mysql_url, mongo_url, mongo_db_name, tmp_path)
    with SQLiteStateStore(tmp_path / "state.db") as store:
        run = _begin(setup, store, mongo_url, mongo_db_name)
        source = MysqlSource(mysql_url)
        target = MongoTarget(mongo_url, mongo_db_name)
        try:
            ctx = RunContext(
                setup.plan, run, store, EventBus(), source, target, setup.info, setup.collections
            )
            assert not SnapshotPhase(ctx).run().stopped
            with connect(mysql_url) as conn, conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("INSERT INTO customers VALUES (41, 'new one', '2024-05-06 07:08:09.500')")
                cur.execute("INSERT INTO orders VALUES (4100, 41, '9.99', '2024-05-07 00:00:00')")
                cur.execute("COMMIT")
                cur.execute("UPDATE customers SET name = 'renamed' WHERE id = 1")
                cur.execute("DELETE FROM orders WHERE id = 301")
                cur.execute("UPDATE orders SET total = '1.50' WHERE id = 202")
                cur.execute("DELETE FROM customers WHERE id = 40")
            result = _follow(ctx)
            first_position = result.position
            # A second run resumes from the target's checkpoint: only what came after is applied.
            with connect(mysql_url) as conn, conn.cursor() as cur:
                cur.execute("UPDATE customers SET name = 'again' WHERE id = 2")
            again = _follow(ctx)
        finally:
            target.close()
            source.close()
    assert result.caught_up and not result.stopped
    assert again.caught_up and MysqlSource.positions.parse(again.position) > MysqlSource.positions.parse(
        first_position
    )
    assert again.changes == 1  # the update of customer 2 alone (a marker is no change)
    expected = {d["_id"]: d for d in _expected_documents()}
    expected[41] = {
        "_id": 41,
        "name": "new one",
        "joined": datetime.datetime(2024, 5, 6, 7, 8, 9, 500000),
        "orders": [_order(4100, "9.99", "2024-05-07 00:00:00")],
    }
    expected[1]["name"] = "renamed"
    expected[2]["name"] = "again"
    expected[3]["orders"] = [o for o in expected[3]["orders"] if o["id"] != 301]
    expected[2]["orders"] = [
        o | {"total": Decimal128(Decimal("1.50"))} if o["id"] == 202 else o for o in expected[2]["orders"]
    ]
    del expected[40]
    assert _documents(mongo_url, mongo_db_name) == [expected[k] for k in sorted(expected)]
