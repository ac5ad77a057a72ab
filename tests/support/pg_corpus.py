"""The corpus harness for a PostgreSQL target: one migration per scenario module, from a fresh
database on the session's PostgreSQL cluster to a fresh database on a second throwaway cluster
(`pg_target_server`), tables to tables (docs/architecture.md, "Tables as collections"), followed
step by step.

As tests/support/corpus.py does for MongoDB: a module-scoped `PgScenario` sets up the upstream
schema, writes a plan of `tables:` entries, checks `migrator plan`, starts `migrator run` following
CDC on a thread, and each test is a step: statements on the source, a wait until the target has
applied them (tests/support/following.py: a marker at or below the CDC checkpoint the target keeps
in `migrator.state`), and a comparison of each table. Steps of a module share its migration, so
its tests run in file order (scripts/test distributes whole files).

The expectation is independent of the code under test: each table's rows read on both servers as
text (each column as its output function writes it, as `t::text` does, ordered by the source's
primary key; with DateStyle, TimeZone, IntervalStyle, extra_float_digits, bytea_output and
lc_monetary pinned identically on both sessions), the columns being the source table's, in catalog
order, minus the ones the plan excludes, compared column by column; and the catalog facts the
PostgreSQL target promises (docs/architecture.md, "After the copy"): the primary key, secondary
indexes and constraints, foreign keys VALID on the target as on the source.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from migrator import api
from migrator.cli.main import cli
from migrator.errors import InternalError, MigratorError
from migrator.findings import Finding
from migrator.phases.preflight import PreflightReport
from migrator.plan.names import cdc_checkpoint_id
from tests.support import json_output
from tests.support.following import Follower, Following
from tests.support.servers import (
    create_pg_database,
    drop_pg_database,
    drop_replication_origins_since,
    replication_origins,
    shared_server,
    unique_name,
    with_database,
)

# The text settings pinned on both sessions before rows are read as text.
PINNED = (
    "SET DateStyle = 'ISO, YMD'",
    "SET TimeZone = 'UTC'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
    "SET lc_monetary = 'C'",
)

COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
KEY_SQL = """
SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n
"""
# A table's constraints other than NOT NULL: name, kind, definition, validated. Read with an
# empty search_path on both sides, so that every name is schema-qualified alike.
CONSTRAINTS_SQL = """
SELECT conname, contype::text, pg_get_constraintdef(oid), convalidated FROM pg_constraint
WHERE conrelid = %s::regclass ORDER BY conname
"""
# Indexes that back no constraint; `ON ONLY` (a partitioned table's own index) is the only word
# a plain table's index cannot have.
INDEXES_SQL = """
SELECT c.relname, replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
ORDER BY 1
"""


@dataclass
class Table:
    """A plan entry: `from` a source table, optionally excluding columns."""

    name: str  # schema.table, on both sides
    exclude: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def plan_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"from": self.name, **self.extra}
        if self.exclude:
            entry["exclude"] = list(self.exclude)
        return entry


class PgScenario(Following):
    """One scenario's migration: source and target databases (two clusters), plan, state, run."""

    def __init__(self, name: str, source_admin_url: str, target_admin_url: str, directory: Path) -> None:
        self.name = name
        self.database = unique_name(name, prefix="c")
        self._admins = (source_admin_url, target_admin_url)
        # Origins are the cluster's: the ones this scenario's runs make are dropped at close, on
        # clusters this worker alone uses.
        self._origins = [
            (admin, replication_origins(admin)) for admin in self._admins if not shared_server(admin)
        ]
        create_pg_database(source_admin_url, self.database)
        create_pg_database(target_admin_url, self.database)
        self.source_url = with_database(source_admin_url, self.database)
        self.pg_url = self.source_url  # the source, as Following names it
        self.target_url = with_database(target_admin_url, self.database)
        self.directory = directory
        self.plan_path = directory / f"{name}.yaml"
        self.state_path = directory / "state.db"
        self.switch_path = directory / "routing"
        self.tables: list[Table] = []
        self.follower: Follower | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"MIGRATOR_SOURCE_URL": self.source_url, "MIGRATOR_TARGET_URL": self.target_url}

    # -- statements -----------------------------------------------------------------------------

    def sql(self, *statements: str) -> None:
        """Each statement in its own transaction (autocommit), on the source."""
        _execute(self.source_url, statements)

    def target_sql(self, *statements: str) -> None:
        _execute(self.target_url, statements)

    def source_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return _pinned_rows(self.source_url, query, params)

    def target_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return _pinned_rows(self.target_url, query, params)

    def target_scalar(self, query: str, params: Sequence[Any] = ()) -> Any:
        """One value from the target (`scalar` reads the source)."""
        found = _pinned_rows(self.target_url, query, params)
        return found[0][0] if found else None

    def rows(self, table: str, key: str, *, target: bool = True) -> list[str]:
        """Every row of `table` as `t::text`, ordered by `key` (an SQL expression), on the target
        (or the source)."""
        schema, _, name = table.rpartition(".")
        query = sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
            sql.Identifier(schema or "public", name), sql.SQL(key)
        )
        return [str(r[0]) for r in _pinned_rows(self.target_url if target else self.source_url, query)]

    # -- plan -----------------------------------------------------------------------------------

    def _plan_text(self, name: str, tables: Sequence[Table], phases: Mapping[str, Any] | None) -> str:
        text = {
            "version": 1,
            "name": name,
            "source": {"adapter": "postgres", "url": "${MIGRATOR_SOURCE_URL}"},
            "target": {"adapter": "postgres", "url": "${MIGRATOR_TARGET_URL}"},
            "tables": [t.plan_entry() for t in tables],
            "phases": dict(phases or {"snapshot": {"parallel": 2}, "cdc": {"heartbeat_interval": "1s"}}),
        }
        return json.dumps(text, indent=2)  # JSON is YAML: the plan loader reads it as any plan file

    def write_plan(self, tables: Sequence[Table], phases: Mapping[str, Any] | None = None) -> Path:
        self.tables = list(tables)
        self.plan_path.write_text(self._plan_text(self.name, tables, phases))
        return self.plan_path

    def cutover_phases(self, margin: int) -> dict[str, Any]:
        return {
            "snapshot": {"parallel": 2},
            "cdc": {"heartbeat_interval": "1s"},
            "cutover": {
                "max_write_freeze": "10s",
                "retries": 2,
                "retry_pause": "0.2s",
                "sequence_margin": margin,
                "switch": {"kind": "file", "path": str(self.switch_path)},
            },
        }

    def preflight(self) -> PreflightReport:
        return api.plan(self.plan_path, env=self.env)

    def preflight_of(self, tables: Sequence[Table], name: str) -> PreflightReport:
        """`migrator plan` of another plan, `{name}.yaml` in the scenario's directory, on the same
        databases (the run's plan is untouched)."""
        path = self.directory / f"{name}.yaml"
        path.write_text(self._plan_text(name, tables, None))
        return api.plan(path, env=self.env)

    def assert_plan_ready(self) -> PreflightReport:
        report = self.preflight()
        failures = [f"{f.check} {f.subject}: {f.message} (fix: {f.fix})" for f in report.failures]
        assert not failures, "migrator plan refused:\n" + "\n".join(failures)
        return report

    # -- run ------------------------------------------------------------------------------------

    def applied(self) -> int | None:
        try:
            found = self.target_rows(
                "SELECT doc FROM migrator.state WHERE id = %s", [cdc_checkpoint_id(self.name)]
            )
        except psycopg.errors.UndefinedTable:
            return None
        if not found or found[0][0].get("position") is None:
            return None
        return int(found[0][0]["position"])

    # -- comparison -----------------------------------------------------------------------------

    def target_columns(self, table: Table) -> list[str]:
        """The source table's columns the plan carries: all but the excluded ones."""
        return [c for (c,) in self.source_rows(COLUMNS_SQL, [table.name]) if c not in table.exclude]

    def table_text(self, url: str, table: Table, columns: Sequence[str]) -> list[tuple[str | None, ...]]:
        """The table's rows in key order, each the text of `columns` (the key's first)."""
        key = [k for (k,) in self.source_rows(KEY_SQL, [table.name])]
        assert key, f"{table.name} has no primary key on the source"
        query = (
            f"SELECT {', '.join(_output_text(c) for c in columns)} FROM {table.name}"
            f" ORDER BY {', '.join(_quote(k) for k in key)}"
        )
        return [tuple(r) for r in _pinned_rows(url, query)]

    def differences(
        self,
        *,
        skip: Mapping[str, Iterable[str]] | None = None,
        only: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Per table, what differs between the target's rows and the source's, as text; and a target
        table whose columns are not the source's the plan carries. `skip` leaves columns out of the
        comparison (a known defect's, which its own test compares), `only` compares just these
        columns of these tables."""
        out: dict[str, list[str]] = {}
        for table in self.tables:
            if only is not None and table.name not in only:
                continue
            have = [c for (c,) in self.target_rows(COLUMNS_SQL, [table.name])]
            want_columns = self.target_columns(table)
            if have != want_columns:
                out[table.name] = [f"columns: want {want_columns} got {have}"]
                continue
            key = [k for (k,) in self.source_rows(KEY_SQL, [table.name])]
            dropped = set((skip or {}).get(table.name, ()))
            kept = set(only[table.name]) if only is not None else set(want_columns)
            columns = key + [c for c in want_columns if c in kept and c not in dropped and c not in key]
            want = self.table_text(self.source_url, table, columns)
            got = self.table_text(self.target_url, table, columns)
            if want != got:
                out[table.name] = _diff(columns, want, got)
        return out

    def assert_same(
        self,
        *,
        skip: Mapping[str, Iterable[str]] | None = None,
        only: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        problems = self.differences(skip=skip, only=only)
        assert not problems, "target rows differ from the source's:\n" + "\n".join(
            f"{name}: {p}" for name, ps in problems.items() for p in ps[:8]
        )

    def catalog(self, url: str, table: str) -> dict[str, Any]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET search_path = ''")
            return {
                "key": [r[0] for r in conn.execute(KEY_SQL, [table])],
                "constraints": [tuple(r) for r in conn.execute(CONSTRAINTS_SQL, [table])],
                "indexes": [tuple(r) for r in conn.execute(INDEXES_SQL, [table])],
            }

    # -- verify ---------------------------------------------------------------------------------

    def verify(self, skip: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
        """`migrator verify --json` (the click command); asserts it agrees with the text comparison
        (less `skip`'s columns, a known defect's): the same verdict, and every source row checked.
        Without `skip`, also that both find the tables equal."""
        result = CliRunner().invoke(
            cli, ["verify", str(self.plan_path), "--state", str(self.state_path), "--json"], env=self.env
        )
        assert result.exit_code in (0, 1), f"verify could not complete ({result.exit_code}): {result.output}"
        try:
            report = json_output.result(result.stdout)
        except (ValueError, AssertionError):
            pytest.fail(f"verify printed no report ({result.exit_code}): {result.output}{result.exception!r}")
        ours = self.differences(skip=skip)
        theirs = {
            name: n
            for name, c in report["collections"].items()
            if (n := c["mismatched"] + c["missing"] + c["extra"] + c["unsettled"])
        }
        assert sorted(theirs) == sorted(ours), (
            f"verify disagrees: verify {theirs}, text comparison {ours}\n{report}"
        )
        assert (result.exit_code == 0) == (not ours)
        if not skip:
            assert not ours, "target rows differ from the source's:\n" + "\n".join(
                f"{name}: {p}" for name, ps in ours.items() for p in ps[:8]
            )
            assert report["verdict"] == "equal", report
        sizes = {t.name: self.source_rows(f"SELECT count(*) FROM {t.name}")[0][0] for t in self.tables}
        checked = {name: c["checked"] - c["extra"] for name, c in report["collections"].items()}
        assert checked == sizes, f"verify checked {checked}, the source holds {sizes}"
        return dict(report)

    def close(self) -> None:
        self.stop_following()
        drop_pg_database(self._admins[0], self.database)
        drop_pg_database(self._admins[1], self.database)
        for admin, before in self._origins:
            drop_replication_origins_since(admin, before)


def _pinned_rows(url: str, query: str | sql.Composable, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A query's rows, on a session with the pinned text settings."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in PINNED:
            conn.execute(statement)  # type: ignore[call-overload]
        return list(conn.execute(query, list(params)).fetchall())  # type: ignore[call-overload]


def refusals(report: PreflightReport) -> dict[str, list[Finding]]:
    """The plan's failures by subject; each must give a fix."""
    out: dict[str, list[Finding]] = {}
    for finding in report.failures:
        assert finding.fix, f"{finding.check} {finding.subject} gives no fix: {finding.message}"
        out.setdefault(finding.subject, []).append(finding)
    return out


def assert_diagnosed(stopped: BaseException | None, *names: str) -> None:
    """A run that stops on purpose names the objects and says what to do; an internal error
    (a defect of migrator) is no diagnosis."""
    assert isinstance(stopped, MigratorError) and not isinstance(stopped, InternalError), repr(stopped)
    for name in names:
        assert name in str(stopped), f"{name} not named: {stopped!r}"
    assert stopped.hint, repr(stopped)


def _execute(url: str, statements: Sequence[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[call-overload]


def _output_text(column: str) -> str:
    """A column's value as its type's output function writes it (as `t::text` writes each column
    of a row; a cast to text differs for xml and inet), NULL kept NULL."""
    return f"CASE WHEN {_quote(column)} IS NOT NULL THEN concat({_quote(column)}) END"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _diff(columns: list[str], want: list[tuple[Any, ...]], got: list[tuple[Any, ...]]) -> list[str]:
    """Row by row in key order (the first column is the key's or part of it): the columns that differ."""
    problems = [f"{len(want)} rows on the source, {len(got)} on the target"] if len(want) != len(got) else []
    for w, g in zip(want, got, strict=False):
        if w != g:
            fields = [
                f"{c}: want {a!r:.120} got {b!r:.120}"
                for c, a, b in zip(columns, w, g, strict=True)
                if a != b
            ]
            problems.append(f"row {w[:1]}: " + "; ".join(fields))
    return problems


def pg_scenario_fixture(name: str) -> Callable[..., Iterator[PgScenario]]:
    """A module-scoped fixture building the module's PgScenario on the session's two clusters."""

    @pytest.fixture(scope="module")
    def fixture(
        pg_server: Any, pg_target_server: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[PgScenario]:
        scenario = PgScenario(name, pg_server.url, pg_target_server.url, tmp_path_factory.mktemp(name))
        try:
            yield scenario
        finally:
            scenario.close()

    return fixture
