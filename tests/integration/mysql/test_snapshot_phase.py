"""The real snapshot phase copies a MariaDB source into the MongoDB-compatible test server: parallel
workers, several chunks, an embedded level, values as the conversion table says.

Until inspection, preflight and the binlog's capture setup exist for MySQL, the test gives the phase
what they would: the tables as inspection would report them (written by hand), a capture setup that
has nothing to create (MySQL has no slot or publication), and the position format. The plan names
postgres and mongodb (plan/models.py accepts no other adapter yet); the phase gets the MySQL source.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import MongoClient

from migrator.adapters.base import ColumnInfo, SourceInfo, SourceServerInfo, TableInfo
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.snapshot import position_value
from migrator.engine.context import RunContext
from migrator.engine.events import EventBus
from migrator.mapping.spec import resolve
from migrator.phases.snapshot import SnapshotPhase
from migrator.plan import load_plan
from migrator.state import SQLiteStateStore
from tests.support.mariadb import connect

CUSTOMERS = 40


class _Positions:
    @staticmethod
    def text(value: int) -> str:
        return f"{value >> 32:06d}:{value & 0xFFFFFFFF}"

    @staticmethod
    def parse(text: str) -> int:
        return position_value(text)


class _NoCaptureObjects:
    """MySQL has no slot or publication: nothing to create, check or drop."""

    def ensure_publication(self, name: str, tables: Any) -> bool:
        return True

    def slot_exists(self, slot: str) -> bool:
        return False

    def drop_slot(self, slot: str) -> bool:
        return False

    def drop_publication(self, name: str) -> None:
        pass


class _Source(MysqlSource):
    positions: ClassVar[Any] = _Positions()

    def capture_setup(self) -> Any:
        return _NoCaptureObjects()


def _column(name: str, type_name: str, position: int, scale: int | None = None) -> ColumnInfo:
    return ColumnInfo(name, type_name, "base", None, None, True, 10 if scale else None, scale, position)


def _table(name: str, columns: list[ColumnInfo], rows: int) -> TableInfo:
    return TableInfo(
        name=name,
        columns=tuple(columns),
        primary_key=("id",),
        unique_keys=(),
        replica_identity="default",
        identity_columns=("id",),
        foreign_keys=(),
        estimated_rows=rows,
        total_bytes=0,
        owned_by_current_user=True,
    )


def _orders(customer: int) -> list[tuple[int, int, str, str]]:
    return [
        (customer * 100 + i, customer, f"{customer}.{i:02d}", f"2024-01-{i + 1:02d} 10:00:00")
        for i in range(customer % 4)
    ]


PLAN = """\
version: 1
source: {{adapter: postgres, url: "postgresql://u@localhost/x"}}
target: {{adapter: mongodb, url: "{mongo}", database: {database}}}
collections:
  - name: customers
    from: {schema}.customers
    key: id
    embed:
      - as: orders
        from: {schema}.orders
        on: {{customer_id: id}}
        order_by: placed
phases:
  snapshot: {{parallel: 3, chunk_rows: 7}}
"""


def test_the_snapshot_phase_copies_a_mariadb_source(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), joined TIMESTAMP(3) NULL)")
        cur.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, total DECIMAL(10,2), placed DATETIME)"
        )
        cur.executemany(
            "INSERT INTO customers VALUES (%s, %s, %s)",
            [(c, f"customer {c}", f"2023-06-{c % 28 + 1:02d} 12:00:00.250") for c in range(1, CUSTOMERS + 1)],
        )
        cur.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s)",
            [o for c in range(1, CUSTOMERS + 1) for o in _orders(c)],
        )
        cur.execute("SELECT DATABASE()")
        schema = cur.fetchone()[0]
    customers = f"{schema}.customers"
    orders = f"{schema}.orders"
    info = SourceInfo(
        server=SourceServerInfo(
            mysql_url, "10.11", 101100, {}, 0, 0, "root", True, True, True, (), (), schema
        ),
        tables={
            customers: _table(
                customers,
                [
                    _column("id", "integer", 1),
                    _column("name", "character varying", 2),
                    _column("joined", "timestamp with time zone", 3),
                ],
                CUSTOMERS,
            ),
            orders: _table(
                orders,
                [
                    _column("id", "bigint", 1),
                    _column("customer_id", "integer", 2),
                    _column("total", "numeric", 3, scale=2),
                    _column("placed", "timestamp without time zone", 4),
                ],
                CUSTOMERS,
            ),
        },
    )
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(PLAN.format(mongo=mongo_url, database=mongo_db_name, schema=schema))
    plan = load_plan(plan_path)
    resolution = resolve(plan.collections, info)
    assert resolution.collections, resolution.findings
    source = _Source(mysql_url)
    target = MongoTarget(mongo_url, mongo_db_name)
    with SQLiteStateStore(tmp_path / "state.db") as store:
        run = store.begin_run(plan.name, "digest", slot="migrator_test_slot")
        target.ownership(plan.name).claim(
            run_id=run.id,
            started_at="2026-01-01T00:00:00Z",
            host="test",
            state="test",
            slot=run.slot,
            publication="p",
        )
        ctx = RunContext(plan, run, store, EventBus(), source, target, info, resolution.collections)
        result = SnapshotPhase(ctx).run()
        chunks = store.chunks(run.id, "customers")
    target.close()
    assert not result.stopped
    assert len(chunks) >= 5 and all(c.status == "done" for c in chunks)
    assert position_value(result.position) > 0
    with MongoClient(mongo_url) as client:
        documents = list(client[mongo_db_name]["customers"].find().sort("_id", 1))
    expected = []
    for c in range(1, CUSTOMERS + 1):
        expected.append(
            {
                "_id": c,
                "name": f"customer {c}",
                "joined": datetime.datetime(2023, 6, c % 28 + 1, 12, 0, 0, 250000),
                "orders": [
                    {
                        "id": Int64(oid),
                        "total": Decimal128(Decimal(total)),
                        "placed": datetime.datetime.fromisoformat(placed),
                    }
                    for oid, _, total, placed in _orders(c)
                ],
            }
        )
    assert documents == expected
    assert all(type(o["id"]) is Int64 for d in documents for o in d["orders"])
