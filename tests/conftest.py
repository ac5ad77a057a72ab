"""Fixtures for servers and per-test databases.

Session scope: ``pg_server`` and ``mongo_server`` (``.url``; ``.restart()`` when throwaway).
Function scope: ``pg_url`` (a fresh PostgreSQL database), ``mongo_url`` / ``mongo_db_name`` (a fresh
MongoDB database), ``pg_cluster_factory`` (extra clusters with their own settings), ``tmp_state_path``.

Fixtures that tests share live in tests/support and are registered below (``pytest_plugins``), so
that a test uses them by naming them, never by importing them; no test module imports another.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pymongo
import pytest

# pytest puts tests/ (this file's directory) on sys.path, not the repo root; tests import helpers
# as `tests.support...`, which needs the root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# Helpers moved out of test modules keep pytest's detailed assertion messages.
pytest.register_assert_rewrite("tests.support")

from tests.support.servers import (  # noqa: E402
    MONGO_URL_ENV,
    PG_URL_ENV,
    ExternalServer,
    MongoServer,
    PgServer,
    create_pg_database,
    drop_pg_database,
    drop_replication_origins_since,
    replication_origins,
    shared_server,
    start_mongo,
    start_pg,
    unique_name,
    with_database,
)

pytest_plugins = [
    "tests.support.cdc_workload",  # workload_setup
    "tests.support.demo",  # demo_url
    "tests.support.file_order",  # the longest files first on xdist's workers (scripts/test)
    "tests.support.mariadb",  # mariadb_server, mysql_url
    "tests.support.migration",  # mig, source_url, source_schema
    "tests.support.pg_settings",  # small_decoding_memory
    "tests.support.pg_target",  # pg_target_server, pg2pg (a PostgreSQL target on a second cluster)
    "tests.support.preflight",  # setup, mongo
    "tests.support.runs",  # stop_followers
    "tests.support.sources",  # source_db (the conformance suite's, parametrized over source adapters)
]

_INTEGRATION_DIR = Path(__file__).parent / "integration"
_SERVER_FIXTURES = {
    "pg_server",
    "mongo_server",
    "pg_url",
    "mongo_url",
    "mongo_db_name",
    "pg_cluster_factory",
    "mariadb_server",
    "mysql_url",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that needs a server is an integration test wherever it lives, so that
    # `-m "not integration"` reliably runs without any server.
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if _INTEGRATION_DIR in item.path.parents or fixtures & _SERVER_FIXTURES:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer | ExternalServer]:
    """PostgreSQL with wal_level=logical: MIGRATOR_TEST_PG_URL's, or a throwaway cluster."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        yield ExternalServer(url)
        return
    server = start_pg(tmp_path_factory.mktemp("pg"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer | ExternalServer]:
    """MongoDB (replica set, so transactions work): MIGRATOR_TEST_MONGO_URL's, or a throwaway SecantusDB."""
    url = os.environ.get(MONGO_URL_ENV)
    if url:
        yield ExternalServer(url)
        return
    server = start_mongo(tmp_path_factory.mktemp("mongo"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer | ExternalServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a new, empty database on pg_server; dropped (with its replication slots) afterwards."""
    dbname = unique_name(request.node.name)
    # A throwaway cluster is this worker's alone: the origins the test made are dropped with its
    # database (a shared server's new origins may be another worker's).
    local = not shared_server(pg_server.url)
    origins = replication_origins(pg_server.url) if local else set()
    create_pg_database(pg_server.url, dbname)
    try:
        yield with_database(pg_server.url, dbname)
    finally:
        drop_pg_database(pg_server.url, dbname)
        if local:
            drop_replication_origins_since(pg_server.url, origins)


@pytest.fixture(scope="session")
def _mongo_admin(
    mongo_server: MongoServer | ExternalServer,
) -> Iterator[pymongo.MongoClient[dict[str, object]]]:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        mongo_server.url, serverSelectionTimeoutMS=10_000
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db_name(
    _mongo_admin: pymongo.MongoClient[dict[str, object]], request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database name no other test uses; the database is dropped afterwards."""
    name = unique_name(request.node.name)
    try:
        yield name
    finally:
        _mongo_admin.drop_database(name)


@pytest.fixture
def mongo_db(
    _mongo_admin: pymongo.MongoClient[dict[str, object]], mongo_db_name: str
) -> pymongo.database.Database[dict[str, object]]:
    """The database mongo_db_name, on the session's client (dropped afterwards, as the name says)."""
    return _mongo_admin[mongo_db_name]


@pytest.fixture
def mongo_url(mongo_server: MongoServer | ExternalServer, mongo_db_name: str) -> str:
    """mongo_server's URL with mongo_db_name as the default database (client.get_default_database())."""
    return with_database(mongo_server.url, mongo_db_name)


@pytest.fixture
def pg_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., PgServer]]:
    """Start extra throwaway clusters: factory(settings={'wal_level': 'replica'}) -> PgServer.

    Each is stopped and deleted after the test. Always local, even with MIGRATOR_TEST_PG_URL set,
    because tests use it for server settings no shared server should have.
    """
    started: list[PgServer] = []

    def factory(settings: Mapping[str, object] | None = None) -> PgServer:
        server = start_pg(tmp_path / f"cluster{len(started)}", settings=settings)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def tmp_state_path(tmp_path: Path) -> Path:
    """Where a test's SQLite state store lives."""
    return tmp_path / "state.db"
