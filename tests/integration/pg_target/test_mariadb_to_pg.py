"""MariaDB -> PostgreSQL (issue 16): target tables created through the type table
(migrator/adapters/postgres_target/column_types.py), the snapshot of every portable type and of
each MySQL-only type, then CDC (insert, update, delete, a key change) applied; `migrator verify`
finding the untouched copy equal (although the two readers give BIGINT UNSIGNED, TIME and CHAR in
other forms), naming damage done to the target in those types, and `--repair` putting it back;
a plan that cuts over from MariaDB into PostgreSQL accepted by `plan` (test_mariadb_pg_cutover.py
runs one).

The expectation is written here by hand from the values the test inserts: the PostgreSQL column
type each MySQL column must get, and the Python value psycopg reads back from it (a TIME as a
timedelta, BIGINT UNSIGNED as a Decimal, a SET as a list, a zero date as NULL); never from
migrator's type table or mapping.
"""

from __future__ import annotations

import datetime
import json
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrator import api
from tests.support.mariadb import connect
from tests.support.portable_types import COLUMNS, NAMES, ROWS, table_ddl
from tests.support.runs import ApiRun, streaming
from tests.support.servers import (
    PgServer,
    create_pg_database,
    drop_pg_database,
    drop_replication_origins_since,
    replication_origins,
    unique_name,
    with_database,
)
from tests.support.sources import MYSQL_TYPES

UTC = datetime.UTC

# The portable columns' target types (tests/support/sources.py MYSQL_TYPES spells the source's).
PORTABLE_TYPES = {
    "c_smallint": "smallint",
    "c_integer": "integer",
    "c_bigint": "bigint",
    "c_decimal": "numeric(12,3)",
    "c_real": "real",
    "c_double": "double precision",
    "c_flag": "boolean",  # BOOLEAN is TINYINT(1); the plan's types: {c_flag: bool}
    "c_varchar": "character varying(40)",
    "c_char": "character(5)",
    "c_text": "text",
    "c_date": "date",
    "c_ts": "timestamp(6) without time zone",
    "c_tstz": "timestamp(6) with time zone",
    "c_time": "interval(0)",
    "c_bytes": "bytea",
    "c_json": "jsonb",
}


def _portable(kind: str, value: Any) -> Any:
    """What PostgreSQL holds for a portable value the test inserted (as psycopg reads it)."""
    if value is None:
        return None
    if kind == "timestamptz":
        return value.replace(tzinfo=UTC)  # inserted in a UTC session: that instant
    if kind == "time":
        return datetime.timedelta(hours=value.hour, minutes=value.minute, seconds=value.second)
    if kind == "json":
        return json.loads(value)
    return value


def _portable_row(values: Sequence[Any]) -> dict[str, Any]:
    row = {name: _portable(kind, v) for (name, _, kind), v in zip(COLUMNS, values, strict=True)}
    if row["c_char"] is not None:
        row["c_char"] = row["c_char"].ljust(5)  # character(5) holds it blank-padded
    return row


