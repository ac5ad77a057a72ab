"""The `pg2pg` fixture: a migration from a fresh database on the session's PostgreSQL cluster to a
fresh database on a second throwaway cluster (a PostgreSQL target: docs/architecture.md, "Tables
as collections"), and reading both sides with plain psycopg.

Registered through `pytest_plugins` in tests/conftest.py.
"""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from migrator import api
from migrator.engine.events import Collector
from migrator.operations.run import RunOutcome, Until
from migrator.phases.verify import VerifyReport
from tests.support.servers import (
    ExternalServer,
    PgServer,
    create_pg_database,
    drop_pg_database,
    drop_replication_origins_since,
    replication_origins,
    start_pg,
    unique_name,
    with_database,
)

# What a column is, as pg_dump would write it: name, declared type, NOT NULL.
COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
PRIMARY_KEY_SQL = """
SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n
"""


@dataclass
class PgToPg:
    """One test's source database, target database (on another cluster), plans and state file."""

    source_url: str
    target_url: str
    tmp_path: Path

    @property
    def state_path(self) -> Path:
        return self.tmp_path / "state.db"

    @property
    def target_database(self) -> str:
        return str(psycopg.conninfo.conninfo_to_dict(self.target_url)["dbname"])

    @property
    def env(self) -> dict[str, str]:
        return {"MIGRATOR_SOURCE_URL": self.source_url, "MIGRATOR_TARGET_URL": self.target_url}

    def source(self, *statements: str) -> None:
        _execute(self.source_url, statements)

    def target(self, *statements: str) -> None:
        _execute(self.target_url, statements)

    def source_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return _rows(self.source_url, query, params)

    def target_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return _rows(self.target_url, query, params)

    def plan(self, tables: str, *, name: str = "pg2pg", phases: str = "") -> Path:
        path = self.tmp_path / f"{name}.yaml"
        text = (
            "version: 1\n"
            f"name: {name}\n"
            "source: {adapter: postgres, url: '${MIGRATOR_SOURCE_URL}'}\n"
            "target: {adapter: postgres, url: '${MIGRATOR_TARGET_URL}'}\n"
            "tables:\n" + textwrap.indent(textwrap.dedent(tables).strip() + "\n", "  ")
        )
        if phases:
            text += "phases:\n" + textwrap.indent(textwrap.dedent(phases).strip() + "\n", "  ")
        path.write_text(text)
        return path

    def cutover_plan(self, tables: str, *, name: str) -> tuple[Path, Path]:
        """A plan that cuts over through a routing file (with reverse sync, a 5 s freeze at most):
        the plan's path and the routing file's."""
        switch = self.tmp_path / "routing"
        phases = f"cutover: {{max_write_freeze: 5s, switch: {{kind: file, path: '{switch}'}}}}"
        return self.plan(tables, name=name, phases=phases), switch

    def run(self, plan: Path, until: Until = "snapshot") -> tuple[RunOutcome, Collector]:
        collector = Collector()
        outcome = api.run(plan, until=until, state=self.state_path, sinks=[collector], env=self.env)
        return outcome, collector


def verify_pg2pg(
    pg2pg: PgToPg, plan: Path, *, repair: bool = False, row_by_row: bool = False
) -> VerifyReport:
    """`migrator verify` of `plan` through the api; `row_by_row`: a sample of every key (sample
    1.0), which takes the document path alone (sampled ranges are never hashed, as hashing reads
    the whole range)."""
    overrides: dict[str, Any] = {"mode": "sample", "sample": 1.0} if row_by_row else {}
    return api.verify(
        plan, repair=repair, state=pg2pg.state_path, env=pg2pg.env, sinks=[Collector()], **overrides
    )


def drop_source_role(pg2pg: PgToPg, role: str) -> None:
    """Drop a test's LOGIN role on the source's cluster, and before it what the role left in the
    source database: its runs' replication slots and the objects it owns."""
    pg2pg.source(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()",
        f"DROP OWNED BY {role}",
    )
    pg2pg.source(f"DROP ROLE {role}")


