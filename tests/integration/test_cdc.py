"""The CDC phase against real servers: after the snapshot, every source change lands in the target.

Each test builds a small schema in a fresh PostgreSQL database, takes the snapshot through
`migrator.api.run(until="snapshot")`, changes the source, runs `until="caught-up"` (or follows
changes with `until="stopped"` on a thread), and compares the target with documents built
independently from plain SQL, down to BSON types and key order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrator.adapters.postgres.lsn import Lsn
from migrator.errors import TerminalError
from tests.support import embedded_scenario as shop
from tests.support.cli_process import migrator_script
from tests.support.compare import assert_documents, flat_documents, group, records
from tests.support.ddl import DROPPED_OR_RETYPED, THINGS, WHEN
from tests.support.docs import Migration, sorted_documents, typed
from tests.support.runs import Follower, follow, run, slot_active, transactions, wait_for
from tests.support.servers import ExternalServer
from tests.support.toast import BIG_FUNCTION, toasted_rows

STATE_ID_PREFIX = "cdc:"

pytestmark = pytest.mark.usefixtures("stop_followers")


# -- scenarios (each: schema and data, plan collections, changes, expected documents) -------------


@dataclass(frozen=True)
class Scenario:
    setup: tuple[str, ...]
    collections: str
    changes: tuple[Sequence[str] | str, ...]
    expected: Callable[[Migration], dict[str, list[dict[str, Any]]]]


FLAT = Scenario(
    setup=(
        "CREATE TABLE things (id integer PRIMARY KEY, name text, qty integer, big text)",
        "ALTER TABLE things ALTER COLUMN big SET STORAGE EXTERNAL",
        "INSERT INTO things SELECT g, 'n' || g, g, big('t' || g) FROM generate_series(1, 6) g",
    ),
    collections="- {name: things, from: things, key: id}",
    changes=(
        "INSERT INTO things VALUES (7, 'seven', 7, big('t7'))",
        "UPDATE things SET qty = 20 WHERE id = 2",  # big unchanged: arrives as 'u'
        "DELETE FROM things WHERE id = 3",
        "UPDATE things SET id = 40 WHERE id = 4",  # key change, big unchanged
        [
            "UPDATE things SET id = 50, name = 'fifty' WHERE id = 5",
            "UPDATE things SET qty = 55 WHERE id = 50",
        ],
        "UPDATE things SET big = big('t1-changed') WHERE id = 1",
        "UPDATE things SET id = 10 WHERE id = 1",  # two key changes in a row, big unchanged
        "UPDATE things SET id = 100, qty = 100 WHERE id = 10",
        ["INSERT INTO things VALUES (8, 'eight', 8, big('t8'))", "UPDATE things SET id = 80 WHERE id = 8"],
        ["INSERT INTO things VALUES (9, 'nine', 9, NULL)", "DELETE FROM things WHERE id = 9"],
        "UPDATE things SET name = NULL WHERE id = 6",
    ),
    expected=lambda mig: {"things": flat_documents(mig, "SELECT id, name, qty, big FROM things")},
)


def _toast_expected(mig: Migration) -> dict[str, list[dict[str, Any]]]:
    kids = group(records(mig, "SELECT * FROM kids ORDER BY id"), "parent_id", drop=("parent_id",))
    docs = [
        {"_id": p["id"], "name": p["name"], "big": p["big"], "kids": kids.get(p["id"], [])}
        for p in records(mig, "SELECT id, name, big FROM parents")
    ]
    return {"parents": docs}


EMBEDDED_TOAST = Scenario(
    setup=(
        "CREATE TABLE parents (id integer PRIMARY KEY, name text, big text)",
        "CREATE TABLE kids (id integer PRIMARY KEY, parent_id integer NOT NULL REFERENCES parents,"
        " label text, big text)",
        "ALTER TABLE parents ALTER COLUMN big SET STORAGE EXTERNAL",
        "ALTER TABLE kids ALTER COLUMN big SET STORAGE EXTERNAL",
        "INSERT INTO parents SELECT g, 'p' || g, big('p' || g) FROM generate_series(1, 3) g",
        "INSERT INTO kids VALUES (11, 1, 'k11', big('k11')), (12, 1, 'k12', big('k12')),"
        " (13, 1, 'k13', big('k13')), (21, 2, 'k21', big('k21')), (31, 3, 'k31', big('k31'))",
    ),
    collections="""
        - name: parents
          from: parents
          key: id
          embed: [{as: kids, from: kids, on: {parent_id: id}, key: id}]
    """,
    changes=(
        "UPDATE parents SET name = 'p1-renamed' WHERE id = 1",  # parent's big unchanged
        "UPDATE kids SET label = 'k11-relabelled' WHERE id = 11",  # element's big unchanged: merged
        "UPDATE kids SET parent_id = 2 WHERE id = 12",  # moves to parent 2, big unchanged
        "UPDATE kids SET parent_id = 3, label = 'k21-moved' WHERE id = 21",
        "UPDATE kids SET big = big('k13-changed') WHERE id = 13",
        "UPDATE kids SET parent_id = 1 WHERE id = 31",  # two moves in a row, big unchanged
        "UPDATE kids SET parent_id = 2 WHERE id = 31",
        [
            "INSERT INTO kids VALUES (22, 2, 'k22', big('k22'))",
            "UPDATE kids SET label = 'k22-again' WHERE id = 22",
        ],
    ),
    expected=_toast_expected,
)


# The shop scenario of embedded changes, run from every source by the conformance suite
# (tests/integration/conformance/test_conformance_embedded_changes.py); here in replays and replica identities.
SHOP = Scenario(
    setup=shop.SETUP,
    collections=shop.COLLECTIONS.format(**{t: t for t in shop.TABLES}),
    changes=shop.CHANGES,
    expected=lambda mig: {"customers": shop.documents(partial(records, mig))},
)


def set_up(mig: Migration, name: str, *scenarios: Scenario, phases: str = "") -> Path:
    mig.sql(BIG_FUNCTION, *(s for scenario in scenarios for s in scenario.setup))
    collections = "\n".join(textwrap.dedent(scenario.collections).strip() for scenario in scenarios)
    return mig.plan(collections, name=name, phases=phases)


def assert_scenarios(mig: Migration, *scenarios: Scenario) -> None:
    for scenario in scenarios:
        for collection, docs in scenario.expected(mig).items():
            assert_documents(mig, collection, docs)


def play(mig: Migration, name: str, scenario: Scenario) -> Path:
    """Schema, snapshot, changes, caught-up; the target equals the source."""
    plan = set_up(mig, name, scenario)
    run(mig, plan, "snapshot")
    assert_scenarios(mig, scenario)  # the snapshot itself is right
    transactions(mig, *scenario.changes)
    outcome = run(mig, plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert outcome.cdc.changes >= len(scenario.changes)
    assert_scenarios(mig, scenario)
    return plan


# -- 1. flat table ------------------------------------------------------------------------------


def test_flat_table_inserts_updates_deletes_and_key_changes(mig: Migration) -> None:
    play(mig, "cdc-flat", FLAT)
    assert toasted_rows(mig, "things") > 0
    docs = mig.by_id("things")
    assert sorted(docs) == [2, 6, 7, 40, 50, 80, 100]
    # The rekeyed documents kept the TOASTed value the UPDATE did not touch.
    ((big,),) = mig.rows("SELECT big('t4')")
    assert docs[40] == {"_id": 40, "name": "n4", "qty": 4, "big": big} and len(big) == 3200
    assert docs[50] == {"_id": 50, "name": "fifty", "qty": 55, "big": mig.rows("SELECT big('t5')")[0][0]}
    assert docs[100]["big"] == mig.rows("SELECT big('t1-changed')")[0][0]
    assert docs[2]["qty"] == 20 and docs[2]["big"] == mig.rows("SELECT big('t2')")[0][0]


# -- 2. unchanged TOAST values --------------------------------------------------------------------


def test_unchanged_toasted_values_are_kept_in_documents_and_elements(mig: Migration) -> None:
    play(mig, "cdc-toast", EMBEDDED_TOAST)
    assert toasted_rows(mig, "parents") > 0 and toasted_rows(mig, "kids") > 0
    docs = mig.by_id("parents")
    assert docs[1]["name"] == "p1-renamed" and docs[1]["big"] and len(docs[1]["big"]) == 3200
    moved = next(k for k in docs[2]["kids"] if k["id"] == 12)
    assert moved["big"] == mig.rows("SELECT big('k12')")[0][0]
    assert [k["id"] for k in docs[1]["kids"]] == [11, 13]


# -- 3. embedded 1:N, 1:1, three levels (the changes themselves: the conformance suite) -----------


def element_indexes(mig: Migration, collection: str) -> list[str]:
    info = mig.client[mig.database][collection].index_information()
    return sorted(name for name in info if name != "_id_")


def test_full_replica_identity_needs_no_element_index_but_for_parents_of_elements(mig: Migration) -> None:
    # FULL: every change names its parent; orders still are found by key, by their items' changes.
    full = replace(
        SHOP,
        setup=(
            *SHOP.setup,
            *(f"ALTER TABLE {t} REPLICA IDENTITY FULL" for t in ("orders", "items", "profiles")),
        ),
    )
    play(mig, "cdc-shop-full", full)
    assert element_indexes(mig, "customers") == ["migrator_orders.id"]


# -- 4. idempotent replay -------------------------------------------------------------------------


def test_replay_from_the_snapshot_position_leaves_the_target_unchanged(mig: Migration) -> None:
    scenarios = (FLAT, EMBEDDED_TOAST, SHOP)
    name = "cdc-replay"
    plan = set_up(mig, name, *scenarios)
    run(mig, plan, "snapshot")
    # A copy of the slot at the snapshot's position: deleting the target checkpoint alone does not
    # replay anything, because the server starts a slot at its confirmed position at the earliest.
    slot = mig.slot(name)
    mig.sql(f"SELECT pg_copy_logical_replication_slot('{slot}', '{slot}_at_snapshot')")
    for scenario in scenarios:
        transactions(mig, *scenario.changes)
    first = run(mig, plan).outcome
    assert first is not None and first.cdc is not None and first.cdc.caught_up
    assert_scenarios(mig, *scenarios)
    # Default replica identity: an update or delete of an order, an item or a profile carries
    # only its id, so each is found by its key anywhere in the collection, through an index.
    assert element_indexes(mig, "customers") == [
        "migrator_orders.id",
        "migrator_orders.items.id",
        "migrator_profile.id",
    ]
    collections = ("things", "parents", "customers")
    before = {c: mig.raw_documents(c) for c in collections}
    state = mig.client[mig.database]["_migrator"]
    checkpoint = state.find_one({"_id": f"{STATE_ID_PREFIX}{name}"})
    assert checkpoint is not None

    # The checkpoint is lost: the run starts from the snapshot position (the slot starts later).
    state.delete_one({"_id": checkpoint["_id"]})
    again = run(mig, plan)
    assert any("snapshot position" in n for n in again.notices())
    assert {c: mig.raw_documents(c) for c in collections} == before

    # The checkpoint and the slot's progress are lost: every change since the snapshot is replayed.
    state.delete_one({"_id": checkpoint["_id"]})
    mig.sql(
        f"SELECT pg_drop_replication_slot('{slot}')",
        f"SELECT pg_copy_logical_replication_slot('{slot}_at_snapshot', '{slot}')",
        f"SELECT pg_drop_replication_slot('{slot}_at_snapshot')",
    )
    replay = run(mig, plan).outcome
    assert replay is not None and replay.cdc is not None and replay.cdc.caught_up
    total = sum(len(s.changes) for s in scenarios)
    assert replay.cdc.transactions >= total, "nothing was replayed: the test proves nothing"
    assert {c: mig.raw_documents(c) for c in collections} == before
    assert_scenarios(mig, *scenarios)


# -- 5. TRUNCATE ----------------------------------------------------------------------------------

TRUNCATE_SCHEMA = Scenario(
    setup=(
        "CREATE TABLE parents (id integer PRIMARY KEY, name text)",
        "CREATE TABLE kids (id integer PRIMARY KEY, parent_id integer NOT NULL REFERENCES parents, label text)",
        "INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 3) g",
        "INSERT INTO kids VALUES (11, 1, 'a'), (12, 1, 'b'), (21, 2, 'c')",
    ),
    collections=EMBEDDED_TOAST.collections,
    changes=(),
    expected=lambda mig: {
        "parents": [
            {
                "_id": p["id"],
                "name": p["name"],
                "kids": group(
                    records(mig, "SELECT * FROM kids ORDER BY id"), "parent_id", ("parent_id",)
                ).get(p["id"], []),
            }
            for p in records(mig, "SELECT id, name FROM parents")
        ]
    },
)


def test_truncate_stops_the_run_by_default(mig: Migration) -> None:
    plan = set_up(mig, "cdc-truncate-stop", TRUNCATE_SCHEMA)
    run(mig, plan, "snapshot")
    before = mig.documents("parents")
    transactions(mig, "TRUNCATE kids")
    with pytest.raises(TerminalError, match=r"TRUNCATE of public\.kids") as raised:
        run(mig, plan)
    assert "on_truncate" in str(raised.value)
    assert mig.documents("parents") == before  # nothing guessed: the arrays are still there


def test_truncate_applied_on_request_empties_collections_and_arrays(mig: Migration) -> None:
    plan = set_up(mig, "cdc-truncate-apply", TRUNCATE_SCHEMA, phases="cdc: {on_truncate: apply}")
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "INSERT INTO kids VALUES (31, 3, 'd')",
        "TRUNCATE kids",
        "INSERT INTO kids VALUES (22, 2, 'after')",
    )
    run(mig, plan)
    assert_scenarios(mig, TRUNCATE_SCHEMA)
    assert [d["kids"] for d in mig.documents("parents")] == [[], [{"id": 22, "label": "after"}], []]

    transactions(mig, "TRUNCATE parents CASCADE", "INSERT INTO parents VALUES (9, 'p9')")
    run(mig, plan)
    assert_scenarios(mig, TRUNCATE_SCHEMA)
    assert [d["_id"] for d in mig.documents("parents")] == [9]


# -- 6. DDL while the migration runs --------------------------------------------------------------

SIMPLE = Scenario(
    setup=THINGS,
    collections="- {name: things, from: things, key: id}",
    changes=(),
    expected=lambda mig: {"things": flat_documents(mig, "SELECT id, name, qty FROM things")},
)


def ddl_and_run(
    mig: Migration, plan: Path, name: str, when: str, applied: Callable[[], bool], *txns: Sequence[str] | str
) -> Follower:
    """Run `txns` (DDL among them) while the run follows changes, or between two runs (the run
    then starts on the newer catalog and replays changes made before the DDL). While following,
    the run is stopped once `applied()` or once it ended by itself (an error)."""
    if when == "between-runs":
        transactions(mig, *txns)
        return run(mig, plan)
    follower = follow(mig, plan, name)
    transactions(mig, *txns)
    try:
        wait_for(lambda: not follower.alive or applied(), "the run to apply the changes", 30)
    finally:
        follower.finish()
    return follower


@WHEN
def test_added_column_flows_into_changed_rows(mig: Migration, when: str) -> None:
    name = f"cdc-ddl-add-{when}"
    plan = set_up(mig, name, SIMPLE)
    run(mig, plan, "snapshot")
    follower = ddl_and_run(
        mig,
        plan,
        name,
        when,
        lambda: mig.by_id("things").get(3, {}).get("qty") == 30,
        "UPDATE things SET qty = 10 WHERE id = 1",  # before the DDL: the old shape
        "ALTER TABLE things ADD COLUMN extra text DEFAULT 'dflt'",
        "INSERT INTO things VALUES (4, 'n4', 4, 'x4')",
        "UPDATE things SET extra = 'y2' WHERE id = 2",
        "UPDATE things SET qty = 30 WHERE id = 3",
    )
    notices = [n for n in follower.notices() if "added" in n]
    assert notices and all("public.things" in n and "extra" in n for n in notices), follower.notices()
    # Changed rows carry the new field, and so do rows that did not change since (their documents
    # are brought up to date: docs/architecture.md, "A column added while CDC follows").
    assert_documents(mig, "things", flat_documents(mig, "SELECT id, name, qty, extra FROM things"))


@WHEN
@DROPPED_OR_RETYPED
def test_dropped_or_retyped_mapped_column_stops_the_run(
    mig: Migration, ddl: str, says: str, when: str
) -> None:
    name = f"cdc-ddl-{says.split()[-1]}-{when}"
    plan = set_up(mig, name, SIMPLE)
    run(mig, plan, "snapshot")
    with pytest.raises(TerminalError, match=rf"column public\.things\.qty {says}"):
        ddl_and_run(
            mig,
            plan,
            name,
            when,
            lambda: False,
            "UPDATE things SET name = 'before' WHERE id = 2",
            ddl,
            "UPDATE things SET name = 'after' WHERE id = 1",
        )
    # Stopped at the DDL: the change after it is not applied.
    docs = mig.by_id("things")
    assert docs[1]["name"] == "n1" and docs[1]["qty"] == 1


# -- 7. WAL budget --------------------------------------------------------------------------------


def test_wal_budget_stops_the_run(mig: Migration) -> None:
    name = "cdc-wal-budget"
    plan = set_up(mig, name, SIMPLE, phases="cdc: {max_retained_wal: 1MB}")
    run(mig, plan, "snapshot")
    # While nothing consumes the slot, the source writes ~6 MB of WAL (in a table the plan does
    # not map): the slot holds all of it.
    mig.sql(
        "CREATE TABLE junk (x text)",
        "INSERT INTO junk SELECT repeat(md5(g::text), 8) FROM generate_series(1, 20000) g",
    )
    ((retained,),) = mig.rows(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE slot_name = %s",
        [mig.slot(name)],
    )
    assert retained > 2 * 1024**2
    # Without the budget the run would catch up and return: the error is the behaviour.
    with pytest.raises(TerminalError, match=r"max_retained_wal") as raised:
        run(mig, plan)
    assert "budget of 1,048,576" in str(raised.value)
    assert [s for s, _ in mig.slots()] == [mig.slot(name)]  # kept: the run resumes once fixed


# -- 8. lost slot ---------------------------------------------------------------------------------


def test_lost_slot_stops_the_run_and_is_not_recreated(mig: Migration) -> None:
    name = "cdc-lost-slot"
    plan = set_up(mig, name, SIMPLE)
    run(mig, plan, "snapshot")
    mig.sql(f"SELECT pg_drop_replication_slot('{mig.slot(name)}')")
    transactions(mig, "UPDATE things SET qty = 10 WHERE id = 1")
    with pytest.raises(TerminalError, match="a new snapshot is needed"):
        run(mig, plan)
    assert mig.slots() == []


# -- 9. a server restarts mid-stream --------------------------------------------------------------


class Writer(threading.Thread):
    """Commits small transactions on `things` until stopped, riding out a restarting server."""

    def __init__(self, url: str) -> None:
        super().__init__(name="writer", daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.committed = 0
        self.failures = 0

    def run(self) -> None:
        i = 1000
        conn: psycopg.Connection[Any] | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                with conn.transaction():
                    # ON CONFLICT: a commit whose answer was lost to the restart is retried.
                    conn.execute(
                        "INSERT INTO things VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", [i, f"w{i}", i]
                    )
                    conn.execute("UPDATE things SET qty = qty + 1 WHERE id = %s", [i - 3])
                    if i % 5 == 0:
                        conn.execute("DELETE FROM things WHERE id = %s", [i - 7])
                self.committed += 1
                i += 1
                time.sleep(0.01)
            except psycopg.OperationalError:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.2)
        if conn is not None:
            conn.close()


def matches(mig: Migration, scenario: Scenario) -> bool:
    """Whether the target equals what the scenario expects from the source (no assertion)."""
    for collection, docs in scenario.expected(mig).items():
        if [typed(d) for d in mig.documents(collection)] != [typed(d) for d in sorted_documents(docs)]:
            return False
    return True


def clean_shutdowns(server: Any) -> int:
    """How often a throwaway PostgreSQL's log says it shut down cleanly."""
    return Path(server.log_path).read_text(errors="replace").count("database system is shut down")


