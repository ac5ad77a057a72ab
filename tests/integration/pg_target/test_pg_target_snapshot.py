"""PostgreSQL -> PostgreSQL snapshot (docs/architecture.md, "Tables as collections"): target tables
created from the source's definitions, rows copied exactly, a second run idempotent.

The expectation is the source itself: the same query on both sides, read with plain psycopg."""

from __future__ import annotations

import pytest

from migrator import api
from migrator.adapters.base import RawColumn
from migrator.adapters.postgres import PostgresSource
from migrator.adapters.postgres_target import PostgresTarget
from migrator.engine.events import ChunkFinished
from tests.support.pg_target import COLUMNS_SQL, PRIMARY_KEY_SQL, PgToPg

SCHEMA = (
    """CREATE TABLE public.customers (
        id integer PRIMARY KEY,
        big bigint NOT NULL DEFAULT 0,
        amount numeric(12,2),
        exact numeric,
        name text NOT NULL,
        code varchar(10),
        raw bytea,
        seen timestamptz DEFAULT now(),
        wall timestamp,
        born date,
        doc jsonb,
        plain json,
        tags text[],
        nums integer[],
        uid uuid,
        flag boolean,
        ratio double precision,
        counter bigint DEFAULT nextval('customers_seq')
    )""",
    """CREATE TABLE public.orders (
        customer_id integer, line integer, total numeric(10,2) NOT NULL, note text,
        PRIMARY KEY (customer_id, line)
    )""",
)
ROWS = (
    """INSERT INTO customers VALUES
      (1, 9223372036854775807, 12345.67, 3.14159265358979323846264338327950288419716939937510,
       'Ann', 'A-1', '\\x00ff10'::bytea, '2024-02-29 12:34:56.123456+00', '1999-12-31 23:59:59.999999',
       '2000-01-01', '{"b": {"c": [1, 2.5, "x"]}, "a": null}', '[1, "two", {"3": 3}]',
       ARRAY['x', NULL, 'z'], ARRAY[1, -2, NULL], 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 1.5e-300, 7),
      (2, -1, NULL, NULL, 'Bob', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (3, 0, -0.01, 'NaN', '', '', ''::bytea, '1970-01-01 00:00:00+00', '0001-01-01 00:00:00', '9999-12-31',
       '"just a string"', '4.5', '{}', '{}', '00000000-0000-0000-0000-000000000000', false, 'Infinity', 0)""",
    "INSERT INTO customers (id, name) SELECT g, 'c' || g FROM generate_series(4, 2500) g",
    "INSERT INTO orders SELECT g % 50, g, g * 1.25, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END "
    "FROM generate_series(1, 3000) g",
)
TABLES = "- {from: public.customers}\n- {from: public.orders}"
SETTINGS = "snapshot: {parallel: 2, chunk_rows: 500}"


def _setup(pg2pg: PgToPg) -> None:
    pg2pg.source("CREATE SEQUENCE customers_seq", *SCHEMA, *ROWS)


def _same_rows(pg2pg: PgToPg, table: str, order: str) -> int:
    """Every row equal in its text form (exact: NaN equals NaN, JSON null differs from NULL)."""
    query = f"SELECT t::text FROM {table} t ORDER BY {order}"
    source, target = pg2pg.source_rows(query), pg2pg.target_rows(query)
    assert target == source
    return len(target)


def _copy_range_again(pg2pg: PgToPg, table: str, lo: list[str], hi: list[str]) -> int:
    """Copy the key range (lo, hi] of `table` (key customer_id, line) undecoded once more, as a
    retried chunk does: rows written."""
    source, target = PostgresSource(pg2pg.source_url), PostgresTarget(pg2pg.target_url)
    session = source.snapshot_session(None)
    reader = source.snapshot_reader(session.exported)
    try:
        info = source.inspect([table]).tables[table]
        columns = [RawColumn(c, c.name) for c in info.columns]
        writer = target.raw_writer(table, "postgresql-binary", columns)
        assert writer is not None
        key, types = ["customer_id", "line"], ["integer", "integer"]
        blocks = reader.raw_chunk(
            "postgresql-binary", table, [c.name for c in info.columns], key, types, lo, hi
        )
        return writer.replace_range(key, types, lo, hi, blocks)
    finally:
        reader.close()
        session.close()
        source.close()
        target.close()


