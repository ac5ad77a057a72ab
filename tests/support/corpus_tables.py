"""The corpus harness for a PostgreSQL target: one migration per scenario module, followed step by
step, tables to tables (docs/architecture.md, "Tables as collections").

A module creates a `TableScenario` (module scope: a fresh database on the session's PostgreSQL
cluster, the source, and one on the second cluster, `pg_target_server`, the target), sets up its
schema, writes a plan of `tables:` entries, checks `migrator plan` and starts `migrator run`
following CDC (migrator.api.run on a thread, as the CLI does). Each test is a step: statements on
the source, a wait until the target has applied them (a marker transaction committed after the
step, pg_logical_emit_message, at or below the CDC checkpoint the target keeps in
`migrator.state`), and a comparison of every mapped table on both servers.

The expectation is the source itself, read as text independently of migrator's code: each row as
`ROW(columns)::text` over the source's columns (catalog order, minus those the plan leaves out),
ordered by the key, with DateStyle, TimeZone, IntervalStyle, extra_float_digits and bytea_output
pinned on both sessions; the same query on the target table.

The run (start, catch up by marker, stop) is tests/support/following.py's. Steps of a module
share its migration, so its tests run in file order (scripts/test distributes whole files).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
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
from tests.support.servers import create_pg_database, drop_pg_database, unique_name, with_database

PINNED = (
    "SET DateStyle = 'ISO, YMD'",
    "SET TimeZone = 'UTC'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)
# A source table's columns as the row's text reads them: ordinary, not dropped, in attnum order.
_COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


@dataclass
class Mapped:
    """One `tables:` entry and how its rows are compared."""

    source: str  # schema.table
    key: tuple[str, ...]  # what rows are ordered by on both sides
    target: str = ""  # schema.table; default: the source's
    exclude: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the plan entry

    @property
    def target_table(self) -> str:
        return self.target or self.source

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"from": self.source, **self.extra}
        if self.target:
            entry["name"] = self.target
        if self.exclude:
            entry["exclude"] = list(self.exclude)
        return entry


def _pinned(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    for statement in PINNED:
        conn.execute(statement)  # type: ignore[call-overload]
    return conn


def table_text(url: str, table: str, columns: Sequence[str], key: Sequence[str]) -> list[str]:
    """Every row of `table` as `ROW(columns)::text`, ordered by `key`, in a pinned session."""
    schema, _, name = table.rpartition(".")
    query = sql.SQL("SELECT ROW({})::text FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.Identifier(schema or "public", name),
        sql.SQL(", ").join(sql.Identifier(k) for k in key),
    )
    with _pinned(url) as conn:
        return [str(r[0]) for r in conn.execute(query).fetchall()]


def assert_diagnosed(stopped: BaseException | None, *names: str) -> None:
    """A run that stops on purpose names the objects and says what to do; an internal error
    (a defect of migrator) is no diagnosis."""
    assert isinstance(stopped, MigratorError) and not isinstance(stopped, InternalError), repr(stopped)
    for name in names:
        assert name in str(stopped), f"{name} not named: {stopped!r}"
    assert stopped.hint, repr(stopped)


class TableScenario(Following):
    """One upstream scenario's migration to a PostgreSQL target."""

    def __init__(self, name: str, source_admin: str, target_admin: str, directory: Path) -> None:
        self.name = name
        self.database = unique_name(name, prefix="ct")
        self._admins = (source_admin, target_admin)
        create_pg_database(source_admin, self.database)
        create_pg_database(target_admin, self.database)
        self.pg_url = with_database(source_admin, self.database)
        self.target_url = with_database(target_admin, self.database)
        self.directory = directory
        self.plan_path = directory / f"{name}.yaml"
        self.state_path = directory / "state.db"
        self.tables: list[Mapped] = []
        self.follower: Follower | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"MIGRATOR_SOURCE_URL": self.pg_url, "MIGRATOR_TARGET_URL": self.target_url}

    # -- the two servers --------------------------------------------------------------------------

    def sql(self, *statements: str) -> None:
        """On the source, each statement in its own transaction (autocommit)."""
        _execute(self.pg_url, statements)

    def target_sql(self, *statements: str) -> None:
        _execute(self.target_url, statements)

    def target_scalar(self, query: str, params: Sequence[Any] = ()) -> Any:
        return _scalar(self.target_url, query, params)

    # -- plan -------------------------------------------------------------------------------------

    def _plan_text(self, name: str, tables: Sequence[Mapped], phases: dict[str, Any] | None) -> str:
        text = {
            "version": 1,
            "name": name,
            "source": {"adapter": "postgres", "url": "${MIGRATOR_SOURCE_URL}"},
            "target": {"adapter": "postgres", "url": "${MIGRATOR_TARGET_URL}"},
            "tables": [t.entry() for t in tables],
            "phases": phases or {"snapshot": {"parallel": 1}},
        }
        return json.dumps(text, indent=2)  # JSON is YAML

    def write_plan(self, tables: Sequence[Mapped], phases: dict[str, Any] | None = None) -> Path:
        self.tables = list(tables)
        self.plan_path.write_text(self._plan_text(self.name, tables, phases))
        return self.plan_path

    def preflight(self) -> PreflightReport:
        return api.plan(self.plan_path, env=self.env)

    def preflight_of(self, tables: Sequence[Mapped], name: str) -> PreflightReport:
        """`migrator plan` of another plan on the same databases (the run's plan is untouched)."""
        path = self.directory / f"{name}.yaml"
        path.write_text(self._plan_text(name, tables, None))
        return api.plan(path, env=self.env)

    def assert_plan_ready(self) -> PreflightReport:
        report = self.preflight()
        failures = [f"{f.check} {f.subject}: {f.message} (fix: {f.fix})" for f in report.failures]
        assert not failures, "migrator plan refused:\n" + "\n".join(failures)
        return report

    # -- run (tests/support/following.py) -------------------------------------------------------

    def applied(self) -> int | None:
        try:
            doc = self.target_scalar(
                "SELECT doc FROM migrator.state WHERE id = %s", [cdc_checkpoint_id(self.name)]
            )
        except psycopg.errors.UndefinedTable:
            return None
        return None if doc is None or doc.get("position") is None else int(doc["position"])

    # -- comparison -------------------------------------------------------------------------------

    def columns(self, mapped: Mapped, *, target: bool = False) -> list[str]:
        """The source table's columns the target must hold (catalog order, minus the excluded);
        `target`: the target table's columns."""
        schema, _, name = (mapped.target_table if target else mapped.source).rpartition(".")
        regclass = sql.Identifier(schema or "public", name).as_string(None)
        with psycopg.connect(self.target_url if target else self.pg_url, autocommit=True) as conn:
            rows = conn.execute(_COLUMNS_SQL, [regclass]).fetchall()
        return [str(r[0]) for r in rows if target or r[0] not in mapped.exclude]

    def differences(self, only: Sequence[str] | None = None) -> dict[str, str]:
        """Per target table whose rows differ from the source's: the first differences."""
        out: dict[str, str] = {}
        for mapped in self.tables:
            if only is not None and mapped.source not in only:
                continue
            columns = self.columns(mapped)
            held = self.columns(mapped, target=True)
            if sorted(held) != sorted(columns):
                out[mapped.target_table] = f"the target has columns {held}, the source {columns}"
                continue
            want = table_text(self.pg_url, mapped.source, columns, mapped.key)
            got = table_text(self.target_url, mapped.target_table, columns, mapped.key)
            if want != got:
                out[mapped.target_table] = _explain(want, got)
        return out

    def assert_same(self, only: Sequence[str] | None = None) -> None:
        problems = self.differences(only)
        assert not problems, "target rows differ from the source's:\n" + "\n".join(
            f"{table}: {text}" for table, text in problems.items()
        )

    def verify(self) -> dict[str, Any]:
        """`migrator verify --json` (the click command) while the run follows: it must find what
        the text comparison finds, every source row checked and none different."""
        self.assert_same()
        result = CliRunner().invoke(
            cli, ["verify", str(self.plan_path), "--state", str(self.state_path), "--json"], env=self.env
        )
        try:
            report = json_output.result(result.stdout)  # stderr holds the progress lines
        except (ValueError, AssertionError):
            pytest.fail(f"verify printed no report ({result.exit_code}): {result.output}{result.exception!r}")
        assert result.exit_code == 0, f"verify found differences the rows do not have: {report}"
        sizes = {m.target_table: len(table_text(self.pg_url, m.source, m.key, m.key)) for m in self.tables}
        checked = {name: c["checked"] for name, c in report["collections"].items()}
        assert checked == sizes, f"verify checked {checked}, the source holds {sizes}"
        return dict(report)

    def rows(self, table: str, key: str, *, target: bool = True) -> list[str]:
        url = self.target_url if target else self.pg_url
        schema, _, name = table.rpartition(".")
        query = sql.SQL("SELECT t::text FROM {} t ORDER BY {}").format(
            sql.Identifier(schema or "public", name), sql.SQL(key)
        )
        with _pinned(url) as conn:
            return [str(r[0]) for r in conn.execute(query).fetchall()]

    def close(self) -> None:
        self.stop_following()
        source_admin, target_admin = self._admins
        drop_pg_database(source_admin, self.database)
        drop_pg_database(target_admin, self.database)


