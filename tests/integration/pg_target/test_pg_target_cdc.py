"""PostgreSQL -> PostgreSQL change capture (docs/architecture.md, "Tables as collections"): after
the snapshot, inserts, updates (key changes too), deletes and multi-statement transactions reach
the target tables; the checkpoint and the ownership record live in the target's migrator.state.

The expectation is the source itself, read with the same query on both sides."""

from __future__ import annotations

import pytest

from migrator.errors import OwnedByAnotherRun
from migrator.plan.names import cdc_checkpoint_id, owner_record_id
from tests.support.pg_target import PgToPg

SCHEMA = (
    "CREATE TABLE public.customers (id integer PRIMARY KEY, name text NOT NULL, balance numeric(12,2), "
    "tags text[], doc jsonb, seen timestamptz, raw bytea, uid uuid, note text)",
    "ALTER TABLE customers ALTER COLUMN note SET STORAGE EXTERNAL",
    "CREATE TABLE public.orders (customer_id integer, line integer, total numeric NOT NULL, "
    "PRIMARY KEY (customer_id, line))",
    "INSERT INTO customers SELECT g, 'c' || g, g * 1.5, ARRAY['t' || g], jsonb_build_object('g', g), "
    "'2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second', NULL, NULL, "
    "repeat(md5(g::text), 400) FROM generate_series(1, 200) g",
    "INSERT INTO orders SELECT g % 20, g, g FROM generate_series(1, 300) g",
)
CHANGES = (
    "INSERT INTO customers VALUES (201, 'new', 0.01, '{a,NULL}', '[1, {\"x\": true}]', "
    "'2024-06-01 12:00:00.654321+00', '\\x0102', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', NULL)",
    "UPDATE customers SET name = 'renamed', balance = NULL WHERE id = 5",  # note (TOASTed) unchanged
    "UPDATE customers SET id = 1005 WHERE id = 6",  # a key change
    "DELETE FROM customers WHERE id IN (7, 8)",
    "UPDATE orders SET line = line + 1000 WHERE customer_id = 3",  # compound key changes
    "DELETE FROM orders WHERE customer_id = 4",
    """BEGIN;
       INSERT INTO customers (id, name) VALUES (300, 'tx');
       UPDATE customers SET tags = NULL, doc = '"s"' WHERE id = 300;
       INSERT INTO orders VALUES (300, 1, 99.999);
       DELETE FROM customers WHERE id = 9;
       COMMIT""",
    "INSERT INTO customers (id, name) VALUES (400, 'gone'); DELETE FROM customers WHERE id = 400",
)
TABLES = "- {from: public.customers}\n- {from: public.orders}"


def _same(pg2pg: PgToPg) -> None:
    for table, order in (("customers", "id"), ("orders", "customer_id, line")):
        query = f"SELECT t::text FROM {table} t ORDER BY {order}"
        assert pg2pg.target_rows(query) == pg2pg.source_rows(query), table


def test_changes_after_the_snapshot_reach_the_target_tables_with_their_checkpoint(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES)
    pg2pg.run(plan)
    _same(pg2pg)
    pg2pg.source(*CHANGES)
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)
    assert pg2pg.target_rows("SELECT count(*) FROM customers") == [(200 + 1 + 1 - 2 - 1,)]

    # The checkpoint committed with the data, at the source position CDC confirmed.
    (doc,) = pg2pg.target_rows("SELECT doc FROM migrator.state WHERE id = %s", [cdc_checkpoint_id("pg2pg")])
    (confirmed,) = pg2pg.source_rows(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE database = current_database()"
    )
    assert doc[0]["position_text"] == confirmed[0]
    (owner,) = pg2pg.target_rows("SELECT doc FROM migrator.state WHERE id = %s", [owner_record_id("pg2pg")])
    assert owner[0]["plan"] == "pg2pg" and owner[0]["run_id"]

    # Run again: nothing to replay twice, the rows stay as they are; and more changes still flow.
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)
    pg2pg.source(
        "UPDATE customers SET note = 'short' WHERE id = 1", "DELETE FROM orders WHERE customer_id = 5"
    )
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)


# One source transaction, so one batch: a key's writes fold into the state it ends in (batch.py).
FOLDED = """BEGIN;
    INSERT INTO customers (id, name) VALUES (500, 'a');
    UPDATE customers SET name = 'b', balance = 2 WHERE id = 500;
    DELETE FROM customers WHERE id = 500;
    INSERT INTO customers (id, name, tags) VALUES (500, 'c', '{x}');
    UPDATE customers SET name = 'd' WHERE id = 500;
    UPDATE customers SET id = 501 WHERE id = 500;
    UPDATE customers SET name = 'e' WHERE id = 501;
    INSERT INTO customers (id, name) VALUES (502, 'x');
    UPDATE customers SET balance = 7 WHERE id = 502;
    DELETE FROM customers WHERE id = 502;
    UPDATE customers SET balance = 1 WHERE id = 10;
    UPDATE customers SET name = 'z' WHERE id = 10;
    DELETE FROM customers WHERE id = 11;
    INSERT INTO customers (id, name) VALUES (11, 'back');
    DELETE FROM customers WHERE id = 12;
    UPDATE customers SET id = 12, name = 'moved' WHERE id = 13;
    UPDATE customers SET name = 'gone' WHERE id = 14;
    DELETE FROM customers WHERE id = 14;
    UPDATE customers SET note = NULL WHERE id BETWEEN 20 AND 40;
    UPDATE orders SET total = total + 1 WHERE customer_id = 1;
    DELETE FROM orders WHERE customer_id = 2 AND line > 100;
    UPDATE orders SET line = line + 5000 WHERE customer_id = 2;
    COMMIT"""


def test_one_batch_with_a_key_written_many_times_ends_as_the_source(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES)
    pg2pg.run(plan)
    pg2pg.source(FOLDED)
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)
    assert pg2pg.target_rows(
        "SELECT id, name FROM customers WHERE id IN (10, 11, 12, 13, 14, 500, 501, 502) ORDER BY id"
    ) == [
        (10, "z"),
        (11, "back"),
        (12, "moved"),
        (501, "e"),
    ]


def test_a_second_run_of_the_plan_from_another_state_file_is_refused(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA[:1])
    plan = pg2pg.plan("- {from: public.customers}")
    pg2pg.run(plan)
    other = PgToPg(pg2pg.source_url, pg2pg.target_url, pg2pg.tmp_path / "elsewhere")
    other.tmp_path.mkdir()
    with pytest.raises(OwnedByAnotherRun):
        other.run(plan)