def test_snapshot_creates_the_tables_and_copies_every_type_exactly(pg2pg: PgToPg) -> None:
    _setup(pg2pg)
    outcome, events = pg2pg.run(pg2pg.plan(TABLES, phases=SETTINGS))
    assert outcome.snapshot is not None and outcome.snapshot.documents == 2500 + 3000
    # Same built-in types on both sides: every chunk moved undecoded (binary COPY).
    chunks = events.of(ChunkFinished)
    assert len(chunks) > 2 and {c.form for c in chunks} == {"postgresql-binary"}
    assert sum(c.rows_read for c in chunks) == 2500 + 3000

    for table in ("public.customers", "public.orders"):
        assert pg2pg.target_rows(COLUMNS_SQL, [table]) == pg2pg.source_rows(COLUMNS_SQL, [table])
        assert pg2pg.target_rows(PRIMARY_KEY_SQL, [table]) == pg2pg.source_rows(PRIMARY_KEY_SQL, [table])
    # Defaults that name no other object are kept, and nextval's sequence is created, owned by its column.
    defaults = pg2pg.target_rows(
        "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
        "ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = 'public.customers'::regclass "
        "ORDER BY a.attnum"
    )
    assert defaults == [("big", "0"), ("seen", "now()"), ("counter", "nextval('customers_seq'::regclass)")]

    assert _same_rows(pg2pg, "customers", "id") == 2500
    assert _same_rows(pg2pg, "orders", "customer_id, line") == 3000
    # An independent spot check of values psycopg might bend alike on both sides.
    assert pg2pg.target_rows(
        "SELECT exact::text, seen::text, doc::text, raw FROM customers WHERE id = 1"
    ) == [
        (
            "3.14159265358979323846264338327950288419716939937510",
            "2024-02-29 12:34:56.123456+00",
            '{"a": null, "b": {"c": [1, 2.5, "x"]}}',
            b"\x00\xff\x10",
        )
    ]


def test_a_second_run_and_a_chunk_written_twice_leave_the_rows_as_they_were(pg2pg: PgToPg) -> None:
    _setup(pg2pg)
    plan = pg2pg.plan(TABLES, phases=SETTINGS)
    pg2pg.run(plan)
    pg2pg.run(plan)  # resumes: every chunk done, nothing copied twice
    assert _same_rows(pg2pg, "customers", "id") == 2500
    # A chunk copied again undecoded (a retry after a lost acknowledgement) replaces its key
    # range: a target row the source lacks in that range goes, none is doubled.
    pg2pg.target("INSERT INTO orders VALUES (7, 100000, 1, 'not in the source')")
    assert _copy_range_again(pg2pg, "public.orders", ["6", "100000"], ["7", "100000"]) == 60
    assert _same_rows(pg2pg, "orders", "customer_id, line") == 3000

    # A chunk copied again (a retry after a lost acknowledgement) replaces its rows.
    target = PostgresTarget(pg2pg.target_url)
    try:
        writer = target.writer("public.orders")
        batch = [
            (
                {"customer_id": 1, "line": 1},
                target.encode_document({"_id": {"customer_id": 1, "line": 1}, "total": 1, "note": "x"}, "o"),
            ),
            (
                {"customer_id": 0, "line": 9999},
                target.encode_document(
                    {"_id": {"customer_id": 0, "line": 9999}, "total": 2, "note": None}, "o"
                ),
            ),
        ]
        first = writer.write(batch)
        second = writer.write(batch)
    finally:
        target.close()
    assert (first.inserted, first.replaced) == (1, 1)
    assert (second.inserted, second.replaced) == (0, 2)
    assert pg2pg.target_rows("SELECT count(*) FROM orders") == [(3001,)]
    assert pg2pg.target_rows(
        "SELECT customer_id, line, total::text, note FROM orders WHERE (customer_id, line) IN ((1, 1), (0, 9999)) "
        "ORDER BY customer_id"
    ) == [(0, 9999, "2.00", None), (1, 1, "1.00", "x")]


