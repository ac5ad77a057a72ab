"""Servers for the test suite: throwaway ones from scripts/lib/devservices.py, or real ones from env.

MIGRATOR_TEST_PG_URL / MIGRATOR_TEST_MONGO_URL point the suite at existing servers (docker/compose.yaml
starts suitable ones). Otherwise the suite starts its own. Missing binaries skip the integration tests
on a developer machine, but fail them when CI=true: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

_LIB = Path(__file__).resolve().parents[2] / "scripts" / "lib"
if str(_LIB) not in sys.path:
    sys.path.insert(0, str(_LIB))

import devservices  # noqa: E402
import mariadb_server as mariadb_lib  # noqa: E402
from devservices import MongoServer, PgServer, ServiceUnavailable  # noqa: E402

PG_URL_ENV = "MIGRATOR_TEST_PG_URL"
MONGO_URL_ENV = "MIGRATOR_TEST_MONGO_URL"

__all__ = [
    "MONGO_URL_ENV",
    "PG_URL_ENV",
    "ExternalServer",
    "MongoServer",
    "PgServer",
    "ServiceUnavailable",
    "devservices",
    "drop_pg_database",
    "drop_replication_origins_since",
    "in_ci",
    "mariadb_lib",
    "replication_origins",
    "shared_server",
    "unavailable",
    "unique_name",
    "with_database",
]


@dataclass(frozen=True)
class ExternalServer:
    """A server the suite did not start (from MIGRATOR_TEST_*_URL): it cannot be restarted."""

    url: str
    restartable = False

    def restart(self) -> None:
        pytest.skip("server restart needs a throwaway server; unset " + PG_URL_ENV + "/" + MONGO_URL_ENV)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def unique_name(hint: str, prefix: str = "t") -> str:
    """A lower-case identifier valid as a PostgreSQL and MongoDB database name (<= 63 chars)."""
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    return f"{prefix}_{slug}_{uuid.uuid4().hex[:8]}" if slug else f"{prefix}_{uuid.uuid4().hex[:12]}"


def with_database(url: str, dbname: str) -> str:
    """`url` with its path set to `dbname`; user, password and query parameters are kept."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@contextmanager
def admin_connection(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        yield conn


def create_pg_database(admin_url: str, dbname: str) -> None:
    with admin_connection(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def drop_pg_database(admin_url: str, dbname: str, timeout: float = 15.0) -> None:
    """Drop `dbname` even when a test left replication slots or connections behind.

    DROP DATABASE refuses while a logical slot lives on the database, and an active slot cannot be
    dropped until its walsender is gone; so terminate those, drop the slots, then force the drop.
    """
    deadline = time.monotonic() + timeout
    with admin_connection(admin_url) as conn:
        while True:
            conn.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                " WHERE database = %s AND active AND active_pid IS NOT NULL",
                (dbname,),
            )
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE database = %s AND NOT active",
                (dbname,),
            )
            try:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
                )
                return
            except (psycopg.errors.ObjectInUse, psycopg.errors.ObjectNotInPrerequisiteState):
                # A walsender is still exiting, or a slot turned active between our two queries.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def replication_origins(admin_url: str) -> set[str]:
    """The cluster's replication origins (pg_replication_origin: the cluster's, not a database's)."""
    with admin_connection(admin_url) as conn:
        return {row[0] for row in conn.execute("SELECT roname FROM pg_replication_origin").fetchall()}


def shared_server(admin_url: str) -> bool:
    """Whether `admin_url` is the server MIGRATOR_TEST_PG_URL names (other workers use it too)."""
    return admin_url == os.environ.get(PG_URL_ENV)


def drop_replication_origins_since(admin_url: str, before: set[str], timeout: float = 15.0) -> None:
    """Drop the origins made since `before` was read: a test's runs leave their origins (only
    `rollback --to start` drops them), and each one used holds one of the cluster's
    max_replication_slots origin states for good. Only for a cluster this worker alone uses: a
    shared server's new origins may be another worker's, in use."""
    deadline = time.monotonic() + timeout
    with admin_connection(admin_url) as conn:
        for name in sorted(replication_origins(admin_url) - before):
            while True:
                try:
                    conn.execute("SELECT pg_replication_origin_drop(%s)", [name])
                    break
                except psycopg.errors.ObjectInUse:
                    # Bound by a session of the dropped database that is still exiting.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


def start_pg(base_dir: Path, settings: Mapping[str, object] | None = None) -> PgServer:
    try:
        return devservices.start_postgres(base_dir, settings=settings)
    except ServiceUnavailable as exc:
        unavailable(str(exc))


def start_mongo(base_dir: Path) -> MongoServer:
    try:
        return devservices.start_mongo(base_dir)
    except ServiceUnavailable as exc:
        unavailable(str(exc))