# MySQL-only types: column, MySQL DDL, the target's type, whether the target column is NOT NULL.
EXTRAS: tuple[tuple[str, str, str, bool], ...] = (
    ("u64", "BIGINT UNSIGNED", "numeric(20,0)", False),
    ("u8", "TINYINT UNSIGNED", "integer", False),
    ("m24", "MEDIUMINT", "integer", False),
    ("u32", "INT UNSIGNED NOT NULL", "bigint", True),
    ("y", "YEAR", "smallint", False),
    ("d65", "DECIMAL(65,30)", "numeric(65,30)", False),
    ("dt3", "DATETIME(3)", "timestamp(3) without time zone", False),
    ("t6", "TIME(6)", "interval(6)", False),
    ("e", "ENUM('small','large')", "text", False),
    ("s", "SET('a','b','c')", "text[]", False),
    ("b5", "BIT(5)", "bit(5)", False),
    ("bin4", "BINARY(4)", "bytea", False),
    ("blb", "BLOB", "bytea", False),
    ("lt", "LONGTEXT", "text", False),
    # NOT NULL at the source, but a zero date arrives as NULL (zero_dates: "null"): it takes NULL.
    ("zd", "DATETIME NOT NULL", "timestamp(0) without time zone", False),
)
EXTRA_NAMES = tuple(name for name, _, _, _ in EXTRAS)
BIG = Decimal("12345678901234567890123456789012345.123456789012345678901234567890")
# (inserted, expected on the target) per row, in EXTRAS order.
EXTRA_ROWS: dict[int, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
    1: (
        (
            18446744073709551615,
            255,
            -8388608,
            4294967295,
            2155,
            BIG,
            "9999-12-31 23:59:59.999",
            "-838:59:59.000000",
            "large",
            "a,c",
            0b10101,
            b"ab",
            b"\x00\x01",
            "✓" * 3,
            "0000-00-00 00:00:00",
        ),
        (
            Decimal(18446744073709551615),
            255,
            -8388608,
            4294967295,
            2155,
            BIG,
            datetime.datetime(9999, 12, 31, 23, 59, 59, 999000),
            -datetime.timedelta(hours=838, minutes=59, seconds=59),
            "large",
            ["a", "c"],
            "10101",
            b"ab\x00\x00",
            b"\x00\x01",
            "✓" * 3,
            None,
        ),
    ),
    2: (
        (
            0,
            0,
            8388607,
            0,
            1901,
            -BIG,
            "1000-01-01 00:00:00",
            "838:59:59.999999",
            "small",
            "",
            0,
            b"\x00",
            b"",
            "",
            "2024-02-29 12:00:00",
        ),
        (
            Decimal(0),
            0,
            8388607,
            0,
            1901,
            -BIG,
            datetime.datetime(1000, 1, 1),
            datetime.timedelta(hours=838, minutes=59, seconds=59, microseconds=999999),
            "small",
            [],
            "00000",
            b"\x00\x00\x00\x00",
            b"",
            "",
            datetime.datetime(2024, 2, 29, 12),
        ),
    ),
    3: (
        (
            None,
            None,
            None,
            7,
            None,
            None,
            None,
            "-00:00:00.000001",
            None,
            None,
            None,
            None,
            None,
            None,
            "1999-01-01 00:00:00",
        ),
        (
            None,
            None,
            None,
            7,
            None,
            None,
            None,
            -datetime.timedelta(microseconds=1),
            None,
            None,
            None,
            None,
            None,
            None,
            datetime.datetime(1999, 1, 1),
        ),
    ),
}
EXTRAS_DDL = (
    "CREATE TABLE extras (id INT PRIMARY KEY, " + ", ".join(f"{n} {t}" for n, t, _, _ in EXTRAS) + ")"
)
PLAN = """\
version: 1
name: maria2pg
source: {{adapter: mysql, url: "{source}", zero_dates: "null"}}
target: {{adapter: postgres, url: "{target}"}}
tables:
  - {{from: {db}.things, name: public.things, types: {{c_flag: bool}}}}
  - {{from: {db}.extras, name: public.extras}}
"""