def test_plan_shows_the_ddl_and_dry_run_creates_nothing(pg2pg: PgToPg) -> None:
    _setup(pg2pg)
    plan = pg2pg.plan(TABLES)
    report = api.plan(plan, env=pg2pg.env)
    assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]
    create = [s for s in report.target_schema if s.startswith("CREATE TABLE")]
    assert len(create) == 2
    assert '"id" integer NOT NULL' in create[0] and "PRIMARY KEY" not in create[0]
    assert '"amount" numeric(12,2)' in create[0] and '"code" character varying(10)' in create[0]
    # The primary keys are added after the copy, first (docs/architecture.md, "After the copy").
    after = [s.sql for s in report.post_copy.statements]
    assert after[:2] == [
        'CREATE UNIQUE INDEX "customers_pkey" ON "public"."customers" ("id"); '
        'ALTER TABLE "public"."customers" ADD CONSTRAINT "customers_pkey" PRIMARY KEY USING INDEX "customers_pkey"',
        'CREATE UNIQUE INDEX "orders_pkey" ON "public"."orders" ("customer_id", "line"); '
        'ALTER TABLE "public"."orders" ADD CONSTRAINT "orders_pkey" PRIMARY KEY USING INDEX "orders_pkey"',
    ]
    # No MongoDB hint about change streams, and nothing said to be missing.
    said = {f.check: f for f in report.findings if f.check.startswith("target.")}
    assert "target.capabilities" not in said
    assert said["target.change_streams"].severity.name == "OK"

    dry = api.dry_run(plan, env=pg2pg.env)
    listed = [a.description for a in dry.phases["snapshot"]]
    assert any("CREATE TABLE IF NOT EXISTS" in d for d in listed)
    assert pg2pg.target_rows("SELECT to_regclass('public.customers')") == [(None,)]


@pytest.mark.parametrize(
    ("tables", "check"),
    [("- {from: public.nokey}", "mapping.table_key"), ("- {from: public.missing}", "mapping.table_exists")],
)
def test_plan_refuses_a_table_without_primary_key_or_that_does_not_exist(
    pg2pg: PgToPg, tables: str, check: str
) -> None:
    pg2pg.source("CREATE TABLE nokey (a int, b text)")
    report = api.plan(pg2pg.plan(tables), env=pg2pg.env)
    assert check in [f.check for f in report.failures]


def test_json_values_keep_their_exact_form(pg2pg: PgToPg) -> None:
    pg2pg.source(
        "CREATE TABLE j (id int PRIMARY KEY, b jsonb, t json)",
        """INSERT INTO j VALUES (1, 'null', '{"b":1,  "a":4.50}'), (2, NULL, NULL), (3, '1.10', 'null')""",
        "CREATE TABLE k (id int PRIMARY KEY, t json)",
        """INSERT INTO k VALUES (1, '{"b":1,  "a":4.50}'), (2, NULL)""",
    )
    # A target table made beforehand with another type: the document path, the values' meaning kept.
    pg2pg.target("CREATE TABLE k (id int PRIMARY KEY, t jsonb)")
    _, events = pg2pg.run(pg2pg.plan("- {from: public.j}\n- {from: public.k}"))
    assert {(c.collection, c.form) for c in events.of(ChunkFinished)} == {
        ("public.j", "postgresql-binary"),
        ("public.k", ""),
    }
    assert _same_rows(pg2pg, "j", "id") == 3
    query = "SELECT id, t::jsonb FROM k ORDER BY id"
    assert pg2pg.target_rows(query) == pg2pg.source_rows(query) == [(1, {"a": 4.5, "b": 1}), (2, None)]


