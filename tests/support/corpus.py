"""The corpus harness: one migration per scenario module, followed step by step.

A scenario module creates a `Scenario` (module scope: a fresh PostgreSQL database and MongoDB
database on the session's servers, a plan directory and state file), sets up its schema, writes
the plan from `Coll` descriptions (tests/support/expected.py), checks `migrator plan`, and starts
`migrator run` (migrator.api.run on a thread, following CDC until stopped, exactly as the CLI
does). Each test is one step: it runs the upstream scenario's statements on the source, waits
until the target has applied them (a marker transaction, pg_logical_emit_message, committed
after the step must be at or below the CDC checkpoint the target keeps in `_migrator`), and
compares every collection with the documents tests/support/expected.py builds from SQL, down to
BSON types and key order. `verify()` runs `migrator verify --json` (the click command, in
process) against the live run and asserts that it agrees with that comparison.

The run itself (start, catch up by marker, stop) is tests/support/following.py's. Steps of a module share its migration, so a module's tests run in file order (pytest's default;
scripts/test distributes whole files).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import bson
import psycopg
import pymongo
import pytest
from bson import json_util
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli
from migrator.phases.preflight import PreflightReport
from tests.support import expected, json_output
from tests.support.docs import typed
from tests.support.following import Follower, Following
from tests.support.servers import create_pg_database, drop_pg_database, unique_name, with_database


class Scenario(Following):
    """One upstream scenario's migration: source and target databases, plan, state, run."""

    def __init__(self, name: str, pg_admin_url: str, mongo_admin_url: str, directory: Path) -> None:
        self.name = name
        self.database = unique_name(name, prefix="c")
        self._pg_admin_url = pg_admin_url
        create_pg_database(pg_admin_url, self.database)
        self.pg_url = with_database(pg_admin_url, self.database)
        self.mongo_url = with_database(mongo_admin_url, self.database)
        self.directory = directory
        self.plan_path = directory / f"{name}.yaml"
        self.state_path = directory / "state.db"
        self.collections: list[expected.Coll] = []
        self.follower: Follower | None = None
        self.client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.mongo_url, uuidRepresentation="standard", tz_aware=True, serverSelectionTimeoutMS=20_000
        )
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"MIGRATOR_SOURCE_URL": self.pg_url, "MIGRATOR_TARGET_URL": self.mongo_url}

    # -- source ---------------------------------------------------------------------------------

    def sql(self, *statements: str) -> None:
        """Each statement in its own transaction (autocommit)."""
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def transaction(self, *statements: str) -> None:
        """All statements in one transaction."""
        with psycopg.connect(self.pg_url) as conn, conn.transaction():
            for statement in statements:
                conn.execute(statement)

    # -- plan -----------------------------------------------------------------------------------

    def write_plan(self, collections: Sequence[expected.Coll], phases: dict[str, Any] | None = None) -> Path:
        self.collections = list(collections)
        text = {
            "version": 1,
            "name": self.name,
            "source": {"adapter": "postgres", "url": "${MIGRATOR_SOURCE_URL}"},
            "target": {"adapter": "mongodb", "url": "${MIGRATOR_TARGET_URL}", "database": self.database},
            "collections": [c.plan_entry() for c in collections],
            "phases": phases or {"snapshot": {"parallel": 1}},
        }
        # JSON is YAML: the plan loader reads it as any plan file.
        self.plan_path.write_text(json.dumps(text, indent=2))
        return self.plan_path

    def preflight(self) -> PreflightReport:
        return api.plan(self.plan_path, env=self.env)

    def preflight_of(self, collections: Sequence[expected.Coll], name: str) -> PreflightReport:
        """`migrator plan` of another plan on the same databases (the run's plan is untouched)."""
        path = self.directory / f"{name}.yaml"
        text = {
            "version": 1,
            "name": name,
            "source": {"adapter": "postgres", "url": "${MIGRATOR_SOURCE_URL}"},
            "target": {
                "adapter": "mongodb",
                "url": "${MIGRATOR_TARGET_URL}",
                "database": self.database + "_x",
            },
            "collections": [c.plan_entry() for c in collections],
        }
        path.write_text(json.dumps(text, indent=2))
        return api.plan(path, env=self.env)

    def assert_plan_ready(self) -> PreflightReport:
        report = self.preflight()
        failures = [f"{f.check} {f.subject}: {f.message} (fix: {f.fix})" for f in report.failures]
        assert not failures, "migrator plan refused:\n" + "\n".join(failures)
        return report

    # -- run ------------------------------------------------------------------------------------

    def applied(self) -> int | None:
        doc = self.client[self.database]["_migrator"].find_one({"_id": f"cdc:{self.name}"})
        return None if doc is None else int(doc["position"])

    # -- target and expectations ------------------------------------------------------------------

    def documents(self, collection: str) -> list[dict[str, Any]]:
        found = list(self.client[self.database][collection].find())
        return sorted(found, key=lambda d: bson.encode({"k": d["_id"]}))

    def expected(self) -> dict[str, list[dict[str, Any]]]:
        with expected.connect(self.pg_url) as conn:
            return {c.name: expected.documents(conn, c) for c in self.collections}

    def differences(
        self,
        *,
        only: Mapping[str, Iterable[str]] | None = None,
        skip: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Per collection, what differs between the target and the expected documents. `only`
        compares just these top-level fields of these collections (a known defect's own test);
        `skip` leaves fields out ("*": the whole collection), for the other steps while a known
        defect is open."""
        out: dict[str, list[str]] = {}
        for name, want in self.expected().items():
            if only is not None and name not in only:
                continue
            keep = set(only[name]) if only is not None else None
            drop = set(skip.get(name, ())) if skip else set()
            if "*" in drop:
                continue  # the whole collection
            got = {_key(d["_id"]): _select(d, keep, drop) for d in self.documents(name)}
            wanted = {_key(d["_id"]): _select(d, keep, drop) for d in want}
            problems = []
            for key in sorted(wanted.keys() - got.keys()):
                problems.append(f"missing {_show(wanted[key]['_id'])}")
            for key in sorted(got.keys() - wanted.keys()):
                problems.append(f"extra {_show(got[key]['_id'])}")
            for key in sorted(wanted.keys() & got.keys()):
                if typed(got[key]) != typed(wanted[key]):
                    problems.append(_explain(wanted[key], got[key]))
            if problems:
                out[name] = problems
        return out

    def assert_target(
        self,
        *,
        only: Mapping[str, Iterable[str]] | None = None,
        skip: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        problems = self.differences(only=only, skip=skip)
        assert not problems, "target differs from the documents built from SQL:\n" + "\n".join(
            f"{name}: {p}" for name, ps in problems.items() for p in ps[:10]
        )

    def verify(self) -> dict[str, Any]:
        """`migrator verify --json` while the run follows; asserts that it agrees with the
        documents built from SQL: the same verdict, and the same number of differing documents
        per collection."""
        result = CliRunner().invoke(
            cli, ["verify", str(self.plan_path), "--state", str(self.state_path), "--json"], env=self.env
        )
        assert result.exit_code in (0, 1), f"verify could not complete ({result.exit_code}): {result.output}"
        try:
            report = json_output.result(result.stdout)  # stderr holds the progress lines
        except (ValueError, AssertionError):
            pytest.fail(f"verify printed no report ({result.exit_code}): {result.output}{result.exception!r}")
        ours = self.differences()
        counts = {c.name: len(ds) for c in self.collections if (ds := ours.get(c.name))}
        theirs = {
            name: n
            for name, c in report["collections"].items()
            if (n := c["mismatched"] + c["missing"] + c["extra"] + c["unsettled"])
        }
        assert theirs == counts, (
            f"verify disagrees with the checker: verify {theirs}, checker {counts}\n{report}"
        )
        assert (result.exit_code == 0) == (not counts)
        sizes = {name: len(docs) for name, docs in self.expected().items()}
        checked = {name: c["checked"] - c["extra"] for name, c in report["collections"].items()}
        assert checked == sizes, f"verify checked {checked}, the source holds {sizes}"
        return dict(report)

    def close(self) -> None:
        self.stop_following()
        self.client.drop_database(self.database)
        self.client.close()
        drop_pg_database(self._pg_admin_url, self.database)


def _key(value: Any) -> bytes:
    return bson.encode({"k": value})


def _select(doc: dict[str, Any], keep: set[str] | None, drop: set[str]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k == "_id" or ((keep is None or k in keep) and k not in drop)}


def _show(value: Any) -> str:
    return json_util.dumps(value)


def _explain(want: dict[str, Any], got: dict[str, Any]) -> str:
    fields = []
    for name in dict.fromkeys([*want, *got]):
        if name not in got:
            fields.append(f"{name} missing")
        elif name not in want:
            fields.append(f"{name} extra")
        elif typed(got[name]) != typed(want[name]):
            fields.append(f"{name}: want {_short(want[name])} got {_short(got[name])}")
    if not fields and list(want) != list(got):
        fields.append(f"field order: want {list(want)} got {list(got)}")
    return f"_id {_show(want['_id'])}: " + "; ".join(fields)


def _short(value: Any) -> str:
    text = repr(typed(value))
    return text if len(text) < 300 else text[:300] + "..."


def scenario_fixture(name: str) -> Callable[..., Iterator[Scenario]]:
    """A module-scoped fixture building the module's Scenario on the session's servers."""

    @pytest.fixture(scope="module")
    def fixture(
        pg_server: Any, mongo_server: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Scenario]:
        scenario = Scenario(name, pg_server.url, mongo_server.url, tmp_path_factory.mktemp(name))
        try:
            yield scenario
        finally:
            scenario.close()

    return fixture
