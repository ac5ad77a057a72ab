"""MariaDB for the MySQL-source tests: a throwaway server (scripts/lib/mariadb_server.py) or the one
MIGRATOR_TEST_MYSQL_URL names (docker/compose.yaml's MySQL 8, say), and a fresh database per test.

Registered as a plugin in tests/conftest.py: tests name ``mariadb_server`` (session) or
``mysql_url`` (a new, empty database, dropped afterwards). The machine's own MariaDB on port 3306
is shared and never used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pymysql
import pytest

from migrator.adapters.base import ColumnInfo
from tests.support.servers import (
    ExternalServer,
    ServiceUnavailable,
    devservices,
    mariadb_lib,
    unavailable,
    unique_name,
    with_database,
)

MariaDbServer = mariadb_lib.MariaDbServer

MYSQL_URL_ENV = "MIGRATOR_TEST_MYSQL_URL"


def connect(url: str, **options: Any) -> pymysql.connections.Connection[Any]:
    """A PyMySQL connection from a mysql:// URL (tests' own reads and writes, autocommit)."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
        autocommit=True,
        charset="utf8mb4",
        connect_timeout=10,
        **options,
    )


def database(url: str) -> str:
    """The database a mysql:// URL names."""
    return urlsplit(url).path.lstrip("/")


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows `query` returns, as tuples."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(query)
        return [tuple(r) for r in cur.fetchall()]


def execute(
    url: str, statements: Sequence[str], params: Sequence[Sequence[Any]] = ()
) -> list[tuple[Any, ...]]:
    """`statements` in one transaction (`params`: the parameters of each); the last one's rows."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("BEGIN")
        for i, statement in enumerate(statements):
            cur.execute(statement, params[i] if params else None)
        found = [tuple(r) for r in cur.fetchall()]
        cur.execute("COMMIT")
        return found


@contextmanager
def mysql_user(root_url: str, prefix: str, password: str, *grants: str) -> Iterator[str]:
    """A new user `<prefix>_<random>` with `password` and `grants` (statements, `{user}` standing
    for 'name'@'%' and `{db}` for root_url's database, backquoted): its URL on that database.
    Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    grantee = f"'{name}'@'%'"
    with connect(root_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER {grantee} IDENTIFIED BY {conn.escape(password)}")
        for grant in grants:
            cur.execute(grant.format(user=grantee, db=f"`{database(root_url)}`"))
    parts = urlsplit(root_url)
    try:
        yield urlunsplit(
            (parts.scheme, f"{name}:{quote(password)}@{parts.hostname}:{parts.port}", parts.path, "", "")
        )
    finally:
        with connect(root_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS {grantee}")


def start_mariadb(base_dir: Path) -> MariaDbServer:
    try:
        return mariadb_lib.start_mariadb(base_dir)
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    except devservices.ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer | ExternalServer]:
    """A binlog source: MIGRATOR_TEST_MYSQL_URL's server, or a throwaway MariaDB."""
    url = os.environ.get(MYSQL_URL_ENV)
    if url:
        yield ExternalServer(url)
        return
    server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mysql_url(
    mariadb_server: MariaDbServer | ExternalServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """URL of a new, empty database on mariadb_server; dropped afterwards."""
    name = unique_name(request.node.name)
    with connect(mariadb_server.url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield with_database(mariadb_server.url, name)
    finally:
        with connect(mariadb_server.url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def column_info(name: str, type_name: str, kind: str, position: int = 1) -> ColumnInfo:
    """A column as the MySQL inspection describes one (SET columns: arrays of text; numeric(10, 2))."""
    element = "text" if kind == "array" else None
    scale = 2 if type_name == "numeric" else None
    return ColumnInfo(
        name=name,
        type_name=type_name,
        type_kind=kind,
        element_type=element,
        element_kind="base" if element else None,
        nullable=True,
        numeric_precision=10 if scale else None,
        numeric_scale=scale,
        position=position,
    )
