"""`migrator finish` from PostgreSQL to PostgreSQL (docs/cutover.md, "Finishing"): after a cutover
with reverse sync, finish drops forward CDC's slot and publication and reverse sync's checkpoint
and origin on the source, and reverse sync's slot and publication and forward CDC's replication
origin on the target (each origin holds one of the server's max_replication_slots origin
states), and keeps every target row, including writes made there after the cutover. A second
finish reports the run finished; a finish cut short is completed by running it again.

The expectation is written by hand: the rows as the test's statements leave them."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator import api
from migrator.errors import ChecksFailed
from migrator.operations.finish import FinishResult
from migrator.plan.names import forward_origin_name, publication_name, reverse_feed_name, reverse_origin_name
from migrator.state.labels import FinishLabel
from tests.support.pg_target import PgToPg, run_caught_up

ITEMS = "CREATE TABLE public.items (id integer PRIMARY KEY, name text)"


def _cut_over(pg2pg: PgToPg) -> Path:
    pg2pg.source(ITEMS, "INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 20) g")
    plan, switch = pg2pg.cutover_plan("- {from: public.items}", name="pgfin")
    run_caught_up(plan, pg2pg.state_path, pg2pg.env)
    api.cutover(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert switch.read_text() == "target\n"
    pg2pg.target(
        "UPDATE items SET name = 'on target' WHERE id = 2",
        "DELETE FROM items WHERE id = 3",
        "INSERT INTO items VALUES (21, 'new on target')",
    )
    # The feed on the target and the origins exist before finish (what it is to drop).
    assert _target_objects(pg2pg) != ([], [], [])
    return plan


def _target_objects(pg2pg: PgToPg) -> tuple[list[object], list[object], list[object]]:
    feed = reverse_feed_name("pgfin", pg2pg.target_database)
    return (
        pg2pg.target_rows("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", [feed]),
        pg2pg.target_rows("SELECT pubname FROM pg_publication WHERE pubname = %s", [feed]),
        pg2pg.target_rows(
            "SELECT roname FROM pg_replication_origin WHERE roname = %s",
            [forward_origin_name("pgfin", pg2pg.target_database)],
        ),
    )


def _finished(pg2pg: PgToPg) -> None:
    expected = [(1, "i1"), (2, "on target")] + [(i, f"i{i}") for i in range(4, 21)] + [(21, "new on target")]
    assert pg2pg.target_rows("SELECT id, name FROM items ORDER BY id") == expected
    assert _target_objects(pg2pg) == ([], [], [])
    assert pg2pg.target_rows("SELECT to_regclass('migrator.state')") == [(None,)]  # the run created it
    assert (
        pg2pg.source_rows("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")
        == []
    )
    assert (
        pg2pg.source_rows(
            "SELECT pubname FROM pg_publication WHERE pubname = %s", [publication_name("pgfin")]
        )
        == []
    )
    assert (
        pg2pg.source_rows(
            "SELECT roname FROM pg_replication_origin WHERE roname = %s", [reverse_origin_name("pgfin")]
        )
        == []
    )
    assert pg2pg.source_rows("SELECT to_regclass('migrator.reverse_checkpoint')") == [(None,)]


def test_finish_drops_both_sides_objects_and_keeps_the_target_rows(pg2pg: PgToPg) -> None:
    plan = _cut_over(pg2pg)
    result = api.finish(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert isinstance(result, FinishResult) and not result.already
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert outcomes[FinishLabel.TARGET_FEED].startswith("dropped replication slot")
    _finished(pg2pg)
    again = api.finish(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert isinstance(again, FinishResult) and again.already
    with pytest.raises(ChecksFailed, match="finished"):
        api.rollback(plan, state=pg2pg.state_path, env=pg2pg.env)
    _finished(pg2pg)


def test_a_finish_failing_mid_way_completes_on_rerun(pg2pg: PgToPg, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _cut_over(pg2pg)
    from migrator.adapters.postgres_target import PostgresTarget

    def fails(self: PostgresTarget, plan_name: str) -> list[str]:
        raise ChecksFailed("injected: the target went away")

    # The target fails at its first step: the source's steps are done and recorded.
    with monkeypatch.context() as patched:
        patched.setattr(PostgresTarget, "drop_reverse_feed", fails)
        with pytest.raises(ChecksFailed, match="injected"):
            api.finish(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert (
        pg2pg.source_rows("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")
        == []
    )
    assert _target_objects(pg2pg) != ([], [], [])
    result = api.finish(plan, state=pg2pg.state_path, env=pg2pg.env)
    assert isinstance(result, FinishResult) and result.resumed
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert outcomes[FinishLabel.SLOT] == "done before (resumed finish)"
    _finished(pg2pg)
