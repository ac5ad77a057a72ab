"""The switch's routing table, the load probe and reverse sync's stored checkpoint on a real
MariaDB source (rows read back and compared with values written by hand)."""

from __future__ import annotations

import datetime
import threading
import time

from migrator.adapters.mysql import MysqlSource
from migrator.adapters.rows import ReverseCheckpoint
from tests.support.mariadb import connect


def test_routing_row_is_created_flipped_and_read_back(mysql_url: str) -> None:
    source = MysqlSource(mysql_url)
    assert source.routing_value("routing", "shop", "primary_side") is None  # no table yet
    source.write_routing_row("routing", "shop", "target", "run-1")
    assert source.routing_value("routing", "shop", "primary_side") == "target"
    assert source.routing_value("routing", "shop", "run_id") == "run-1"
    assert source.routing_value("routing", "other", "primary_side") is None  # no row
    assert source.routing_value("routing", "shop", "nothing") is None  # no column
    source.write_routing_row("routing", "shop", "source", "run-2")
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT plan, primary_side, run_id FROM routing")
        assert [tuple(r) for r in cur.fetchall()] == [("shop", "source", "run-2")]


def test_routing_table_without_run_id_gets_the_column(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE routing (plan VARCHAR(255) PRIMARY KEY, primary_side VARCHAR(6) NOT NULL, "
            "updated_at TIMESTAMP(6) NOT NULL)"
        )
        cur.execute("INSERT INTO routing VALUES ('shop', 'source', '2020-01-01 00:00:00')")
    source = MysqlSource(mysql_url)
    assert source.routing_value("routing", "shop", "run_id") is None
    source.write_routing_row("routing", "shop", "target", "run-9")
    assert source.routing_value("routing", "shop", "primary_side") == "target"
    assert source.routing_value("routing", "shop", "run_id") == "run-9"


def test_load_probe_counts_running_statements_of_others(mysql_url: str) -> None:
    probe = MysqlSource(mysql_url).load_probe()
    idle_session = connect(mysql_url)  # an idle session does not count
    busy = threading.Thread(target=_sleep, args=(mysql_url, 4))
    try:
        idle = probe.sample(sessions=True, replicas=True)
        assert idle.active_sessions == 0
        assert idle.replicas == 0 and idle.replica_lag_seconds is None
        busy.start()  # a statement running in another session counts
        deadline = time.monotonic() + 20
        loaded = probe.sample(sessions=True, replicas=False)
        while loaded.active_sessions == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            loaded = probe.sample(sessions=True, replicas=False)
        assert loaded.active_sessions == 1
        assert loaded.replicas is None
    finally:
        busy.join(30)
        idle_session.close()
        probe.close()


def _sleep(url: str, seconds: int) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT SLEEP(%s)", [seconds])


def test_reverse_checkpoint_is_read_on_a_plain_connection(mysql_url: str) -> None:
    source = MysqlSource(mysql_url)
    assert source.reverse_checkpoint("shop") is None  # no table yet
    writer = source.reverse_writer("shop", "migrator_reverse_shop")
    try:
        writer.setup()
        writer.setup()  # idempotent
        assert writer.checkpoint() is None
        checkpoint = ReverseCheckpoint({"_data": "826500"}, (1_700_000_000 << 32) | 7, 12)
        assert writer.apply([], checkpoint) == 0
        assert writer.checkpoint() == checkpoint
        assert source.reverse_checkpoint("shop") == checkpoint
        assert source.reverse_checkpoint("other") is None
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT plan, cluster_at, events, writes FROM _migrator_reverse")
            assert [tuple(r) for r in cur.fetchall()] == [
                ("shop", datetime.datetime(2023, 11, 14, 22, 13, 20), 12, 1)
            ]
        assert writer.forget() is True
        assert writer.forget() is False
        assert source.reverse_checkpoint("shop") is None
    finally:
        writer.close()
