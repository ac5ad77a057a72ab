"""MariaDB for the MySQL-source tests: a throwaway server (scripts/lib/mariadb_server.py) or the one
MIGRATOR_TEST_MYSQL_URL names (docker/compose.yaml's MySQL 8, say), and a fresh database per test.

Registered as a plugin in tests/conftest.py: tests name ``mariadb_server`` (session) or
``mysql_url`` (a new, empty database, dropped afterwards). The machine's own MariaDB on port 3306
is shared and never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

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
