"""PostgreSQL -> PostgreSQL: secondary indexes and constraints built after the copy
(docs/architecture.md, "After the copy"), shown by plan and dry-run, built once (a second run
finds them), a foreign key to a table the plan does not copy skipped with a warning naming it, and
CDC applying a transaction whose table-by-table batch would break a foreign key checked per
statement.

The expectation is the source's catalog, read with plain psycopg on both sides."""

from __future__ import annotations

import psycopg
import pytest

from migrator import api
from migrator.adapters.postgres_target import PostgresTarget
from migrator.engine.events import SchemaObjectBuilt
from migrator.errors import TargetError
from tests.support.pg_target import PgToPg

SCHEMA = (
    "CREATE TABLE public.region (id int PRIMARY KEY)",
    "INSERT INTO region VALUES (1)",
    "CREATE TABLE public.parent (id int PRIMARY KEY, code text, name text, CONSTRAINT parent_code_key UNIQUE (code))",
    "CREATE TABLE public.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id) ON DELETE CASCADE, "
    "qty int CHECK (qty > 0), note text, region_id int REFERENCES region (id))",
    "CREATE INDEX child_note_lower ON child (lower(note)) WHERE qty > 1",
    "CREATE INDEX child_parent ON child (parent_id)",
    "INSERT INTO parent SELECT g, 'p' || g, 'n' || g FROM generate_series(1, 30) g",
    "INSERT INTO child SELECT g, g % 30 + 1, g % 5 + 1, 'Note ' || g, 1 FROM generate_series(1, 90) g",
)
TABLES = "- {from: public.parent}\n- {from: public.child}"
# Objects the target must have, and how the catalog describes them on either side: the primary
# keys too, added after the copy under PostgreSQL's default names, as the source's.
BUILT = {
    "parent_pkey",
    "child_pkey",
    "child_note_lower",
    "child_parent",
    "parent_code_key",
    "child_qty_check",
    "child_parent_id_fkey",
}
INDEXES_SQL = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('parent', 'child') ORDER BY 1"
CONSTRAINTS_SQL = (
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid IN ('public.parent'::regclass, 'public.child'::regclass) ORDER BY 1"
)
# A child moved to a parent inserted after it in the same transaction: the batch writes the
# child table's rows before the parent table's.
CHANGES = (
    """BEGIN;
       INSERT INTO child VALUES (500, 1, 3, 'x', NULL);
       INSERT INTO parent VALUES (31, 'p31', 'late');
       UPDATE child SET parent_id = 31 WHERE id = 500;
       DELETE FROM parent WHERE id = 2;
       COMMIT""",
)


def test_indexes_and_constraints_are_built_after_the_copy_once_and_cdc_applies_with_them(
    pg2pg: PgToPg,
) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES, phases="snapshot: {parallel: 2}")
    report = api.plan(plan, env=pg2pg.env)
    assert {s.name for s in report.post_copy.statements} == BUILT
    assert [s.name for s in report.post_copy.statements][-1] == "child_parent_id_fkey"  # foreign keys last
    skipped = [f for f in report.findings if f.check == "target.after_copy"]
    assert [f.subject for f in skipped] == ["public.child.child_region_id_fkey"]
    assert "public.region" in skipped[0].message

    listed = [a.description for a in api.dry_run(plan, env=pg2pg.env).phases["snapshot"]]
    assert any(d.startswith("build the target's indexes") and "child_parent_id_fkey" in d for d in listed)
    assert pg2pg.target_rows("SELECT to_regclass('public.child')") == [(None,)]

    _, events = pg2pg.run(plan)
    assert {e.name for e in events.of(SchemaObjectBuilt) if e.ran} == BUILT
    source_constraints = [r for r in pg2pg.source_rows(CONSTRAINTS_SQL) if r[0] != "child_region_id_fkey"]
    assert pg2pg.target_rows(CONSTRAINTS_SQL) == source_constraints
    assert pg2pg.target_rows(INDEXES_SQL) == pg2pg.source_rows(INDEXES_SQL)

    # Run again (the snapshot done): nothing is built twice; the changes apply with the keys there.
    pg2pg.source(*CHANGES)
    _, events = pg2pg.run(plan, until="caught-up")
    assert not [e for e in events.of(SchemaObjectBuilt) if e.ran]
    for table in ("parent", "child"):
        query = f"SELECT t::text FROM {table} t ORDER BY id"
        assert pg2pg.target_rows(query) == pg2pg.source_rows(query), table


