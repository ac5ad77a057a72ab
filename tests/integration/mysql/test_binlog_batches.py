"""Many small binlog transactions reach the engine as few target batches: the real snapshot and
CDC phases over a MariaDB source, one single-row transaction at a time."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.engine.context import RunContext
from migrator.engine.events import BatchApplied, Collector, EventBus
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
  - {{name: counters, from: {schema}.counters, key: id}}
"""
SMALL_TRANSACTIONS = 120


def _context(
    plan_text: str,
    store: SQLiteStateStore,
    source: MysqlSource,
    target: MongoTarget,
    table: str,
    bus: EventBus,
) -> RunContext:
    plan_path = Path(store.path).parent / "plan.yaml"
    plan_path.write_text(plan_text)
    plan = load_plan(plan_path)
    info = source.inspect([table])
    resolution = resolve(plan.collections, info)
    assert resolution.collections, resolution.findings
    run_id = "0123456789abcdef"
    run = claimed_run(store, target, plan.name, run_id=run_id, slot=slot_name(plan.name, run_id))
    return RunContext(plan, run, store, bus, source, target, info, resolution.collections)


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
    plan = PLAN.format(source=mysql_url, mongo=mongo_url, database=mongo_db_name, schema=schema)
    source = MysqlSource(mysql_url)
    target = MongoTarget(mongo_url, mongo_db_name)
    collector = Collector()
    with SQLiteStateStore(tmp_path / "state.db") as store:
        try:
            ctx = _context(plan, store, source, target, f"{schema}.counters", EventBus(collector))
            assert not SnapshotPhase(ctx).run().stopped
            with connect(mysql_url) as conn, conn.cursor() as cur:
                for n in range(SMALL_TRANSACTIONS):  # autocommit: one transaction each
                    cur.execute("UPDATE counters SET n = n + 1 WHERE id = %s", [n % 10 + 1])
            result = follow_until_caught_up(ctx)
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
