"""The corpus harness for a MySQL/MariaDB source into MongoDB: tests/support/corpus.py's Scenario
(documents compared down to BSON types and key order, `verify` agreeing) on a throwaway MariaDB
database (tests/support/mariadb.py's server), with the expectation built by
tests/support/mysql_expected.py from the source's rows.

Catching up: a binlog has no message a client writes, so a step's wait commits a marker through
the source adapter's own monitor (a row of `_migrator_markers`, docs/architecture.md "Change
capture from the binlog", Markers) and waits until the CDC checkpoint the target keeps in
`_migrator` is at or past the position it returns: every transaction committed before the call
is then applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pymongo
import pytest

from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.positions import BinlogPositions
from migrator.errors import MigratorError
from migrator.phases.preflight import PreflightReport
from tests.support import expected, mysql_expected
from tests.support.corpus import Scenario
from tests.support.following import MARKER_PREFIX
from tests.support.mariadb import connect, database
from tests.support.servers import unique_name, with_database


class MysqlScenario(Scenario):
    """One scenario's migration from a fresh MariaDB database into a fresh MongoDB database."""

    def __init__(self, name: str, mysql_admin_url: str, mongo_admin_url: str, directory: Path) -> None:
        self.name = self.base_name = name
        self.database = unique_name(name, prefix="m")
        self._admin_url = mysql_admin_url
        with connect(mysql_admin_url) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        self.my_url = with_database(mysql_admin_url, self.database)
        self.pg_url = ""  # no PostgreSQL here: the waits below are the binlog's
        self.mongo_url = with_database(mongo_admin_url, self.database)
        self.directory = directory
        self.plan_path = directory / f"{name}.yaml"
        self.state_path = directory / "state.db"
        self.collections: list[expected.Coll] = []
        self.follower = None
        self.client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.mongo_url, uuidRepresentation="standard", tz_aware=True, serverSelectionTimeoutMS=20_000
        )
        self._conn = None

    @property
    def env(self) -> dict[str, str]:
        return {"MIGRATOR_SOURCE_URL": self.my_url, "MIGRATOR_TARGET_URL": self.mongo_url}

    def table(self, name: str) -> str:
        """`database.table`, as a MySQL plan names a table."""
        return f"{database(self.my_url)}.{name}"

    # -- source ---------------------------------------------------------------------------------

    def sql(self, *statements: str) -> None:
        """Each statement on its own (autocommit), in one session."""
        with connect(self.my_url) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def transaction(self, *statements: str) -> None:
        self.sql("BEGIN", *statements, "COMMIT")

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with connect(self.my_url) as conn, conn.cursor() as cur:
            cur.execute(query, list(params) or None)
            return [tuple(r) for r in cur.fetchall()]

    def scalar(self, query: str, params: Sequence[Any] = ()) -> Any:
        found = self.rows(query, params)
        return found[0][0] if found else None

    # -- plan -----------------------------------------------------------------------------------

    def _plan_text(
        self, name: str, collections: Sequence[expected.Coll], phases: dict[str, Any] | None
    ) -> str:
        text = {
            "version": 1,
            "name": name,
            "source": {"adapter": "mysql", "url": "${MIGRATOR_SOURCE_URL}"},
            "target": {"adapter": "mongodb", "url": "${MIGRATOR_TARGET_URL}", "database": self.database},
            "collections": [c.plan_entry() for c in collections],
            "phases": phases or {"snapshot": {"parallel": 1}},
        }
        return json.dumps(text, indent=2)  # JSON is YAML

    def write_plan(self, collections: Sequence[expected.Coll], phases: dict[str, Any] | None = None) -> Path:
        self.collections = list(collections)
        self.plan_path.write_text(self._plan_text(self.name, collections, phases))
        return self.plan_path

    def preflight_of(self, collections: Sequence[expected.Coll], name: str) -> PreflightReport:
        from migrator import api

        path = self.directory / f"{name}.yaml"
        path.write_text(self._plan_text(name, collections, None))
        return api.plan(path, env=self.env)

    # -- run ------------------------------------------------------------------------------------

    def expected(self) -> dict[str, list[dict[str, Any]]]:
        with mysql_expected.reader(self.my_url) as conn:
            return {c.name: mysql_expected.documents(conn, c) for c in self.collections}

    def marker(self) -> int | None:
        """A marker's position; None while it cannot be written (the run has not created the
        markers table yet), the error kept for the timeout's message."""
        monitor = MysqlSource(self.my_url).monitor()
        try:
            return BinlogPositions.parse(monitor.heartbeat(MARKER_PREFIX, "step"))
        except MigratorError as exc:
            self.marker_error = exc
            return None
        finally:
            monitor.close()

    def step(self, *transactions: str | Sequence[str]) -> None:
        """Each item one transaction on the source (a string: one statement), then caught up."""
        with connect(self.my_url) as conn, conn.cursor() as cur:
            for txn in transactions:
                statements = [txn] if isinstance(txn, str) else list(txn)
                cur.execute("BEGIN")
                for statement in statements:
                    cur.execute(statement)
                cur.execute("COMMIT")
        self.catch_up()

    def fresh_run(self, label: str, collections: Sequence[expected.Coll]) -> None:
        """Another migration on the same databases (a run a step stops is gone): its own plan
        name, plan file and state file; planned (ready) and following."""
        self.stop_following()
        self.follower = None
        self.name = f"{self.base_name}_{label}"
        self.state_path = self.directory / f"{label}.db"
        self.plan_path = self.directory / f"{label}.yaml"
        self.write_plan(collections)
        self.assert_plan_ready()
        self.start()

    def close(self) -> None:
        self.stop_following()
        self.client.drop_database(self.database)
        self.client.close()
        with connect(self._admin_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")


def mysql_scenario_fixture(name: str) -> Callable[..., Iterator[MysqlScenario]]:
    """A module-scoped fixture building the module's MysqlScenario on the session's servers."""

    @pytest.fixture(scope="module")
    def fixture(
        mariadb_server: Any, mongo_server: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[MysqlScenario]:
        scenario = MysqlScenario(name, mariadb_server.url, mongo_server.url, tmp_path_factory.mktemp(name))
        try:
            yield scenario
        finally:
            scenario.close()

    return fixture
