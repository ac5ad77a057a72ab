"""Reverse sync's feed on a PostgreSQL target (docs/architecture.md, "Reverse sync from a
PostgreSQL target"): forward CDC's batches carry the plan's replication origin and come back as
echoes, the application's own write on the target comes back as the row it names; `rollback
--to start` drops the origin, the slot and the publication, and a run after it starts clean. The
fence for the switch back refuses the application's writes and lets forward CDC's through. A TRUNCATE on the target stops the feed.

The expectation is written by hand: which rows the test changed, and how."""

from __future__ import annotations

import psycopg
import pytest

from migrator import api
from migrator.adapters.postgres_target import PostgresTarget
from migrator.adapters.postgres_target.reverse import identity
from migrator.errors import TerminalError
from migrator.plan.names import forward_origin_name, reverse_feed_name
from tests.support.pg_target import PgToPg

SCHEMA = (
    "CREATE TABLE public.items (id integer PRIMARY KEY, name text)",
    # Key columns listed out of their table order: the key is read in the primary key's order.
    "CREATE TABLE public.lines (b text, a integer, qty integer, PRIMARY KEY (a, b))",
    "INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 5) g",
    "INSERT INTO lines VALUES ('x', 1, 1)",
)
TABLES = "- {from: public.items}\n- {from: public.lines}"


def _read_all(target: PostgresTarget, after: dict[str, int]) -> tuple[list[bool], list[bytes], int]:
    feed = target.change_stream("pg2pg", ["public.items", "public.lines"], max_await_ms=200)
    marker = feed.write_marker()
    echoes: list[bool] = []
    keys: list[bytes] = []
    with feed.follow(after) as stream:
        while True:
            step = stream.next()
            for group in step.transactions:
                echoes.append(group.echo)
                keys += [d.key for d in group.documents]
            if step.idle and stream.marker_seen >= marker:
                return echoes, keys, stream.marker_seen


def test_forward_batches_echo_and_target_writes_come_back(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES)
    pg2pg.run(plan)
    with PostgresTarget(pg2pg.target_url) as target:
        start = dict(target.change_stream("pg2pg", ["public.items", "public.lines"]).position_now())
        pg2pg.source("UPDATE items SET name = 'fwd' WHERE id = 1", "INSERT INTO items VALUES (6, 'six')")
        pg2pg.run(plan, until="caught-up")
        pg2pg.target(
            "BEGIN; UPDATE items SET id = 60 WHERE id = 2; DELETE FROM lines WHERE a = 1; "
            "INSERT INTO lines VALUES ('y', 7, 3); COMMIT"
        )
        echoes, keys, _ = _read_all(target, start)
        # A TRUNCATE of a mapped table on the target stops the feed (nothing silent).
        pg2pg.target("TRUNCATE lines")
        with pytest.raises(TerminalError, match="truncated on the target"):
            _read_all(target, start)
    assert pg2pg.target_rows("SELECT name FROM items WHERE id = 1") == [("fwd",)]
    # Forward CDC's batches (one or more) are echoes; the application's transaction and the
    # marker's are not. The application's names the moved row at both keys and each line by its
    # key, typed as the table types it.
    assert len(echoes) >= 3 and all(echoes[:-2]) and echoes[-2:] == [False, False], echoes
    assert keys == [
        identity("public.items", 2),
        identity("public.items", 60),
        identity("public.lines", {"a": 1, "b": "x"}),
        identity("public.lines", {"a": 7, "b": "y"}),
    ]
    origin = forward_origin_name("pg2pg", pg2pg.target_database)
    assert pg2pg.target_rows("SELECT count(*) FROM pg_replication_origin WHERE roname = %s", [origin]) == [
        (1,)
    ]

    # The fence for the switch back: the application's writes (a delete too) are refused with
    # SQLSTATE 25006, forward CDC's batches (under the plan's origin) still land; lifted, nothing
    # of it is left.
    with PostgresTarget(pg2pg.target_url) as target:
        fence = target.write_fence(["public.items", "public.lines"], "pg2pg")
        fence.engage()
        for statement in ("DELETE FROM items WHERE id = 4", "INSERT INTO lines VALUES ('z', 9, 9)"):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                pg2pg.target(statement)
        pg2pg.source("UPDATE items SET name = 'through the fence' WHERE id = 4")
        pg2pg.run(plan, until="caught-up")
        assert pg2pg.target_rows("SELECT name FROM items WHERE id = 4") == [("through the fence",)]
        fence.lift({})
    pg2pg.target("DELETE FROM items WHERE id = 5")
    assert pg2pg.target_rows("SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s", ["migrator%"]) == [(0,)]
    assert pg2pg.target_rows("SELECT count(*) FROM pg_proc WHERE proname LIKE %s", ["migrator%"]) == [(0,)]

    api.rollback(plan, to="start", state=pg2pg.state_path, env=pg2pg.env)
    assert pg2pg.target_rows("SELECT count(*) FROM pg_replication_origin WHERE roname = %s", [origin]) == [
        (0,)
    ]
    name = reverse_feed_name("pg2pg", pg2pg.target_database)
    assert pg2pg.target_rows("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [name]) == [
        (0,)
    ]
    assert pg2pg.target_rows("SELECT count(*) FROM pg_publication WHERE pubname = %s", [name]) == [(0,)]

    # And run again from scratch: the cycle is clean (a change flows under the origin, made again).
    pg2pg.run(plan)
    pg2pg.source("UPDATE items SET name = 'again' WHERE id = 1")
    pg2pg.run(plan, until="caught-up")
    for table in ("items", "lines"):
        query = f"SELECT t::text FROM {table} t ORDER BY 1"
        assert pg2pg.target_rows(query) == pg2pg.source_rows(query), table
    origins = "SELECT count(*) FROM pg_replication_origin WHERE roname = %s"
    assert pg2pg.target_rows(origins, [origin]) == [(1,)]