@dataclass
class MariaToPg:
    source_url: str
    target_url: str
    tmp_path: Path

    def source(self, *statements: str) -> None:
        self.transaction(statements)

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join(["%s"] * len(rows[0]))
        self.transaction([f"INSERT INTO {table} VALUES ({marks})"] * len(rows), rows)

    def transaction(self, statements: Sequence[str], params: Sequence[Sequence[Any]] = ()) -> None:
        """`statements` in one transaction (`params`: the parameters of each), in a UTC session
        that writes a zero date as it is given (sql_mode '')."""
        with connect(self.source_url) as conn, conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00', sql_mode = ''")
            cur.execute("BEGIN")
            for i, statement in enumerate(statements):
                cur.execute(statement, params[i] if params else None)
            cur.execute("COMMIT")

    def target(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.target_url, autocommit=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            return list(conn.execute(query, list(args)).fetchall())  # type: ignore[call-overload]

    def plan(self, text: str = PLAN) -> Path:
        path = self.tmp_path / "maria2pg.yaml"
        database = self.source_url.rsplit("/", 1)[1]
        path.write_text(
            textwrap.dedent(text).format(source=self.source_url, target=self.target_url, db=database)
        )
        return path


@pytest.fixture
def m2p(
    mysql_url: str, pg_target_server: PgServer, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[MariaToPg]:
    dbname = unique_name(request.node.name, prefix="tgt")
    origins = replication_origins(pg_target_server.url)
    create_pg_database(pg_target_server.url, dbname)
    try:
        yield MariaToPg(mysql_url, with_database(pg_target_server.url, dbname), tmp_path)
    finally:
        drop_pg_database(pg_target_server.url, dbname)
        drop_replication_origins_since(pg_target_server.url, origins)


COLUMN_TYPES_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def _rows(m2p: MariaToPg, table: str, names: Sequence[str]) -> dict[int, dict[str, Any]]:
    found = m2p.target(f"SELECT id, {', '.join(names)} FROM public.{table} ORDER BY id")
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in found}


def _extras(expected: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(EXTRA_NAMES, expected, strict=True))


def _failures(report: Any) -> list[tuple[str, str, str]]:
    return [(f.check, f.subject, f.message) for f in report.failures]


def test_mariadb_tables_reach_postgresql_through_the_type_table(m2p: MariaToPg) -> None:
    m2p.source(table_ddl(MYSQL_TYPES, "things"), EXTRAS_DDL)
    m2p.insert("things", [(k, *ROWS[k - 1]) for k in (1, 2, 3)])
    m2p.insert("extras", [(k, *inserted) for k, (inserted, _) in EXTRA_ROWS.items()])
    plan = m2p.plan()

    # `plan` shows the DDL the run executes.
    report = api.plan(plan, env={})
    assert report.ready, _failures(report)
    things_ddl, extras_ddl = (s for s in report.target_schema if s.startswith("CREATE TABLE"))
    assert '"c_flag" boolean,' in things_ddl and '"c_time" interval(0),' in things_ddl
    assert '"u64" numeric(20,0),' in extras_ddl and '"u32" bigint NOT NULL,' in extras_ddl
    assert '"zd" timestamp(0) without time zone\n)' in extras_ddl  # zero dates arrive as NULL

    state = m2p.tmp_path / "state.db"
    outcome = api.run(plan, until="snapshot", state=state, env={})
    assert outcome.snapshot is not None and outcome.snapshot.documents == 6

    assert m2p.target(COLUMN_TYPES_SQL, ["public.things"]) == [
        ("id", "integer", True),
        *((name, PORTABLE_TYPES[name], False) for name in NAMES),
    ]
    assert m2p.target(COLUMN_TYPES_SQL, ["public.extras"]) == [
        ("id", "integer", True),
        *((name, target, not_null) for name, _, target, not_null in EXTRAS),
    ]
    things = {k: _portable_row(ROWS[k - 1]) for k in (1, 2, 3)}
    extras = {k: _extras(expected) for k, (_, expected) in EXTRA_ROWS.items()}
    assert _rows(m2p, "things", NAMES) == things
    assert _rows(m2p, "extras", EXTRA_NAMES) == extras

    # CDC: an insert of each table, updates (a zero date among them), a delete, a key change.
    m2p.insert("things", [(4, *ROWS[0])])
    m2p.insert("extras", [(4, *EXTRA_ROWS[2][0])])
    m2p.transaction(
        [
            "UPDATE things SET c_text = 'changed', c_flag = 1, c_time = '-00:00:00' WHERE id = 2",
            "UPDATE things SET id = 10 WHERE id = 1",
            "UPDATE extras SET t6 = '-12:00:00.5', s = 'b,c', u64 = 18446744073709551614, "
            "zd = '0000-00-00 00:00:00' WHERE id = 3",
            "DELETE FROM extras WHERE id = 2",
        ]
    )
    outcome = api.run(plan, until="caught-up", state=state, env={})
    assert outcome.cdc is not None and outcome.cdc.caught_up

    things[4] = _portable_row(ROWS[0])
    things[2].update(c_text="changed", c_flag=True, c_time=datetime.timedelta(0))
    things[10] = things.pop(1)
    extras[4] = _extras(EXTRA_ROWS[2][1])
    extras[3].update(
        t6=-datetime.timedelta(hours=12, microseconds=500000),
        s=["b", "c"],
        u64=Decimal(18446744073709551614),
        zd=None,
    )
    del extras[2]
    assert _rows(m2p, "things", NAMES) == dict(sorted(things.items()))
    assert _rows(m2p, "extras", EXTRA_NAMES) == dict(sorted(extras.items()))


def test_a_type_postgresql_cannot_declare_is_refused_by_plan_and_its_fix_runs(m2p: MariaToPg) -> None:
    m2p.source(
        "CREATE TABLE things (id INT PRIMARY KEY, c0 CHAR(0), v VARCHAR(3))",
        "CREATE TABLE extras (id INT PRIMARY KEY)",
    )
    report = api.plan(m2p.plan(), env={})
    (refused,) = [f for f in report.failures if f.check == "target.schema"]
    assert "c0" in refused.message and refused.fix is not None and "exclude: [c0]" in refused.fix

    fixed = PLAN.replace("types: {{c_flag: bool}}", "exclude: [c0]")
    report = api.plan(m2p.plan(fixed), env={})
    assert report.ready, _failures(report)
    assert any('"v" character varying(3)' in s for s in report.target_schema)


def _load(m2p: MariaToPg) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """The test's tables and rows at the source; what the target must hold of them."""
    m2p.source(table_ddl(MYSQL_TYPES, "things"), EXTRAS_DDL)
    m2p.insert("things", [(k, *ROWS[k - 1]) for k in (1, 2, 3)])
    m2p.insert("extras", [(k, *inserted) for k, (inserted, _) in EXTRA_ROWS.items()])
    things = {k: _portable_row(ROWS[k - 1]) for k in (1, 2, 3)}
    extras = {k: _extras(expected) for k, (_, expected) in EXTRA_ROWS.items()}
    return things, extras


def _found(report: Any) -> dict[tuple[str, Any], tuple[str, list[str]]]:
    return {(m.collection, m.id): (m.kind, [d.path for d in m.diffs]) for m in report.mismatches}


# Damage done to the target with plain SQL, each in a type whose values the two readers give in
# different forms (character, interval, numeric(20,0), text[]), and what verify must name.
DAMAGE = (
    # A varchar with blanks added differs: only a character(n) value's blanks are its padding.
    "UPDATE things SET c_time = c_time + interval '1 second', c_varchar = c_varchar || '  ' "
    "WHERE id = 1 RETURNING 1",
    "UPDATE things SET c_char = 'zz' WHERE id = 2 RETURNING 1",
    "UPDATE extras SET u64 = u64 - 1, s = '{a}' WHERE id = 1 RETURNING 1",
    "DELETE FROM extras WHERE id = 3 RETURNING 1",
)
DAMAGED = {
    ("public.things", 1): ("mismatched", ["c_time", "c_varchar"]),
    ("public.things", 2): ("mismatched", ["c_char"]),
    ("public.extras", 1): ("mismatched", ["s.1", "u64"]),  # {a,c} -> {a}: element 1 gone
    ("public.extras", 3): ("missing", []),
}


def test_verify_finds_mariadb_rows_equal_in_postgresql_and_repair_puts_back_a_change(m2p: MariaToPg) -> None:
    things, extras = _load(m2p)
    plan = m2p.plan(PLAN + "phases: {{verify: {{settle_timeout: 120s}}}}\n")
    state = m2p.tmp_path / "state.db"
    api.run(plan, until="caught-up", state=state, env={})
    assert _rows(m2p, "things", NAMES) == things and _rows(m2p, "extras", EXTRA_NAMES) == extras

    # Untouched: every row equal, although the two readers give some types in other forms.
    report = api.verify(plan, state=state, env={}, mode="sample", sample=1.0)
    assert (report.verdict, report.totals.checked, report.totals.equal) == ("equal", 6, 6), report.to_dict()

    # A difference is confirmed once CDC has applied the source's position: a run follows.
    follower = streaming(ApiRun("m2p-follow", plan, "stopped", state, {}))
    try:
        for statement in DAMAGE:
            m2p.target(statement)
        report = api.verify(plan, state=state, env={})
        assert report.verdict == "different"
        assert {k: (kind, sorted(paths)) for k, (kind, paths) in _found(report).items()} == DAMAGED, (
            report.to_dict()
        )
        repaired = api.verify(plan, repair=True, state=state, env={})
        assert repaired.totals.repaired == len(DAMAGED), repaired.to_dict()
    finally:
        follower.finish()
    assert _rows(m2p, "things", NAMES) == things and _rows(m2p, "extras", EXTRA_NAMES) == extras
    again = api.verify(plan, state=state, env={})
    assert (again.verdict, again.totals.equal) == ("equal", 6), again.to_dict()


CUTOVER = 'phases: {{cutover: {{switch: {{kind: file, path: "{switch}"}}}}}}\n'


def test_a_cutover_from_mariadb_into_postgresql_is_accepted_by_plan(m2p: MariaToPg) -> None:
    """Cutover from MariaDB into PostgreSQL is supported (test_mariadb_pg_cutover.py runs it): a
    plan with a cutover section is ready, with no `target.cutover` refusal."""
    m2p.source(
        "CREATE TABLE things (id INT PRIMARY KEY, v VARCHAR(3))", "CREATE TABLE extras (id INT PRIMARY KEY)"
    )
    switch = str(m2p.tmp_path / "routing").replace("{", "{{").replace("}", "}}")
    report = api.plan(
        m2p.plan(PLAN.replace("types: {{c_flag: bool}}", "") + CUTOVER.replace("{switch}", switch)), env={}
    )
    assert report.ready, _failures(report)
    assert [f for f in report.findings if f.check == "target.cutover"] == []
