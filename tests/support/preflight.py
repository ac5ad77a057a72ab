"""Helpers for tests of `migrator plan` (preflight): write a plan, run it, pick findings.

`Setup` bundles one test's source database, target database and plan directory; `fix_statements`
splits a finding's fix into the SQL alternatives it offers, so that a test can run each one on a
real server and check that the finding is gone (a fix must be a statement PostgreSQL accepts).

Fixtures (registered for every test through `pytest_plugins` in tests/conftest.py): `setup`, a
`Setup` over the test's fresh databases; `mongo`, a client of the test's MongoDB server.
"""

from __future__ import annotations

import json
import re
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest

from migrator import api
from migrator.engine.events import Collector
from migrator.findings import Finding
from migrator.phases.preflight import PreflightReport


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


@dataclass
class Setup:
    """One test's source database, target database and plan directory."""

    pg_url: str
    mongo_url: str
    database: str
    tmp_path: Path

    def sql(self, *statements: str, url: str | None = None) -> None:
        execute(url or self.pg_url, *statements)

    def scalar(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        return scalar(self.pg_url, query, params)

    def plan_file(self, collections: str, *, name: str = "preflight-test", target: str = "mongodb") -> Path:
        """`target`: the target adapter (a PostgreSQL target's URL then goes in `target_url`)."""
        path = self.tmp_path / f"plan_{uuid.uuid4().hex[:8]}.yaml"
        # A PostgreSQL target takes its database from the URL.
        database = f", database: {self.database}" if target == "mongodb" else ""
        header = (
            "version: 1\n"
            f"name: {name}\n"
            "source: {adapter: postgres, url: '${MIGRATOR_SOURCE_URL}'}\n"
            f"target: {{adapter: {target}, url: '${{MIGRATOR_TARGET_URL}}'{database}}}\n"
            f"{'collections' if target == 'mongodb' else 'tables'}:\n"
        )
        path.write_text(header + textwrap.indent(textwrap.dedent(collections).strip() + "\n", "  "))
        return path

    def env(self, source_url: str | None = None, target_url: str | None = None) -> dict[str, str]:
        return {
            "MIGRATOR_SOURCE_URL": source_url or self.pg_url,
            "MIGRATOR_TARGET_URL": target_url or self.mongo_url,
        }

    def run(self, collections: str, name: str, until: str = "snapshot") -> Collector:
        """`migrator run` of a plan with these `collections`, to `until`, with its own state file;
        the events it emitted."""
        events = Collector()
        api.run(
            self.plan_file(collections, name=name),
            until=until,  # type: ignore[arg-type]
            state=self.tmp_path / f"{name}.db",
            sinks=[events],
            env=self.env(),
        )
        return events

    def plan(
        self,
        collections: str,
        *,
        source_url: str | None = None,
        target_url: str | None = None,
        name: str = "preflight-test",
        target: str = "mongodb",
    ) -> PreflightReport:
        """Write a plan with these `collections` (YAML list text) and run preflight on it."""
        plan_file = self.plan_file(collections, name=name, target=target)
        return api.plan(plan_file, env=self.env(source_url, target_url))


def findings(report: PreflightReport, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


def one(report: PreflightReport, check: str, subject: str | None = None) -> Finding:
    """The single finding of `check` (about `subject`); fails listing what there is otherwise."""
    found = [f for f in findings(report, check) if subject is None or f.subject == subject]
    assert len(found) == 1, (check, subject, report.findings)
    return found[0]


def failed_checks(report: PreflightReport) -> list[tuple[str, str]]:
    return sorted((f.check, f.subject) for f in report.failures)


def leaks(report: PreflightReport, secret: str) -> bool:
    text = json.dumps(report.to_dict(), default=str)
    return secret in text or any(
        secret in str(value) for f in report.findings for value in f.to_dict().values()
    )


_REMARK = re.compile(r"\s*\([^;]*\)\s*$")


def fix_statements(fix: str | None) -> list[str]:
    """The SQL alternatives a fix offers ("A; or B; or as a last resort, C;"), each as the text
    to run; alternatives that are not SQL (a plan change) are left out."""
    assert fix is not None
    found = []
    for alternative in fix.split(" or "):
        text = alternative.strip()
        text = text.removeprefix("as a last resort, ").removeprefix(
            "if it need not fire for replicated writes: "
        )
        text = _REMARK.sub("", text)
        if re.match(r"^(ALTER|CREATE|DROP) ", text):
            found.append(text)
    return found


@pytest.fixture
def setup(pg_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path) -> Setup:
    return Setup(pg_url, mongo_url, mongo_db_name, tmp_path)


@pytest.fixture
def mongo(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=10_000
    )
    try:
        yield client
    finally:
        client.close()
