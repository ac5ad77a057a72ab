"""The routing switch kept in a database (`phases.cutover.switch.kind: postgres | mongodb`): a
flip is read back as written, with the run that made it, and a switch another run flipped is
refused (docs/architecture.md, "Cutover and rollback after cutover"). Expectations are read
straight from the table or collection, not through the switch."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from pymongo import MongoClient

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres import PostgresSource
from migrator.engine.switch import RoutingSwitch, SwitchOwnedByAnotherRun
from migrator.plan.models import Switch


@pytest.fixture
def endpoints(
    pg_url: str, mongo_url: str, mongo_db_name: str
) -> Iterator[tuple[PostgresSource, MongoTarget]]:
    target = MongoTarget(mongo_url, mongo_db_name)
    try:
        yield PostgresSource(pg_url), target
    finally:
        target.close()


@pytest.mark.parametrize("kind", ["postgres", "mongodb"])
def test_a_database_switch_reads_back_its_side_and_owner(
    kind: str, endpoints: tuple[PostgresSource, MongoTarget], pg_url: str, mongo_url: str, mongo_db_name: str
) -> None:
    source, target = endpoints
    name = f"Routing_{kind}"  # mixed case: named as one identifier by every statement
    settings = Switch(kind=kind, name=name)
    mine = RoutingSwitch("plan-a", settings, source, target, run_id="run-1")
    assert mine.primary() is None and mine.owner() is None  # nothing written yet

    mine.flip("target")
    if kind == "postgres":
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                f'SELECT primary_side, run_id FROM "{name}" WHERE plan = %s', ["plan-a"]
            ).fetchone()
        assert row == ("target", "run-1")
    else:
        with MongoClient(mongo_url) as client:
            doc = client[mongo_db_name][name].find_one({"_id": "plan-a"})
        assert doc is not None and (doc["primary"], doc["run_id"]) == ("target", "run-1")
    assert mine.primary() == "target" and mine.owner() == "run-1"
    mine.refuse_foreign()  # its own flip

    other = RoutingSwitch("plan-a", settings, source, target, run_id="run-2")
    with pytest.raises(SwitchOwnedByAnotherRun):
        other.refuse_foreign()
    # Another plan's row is its own.
    assert RoutingSwitch("plan-b", settings, source, target, run_id="x").primary() is None

    mine.flip("source")
    assert mine.primary() == "source"
