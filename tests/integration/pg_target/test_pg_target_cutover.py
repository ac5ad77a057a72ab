"""Cutover from a PostgreSQL source to a PostgreSQL target (docs/architecture.md, "Reverse sync
from a PostgreSQL target"): `migrator cutover` with the source's fence and a file switch, then
writes made on the target reach the source through reverse sync; rollback after cutover switches
back with the target's last write in the source; rollback to the start leaves nothing of the run.

The expectation is written by hand: the rows as the test's statements leave them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from migrator import api
from tests.support.pg_target import PgToPg

SCHEMA = (
    "CREATE TABLE public.items (id integer PRIMARY KEY, name text, price numeric(8,2))",
    "INSERT INTO items SELECT g, 'i' || g, g FROM generate_series(1, 20) g",
)


def _run(pg2pg: PgToPg, plan: Path, until: str) -> None:
    stop = threading.Event()
    timer = threading.Timer(240, stop.set)  # a safety net only: the run ends by itself
    timer.start()
    try:
        api.run(plan, until=until, state=pg2pg.state_path, env=pg2pg.env, stop=stop)  # type: ignore[arg-type]
    finally:
        timer.cancel()


def _cut_over(pg2pg: PgToPg) -> tuple[Path, Path]:
    """Run, cut over, and write on the target after the flip: reverse sync carries it back."""
    pg2pg.source(*SCHEMA)
    switch = pg2pg.tmp_path / "routing"
    plan = pg2pg.plan(
        "- {from: public.items}",
        phases=f"""
        cdc: {{heartbeat_interval: 1s}}
        cutover: {{max_write_freeze: 5s, retries: 1, retry_pause: 0.2s,
                  switch: {{kind: file, path: "{switch}"}}}}
        """,
    )
    _run(pg2pg, plan, "caught-up")
    pg2pg.source("UPDATE items SET name = 'before cutover' WHERE id = 1")
    api.cutover(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert switch.read_text() == "target\n"
    assert pg2pg.target_rows("SELECT name FROM items WHERE id = 1") == [("before cutover",)]

    # The application now writes to the target: reverse sync carries it to the source.
    pg2pg.target(
        "UPDATE items SET name = 'on target', price = 9.99 WHERE id = 2",
        "DELETE FROM items WHERE id = 3",
        "INSERT INTO items VALUES (21, 'new on target', 1.50)",
    )
    _run(pg2pg, plan, "caught-up")
    query = "SELECT id, name, price::text FROM items WHERE id IN (1, 2, 3, 21) ORDER BY id"
    expected = [(1, "before cutover", "1.00"), (2, "on target", "9.99"), (21, "new on target", "1.50")]
    assert pg2pg.source_rows(query) == expected
    assert pg2pg.target_rows(query) == expected
    return plan, switch


def test_cutover_then_target_writes_reach_the_source(pg2pg: PgToPg) -> None:
    _cut_over(pg2pg)
    everything = "SELECT t::text FROM items t ORDER BY id"
    assert pg2pg.source_rows(everything) == pg2pg.target_rows(everything)


@pytest.mark.xfail(
    strict=True,
    reason="rollback after cutover verifies first, and verify reads a PostgreSQL target's rows as BSON "
    "(phases/verify.py: the checksum verify of issue 16 is another step)",
)
def test_rollback_after_cutover_leaves_every_target_write_in_the_source(pg2pg: PgToPg) -> None:
    plan, switch = _cut_over(pg2pg)
    # Rollback after cutover: the target's last write reaches the source, the switch goes back.
    pg2pg.target("UPDATE items SET name = 'last on target' WHERE id = 21")
    api.rollback(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert switch.read_text() == "source\n"
    assert pg2pg.source_rows("SELECT name FROM items WHERE id = 21") == [("last on target",)]
    everything = "SELECT t::text FROM items t ORDER BY id"
    assert pg2pg.source_rows(everything) == pg2pg.target_rows(everything)

    api.rollback(plan, to="start", state=pg2pg.state_path, env=pg2pg.env)
    for query in (
        "SELECT slot_name FROM pg_replication_slots",
        "SELECT pubname FROM pg_publication",
        "SELECT roname FROM pg_replication_origin",
    ):
        assert pg2pg.target_rows(query) == [], query
