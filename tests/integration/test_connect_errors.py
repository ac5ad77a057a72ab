"""Refused credentials say so, with a hint that fits; an unreachable server keeps its own hint.

Issue 17 (defect 13): a wrong PostgreSQL password got the hint "check that the server runs and the
host and port", and wrong MongoDB credentials a raw driver dump with no hint. Here a PostgreSQL
cluster of the test's own requires SCRAM passwords (the shared test cluster trusts every local
connection), and SecantusDB runs with --auth (it supports SCRAM-SHA-256 users), so every refusal
is the servers' own.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from psycopg import sql

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.errors import AuthenticationFailed, ConnectionFailed, DatabaseNotFound, MigratorError
from tests.support.servers import PgServer, devservices, start_pg

APP_PW = "Right-Pw-7kq"
WRONG_PW = "Wrong-Pw-9zx"
REACH_HINT = "check that the server runs"


@pytest.fixture(scope="module")
def scram_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A cluster that asks every role but postgres for its password over TCP."""
    server = start_pg(tmp_path_factory.mktemp("scram_pg"))
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
            hba.write_text(
                "host all postgres 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
                "local all all trust\n"
            )
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("CREATE ROLE app LOGIN PASSWORD {}").format(sql.Literal(APP_PW)))
            conn.execute(sql.SQL("CREATE ROLE outsider LOGIN PASSWORD {}").format(sql.Literal(APP_PW)))
            conn.execute("CREATE DATABASE appdb")
            conn.execute("REVOKE CONNECT ON DATABASE appdb FROM PUBLIC")
            conn.execute("GRANT CONNECT ON DATABASE appdb TO app")
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.stop()


def _url(
    server: PgServer, user: str, password: str | None, db: str = "appdb", port: int | None = None
) -> str:
    secret = f":{password}" if password is not None else ""
    return f"postgresql://{user}{secret}@127.0.0.1:{port or server.port}/{db}"


def _refusal(url: str) -> MigratorError:
    with pytest.raises(MigratorError) as info:
        PgEndpoint(url).connect().close()
    error = info.value
    assert WRONG_PW not in str(error) and APP_PW not in str(error)
    return error


def test_right_password_connects(scram_pg: PgServer) -> None:
    with PgEndpoint(_url(scram_pg, "app", APP_PW)).connect() as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("app",)


def test_wrong_password_is_an_authentication_failure(scram_pg: PgServer) -> None:
    error = _refusal(_url(scram_pg, "app", WRONG_PW))
    assert isinstance(error, AuthenticationFailed), repr(error)
    assert f"password authentication failed for user app at 127.0.0.1:{scram_pg.port}" in error.message
    assert error.hint is not None and "password" in error.hint and REACH_HINT not in error.hint


def test_missing_password_says_none_was_given(scram_pg: PgServer) -> None:
    error = _refusal(_url(scram_pg, "app", None))
    assert isinstance(error, AuthenticationFailed), repr(error)
    assert "gives none" in error.message and error.hint is not None and "password" in error.hint


def test_unknown_database_is_named(scram_pg: PgServer) -> None:
    error = _refusal(_url(scram_pg, "app", APP_PW, db="nosuchdb"))
    assert isinstance(error, DatabaseNotFound), repr(error)
    assert "database nosuchdb does not exist" in error.message and "3D000" in error.message


def test_database_closed_to_the_role_names_the_grant(scram_pg: PgServer) -> None:
    error = _refusal(_url(scram_pg, "outsider", APP_PW))
    assert isinstance(error, AuthenticationFailed), repr(error)
    assert "may not connect to database appdb" in error.message
    assert error.hint == "GRANT CONNECT ON DATABASE appdb TO outsider"


def test_refused_and_unresolvable_keep_the_reachability_hint(scram_pg: PgServer) -> None:
    closed = devservices.free_port()
    for url in (
        _url(scram_pg, "app", WRONG_PW, port=closed),
        f"postgresql://app:{WRONG_PW}@no-such-host.invalid:5432/appdb",
    ):
        error = _refusal(url)
        assert isinstance(error, ConnectionFailed), repr(error)
        assert error.hint is not None and REACH_HINT in error.hint


