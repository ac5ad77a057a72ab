"""The plan's type choices on a real MariaDB: `types: {col: bool}` on TINYINT(1) columns (a root's
and an embed's) and `zero_dates: "null"`, through the real snapshot and CDC phases into the
MongoDB-compatible test server: rows written before the snapshot and the same values written after
it (through the binlog) give the same documents, built here by hand. Preflight refuses a 2 in a
cast column (its fix runs), counts zero dates, and reverse sync writes true/false back as 1/0."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql.values import ZeroDateRefused
from migrator.adapters.registry import source_for
from migrator.engine.context import RunContext
from migrator.engine.events import EventBus
from migrator.findings import Finding, Severity
from migrator.mapping.inverse import inverses
from migrator.mapping.spec import resolve
from migrator.mapping.types import CastError
from migrator.phases.preflight import Preflight
from migrator.phases.snapshot import SnapshotPhase
from migrator.plan import load_plan
from migrator.plan.models import Plan
from migrator.plan.names import slot_name
from migrator.state import SQLiteStateStore
from tests.support.mariadb import connect
from tests.support.phase_runs import claimed_run, follow_until_caught_up

PLAN = """\
version: 1
source: {{adapter: mysql, url: "{source}"{zero_dates}}}
target: {{adapter: mongodb, url: "{mongo}", database: {database}}}
collections:
  - name: accounts
    from: {schema}.accounts
    key: id
    types: {{active: bool}}
    embed:
      - as: prefs
        from: {schema}.prefs
        on: {{account_id: id}}
        order_by: id
        types: {{on_: bool}}
"""

# Written with sql_mode '' (MariaDB's default refuses nothing here; the session says so anyway).
ACCOUNTS = (
    "CREATE TABLE accounts (id INT PRIMARY KEY, active TINYINT(1) NULL, born DATE NULL, "
    "seen DATETIME NULL, ts TIMESTAMP NULL, n TINYINT(1) NULL)"
)
PREFS = "CREATE TABLE prefs (id INT PRIMARY KEY, account_id INT NOT NULL, on_ TINYINT(1) NOT NULL)"
# Per account: (active, born, seen, ts, n); `n` is a TINYINT(1) the plan leaves an integer.
VALUES: dict[int, tuple[Any, ...]] = {
    1: (1, "0000-00-00", "2024-00-10 10:00:00", "0000-00-00 00:00:00", 7),
    2: (0, "2024-02-29", "2024-01-02 03:04:05", "2024-01-02 03:04:05", 0),
    3: (None, None, None, None, None),
}
PREF_VALUES = {1: [0, 1], 2: [1], 3: []}


def _write(url: str, offset: int) -> None:
    """Accounts 1-3 (+offset), each with its prefs, one transaction each."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        for account, values in VALUES.items():
            cur.execute("BEGIN")
            cur.execute("INSERT INTO accounts VALUES (%s, %s, %s, %s, %s, %s)", [account + offset, *values])
            for i, on in enumerate(PREF_VALUES[account]):
                cur.execute(
                    "INSERT INTO prefs VALUES (%s, %s, %s)",
                    [(account + offset) * 10 + i, account + offset, on],
                )
            cur.execute("COMMIT")


def _expected(offset: int) -> list[dict[str, Any]]:
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5)
    fields = {
        1: {"active": True, "born": None, "seen": None, "ts": None, "n": 7},
        2: {"active": False, "born": datetime.datetime(2024, 2, 29), "seen": moment, "ts": moment, "n": 0},
        3: {"active": None, "born": None, "seen": None, "ts": None, "n": None},
    }
    return [
        {
            "_id": account + offset,
            **fields[account],
            "prefs": [
                {"id": (account + offset) * 10 + i, "on_": bool(on)}
                for i, on in enumerate(PREF_VALUES[account])
            ],
        }
        for account in VALUES
    ]


def _schema(url: str) -> str:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(ACCOUNTS)
        cur.execute(PREFS)
        cur.execute("SELECT DATABASE()")
        return str(cur.fetchone()[0])


def _plan(
    tmp_path: Path, mysql_url: str, mongo_url: str, database: str, schema: str, zero_dates: str
) -> Plan:
    path = tmp_path / "plan.yaml"
    option = f", zero_dates: {zero_dates}" if zero_dates else ""
    path.write_text(
        PLAN.format(source=mysql_url, mongo=mongo_url, database=database, schema=schema, zero_dates=option)
    )
    return load_plan(path)


