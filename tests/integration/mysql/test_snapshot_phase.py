"""The real snapshot phase copies a MariaDB source into the MongoDB-compatible test server: parallel
workers, several chunks, an embedded level, values as the conversion table says; and resumes.

Until the binlog's capture setup exists for MySQL, the test gives the phase what it would: a
capture setup with nothing to create (MySQL has no slot or publication) and the position format.
The tables are described as inspection reports them, written by hand (the phase reads only the
columns' types and the row estimates).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo import MongoClient

from migrator.adapters.base import ColumnInfo, SourceInfo, SourceServerInfo, TableInfo
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource, readers
from migrator.adapters.mysql.snapshot import position_value
from migrator.engine.context import RunContext
from migrator.engine.events import EventBus
from migrator.errors import TerminalError
from migrator.mapping.spec import resolve
from migrator.phases.snapshot import SnapshotPhase
from migrator.plan import Plan, load_plan
from migrator.state import SQLiteStateStore
from tests.support.mariadb import connect
from tests.support.mysql_plans import customers_plan
from tests.support.phase_runs import claimed_run

CUSTOMERS = 40


class _Positions:
    @staticmethod
    def text(value: int) -> str:
        return f"{value >> 32:06d}:{value & 0xFFFFFFFF}"

    @staticmethod
    def parse(text: str) -> int:
        return position_value(text)


class _NoCaptureObjects:
    """MySQL has no slot or publication: nothing to create or drop. Whether "the slot exists" on a
    resume (whether the binlog still holds the position) is the binlog section's; here a switch."""

    exists: ClassVar[bool] = False

    def ensure_publication(self, name: str, tables: Any) -> bool:
        return True

    def slot_exists(self, slot: str) -> bool:
        return self.exists

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


@dataclass
class _Setup:
    plan: Plan
    info: SourceInfo
    collections: list[Any]


def _setup(mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path) -> _Setup:
    """The source's tables and rows, and what inspection and plan resolution would make of them."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), joined TIMESTAMP(3) NULL)")
        cur.execute(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, total DECIMAL(10,2), placed DATETIME)"
        )
        cur.execute("CREATE TABLE noise (id INT AUTO_INCREMENT PRIMARY KEY)")
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
    plan_path = customers_plan(
        tmp_path / "plan.yaml",
        mysql_url,
        "order_by: placed",
        target=mongo_url,
        target_db=mongo_db_name,
        phases="snapshot: {parallel: 3, chunk_rows: 7}",
    )
    plan = load_plan(plan_path)
    resolution = resolve(plan.collections, info)
    assert resolution.collections, resolution.findings
    return _Setup(plan, info, resolution.collections)


def _expected_documents() -> list[dict[str, Any]]:
    """The documents, built from the rows as inserted (the link column is not kept in an embed)."""
    return [
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
        for c in range(1, CUSTOMERS + 1)
    ]


def _documents(mongo_url: str, database: str) -> list[dict[str, Any]]:
    with MongoClient(mongo_url) as client:
        return list(client[database]["customers"].find().sort("_id", 1))


def _run_phase(
    setup: _Setup, store: SQLiteStateStore, run: Any, mysql_url: str, mongo_url: str, database: str
) -> Any:
    source = _Source(mysql_url)
    target = MongoTarget(mongo_url, database)
    try:
        ctx = RunContext(setup.plan, run, store, EventBus(), source, target, setup.info, setup.collections)
        return SnapshotPhase(ctx).run()
    finally:
        target.close()


def _begin(setup: _Setup, store: SQLiteStateStore, mongo_url: str, database: str) -> Any:
    target = MongoTarget(mongo_url, database)
    try:
        return claimed_run(store, target, setup.plan.name, slot="migrator_test_slot")
    finally:
        target.close()


def test_the_snapshot_phase_copies_a_mariadb_source(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    setup = _setup(mysql_url, mongo_url, mongo_db_name, tmp_path)
    with SQLiteStateStore(tmp_path / "state.db") as store:
        run = _begin(setup, store, mongo_url, mongo_db_name)
        result = _run_phase(setup, store, run, mysql_url, mongo_url, mongo_db_name)
        chunks = store.chunks(run.id, "customers")
    assert not result.stopped
    assert len(chunks) >= 5 and all(c.status == "done" for c in chunks)
    assert position_value(result.position) > 0
    documents = _documents(mongo_url, mongo_db_name)
    assert documents == _expected_documents()
    assert all(type(o["id"]) is Int64 for d in documents for o in d["orders"])


def test_a_resumed_snapshot_rereads_the_unfinished_chunks_at_a_newer_position(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy stopped by an error resumes: finished chunks are kept, the others are read in a
    fresh snapshot (the session's own position), and the snapshot is consistent after it."""
    setup = _setup(mysql_url, mongo_url, mongo_db_name, tmp_path)
    real_stream = readers.SnapshotReader.stream
    calls = [0]

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > 2:
            raise TerminalError("the copy stops here (test)")
        return real_stream(self, *args, **kwargs)

    with SQLiteStateStore(tmp_path / "state.db") as store:
        run = _begin(setup, store, mongo_url, mongo_db_name)
        monkeypatch.setattr(_NoCaptureObjects, "exists", False)
        monkeypatch.setattr(readers.SnapshotReader, "stream", failing)
        with pytest.raises(TerminalError, match="the copy stops here"):
            _run_phase(setup, store, run, mysql_url, mongo_url, mongo_db_name)
        done_before = [c.chunk_id for c in store.chunks(run.id, "customers") if c.status == "done"]
        slot = next(c for c in store.checkpoints(run.id, "snapshot") if c.label == "slot")
        # Commits between the two runs: the re-read stands after them.
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO noise VALUES ()")
        monkeypatch.setattr(readers.SnapshotReader, "stream", real_stream)
        monkeypatch.setattr(_NoCaptureObjects, "exists", True)  # the binlog still holds the position
        result = _run_phase(setup, store, run, mysql_url, mongo_url, mongo_db_name)
        rereads = [c.position for c in store.checkpoints(run.id, "snapshot") if c.label == "reread"]
        chunks = store.chunks(run.id, "customers")
    assert done_before and len(done_before) < len(chunks)
    assert all(c.status == "done" for c in chunks)
    assert result.position == slot.position
    assert len(rereads) == 1 and position_value(rereads[0]) > position_value(slot.position)
    assert result.consistent_after == rereads[0]
    assert _documents(mongo_url, mongo_db_name) == _expected_documents()


def test_readers_at_positions_of_their_own_move_consistent_after(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits between the export and each worker's snapshot: every reader stands after the
    export, and the snapshot is consistent once CDC has passed the newest of them."""
    setup = _setup(mysql_url, mongo_url, mongo_db_name, tmp_path)
    opened = readers.SnapshotReader.__init__
    positions: list[str] = []

    def write_then_open(self: Any, endpoint: Any, name: str) -> None:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO noise VALUES ()")
        opened(self, endpoint, name)
        assert self.read_position is not None
        positions.append(self.read_position)

    monkeypatch.setattr(readers.SnapshotReader, "__init__", write_then_open)
    with SQLiteStateStore(tmp_path / "state.db") as store:
        run = _begin(setup, store, mongo_url, mongo_db_name)
        result = _run_phase(setup, store, run, mysql_url, mongo_url, mongo_db_name)
    assert positions and all(position_value(p) > position_value(result.position) for p in positions)
    assert result.consistent_after == max(positions, key=position_value)
    assert _documents(mongo_url, mongo_db_name) == _expected_documents()