def test_cli_plan_shows_the_credentials_hint(scram_pg: PgServer, mongo_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "version: 1\nsource: {adapter: postgres, url: '${SRC}'}\n"
        "target: {adapter: mongodb, url: '${TGT}', database: creds}\n"
        "collections: [{name: t, from: public.t, key: id}]\n"
    )
    env = {**os.environ, "SRC": _url(scram_pg, "app", WRONG_PW), "TGT": mongo_url}
    migrator = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "migrator"
    if not migrator.exists():
        migrator = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "migrator"
    done = subprocess.run(
        [str(migrator), "plan", str(plan)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 3, done.stderr  # cannot connect (docs/json.md)
    assert "password authentication failed for user app" in done.stdout
    assert "check the password" in done.stdout and REACH_HINT not in done.stdout
    assert WRONG_PW not in done.stdout + done.stderr


# -- MongoDB: SecantusDB with --auth -------------------------------------------------------------------


def _ping(port: int, deadline: float) -> None:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=2000
    )
    try:
        while True:
            try:
                client.admin.command("hello")
                return
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        client.close()


@pytest.fixture(scope="module")
def auth_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A SecantusDB with users `app` (readWrite on db app) and `reader` (read on db app), then
    restarted with --auth (its help: provision users without auth, then restart with --auth)."""
    base = tmp_path_factory.mktemp("auth_mongo")
    (base / "empty.toml").write_text("")
    port = devservices.free_port()
    argv = [
        str(devservices.find_secantusd()),
        "--config",
        str(base / "empty.toml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(base / "data"),
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _ping(port, time.monotonic() + 120)
        with pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true") as client:
            client.admin.command("createUser", "app", pwd=APP_PW, roles=[{"role": "readWrite", "db": "app"}])
            client.admin.command("createUser", "reader", pwd=APP_PW, roles=[{"role": "read", "db": "app"}])
        proc.terminate()
        proc.wait(60)
        proc = subprocess.Popen(
            [*argv, "--auth"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _ping(port, time.monotonic() + 120)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_mongo_wrong_password_is_an_authentication_failure(auth_mongo: int) -> None:
    target = MongoTarget(f"mongodb://app:{WRONG_PW}@127.0.0.1:{auth_mongo}/?directConnection=true", "app")
    with pytest.raises(AuthenticationFailed) as info:
        target.inspect(["t"])
    error = info.value
    assert error.message.startswith(
        f"mongodb://app@127.0.0.1:{auth_mongo}/ refused access: authentication failed"
    )
    assert "(code 18)" in error.message and "full error" not in error.message  # no driver dump
    assert error.hint is not None and "authSource" in error.hint
    assert WRONG_PW not in str(error)


def test_mongo_missing_privilege_is_named(auth_mongo: int) -> None:
    target = MongoTarget(f"mongodb://reader:{APP_PW}@127.0.0.1:{auth_mongo}/?directConnection=true", "app")
    target.inspect(["t"])  # reading is allowed
    with pytest.raises(AuthenticationFailed) as info:
        target.drop_collection("t")
    error = info.value
    assert "not authorized" in error.message and "(code 13)" in error.message
    assert error.hint is not None and "readWrite" in error.hint and APP_PW not in str(error)


def test_mongo_right_password_works(auth_mongo: int) -> None:
    target = MongoTarget(f"mongodb://app:{APP_PW}@127.0.0.1:{auth_mongo}/?directConnection=true", "app")
    assert target.inspect(["t"]).collections["t"].exists is False


def test_a_limit_once_connected_is_a_lost_connection_not_a_refused_login(scram_pg: PgServer) -> None:
    # A connection limit refuses after authentication (53300), which the first-connection
    # diagnosis cannot tell from a refused password: once the credentials worked, a failure
    # is retried as a lost connection.
    with psycopg.connect(scram_pg.url, autocommit=True) as admin:
        admin.execute("ALTER ROLE app CONNECTION LIMIT 1")
    endpoint = PgEndpoint(_url(scram_pg, "app", APP_PW))
    first = endpoint.connect()
    try:
        with pytest.raises(ConnectionFailed):
            endpoint.connect().close()
    finally:
        first.close()
        with psycopg.connect(scram_pg.url, autocommit=True) as admin:
            admin.execute("ALTER ROLE app CONNECTION LIMIT -1")
