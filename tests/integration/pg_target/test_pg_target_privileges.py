"""`plan`'s target role checks on a PostgreSQL target (`target.privileges`,
migrator/adapters/postgres_target/privileges.py): a plain LOGIN role on a real cluster fails each
privilege the plan needs, named with the role and the statement that grants it; a superuser runs
each printed statement (the database accepts it), `plan` then passes, and the role runs the
migration, cuts over with reverse sync and rolls back (so the fixes are all it needed).

The expected failures are written by hand from what the test's role was given: nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator import api
from migrator.findings import Finding, Severity
from tests.support.pg_target import PgToPg, as_role, run_caught_up

TABLE = "CREATE TABLE public.items (id integer PRIMARY KEY, name text)"


@pytest.fixture
def role(pg2pg: PgToPg) -> Iterator[str]:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    pg2pg.target(f"CREATE ROLE {name} LOGIN")
    try:
        yield name
    finally:
        pg2pg.target(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = current_database()",
            f"DROP OWNED BY {name}",
            f"DROP ROLE {name}",
        )


def _findings(plan: Path, env: dict[str, str]) -> list[Finding]:
    return [f for f in api.plan(plan, env=env).findings if f.check == "target.privileges"]


def test_each_missing_target_privilege_fails_plan_and_its_fix_makes_it_pass(pg2pg: PgToPg, role: str) -> None:
    pg2pg.source(TABLE, "INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 5) g")
    pg2pg.target(TABLE)  # made beforehand by another role (the superuser): the plan's role must own it
    plan, switch = pg2pg.cutover_plan("- {from: public.items}", name="privs")
    env = {**pg2pg.env, "MIGRATOR_TARGET_URL": as_role(pg2pg.target_url, role)}
    database = pg2pg.target_database

    failed = _findings(plan, env)
    assert all(f.severity == Severity.FAIL for f in failed), failed
    fixes = sorted(f.fix or "" for f in failed)
    origin = (
        "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_drop(text), "
        "pg_replication_origin_oid(text), pg_replication_origin_session_setup(text), "
        f"pg_replication_origin_session_reset(), pg_replication_origin_session_is_setup() TO {role};"
    )
    assert fixes == sorted(
        [
            f"ALTER TABLE public.items OWNER TO {role};",
            f"GRANT CREATE ON DATABASE {database} TO {role};",
            f"GRANT CREATE ON SCHEMA public TO {role};",  # PostgreSQL 15 grants it to no one
            origin,
            f"GRANT SET ON PARAMETER session_replication_role TO {role};",
            f"ALTER ROLE {role} REPLICATION;",
        ]
    )
    assert all(role in f.message for f in failed), failed

    pg2pg.target(*fixes)  # as the superuser: each statement is accepted
    (passed,) = _findings(plan, env)
    assert passed.severity == Severity.OK and passed.subject == role

    # The role does the migration with those privileges and no other: copy, CDC, cutover with
    # reverse sync, a write on the target carried back, rollback after cutover.
    run_caught_up(plan, pg2pg.state_path, env)
    pg2pg.source("UPDATE items SET name = 'changed' WHERE id = 2")
    run_caught_up(plan, pg2pg.state_path, env)
    api.cutover(plan, state=pg2pg.state_path, env=env)
    pg2pg.target("UPDATE items SET name = 'on the target' WHERE id = 3")
    api.rollback(plan, state=pg2pg.state_path, env=env)
    assert switch.read_text() == "source\n"
    expected = [(1, "i1"), (2, "changed"), (3, "on the target"), (4, "i4"), (5, "i5")]
    assert pg2pg.source_rows("SELECT id, name FROM items ORDER BY id") == expected
    assert pg2pg.target_rows("SELECT id, name FROM items ORDER BY id") == expected


def test_a_plan_without_cutover_does_not_ask_for_replication(pg2pg: PgToPg, role: str) -> None:
    pg2pg.source(TABLE)
    plan = pg2pg.plan("- {from: public.items}", name="privs-nocut")
    env = {**pg2pg.env, "MIGRATOR_TARGET_URL": as_role(pg2pg.target_url, role)}
    fixes = [f.fix or "" for f in _findings(plan, env)]
    assert not [f for f in fixes if "REPLICATION" in f], fixes
    # The table is to be created: CREATE on its schema (PostgreSQL 15 grants it to no one on public).
    assert f"GRANT CREATE ON SCHEMA public TO {role};" in fixes, fixes
    pg2pg.target(*fixes)
    assert [f.severity for f in _findings(plan, env)] == [Severity.OK]
