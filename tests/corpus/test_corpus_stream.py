"""PostgreSQL src/test/subscription/t/015_stream.pl, 016_stream_subxact.pl, 017_stream_ddl.pl and
018_stream_subxact_abort.pl, publisher side, as one migration.

Upstream sets logical_decoding_work_mem = 64kB (016 and 018 use PostgreSQL 16's
logical_replication_mode = immediate, which 15 lacks: their transactions are padded with rows of
the unmapped test_tab_2 until they pass 64 kB, which still streams them). The database gets the
setting, so the run's walsender streams large transactions in progress (protocol 2: stream
start/stop blocks, then commit or abort); `pg_stat_replication_slots` shows that they were.
"""

from __future__ import annotations

import time

import psycopg

from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll
from tests.support.upstream import STREAM_ABORTED, STREAM_DDL, STREAM_KEPT, STREAM_PAD, STREAM_SAVEPOINTS

scenario = scenario_fixture("stream")

COLLECTIONS = [Coll("test_tab", "test_tab", ("a",))]
PAD = STREAM_PAD


def streamed(scenario: Scenario) -> int:
    return int(
        scenario.scalar(
            "SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots s"
            " JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()"
        )
    )


def test_01_snapshot(scenario: Scenario) -> None:
    scenario.sql(
        f"ALTER DATABASE {scenario.database} SET logical_decoding_work_mem = '64kB'",
        "CREATE TABLE test_tab (a int primary key, b varchar)",
        "INSERT INTO test_tab VALUES (1, 'foo'), (2, 'bar')",
        "CREATE TABLE test_tab_2 (a int)",
    )
    scenario.write_plan(COLLECTIONS)
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_target()


def test_02_interleaved_large_transactions(scenario: Scenario) -> None:
    """015: a pair of transactions over 64 kB, interleaved; the first commits last (upstream's
    row counts divided by five: still well over 64 kB each)."""
    before = streamed(scenario)
    with psycopg.connect(scenario.pg_url) as first, psycopg.connect(scenario.pg_url) as second:
        first.execute("INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(3, 1000) s(i)")
        first.execute("UPDATE test_tab SET b = md5(b) WHERE mod(a,2) = 0")
        first.execute("DELETE FROM test_tab WHERE mod(a,3) = 0")
        with second.transaction():
            second.execute(
                "INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(1001, 1999) s(i)"
            )
            second.execute("DELETE FROM test_tab WHERE a > 1000")
        first.commit()
    scenario.catch_up()
    scenario.assert_target()
    scenario.step(
        [
            "INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(1001, 2000) s(i)",
            "UPDATE test_tab SET b = md5(b) WHERE mod(a,2) = 0",
            "DELETE FROM test_tab WHERE mod(a,3) = 0",
        ],
        "UPDATE test_tab SET b = md5(a::text)",
    )
    scenario.assert_target()
    deadline = time.monotonic() + 60  # slot statistics are flushed by the walsender now and then
    while streamed(scenario) <= before:
        assert time.monotonic() < deadline, "no transaction was streamed: the scenario tests nothing"
        time.sleep(0.5)
    scenario.step("DELETE FROM test_tab WHERE (a > 2)")


def test_03_streamed_transaction_with_subtransactions(scenario: Scenario) -> None:
    """016."""
    statements = [PAD]
    for n, (low, high) in enumerate([(3, 5), (6, 8), (9, 11), (12, 14), (15, 17)]):
        if n:
            statements.append(f"SAVEPOINT s{n}")
        statements += [
            f"INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series({low}, {high}) s(i)",
            "UPDATE test_tab SET b = md5(b) WHERE mod(a,2) = 0",
            "DELETE FROM test_tab WHERE mod(a,3) = 0",
        ]
    scenario.step(statements)
    scenario.assert_target()
    assert len(scenario.documents("test_tab")) == 12
    scenario.step("DELETE FROM test_tab WHERE (a > 2)")


ADDED = {"test_tab": ("c", "d", "e", "f")}


def test_04_streamed_transactions_with_ddl(scenario: Scenario) -> None:
    """017: columns added inside small and streamed transactions (the mapping takes every column).
    The added columns of rows written before each ADD COLUMN are test_04b's."""
    scenario.step(
        *STREAM_DDL,
    )
    scenario.assert_target(skip=ADDED)


def test_04b_added_columns_reach_documents_written_before(scenario: Scenario) -> None:
    scenario.assert_target(only=ADDED)


def test_04c_clean_up(scenario: Scenario) -> None:
    scenario.step("DELETE FROM test_tab WHERE (a > 2)")


def test_05_streamed_transactions_with_rollbacks(scenario: Scenario) -> None:
    """018: savepoints rolled back, released out of order, and a streamed transaction aborted."""
    scenario.step(*STREAM_SAVEPOINTS)
    with psycopg.connect(scenario.pg_url) as conn:
        for statement in STREAM_ABORTED:
            conn.execute(statement)
        conn.rollback()
    scenario.catch_up()
    scenario.assert_target(skip=ADDED)
    assert sorted(d["_id"] for d in scenario.documents("test_tab")) == STREAM_KEPT
    scenario.verify()