def assert_verifies_equal(pg2pg: PgToPg, plan: Path, rows: int) -> None:
    """`migrator verify` of `plan` row by row and by checksums: `rows` checked, all equal."""
    for report in (verify_pg2pg(pg2pg, plan, row_by_row=True), verify_pg2pg(pg2pg, plan)):
        assert (report.verdict, report.totals.checked, report.totals.equal) == ("equal", rows, rows), (
            report.to_dict()
        )


def assert_verify_finds_and_repairs(
    pg2pg: PgToPg,
    plan: Path,
    expected: dict[Any, tuple[str, list[str]]],
    read: Callable[[str], list[tuple[Any, ...]]],
) -> None:
    """Verify of a tampered target, row by row and by checksums, reports `expected` ({key: (kind,
    [differing paths])}); `--repair` repairs those rows, after which `read("target")` equals
    `read("source")` and verify finds both sides equal."""
    for report in (verify_pg2pg(pg2pg, plan, row_by_row=True), verify_pg2pg(pg2pg, plan)):
        assert report.verdict == "different"
        found = {m.id: (m.kind, [d.path for d in m.diffs]) for m in report.mismatches}
        assert found == expected, report.to_dict()
    repaired = verify_pg2pg(pg2pg, plan, repair=True)
    assert repaired.verdict == "equal" and repaired.totals.repaired == len(expected), repaired.to_dict()
    assert read("target") == read("source")
    for report in (verify_pg2pg(pg2pg, plan, row_by_row=True), verify_pg2pg(pg2pg, plan)):
        assert report.verdict == "equal", report.to_dict()


def as_role(url: str, role: str) -> str:
    """`url` connecting as `role`, without a password (the test clusters trust local connections)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{role}@{parts.netloc.rpartition('@')[2]}", *parts[2:]))


def run_caught_up(plan: Path, state: Path, env: dict[str, str]) -> None:
    """`migrator run --until caught-up`, stopped after 120 s at the latest (a safety net only: the
    run ends by itself)."""
    stop = threading.Event()
    timer = threading.Timer(120, stop.set)
    timer.start()
    try:
        api.run(plan, until="caught-up", state=state, env=env, stop=stop)
    finally:
        timer.cancel()


def _execute(url: str, statements: Sequence[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[call-overload]


def _rows(url: str, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return list(conn.execute(query, list(params)).fetchall())  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def pg_target_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer | ExternalServer]:
    """A second throwaway PostgreSQL cluster (wal_level=logical), the target: always local, so
    that source and target are two clusters even with MIGRATOR_TEST_PG_URL set."""
    server = start_pg(tmp_path_factory.mktemp("pg_target"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mariadb_pg_urls(
    mysql_url: str, pg_target_server: PgServer, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str]]:
    """A fresh MariaDB database (mysql_url) and a fresh database on pg_target_server: source and
    target URLs."""
    dbname = unique_name(request.node.name, prefix="tgt")
    origins = replication_origins(pg_target_server.url)
    create_pg_database(pg_target_server.url, dbname)
    try:
        yield mysql_url, with_database(pg_target_server.url, dbname)
    finally:
        drop_pg_database(pg_target_server.url, dbname)
        drop_replication_origins_since(pg_target_server.url, origins)


@pytest.fixture
def pg2pg(
    pg_url: str, pg_target_server: PgServer, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[PgToPg]:
    dbname = unique_name(request.node.name, prefix="tgt")
    origins = replication_origins(pg_target_server.url)
    create_pg_database(pg_target_server.url, dbname)
    try:
        yield PgToPg(pg_url, with_database(pg_target_server.url, dbname), tmp_path)
    finally:
        drop_pg_database(pg_target_server.url, dbname)
        drop_replication_origins_since(pg_target_server.url, origins)


@dataclass
class TargetCustomers:
    """The target's `customers` as tests/support/routed_app.py's App writes it (its MongoDB
    `update_one`), on a PostgreSQL target: the application writing there after cutover."""

    url: str

    def update_one(self, where: dict[str, Any], update: dict[str, Any]) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "UPDATE customers SET name = %s WHERE id = %s", [update["$set"]["name"], where["_id"]]
            )