@pytest.mark.parametrize("side", ["source", "target"])
def test_following_survives_a_server_restart(
    mig: Migration, pg_server: Any, mongo_server: Any, side: str
) -> None:
    server = pg_server if side == "source" else mongo_server
    if isinstance(server, ExternalServer) or not getattr(server, "restartable", False):
        pytest.skip("restarting a server needs the throwaway one (MIGRATOR_TEST_*_URL is set)")
    name = f"cdc-restart-{side}"
    plan = set_up(mig, name, SIMPLE)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    writer = Writer(mig.pg_url)
    writer.start()
    try:
        wait_for(lambda: writer.committed >= 20, "the writer's first commits")
        before_restart = writer.committed
        shut_down = clean_shutdowns(server) if side == "source" else 0
        server.restart()
        if side == "source":
            # A clean shutdown, not the SIGKILL the harness sends after its timeout: the run's
            # connections (a walsender among them) did not hold the server up.
            assert clean_shutdowns(server) == shut_down + 1, "the restart waited for the run (a walsender?)"
        wait_for(lambda: writer.committed >= before_restart + 50, "commits after the restart", 60)
    finally:
        writer.stop.set()
        writer.join(30)
    # The same run, still following, applies what was committed around and after the restart.
    wait_for(lambda: not follower.alive or matches(mig, SIMPLE), "the run to apply every change", 60, 0.5)
    outcome = follower.finish()
    assert outcome.cdc is not None and outcome.cdc.stopped
    assert_scenarios(mig, SIMPLE)
    assert len(mig.documents("things")) > 40
    if side == "source":
        # The replication connection broke: the run reconnected through its retry loop.
        assert writer.failures > 0
        assert any("retrying" in n for n in follower.notices()), follower.notices()
    # (A target restart of a few seconds is absorbed inside the driver: with_transaction retries
    # a transaction that fails with a network error, labelled TransientTransactionError.)
    caught = run(mig, plan).outcome
    assert caught is not None and caught.cdc is not None and caught.cdc.caught_up
    assert_scenarios(mig, SIMPLE)


