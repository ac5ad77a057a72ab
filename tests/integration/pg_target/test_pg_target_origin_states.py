"""Room for forward CDC's replication origin on a PostgreSQL target (origin_states.py): a server
whose replication-origin states (max_replication_slots of them) are all held by other origins
fails `plan` (`target.replication_origins`) naming them, with a statement the server accepts;
after it and a restart `plan` passes. The same for reverse sync's origin on a PostgreSQL source
(`source.replication_origins`), which a plan that cuts over with reverse sync needs. A batch that meets a full server anyway (the states taken
after `plan`) fails terminally with SQLSTATE 53400 and what frees one, and writes nothing.

The holders are made by hand: origins advanced by the superuser, as an earlier migration into
another database of the server leaves its origin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from migrator import api
from migrator.adapters.base import WriteOp
from migrator.adapters.postgres_target.applier import TableApplier
from migrator.adapters.postgres_target.connection import Connections, TargetEndpoint
from migrator.errors import TargetError, TerminalError
from migrator.findings import Finding, Severity
from tests.support.pg_target import PgToPg
from tests.support.servers import PgServer, create_pg_database, drop_pg_database

HELD = ("earlier_migration_a", "earlier_migration_b")


@pytest.fixture
def small_target(pg_cluster_factory: Callable[..., PgServer]) -> PgServer:
    server = pg_cluster_factory(settings={"max_replication_slots": len(HELD)})
    create_pg_database(server.url, "target")
    return server


@pytest.fixture
def pg2small(pg_url: str, small_target: PgServer, tmp_path: Path) -> Iterator[PgToPg]:
    yield PgToPg(pg_url, small_target.url_for("target"), tmp_path)


@pytest.fixture
def small_source(
    pg_cluster_factory: Callable[..., PgServer], pg_target_server: PgServer, tmp_path: Path
) -> Iterator[tuple[PgToPg, PgServer]]:
    """A source cluster with one replication slot (the run's) and one origin state more."""
    server = pg_cluster_factory(settings={"max_replication_slots": len(HELD)})
    create_pg_database(server.url, "source")
    create_pg_database(pg_target_server.url, "small_source_target")
    try:
        yield (
            PgToPg(server.url_for("source"), pg_target_server.url_for("small_source_target"), tmp_path),
            server,
        )
    finally:
        drop_pg_database(pg_target_server.url, "small_source_target")


def _hold(url: str, names: tuple[str, ...]) -> None:
    """Origins that hold a state each, as a migration's origin does once it has been used."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute("SELECT pg_replication_origin_create(%s)", [name])
            conn.execute("SELECT pg_replication_origin_advance(%s, '0/1')", [name])


def _findings(plan: Path, env: dict[str, str], check: str = "target.replication_origins") -> list[Finding]:
    return [f for f in api.plan(plan, env=env).findings if f.check == check]


def test_a_server_with_every_origin_state_held_fails_plan_and_its_fix_makes_it_pass(
    pg2small: PgToPg, small_target: PgServer
) -> None:
    pg2small.source("CREATE TABLE items (id integer PRIMARY KEY, name text)")
    plan = pg2small.plan("- {from: public.items}", name="room")
    (free,) = _findings(plan, pg2small.env)
    assert free.severity == Severity.OK, free

    _hold(pg2small.target_url, HELD)
    (full,) = _findings(plan, pg2small.env)
    assert full.severity == Severity.FAIL, full
    assert all(name in full.message for name in HELD), full.message
    assert full.fix == f"ALTER SYSTEM SET max_replication_slots = {len(HELD) + 1}; -- then restart the server"

    pg2small.target(full.fix or "")  # as the superuser: the server accepts it
    small_target.restart()
    (room,) = _findings(plan, pg2small.env)
    assert room.severity == Severity.OK, room


def test_a_batch_on_a_full_server_fails_terminally_and_writes_nothing(pg2small: PgToPg) -> None:
    pg2small.target("CREATE TABLE items (id integer PRIMARY KEY, name text)")
    _hold(pg2small.target_url, HELD)
    connections = Connections(TargetEndpoint(pg2small.target_url))
    try:
        applier = TableApplier(connections, "cdc:room", origin_name="migrator_forward_room")
        with pytest.raises(TargetError) as raised:
            applier.apply([WriteOp("public.items", "update", {"_id": 1}, {"$set": {"name": "a"}})], 10, "0/A")
    finally:
        connections.close()
    assert isinstance(raised.value, TerminalError)
    assert "53400" in raised.value.message and "migrator_forward_room" in raised.value.message
    assert raised.value.hint is not None and "pg_replication_origin_drop" in raised.value.hint
    assert pg2small.target_rows("SELECT count(*) FROM items") == [(0,)]


def test_a_source_with_every_origin_state_held_fails_a_plan_with_reverse_sync(
    small_source: tuple[PgToPg, PgServer],
) -> None:
    pg2pg, server = small_source
    pg2pg.source("CREATE TABLE items (id integer PRIMARY KEY, name text)")
    plan, _ = pg2pg.cutover_plan("- {from: public.items}", name="back")
    check = "source.replication_origins"
    (free,) = _findings(plan, pg2pg.env, check)
    assert free.severity == Severity.OK, free

    _hold(pg2pg.source_url, HELD)
    (full,) = _findings(plan, pg2pg.env, check)
    assert full.severity == Severity.FAIL, full
    assert "migrator_reverse_back" in full.message and HELD[0] in full.message, full.message

    pg2pg.source(full.fix or "")
    server.restart()
    (room,) = _findings(plan, pg2pg.env, check)
    assert room.severity == Severity.OK, room