def test_a_foreign_key_left_not_valid_is_validated_and_its_validation_reads_the_rows(
    pg2pg: PgToPg,
) -> None:
    # A foreign key is added NOT VALID, then validated (postgres_target/post_copy.py): a run
    # stopped between the two finds it not valid, and the build validates it, reading the rows.
    pg2pg.source(*SCHEMA)
    report = api.plan(pg2pg.plan(TABLES, phases="snapshot: {parallel: 2}"), env=pg2pg.env)
    fkey = next(s for s in report.post_copy.statements if s.name == "child_parent_id_fkey")
    target = PostgresTarget(pg2pg.target_url)
    valid = "SELECT convalidated FROM pg_constraint WHERE conname = 'child_parent_id_fkey'"
    pg2pg.target(
        "CREATE TABLE public.parent (id int PRIMARY KEY)",
        "CREATE TABLE public.child (id int PRIMARY KEY, parent_id int NOT NULL)",
        "INSERT INTO parent VALUES (1)",
        "INSERT INTO child VALUES (1, 1), (2, 7)",  # 7: no such parent
        f"{fkey.sql} NOT VALID",
    )
    with pytest.raises(TargetError):
        target.build_post_copy(fkey)
    assert pg2pg.target_rows(valid) == [(False,)]
    pg2pg.target("INSERT INTO parent VALUES (7)")
    assert target.build_post_copy(fkey) is True
    assert pg2pg.target_rows(valid) == [(True,)]
    assert target.build_post_copy(fkey) is False  # valid: nothing to do


CHAIN = (
    "CREATE TABLE public.grand (id int PRIMARY KEY, name text)",
    "CREATE TABLE public.parent (id int PRIMARY KEY, grand_id int NOT NULL REFERENCES grand (id), code text)",
    "CREATE TABLE public.child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent (id), qty int)",
    "CREATE INDEX parent_code ON parent (code)",
    "CREATE INDEX child_parent ON child (parent_id)",
    "INSERT INTO grand SELECT g, 'g' || g FROM generate_series(1, 40) g",
    "INSERT INTO parent SELECT g, g % 40 + 1, 'c' || g % 7 FROM generate_series(1, 400) g",
    "INSERT INTO child SELECT g, g % 400 + 1, g % 9 FROM generate_series(1, 3000) g",
)
CHAIN_TABLES = "- {from: public.grand}\n- {from: public.parent}\n- {from: public.child}"
CHAIN_SQL = (
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
    "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
)


def test_each_foreign_key_is_built_once_its_two_tables_are_and_the_keys_are_the_sources(
    pg2pg: PgToPg,
) -> None:
    # A foreign key is built as soon as the first waves of its table and of the table it
    # references are (phases/post_copy.py, EarlyBuilds), not after every table: so the
    # build-after-copy step finds each one built. A primary key's index is built by CREATE UNIQUE
    # INDEX, then attached: the target's catalog says the same as the source's.
    pg2pg.source(*CHAIN)
    plan = pg2pg.plan(CHAIN_TABLES, phases="snapshot: {parallel: 2, chunk_rows: 500}")
    _, events = pg2pg.run(plan)
    built = [(e.name, e.ran) for e in events.of(SchemaObjectBuilt)]
    keys = {"parent_grand_id_fkey", "child_parent_id_fkey"}
    first_found = next(i for i, (_, ran) in enumerate(built) if not ran)  # the step's pass
    assert {name for name, ran in built[:first_found] if ran} >= keys, built
    assert not [name for name, ran in built[first_found:] if ran], built
    assert pg2pg.target_rows(CHAIN_SQL) == pg2pg.source_rows(CHAIN_SQL)
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    assert pg2pg.target_rows(indexes) == pg2pg.source_rows(indexes)
    for table in ("grand", "parent", "child"):
        query = f"SELECT t::text FROM {table} t ORDER BY id"
        assert pg2pg.target_rows(query) == pg2pg.source_rows(query), table
    # Validated for real: a row of child without its parent is refused by the built key.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        pg2pg.target("INSERT INTO child VALUES (99999, 123456, 1)")