# -- 10. heartbeat --------------------------------------------------------------------------------


def test_heartbeat_moves_the_slot_of_an_idle_source(mig: Migration) -> None:
    name = "cdc-heartbeat"
    plan = set_up(mig, name, SIMPLE, phases="cdc: {heartbeat_interval: 1s}")
    run(mig, plan, "snapshot")
    ((idle_at,),) = mig.rows("SELECT pg_current_wal_lsn()::text")
    follower = follow(mig, plan, name)

    def checkpoint() -> int:
        found = mig.client[mig.database]["_migrator"].find_one({"_id": f"{STATE_ID_PREFIX}{name}"})
        return 0 if found is None else int(found["position"])

    def confirmed() -> int:
        return Lsn.parse(dict(mig.slots())[mig.slot(name)]).value

    try:
        # Nothing writes to the source, so the only commits to apply are the run's heartbeats:
        # the target checkpoint moves past the idle position, again and again ...
        wait_for(lambda: checkpoint() > Lsn.parse(idle_at).value, "a heartbeat to be applied", 10)
        first = checkpoint()
        wait_for(lambda: checkpoint() > first, "a second heartbeat", 10)
        # ... and the slot is acknowledged while the run follows, so it releases WAL.
        wait_for(lambda: confirmed() >= first, "the slot to move past the idle position", 20, 0.5)
        assert follower.alive
    finally:
        follower.finish()


