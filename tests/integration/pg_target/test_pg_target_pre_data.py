"""PostgreSQL -> PostgreSQL pre-data (docs/architecture.md, "Tables as collections"): the enum
types the columns use created before the tables, a type of the same name with other labels or a
kind migrator cannot create refused by `plan`, and identity and serial columns keeping a sequence
that cutover's set_sequences moves past the source's values.

The expectations are written out here (labels, values), read back from the target with psycopg."""

from __future__ import annotations

import psycopg

from migrator import api
from migrator.adapters.postgres_target.sequences import set_sequences
from tests.support.pg_target import PgToPg

SOURCE = (
    "CREATE TYPE customer_status AS ENUM ('new', 'active', 'gone')",
    "ALTER TYPE customer_status ADD VALUE 'vip' BEFORE 'active'",  # sort order differs from oid order
    """CREATE TABLE customers (
        id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        status customer_status NOT NULL,
        history customer_status[]
    )""",
    "CREATE SCHEMA kinds",  # a schema the target lacks
    "CREATE DOMAIN kinds.score AS integer NOT NULL CHECK (VALUE >= 0)",
    "CREATE TABLE notes (id bigserial PRIMARY KEY, body text, points kinds.score DEFAULT 0)",
    "INSERT INTO customers (status, history) VALUES ('new', '{new}'), ('vip', '{new,vip,active}')",
    "INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')",
)
TABLES = "- {from: public.customers}\n- {from: public.notes}"
LABELS = "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'customer_status'::regtype ORDER BY enumsortorder"


def test_enum_columns_are_created_copied_and_followed(pg2pg: PgToPg) -> None:
    pg2pg.source(*SOURCE)
    plan = pg2pg.plan(TABLES)
    report = api.plan(plan, env=pg2pg.env)
    assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]
    assert any("CREATE TYPE" in s and "customer_status" in s for s in report.target_schema)

    pg2pg.run(plan)
    assert pg2pg.target_rows(LABELS) == [("new",), ("vip",), ("active",), ("gone",)]
    pg2pg.source("INSERT INTO customers (status, history) VALUES ('gone', '{gone,active}')")
    pg2pg.source("UPDATE customers SET status = 'active' WHERE id = 1")
    pg2pg.run(plan, until="caught-up")
    assert pg2pg.target_rows("SELECT id, status::text, history::text FROM customers ORDER BY id") == [
        (1, "active", "{new}"),
        (2, "vip", "{new,vip,active}"),
        (3, "gone", "{gone,active}"),
    ]
    # Ordered as the source orders it (enumsortorder), not as text.
    assert pg2pg.target_rows("SELECT id FROM customers ORDER BY status, id") == [(2,), (1,), (3,)]

    # The domain, with its constraints, in the target's catalog as in the source's.
    domain = (
        "SELECT format_type(t.typbasetype, t.typtypmod), t.typnotnull, pg_get_constraintdef(c.oid) "
        "FROM pg_type t JOIN pg_constraint c ON c.contypid = t.oid WHERE t.oid = 'kinds.score'::regtype"
    )
    assert pg2pg.target_rows(domain) == [("integer", True, "CHECK ((VALUE >= 0))")]
    assert pg2pg.target_rows("SELECT sum(points) FROM notes") == [(0,)]

    # Identity (BY DEFAULT on the target) and serial: both have a sequence cutover can set.
    kinds = "SELECT attname, attidentity FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'id'"
    assert pg2pg.target_rows(kinds, ["customers"]) == [("id", "d")]
    serial = "SELECT pg_get_serial_sequence(%s, 'id') IS NOT NULL"
    assert pg2pg.target_rows(serial, ["public.customers"]) == [(True,)]
    assert pg2pg.target_rows(serial, ["public.notes"]) == [(True,)]
    with psycopg.connect(pg2pg.target_url, autocommit=True) as conn:
        done = set_sequences(conn, {"public.customers": {"id": 3}, "public.notes": {"id": 3}}, 1000)
    assert not any("no sequence" in line for line in done), done
    pg2pg.target("INSERT INTO customers (status) VALUES ('new')", "INSERT INTO notes (body) VALUES ('d')")
    assert pg2pg.target_rows("SELECT max(id) FROM customers") == [(1004,)]
    assert pg2pg.target_rows("SELECT max(id) FROM notes") == [(1004,)]


def test_plan_refuses_a_type_it_cannot_create(pg2pg: PgToPg) -> None:
    pg2pg.source(
        "CREATE TYPE mood AS ENUM ('calm', 'glad')",
        "CREATE DOMAIN glad_mood AS mood CHECK (VALUE = 'glad')",
        "CREATE TABLE moods (id int PRIMARY KEY, m glad_mood)",
    )
    # Composite and range columns are refused earlier, by the mapping (mapping.type_supported).
    report = api.plan(pg2pg.plan("- {from: public.moods}"), env=pg2pg.env)
    (failure,) = [f for f in report.failures if f.check == "target.schema"]
    assert "glad_mood" in failure.message and "domain over a user-defined type" in failure.message
    assert failure.fix is not None and "glad_mood" in failure.fix


def test_plan_refuses_an_enum_the_target_has_with_other_labels_and_its_fix_works(pg2pg: PgToPg) -> None:
    pg2pg.source(*SOURCE)
    pg2pg.target("CREATE TYPE customer_status AS ENUM ('new', 'gone', 'legacy')")
    plan = pg2pg.plan(TABLES)
    report = api.plan(plan, env=pg2pg.env)
    (failure,) = [f for f in report.failures if f.check == "target.types"]
    assert "['new', 'vip', 'active', 'gone']" in failure.message
    assert "['new', 'gone', 'legacy']" in failure.message
    assert failure.fix is not None and "ADD VALUE" in failure.fix
    for statement in failure.fix.split(";"):
        if statement.strip():
            pg2pg.target(statement)
    assert pg2pg.target_rows(LABELS) == [("new",), ("vip",), ("active",), ("gone",), ("legacy",)]
    report = api.plan(plan, env=pg2pg.env)
    assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]
