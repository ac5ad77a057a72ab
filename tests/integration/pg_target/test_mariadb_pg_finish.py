"""`migrator finish` from MariaDB to PostgreSQL (docs/cutover.md, "Finishing"): after a cutover with
reverse sync, finish drops the binlog stream's row and the markers table on the source
(`_migrator_slots`, `_migrator_markers`: the run created both), reverse sync's checkpoint table
(`_migrator_reverse`, empty once the plan's row goes), and reverse sync's slot and publication and
forward CDC's replication origin on the target; every target row stays, the write made there
after the cutover too.

The expectation is written by hand: the rows as the test's statements leave them."""

from __future__ import annotations

from pathlib import Path

import psycopg

from migrator import api
from migrator.operations.finish import FinishResult
from migrator.plan.names import forward_origin_name, reverse_feed_name
from tests.support.mariadb import connect, database
from tests.support.pg_target import run_caught_up


def _mysql(url: str, *statements: str) -> list[tuple[object, ...]]:
    with connect(url) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        return list(cur.fetchall())


def _target(url: str, query: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]


def test_finish_from_mariadb_drops_the_source_tables_and_keeps_the_target_rows(
    mariadb_pg_urls: tuple[str, str], tmp_path: Path
) -> None:
    source_url, target_url = mariadb_pg_urls
    _mysql(
        source_url,
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(40) NOT NULL)",
        "INSERT INTO items VALUES " + ", ".join(f"({n}, 'i{n}')" for n in range(1, 11)),
    )
    switch = tmp_path / "routing"
    plan = tmp_path / "m2pfin.yaml"
    plan.write_text(
        "version: 1\nname: m2pfin\n"
        f'source: {{adapter: mysql, url: "{source_url}"}}\n'
        f'target: {{adapter: postgres, url: "{target_url}"}}\n'
        f"tables:\n  - {{from: {database(source_url)}.items, name: public.items}}\n"
        "phases:\n"
        "  cdc: {heartbeat_interval: 1s}\n"
        f'  cutover: {{max_write_freeze: 5s, retries: 1, retry_pause: 0.2s, switch: {{kind: file, path: "{switch}"}}}}\n'
    )
    state = tmp_path / "state.db"
    run_caught_up(plan, state, {})
    api.cutover(plan, state=state, env={})
    assert switch.read_text() == "target\n"
    with psycopg.connect(target_url, autocommit=True) as conn:
        conn.execute("UPDATE items SET name = 'on target' WHERE id = 2")
        conn.execute("INSERT INTO items VALUES (11, 'new on target')")
    own = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE '\\_migrator%' ORDER BY 1"
    assert _mysql(source_url, own) != []

    result = api.finish(plan, state=state, env={})
    assert isinstance(result, FinishResult) and not result.already
    assert _mysql(source_url, own) == []
    target_db = str(psycopg.conninfo.conninfo_to_dict(target_url)["dbname"])
    feed = reverse_feed_name("m2pfin", target_db)
    assert (
        _target(target_url, "SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", [feed]) == []
    )
    assert _target(target_url, "SELECT pubname FROM pg_publication WHERE pubname = %s", [feed]) == []
    origin = forward_origin_name("m2pfin", target_db)
    assert _target(target_url, "SELECT roname FROM pg_replication_origin WHERE roname = %s", [origin]) == []
    expected = [(1, "i1"), (2, "on target")] + [(n, f"i{n}") for n in range(3, 11)] + [(11, "new on target")]
    assert _target(target_url, "SELECT id, name FROM items ORDER BY id") == expected