def refusals(report: PreflightReport) -> dict[str, list[Finding]]:
    """The plan's failures by subject; each must give a fix."""
    out: dict[str, list[Finding]] = {}
    for finding in report.failures:
        assert finding.fix, f"{finding.check} {finding.subject} gives no fix: {finding.message}"
        out.setdefault(finding.subject, []).append(finding)
    return out


def _explain(want: list[str], got: list[str]) -> str:
    missing = [r for r in want if r not in set(got)]
    extra = [r for r in got if r not in set(want)]
    text = f"{len(want)} rows on the source, {len(got)} on the target"
    if missing:
        text += "; missing " + ", ".join(_short(r) for r in missing[:5])
    if extra:
        text += "; extra " + ", ".join(_short(r) for r in extra[:5])
    if not missing and not extra:
        text += "; same rows, another order or count"
    return text


def _short(text: str) -> str:
    return text if len(text) < 200 else text[:200] + "..."


def _execute(url: str, statements: Sequence[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[call-overload]


def _scalar(url: str, query: str, params: Sequence[Any]) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, list(params)).fetchone()  # type: ignore[call-overload]
    return None if row is None else row[0]


def table_scenario(name: str) -> Callable[..., Iterator[TableScenario]]:
    """A module-scoped fixture building the module's TableScenario on the session's servers."""

    @pytest.fixture(scope="module")
    def fixture(
        pg_server: Any, pg_target_server: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[TableScenario]:
        scenario = TableScenario(name, pg_server.url, pg_target_server.url, tmp_path_factory.mktemp(name))
        try:
            yield scenario
        finally:
            scenario.close()

    return fixture