def test_name_fields_and_exclude_shape_the_target_table_and_rollback_removes_it(pg2pg: PgToPg) -> None:
    pg2pg.source(
        "CREATE TABLE public.people (id bigint PRIMARY KEY, full_name text NOT NULL, secret text, age smallint)",
        "INSERT INTO people VALUES (1, 'Ann', 'pw1', 30), (2, 'Bob', NULL, NULL)",
        "CREATE INDEX people_secret ON people (secret)",
        "CREATE INDEX people_name ON people (lower(full_name))",
        "CREATE UNIQUE INDEX people_id_age ON people (id, age)",
    )
    tables = "- {from: public.people, name: archive.persons, fields: {name: full_name, years: age}}"
    plan = pg2pg.plan(tables, name="shaped")
    # An index on a column left out or renamed is not built, and plan says why.
    report = api.plan(plan, env=pg2pg.env)
    said = {f.subject: f.message for f in report.findings if f.check == "target.after_copy"}
    assert set(said) == {
        "public.people.people_secret",
        "public.people.people_name",
        "public.people.people_id_age",
    }
    assert "secret of public.people, which the plan leaves out" in said["public.people.people_secret"]
    assert "full_name of public.people, which the plan renames" in said["public.people.people_name"]
    assert [s.sql for s in report.post_copy.statements] == [
        'CREATE UNIQUE INDEX "persons_pkey" ON "archive"."persons" ("id"); '
        'ALTER TABLE "archive"."persons" ADD CONSTRAINT "persons_pkey" PRIMARY KEY USING INDEX "persons_pkey"'
    ]
    _, events = pg2pg.run(plan)
    assert {c.form for c in events.of(ChunkFinished)} == {"postgresql-binary"}
    # The excluded column never leaves the source: the stream carries three fields a row.
    assert _fields_per_row(pg2pg, "public.people", ["id", "full_name", "age"]) == [3, 3]
    assert pg2pg.target_rows(COLUMNS_SQL, ["archive.persons"]) == [
        ("id", "bigint", True),
        ("name", "text", True),
        ("years", "smallint", False),
    ]
    assert pg2pg.target_rows("SELECT * FROM archive.persons ORDER BY id") == pg2pg.source_rows(
        "SELECT id, full_name, age FROM people ORDER BY id"
    )
    assert pg2pg.target_rows(PRIMARY_KEY_SQL, ["archive.persons"]) == [("id",)]

    api.rollback(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert pg2pg.target_rows("SELECT to_regclass('archive.persons')") == [(None,)]
    assert pg2pg.target_rows("SELECT count(*) FROM pg_tables WHERE schemaname = 'migrator'") == [(0,)]
    assert pg2pg.source_rows(
        "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
    ) == [(0,)]


def _fields_per_row(pg2pg: PgToPg, table: str, columns: list[str]) -> list[int]:
    """Each row's field count in the source's undecoded stream of `columns` (PostgreSQL's binary
    COPY format: an 11-byte signature, flags and extension length, then per row an int16 count
    and each field as an int32 length (-1: NULL) and its bytes; -1 ends the stream)."""
    source = PostgresSource(pg2pg.source_url)
    session = source.snapshot_session(None)
    reader = source.snapshot_reader(session.exported)
    try:
        data = b"".join(reader.raw_chunk("postgresql-binary", table, columns, ["id"], ["bigint"], None, None))
    finally:
        reader.close()
        session.close()
        source.close()
    at = 11 + 4 + 4 + int.from_bytes(data[15:19], "big")
    counts = []
    while (fields := int.from_bytes(data[at : at + 2], "big", signed=True)) != -1:
        counts.append(fields)
        at += 2
        for _ in range(fields):
            size = int.from_bytes(data[at : at + 4], "big", signed=True)
            at += 4 + max(size, 0)
    return counts


def test_undecoded_chunks_are_ten_times_the_default_where_the_plan_sets_no_size(pg2pg: PgToPg) -> None:
    pg2pg.source(
        "CREATE TABLE public.wide (id bigint PRIMARY KEY, v int)",
        "INSERT INTO wide SELECT g, g FROM generate_series(1, 25000) g",
        "ANALYZE wide",
    )
    _, events = pg2pg.run(pg2pg.plan("- {from: public.wide}", phases="snapshot: {parallel: 1}"))
    # The default chunk_rows (10,000) would cut 3 chunks; undecoded, 100,000 rows make one.
    chunks = events.of(ChunkFinished)
    assert [(c.rows_read, c.form) for c in chunks] == [(25000, "postgresql-binary")]
    assert _same_rows(pg2pg, "wide", "id") == 25000