@contextlib.contextmanager
def _snapshot(
    mysql_url: str, mongo_url: str, database: str, tmp_path: Path, schema: str, zero_dates: str
) -> Iterator[RunContext]:
    """The real snapshot phase of the plan, done; the context CDC follows with."""
    plan = _plan(tmp_path, mysql_url, mongo_url, database, schema, zero_dates)
    source = source_for("mysql", mysql_url, **plan.source.options)
    target = MongoTarget(mongo_url, database)
    tables = [f"{schema}.accounts", f"{schema}.prefs"]
    with SQLiteStateStore(tmp_path / "state.db") as store:
        try:
            info = source.inspect(tables)
            resolution = resolve(plan.collections, info)
            assert resolution.collections and resolution.ok, resolution.findings
            run_id = "0123456789abcdef"
            run = claimed_run(store, target, plan.name, run_id=run_id, slot=slot_name(plan.name, run_id))
            ctx = RunContext(plan, run, store, EventBus(), source, target, info, resolution.collections)
            assert not SnapshotPhase(ctx).run().stopped
            yield ctx
        finally:
            target.close()
            source.close()


def test_bools_and_zero_dates_are_the_same_from_the_snapshot_and_the_binlog(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    schema = _schema(mysql_url)
    _write(mysql_url, 0)
    with _snapshot(mysql_url, mongo_url, mongo_db_name, tmp_path, schema, '"null"') as ctx:
        _write(mysql_url, 100)  # the same values again, through the binlog
        followed = follow_until_caught_up(ctx)
    assert followed.caught_up and not followed.stopped
    with MongoClient(mongo_url) as client:
        documents = list(client[mongo_db_name]["accounts"].find().sort("_id", 1))
    assert documents == _expected(0) + _expected(100)
    assert [type(d["n"]) for d in documents if d["n"] is not None] == [int, int, int, int]


@pytest.mark.parametrize(
    ("statement", "error", "said"),
    [
        ("INSERT INTO accounts (id, active) VALUES (9, 2)", CastError, "{schema}.accounts.active holds 2"),
        (
            "INSERT INTO accounts (id, born) VALUES (9, '2024-05-00')",
            ZeroDateRefused,
            "in {schema}.accounts.born from",
        ),
    ],
    ids=["bool-cast-2", "zero-date"],
)
def test_a_value_the_plan_cannot_carry_written_after_the_snapshot_stops_cdc_naming_the_column(
    mysql_url: str,
    mongo_url: str,
    mongo_db_name: str,
    tmp_path: Path,
    statement: str,
    error: type[Exception],
    said: str,
) -> None:
    schema = _schema(mysql_url)
    with _snapshot(mysql_url, mongo_url, mongo_db_name, tmp_path, schema, "") as ctx:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute(statement)
        with pytest.raises(error) as stopped:
            follow_until_caught_up(ctx)
    assert said.format(schema=schema) in str(stopped.value)


def _preflight(plan: Plan, mysql_url: str, mongo_url: str, database: str) -> list[Finding]:
    source = source_for("mysql", mysql_url, **plan.source.options)
    target = MongoTarget(mongo_url, database)
    try:
        return Preflight(plan, source, target).run().findings
    finally:
        target.close()
        source.close()


def _found(findings: list[Finding], check: str) -> list[tuple[Severity, str]]:
    return sorted((f.severity, f.subject) for f in findings if f.check == check)


def test_preflight_refuses_other_values_counts_zero_dates_and_its_fix_works(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    schema = _schema(mysql_url)
    _write(mysql_url, 0)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO accounts (id, active) VALUES (4, 2), (5, -1)")
    accounts, prefs = f"{schema}.accounts", f"{schema}.prefs"

    refused = _plan(tmp_path, mysql_url, mongo_url, mongo_db_name, schema, "")
    findings = _preflight(refused, mysql_url, mongo_url, mongo_db_name)
    cast = [f for f in findings if f.check == "mapping.type_cast"]
    assert _found(findings, "mapping.type_cast") == sorted(
        [(Severity.OK, f"{prefs}.on_"), (Severity.FAIL, f"{accounts}.active")]
    )
    failed = next(f for f in cast if f.severity is Severity.FAIL)
    assert "2 row(s)" in failed.message
    # Without zero_dates, each column holding one fails (1 row each); the TINYINT(1) left an
    # integer is noted, naming the option; the cast ones are not.
    assert _found(findings, "source.zero_date") == [
        (Severity.FAIL, f"{accounts}.{c}") for c in ("born", "seen", "ts")
    ]
    tinyint = [f for f in findings if f.check == "source.tinyint1"]
    assert [(f.severity, f.subject) for f in tinyint] == [(Severity.INFO, f"{accounts}.n")]
    assert tinyint[0].fix is not None and "types: {n: bool}" in tinyint[0].fix

    assert failed.fix is not None
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(failed.fix.rsplit(": ", 1)[1])  # the UPDATE it gives
        cur.execute("SELECT id, active FROM accounts WHERE id IN (4, 5) ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(4, 1), (5, 1)]

    mapped = _plan(tmp_path, mysql_url, mongo_url, mongo_db_name, schema, '"null"')
    findings = _preflight(mapped, mysql_url, mongo_url, mongo_db_name)
    assert _found(findings, "mapping.type_cast") == [
        (Severity.OK, f"{accounts}.active"),
        (Severity.OK, f"{prefs}.on_"),
    ]
    zero = [f for f in findings if f.check == "source.zero_date"]
    assert sorted((f.severity, f.subject) for f in zero) == [
        (Severity.INFO, f"{accounts}.{c}") for c in ("born", "seen", "ts")
    ]
    assert all("1 row(s)" in f.message and "cannot restore a zero date" in f.message for f in zero)

    # A NOT NULL column cannot take the null reverse sync would write: a warning, whose fix runs.
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("ALTER TABLE accounts ADD COLUMN due DATE NOT NULL DEFAULT '0000-00-00'")
    findings = _preflight(mapped, mysql_url, mongo_url, mongo_db_name)
    (due,) = [f for f in findings if f.subject == f"{accounts}.due"]
    assert (due.check, due.severity) == ("source.zero_date", Severity.WARN)
    assert "5 row(s)" in due.message and "NOT NULL" in due.message
    assert due.fix is not None
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(due.fix.split(";", 1)[0])
    findings = _preflight(mapped, mysql_url, mongo_url, mongo_db_name)
    (due,) = [f for f in findings if f.subject == f"{accounts}.due"]
    assert due.severity is Severity.INFO


def test_reverse_sync_writes_bools_as_one_and_zero_and_keeps_zero_dates_under_null(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    schema = _schema(mysql_url)
    _write(mysql_url, 0)
    plan = _plan(tmp_path, mysql_url, mongo_url, mongo_db_name, schema, '"null"')
    source = source_for("mysql", mysql_url, **plan.source.options)
    # Accounts 1 and 2 as MongoDB holds them (1's zero dates null), then changed there: 1's bools
    # flip, 2's dates are set to null.
    changed = [
        {
            "_id": 1,
            "active": False,
            "born": None,
            "seen": None,
            "ts": None,
            "n": 7,
            "prefs": [{"id": 10, "on_": True}, {"id": 11, "on_": False}],
        },
        {
            "_id": 2,
            "active": True,
            "born": None,
            "seen": None,
            "ts": None,
            "n": 0,
            "prefs": [{"id": 20, "on_": False}],
        },
    ]
    try:
        info = source.inspect([f"{schema}.accounts", f"{schema}.prefs"])
        resolution = resolve(plan.collections, info)
        inverse = inverses(resolution.collections)["accounts"]
        writer = source.reverse_writer("shop", "migrator_reverse_shop")
        writer.setup()
        try:
            writer.apply([inverse.rows(d) for d in changed], None)
        finally:
            writer.close()
    finally:
        source.close()
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SELECT id, active, born, seen, ts, n FROM accounts WHERE id IN (1, 2) ORDER BY id")
        # A zero date the row holds stays (no document value can restore one); elsewhere null is NULL.
        assert [tuple(r) for r in cur.fetchall()] == [
            (1, 0, "0000-00-00", "2024-00-10 10:00:00", "0000-00-00 00:00:00", 7),
            (2, 1, None, None, None, 0),
        ]
        cur.execute("SELECT id, on_ FROM prefs WHERE account_id IN (1, 2) ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [(10, 1), (11, 0), (20, 0)]
