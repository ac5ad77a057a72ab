"""`plan`'s check that a PostgreSQL source's role may keep reverse sync's checkpoint
(`source.reverse_privilege`, migrator/adapters/postgres/checkpoint_access.py): the table
`migrator.reverse_checkpoint`, which reverse sync creates on first use, the schema too.

The role owns the mapped table and may use the replication origin functions, but lacks in turn
CREATE on the database (the schema is missing), USAGE and CREATE on the schema (a superuser made
it), and the table's privileges (a superuser made it too, as another role's run does). The
expected fix of each step is written by hand; a superuser runs it (the database accepts it) and
`plan` then passes. With the last one the role cuts over, takes a write on the target and rolls
back: the row is carried back to the source through that checkpoint table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from migrator import api
from migrator.findings import Finding, Severity
from tests.support.pg_target import PgToPg, as_role, drop_source_role, run_caught_up

ORIGIN_FUNCTIONS = (
    "pg_replication_origin_create(text), pg_replication_origin_drop(text), pg_replication_origin_oid(text), "
    "pg_replication_origin_session_setup(text), pg_replication_origin_session_reset()"
)
# The table as reverse sync creates it (a run of the plan as a superuser).
CHECKPOINT_DDL = (
    "CREATE TABLE migrator.reverse_checkpoint (plan text PRIMARY KEY, resume_token bytea NOT NULL, "
    "cluster_time bigint, cluster_at timestamptz, events bigint NOT NULL DEFAULT 0, "
    "updated_at timestamptz NOT NULL DEFAULT now())"
)


@pytest.fixture
def role(pg2pg: PgToPg) -> Iterator[str]:
    """A LOGIN role on the source's cluster that may replicate, owns `items` and may use the
    replication origin functions, without CREATE on the database."""
    name = f"mig_{uuid.uuid4().hex[:8]}"
    pg2pg.source(
        f"CREATE ROLE {name} LOGIN REPLICATION",
        "CREATE TABLE public.items (id integer PRIMARY KEY, name text)",
        f"ALTER TABLE items OWNER TO {name}",
        "INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 5) g",
        f"GRANT EXECUTE ON FUNCTION {ORIGIN_FUNCTIONS} TO {name}",
    )
    try:
        yield name
    finally:
        drop_source_role(pg2pg, name)


def _findings(plan: Path, env: dict[str, str], check: str = "source.reverse_privilege") -> list[Finding]:
    return [f for f in api.plan(plan, env=env).findings if f.check == check]


def _fails_then_fix_passes(pg2pg: PgToPg, plan: Path, env: dict[str, str], fix: str) -> None:
    failed = _findings(plan, env)
    assert [(f.severity, f.subject) for f in failed] == [(Severity.FAIL, "migrator.reverse_checkpoint")], (
        failed
    )
    printed = (failed[0].fix or "").partition(" or ")[0]
    assert printed == fix
    pg2pg.source(*fix.split("; "))  # as the superuser: each statement is accepted
    assert _findings(plan, env) == []


def test_the_checkpoint_tables_privileges_fail_plan_and_their_fixes_let_reverse_sync_keep_it(
    pg2pg: PgToPg, role: str
) -> None:
    plan, _ = pg2pg.cutover_plan("- {from: public.items}", name="ckprivs")
    env = {**pg2pg.env, "MIGRATOR_SOURCE_URL": as_role(pg2pg.source_url, role)}
    database = urlsplit(pg2pg.source_url).path.lstrip("/")

    # No schema `migrator`: the role would create it (and its publication, which says so too).
    assert [f.severity for f in _findings(plan, env, "source.create_publication")] == [Severity.FAIL]
    _fails_then_fix_passes(pg2pg, plan, env, f"GRANT CREATE ON DATABASE {database} TO {role};")
    # A superuser made the schema: the role would create the table in it.
    pg2pg.source("CREATE SCHEMA migrator")
    _fails_then_fix_passes(pg2pg, plan, env, f"GRANT USAGE, CREATE ON SCHEMA migrator TO {role};")
    # ... and the table: the role reads, upserts and (at rollback) deletes its checkpoint there.
    pg2pg.source(CHECKPOINT_DDL)
    _fails_then_fix_passes(
        pg2pg,
        plan,
        env,
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE migrator.reverse_checkpoint TO {role};",
    )

    # The role cuts over; the application inserts on the target; rollback after cutover carries
    # the row back, reverse sync keeping its checkpoint in the superuser's table.
    run_caught_up(plan, pg2pg.state_path, env)
    api.cutover(plan, state=pg2pg.state_path, env=env)
    pg2pg.target("INSERT INTO items VALUES (6, 'on the target')")
    api.rollback(plan, state=pg2pg.state_path, env=env)
    assert pg2pg.source_rows("SELECT id, name FROM items WHERE id > 5") == [(6, "on the target")]