# -- 11. streamed large transactions --------------------------------------------------------------


@pytest.mark.usefixtures("small_decoding_memory")
def test_streamed_large_transactions_committed_and_rolled_back(mig: Migration) -> None:
    name = "cdc-streamed"
    plan = set_up(mig, name, SIMPLE)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    try:
        with psycopg.connect(mig.pg_url) as conn:
            with conn.transaction():
                conn.execute("INSERT INTO things SELECT g, 'big' || g, g FROM generate_series(100, 20099) g")
                conn.execute("UPDATE things SET qty = -qty WHERE id % 1000 = 0")
                conn.execute("DELETE FROM things WHERE id BETWEEN 100 AND 109")
            with conn.transaction(force_rollback=True):
                conn.execute(
                    "INSERT INTO things SELECT g, 'gone' || g, g FROM generate_series(30000, 49999) g"
                )
                conn.execute("UPDATE things SET name = 'gone' WHERE id < 1000")
            with conn.transaction():
                conn.execute("INSERT INTO things VALUES (50000, 'kept-before', 1)")
                with conn.transaction(force_rollback=True):  # a savepoint, rolled back
                    conn.execute(
                        "INSERT INTO things SELECT g, 'gone' || g, g FROM generate_series(60000, 64999) g"
                    )
                    conn.execute("UPDATE things SET name = 'gone' WHERE id = 1")
                conn.execute("INSERT INTO things VALUES (50001, 'kept-after', 2)")

        def streamed() -> int:
            rows = mig.rows(
                "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = %s", [mig.slot(name)]
            )
            return int(rows[0][0]) if rows else 0

        # All three transactions outgrew 64kB of decoding memory: the server streamed them.
        wait_for(lambda: streamed() >= 3, "the server to report three streamed transactions", 60, 0.5)
    finally:
        follower.finish()
    caught = run(mig, plan).outcome
    assert caught is not None and caught.cdc is not None and caught.cdc.caught_up
    assert_scenarios(mig, SIMPLE)
    docs = mig.by_id("things")
    assert len(docs) == 3 + 20000 - 10 + 2
    assert 30000 not in docs and 60000 not in docs and docs[1]["name"] == "n1"


