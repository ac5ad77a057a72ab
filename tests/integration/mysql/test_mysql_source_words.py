"""A MariaDB source is spoken of in its own words (migrator/adapters/vocabulary.py): the installed
`migrator` command's dry run, status and rollback of a MariaDB run name the binlog stream (the
run's row in `_migrator_slots`), the binlog and the markers table, and never PostgreSQL's
replication slot, publication or WAL. The expected texts are written out here."""

from __future__ import annotations

import os
import random
from pathlib import Path

from migrator import api
from migrator.plan import load_plan
from migrator.plan.names import slot_name_pattern
from migrator.state import SQLiteStateStore
from tests.support.cli_process import run_cli
from tests.support.mysql_shop import Shop, write_plan

SEED = 20_261_204
POSTGRES_WORDS = ("WAL", "publication", "replication slot", "pg_")


def _cli(*args: str) -> str:
    """`migrator ARGS` as an operator runs it; wide, so that no line is wrapped."""
    env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
    env["COLUMNS"] = "400"
    done = run_cli(list(args), env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _no_postgres_word(text: str) -> None:
    found = [w for w in POSTGRES_WORDS if w in text]
    assert not found, f"{found} in:\n{text}"


def test_dry_run_status_and_rollback_of_a_mariadb_run_speak_of_the_binlog(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    shop = Shop(mysql_url)
    shop.create()
    shop.load(40, random.Random(SEED))
    plan = write_plan(tmp_path / "shop.yaml", mysql_url, mongo_url, mongo_db_name, chunk_rows=20)
    state = tmp_path / "state.db"

    dry = _cli("run", str(plan), "--dry-run")
    pattern = slot_name_pattern(load_plan(plan, {}).name)
    assert (
        f"record binlog stream {pattern} in `_migrator_slots` at the binlog position of a consistent snapshot"
        in dry
    ), dry
    assert "create the tables `_migrator_markers` and `_migrator_slots` (unless they exist)" in dry, dry
    assert "stream changes of the mapped tables from binlog stream" in dry, dry
    _no_postgres_word(dry)

    api.run(plan, until="caught-up", state=state, env={})
    with SQLiteStateStore(state) as store:
        (run,) = store.runs()

    status = _cli("status", str(plan), "--state", str(state))
    assert f"binlog stream {run.slot} idle (no `migrator run` streams it); retains " in status, status
    assert " of binlog (max_retained_wal " in status, status
    _no_postgres_word(status)

    rollback = _cli("rollback", str(plan), "--state", str(state), "--yes")
    assert f"rollback: drop binlog stream {run.slot}: dropped" in rollback, rollback
    assert (
        "rollback: drop tables `_migrator_markers` and `_migrator_slots` (created by the run): dropped"
        in rollback
    ), rollback
    _no_postgres_word(rollback)
