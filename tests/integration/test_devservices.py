"""The test servers and fixtures are what every integration test stands on: check they hold up."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest

from tests.support.servers import (
    ExternalServer,
    MongoServer,
    PgServer,
    ServiceUnavailable,
    create_pg_database,
    devservices,
    drop_pg_database,
    unavailable,
    with_database,
)

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"

# Names seen by the parametrized isolation tests, in collection order.
_seen_pg: list[str] = []
_seen_mongo: list[str] = []


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _mongo(url: str, **kwargs: Any) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(url, **kwargs)


def test_pg_server_supports_logical_decoding(pg_url: str) -> None:
    slot = f"t_{uuid.uuid4().hex[:12]}"  # slot names are cluster-wide: parallel tests must not collide
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert _one(conn, "SHOW wal_level") == "logical"
        assert int(_one(conn, "SHOW max_replication_slots")) >= 10
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        db = _one(conn, "SELECT database FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        assert db == _one(conn, "SELECT current_database()")
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_pg_server_speaks_utf8(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert _one(conn, "SHOW server_encoding") == "UTF8"
        assert _one(conn, "SELECT upper(%s)", ("ärger ß",)) == "ÄRGER ß"


def test_drop_database_clears_slots_and_connections(pg_server: PgServer | ExternalServer) -> None:
    """What a failed CDC test leaves behind: an idle slot, a slot being streamed, open connections."""
    dbname = f"t_drop_{uuid.uuid4().hex[:8]}"
    idle_slot, streamed_slot = f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}"
    create_pg_database(pg_server.url, dbname)
    url = with_database(pg_server.url, dbname)
    lingering = psycopg.connect(url, autocommit=True)
    streaming = psycopg.connect(url, autocommit=True, replication="database")
    try:
        lingering.execute("CREATE PUBLICATION p FOR ALL TABLES")
        lingering.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (idle_slot,))
        streaming.execute(f"CREATE_REPLICATION_SLOT {streamed_slot} LOGICAL pgoutput")
        start = (
            f"START_REPLICATION SLOT {streamed_slot} LOGICAL 0/0 (proto_version '1', publication_names 'p')"
        )
        streaming.pgconn.send_query(start.encode())
        result = streaming.pgconn.get_result()
        assert result is not None and result.status == psycopg.pq.ExecStatus.COPY_BOTH
        active = _one(
            lingering, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (streamed_slot,)
        )
        assert active is True

        drop_pg_database(pg_server.url, dbname)
    finally:
        lingering.close()
        streaming.close()
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        assert _one(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", (dbname,)) == 0
        leftover = "SELECT count(*) FROM pg_replication_slots WHERE slot_name IN (%s, %s)"
        assert _one(admin, leftover, (idle_slot, streamed_slot)) == 0


@pytest.mark.parametrize("use", [1, 2])
def test_pg_url_databases_are_isolated(pg_url: str, pg_server: PgServer | ExternalServer, use: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        dbname = _one(conn, "SELECT current_database()")
        assert _one(conn, "SELECT to_regclass('public.marker')") is None, "a previous test's table leaked"
        conn.execute("CREATE TABLE marker (use int)")
        conn.execute("INSERT INTO marker VALUES (%s)", (use,))
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        for previous in _seen_pg:
            assert previous != dbname
            assert _one(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", (previous,)) == 0
    _seen_pg.append(dbname)


@pytest.mark.parametrize("use", [1, 2])
def test_mongo_url_databases_are_isolated(
    mongo_url: str, mongo_db_name: str, mongo_server: MongoServer | ExternalServer, use: int
) -> None:
    with _mongo(mongo_url) as client:
        db = client.get_default_database()
        assert db.name == mongo_db_name
        assert db.marker.count_documents({}) == 0
        db.marker.insert_one({"use": use})
        names = client.list_database_names()
        assert mongo_db_name in names
        for previous in _seen_mongo:
            assert previous not in names
    _seen_mongo.append(mongo_db_name)


def test_mongo_server_crud_and_transactions(mongo_url: str) -> None:
    with _mongo(mongo_url) as client:
        coll = client.get_default_database().things
        coll.insert_one({"_id": 1, "name": "plain"})
        assert coll.find_one({"_id": 1}) == {"_id": 1, "name": "plain"}

        with client.start_session() as session:
            with session.start_transaction():
                coll.insert_one({"_id": 2, "name": "committed"}, session=session)
                # Not visible outside the transaction until it commits.
                assert coll.find_one({"_id": 2}) is None

            session.start_transaction()
            coll.insert_one({"_id": 3, "name": "aborted"}, session=session)
            session.abort_transaction()

        assert sorted(d["_id"] for d in coll.find()) == [1, 2]


def test_settings_override_and_restart(pg_cluster_factory: Callable[..., PgServer]) -> None:
    server = pg_cluster_factory({"wal_level": "replica", "max_replication_slots": 3})
    with psycopg.connect(server.url, autocommit=True) as conn:
        assert _one(conn, "SHOW wal_level") == "replica"
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="wal_level"):
            conn.execute("SELECT pg_create_logical_replication_slot('nope', 'pgoutput')")

    old_pid = server.pid
    server.restart()
    assert server.pid != old_pid
    with psycopg.connect(server.url, autocommit=True) as conn:
        assert _one(conn, "SHOW wal_level") == "replica"
        assert _one(conn, "SHOW max_replication_slots") == "3"
        assert _one(conn, "SELECT x FROM kept") == 42


def test_pg_restart_after_crash_keeps_committed_data(pg_cluster_factory: Callable[..., PgServer]) -> None:
    # Crash/resume tests kill the server outright; restart() must bring the same data back up.
    server = pg_cluster_factory()
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivor (x int)")
        conn.execute("INSERT INTO survivor VALUES (7)")
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.restart()
    with psycopg.connect(server.url, autocommit=True) as conn:
        assert _one(conn, "SELECT x FROM survivor") == 7


def test_pg_cluster_stop_removes_data(tmp_path: Path) -> None:
    try:
        server = devservices.start_postgres(tmp_path / "pg")
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    data_dir, pid = server.data_dir, server.pid
    assert pid is not None
    server.stop()
    assert not data_dir.exists()
    assert not devservices.pid_alive(pid)


def test_mongo_restart_keeps_data(tmp_path: Path) -> None:
    try:
        server = devservices.start_mongo(tmp_path / "m")
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        with _mongo(server.url) as client:
            client.keep.me.insert_one({"_id": "x"})
        server.restart()
        with _mongo(server.url) as client:
            assert client.keep.me.find_one({"_id": "x"}) == {"_id": "x"}
    finally:
        server.stop()
    assert server.storage is not None and not server.storage.exists()


def test_missing_binaries_skip_locally_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIGRATOR_PG_BINDIR", str(tmp_path / "nowhere"))
    with pytest.raises(ServiceUnavailable):
        devservices.start_postgres(tmp_path / "pg")

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        unavailable("no server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        unavailable("no server")


def _services(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_SOURCE_URL" and k != "MIGRATOR_TARGET_URL"}
    result = subprocess.run(
        [str(SERVICES), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"scripts/services {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def test_services_script_up_env_down(tmp_path: Path) -> None:
    try:
        devservices.find_pg_bindir()
        devservices.find_secantusd()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    directory = tmp_path / "services"
    try:
        up = _services("up", "--dir", str(directory))
        assert "postgres started" in up.stdout and "mongo    started" in up.stdout

        again = _services("up", "--dir", str(directory))
        assert again.stdout.count("already up") == 2, again.stdout

        state = json.loads((directory / "state.json").read_text())
        assert _services("status", "--dir", str(directory)).returncode == 0

        env = _services("env", "--dir", str(directory)).stdout
        exported = dict(re.findall(r"^export (MIGRATOR_\w+)=(.*)$", env, flags=re.MULTILINE))
        assert set(exported) == {
            "MIGRATOR_SOURCE_URL",
            "MIGRATOR_TARGET_URL",
            "MIGRATOR_STATE",
            "MIGRATOR_ROUTING_FILE",
        }
        # The demo's state and routing files live with its servers (scripts/demo), named absolutely.
        assert shlex.split(exported["MIGRATOR_STATE"])[0] == str(directory.resolve() / "demo-state.db")
        assert shlex.split(exported["MIGRATOR_ROUTING_FILE"])[0] == str(directory.resolve() / "demo-routing")
        source = shlex.split(exported["MIGRATOR_SOURCE_URL"])[0]
        target = shlex.split(exported["MIGRATOR_TARGET_URL"])[0]

        with psycopg.connect(source, autocommit=True) as conn:
            assert _one(conn, "SHOW wal_level") == "logical"
        with _mongo(target, serverSelectionTimeoutMS=60_000) as client:
            client.smoke.t.insert_one({"ok": True})
            assert client.smoke.t.count_documents({}) == 1
    finally:
        down = _services("down", "--dir", str(directory), check=False)
    assert down.returncode == 0, down.stderr
    assert not directory.exists()
    for service in ("postgres", "mongo"):
        assert not devservices.pid_alive(state[service]["pid"]), f"{service} still running after down"
    if state["postgres"]["owned_root"]:
        assert not Path(state["postgres"]["owned_root"]).exists()

    assert _services("env", "--dir", str(directory), check=False).returncode != 0