# -- 12. SIGTERM on `migrator run` ----------------------------------------------------------------


def _result(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("event") == "result":
            return data
    raise AssertionError(f"no result line in:\n{stdout}")


def test_sigterm_checkpoints_exits_0_and_the_next_run_finishes(mig: Migration) -> None:
    name = "cdc-sigterm"
    plan = set_up(mig, name, FLAT)
    run(mig, plan, "snapshot")
    env = {**os.environ, **mig.env}
    command = [migrator_script(), "run", str(plan), "--state", str(mig.state_path), "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: slot_active(mig, name) or proc.poll() is not None, "the replication stream", 60)
        assert proc.poll() is None, proc.communicate()
        first, rest = FLAT.changes[:5], FLAT.changes[5:]
        transactions(mig, *first)
        # Applied: the insert of 7 and the key change of 5 -> 50 (the last of `first`) are visible.
        wait_for(lambda: {7, 50} <= set(mig.by_id("things")), "the first changes in the target")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    result = _result(stdout)
    assert result["interrupted"] is True and result["cdc"]["caught_up"] is False
    # Checkpointed: the target holds the position, and the slot was acknowledged up to it.
    checkpoint = mig.client[mig.database]["_migrator"].find_one({"_id": f"{STATE_ID_PREFIX}{name}"})
    assert checkpoint is not None
    assert (
        Lsn.parse(checkpoint["position_text"]).value
        == checkpoint["position"]
        == Lsn.parse(result["cdc"]["position"]).value
    )
    assert Lsn.parse(dict(mig.slots())[mig.slot(name)]).value >= checkpoint["position"]

    transactions(mig, *rest)
    second = subprocess.run(
        [*command, "--until", "caught-up"], capture_output=True, text=True, env=env, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert _result(second.stdout)["cdc"]["caught_up"] is True
    assert_scenarios(mig, FLAT)


# -- poll mode reaches "caught up" ----------------------------------------------------------------


def test_poll_mode_run_until_caught_up_ends_past_wal_it_does_not_decode(mig: Migration) -> None:
    """In poll mode the last decoded row is never at the source's WAL position: records after it
    (an unpublished table's writes, another database's, checkpoints) are never decoded. A poll
    that finds nothing new has read up to the WAL flushed before it, which is where the source
    stands: `--until caught-up` must end there, also with a max_lag as short as the poll interval
    (it waited forever: each check asked for a new marker, a commit whose age when applied, a poll
    later, was over max_lag)."""
    mig.sql(
        "CREATE TABLE polled (id integer PRIMARY KEY, v text)",
        "CREATE TABLE bystander (id integer PRIMARY KEY, v text)",  # not in the plan: not published
        "INSERT INTO polled SELECT i, 'v' || i FROM generate_series(1, 20) i",
    )
    plan = mig.plan(
        "- {name: polled, from: polled, key: id}",
        name="cdc-poll-caught-up",
        phases="cdc: {mode: poll, max_lag: 1s, heartbeat_interval: 1s}",
    )
    run(mig, plan, "snapshot")
    mig.sql(
        "UPDATE polled SET v = 'changed' WHERE id <= 5",
        "DELETE FROM polled WHERE id = 20",
        # The last WAL before the run: writes the slot does not decode.
        "INSERT INTO bystander SELECT i, repeat('x', 200) FROM generate_series(1, 2000) i",
    )
    # The last change is older than max_lag when the run starts: only "caught up" can end it, not
    # a recent commit (a lag under max_lag measured from the last applied commit).
    time.sleep(3)
    follower = run(mig, plan, "caught-up", timeout=300)
    assert follower.outcome is not None, follower.error
    expected = [
        {"_id": i, "v": "changed" if i <= 5 else f"v{i}"} for i in range(1, 20)
    ]  # built from the statements above, not from migrator's mapping
    assert sorted_documents(mig.documents("polled")) == expected
