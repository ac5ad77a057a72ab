"""PostgreSQL's src/test/subscription/t/015_stream.pl, 016_stream_subxact.pl, 017_stream_ddl.pl,
018_stream_subxact_abort.pl and contrib/test_decoding/sql/toast.sql, publisher side, as one
migration PostgreSQL -> PostgreSQL followed by CDC (tests/support/pg_corpus.py), each step's
rows compared as text on both servers.

The source database has logical_decoding_work_mem = 64kB (upstream's setting), so the run's
walsender streams large transactions in progress (stream start/stop blocks, then commit or abort);
`pg_stat_replication_slots` proves it did. PostgreSQL 16's logical_replication_mode = immediate
(016, 018) is replaced by padding transactions past 64 kB with rows of an unmapped table.
toast.sql: compressed and external TOAST, updates leaving it unchanged, INSERT ... ON CONFLICT, a
TOASTed primary key unchanged then changed, COPY mixing TOASTed and plain rows, a FULL identity
table whose old tuple is over 64 kB, a transaction larger than the decoding memory.
"""

from __future__ import annotations

import time

import psycopg

from tests.support.pg_corpus import PgScenario, Table, pg_scenario_fixture
from tests.support.upstream import (
    STREAM_ABORTED,
    STREAM_DDL,
    STREAM_KEPT,
    STREAM_PAD,
    STREAM_SAVEPOINTS,
    TOAST_SETUP,
    toast_copy,
)

scenario = pg_scenario_fixture("pg_stream")

PAD = STREAM_PAD
TABLES = [
    Table("public.test_tab"),
    Table("public.xpto"),
    Table("public.toasted_key"),
    Table("public.toasted_copy"),
    Table("public.toasted_several"),
]


def streamed(scenario: PgScenario) -> int:
    return int(
        scenario.scalar(
            "SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots s"
            " JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()"
        )
    )


def streamed_blocks(scenario: PgScenario) -> int:
    return int(
        scenario.scalar(
            "SELECT coalesce(sum(stream_count), 0) FROM pg_stat_replication_slots s"
            " JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()"
        )
    )


def test_01_snapshot(scenario: PgScenario) -> None:
    scenario.sql(
        f"ALTER DATABASE {scenario.database} SET logical_decoding_work_mem = '64kB'",
        "CREATE TABLE test_tab (a int primary key, b varchar)",
        "INSERT INTO test_tab VALUES (1, 'foo'), (2, 'bar')",
        "CREATE TABLE test_tab_2 (a int)",
        *TOAST_SETUP,
    )
    scenario.write_plan(TABLES)
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_same()


def test_02_interleaved_large_transactions(scenario: PgScenario) -> None:
    """015: two transactions over 64 kB, interleaved; the first commits last."""
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
    scenario.assert_same()
    scenario.step(
        [
            "INSERT INTO test_tab SELECT i, md5(i::text) FROM generate_series(1001, 2000) s(i)",
            "UPDATE test_tab SET b = md5(b) WHERE mod(a,2) = 0",
            "DELETE FROM test_tab WHERE mod(a,3) = 0",
        ],
        "UPDATE test_tab SET b = md5(a::text)",
    )
    scenario.assert_same()
    deadline = time.monotonic() + 60  # slot statistics are flushed by the walsender now and then
    while streamed(scenario) <= before:
        assert time.monotonic() < deadline, "no transaction was streamed: the scenario tests nothing"
        time.sleep(0.5)
    scenario.step("DELETE FROM test_tab WHERE (a > 2)")
    scenario.assert_same()


def test_03_streamed_transaction_with_subtransactions(scenario: PgScenario) -> None:
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
    scenario.assert_same()
    assert len(scenario.rows("test_tab", "a")) == 12
    scenario.step("DELETE FROM test_tab WHERE (a > 2)")


def test_04_streamed_transactions_with_rollbacks(scenario: PgScenario) -> None:
    """018: savepoints rolled back, released out of order, and a streamed transaction aborted."""
    scenario.step(*STREAM_SAVEPOINTS)
    with psycopg.connect(scenario.pg_url) as conn:
        for statement in STREAM_ABORTED:
            conn.execute(statement)
        conn.rollback()
    scenario.catch_up()
    scenario.assert_same()
    keys = [r.split(",")[0].lstrip("(") for r in scenario.rows("test_tab", "a")]
    assert keys == [str(k) for k in STREAM_KEPT], keys


def test_05_toasted_values_updated_and_left_unchanged(scenario: PgScenario) -> None:
    scenario.step(
        # compressed external toast data
        "INSERT INTO xpto (toasted_col2) SELECT repeat(string_agg(to_char(g.i, 'FM0000'), ''), 50)"
        " FROM generate_series(1, 500) g(i)",
        "UPDATE xpto SET toasted_col1 = (SELECT string_agg(g.i::text, '') FROM generate_series(1, 2000) g(i))"
        " WHERE id = 1",
        "UPDATE xpto SET rand1 = 123.456 WHERE id = 1",
        "INSERT INTO xpto(id, toasted_col2) VALUES (2, 'toasted2-upsert') ON CONFLICT (id)"
        " DO UPDATE SET toasted_col2 = EXCLUDED.toasted_col2 || xpto.toasted_col2",
        "INSERT INTO xpto(id, toasted_col2) VALUES (3, 'toasted3-upsert') ON CONFLICT (id)"
        " DO UPDATE SET toasted_col2 = EXCLUDED.toasted_col2 || xpto.toasted_col2",
    )
    scenario.assert_same()
    scenario.step("DELETE FROM xpto WHERE id = 1")
    scenario.assert_same()


def test_06_toasted_key_unchanged_then_changed(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO toasted_key(toasted_key, toasted_col1)"
        " VALUES(repeat('1234567890', 200), repeat('9876543210', 200))"
    )
    scenario.step("UPDATE toasted_key SET toasted_col2 = toasted_col1")  # the key arrives as unchanged TOAST
    scenario.assert_same()
    scenario.step("UPDATE toasted_key SET toasted_key = toasted_key || '1'")
    scenario.assert_same()
    scenario.step("DELETE FROM toasted_key")
    scenario.assert_same()


def test_07_copy_mixes_toasted_and_plain_rows(scenario: PgScenario) -> None:
    toast_copy(scenario.pg_url)
    scenario.catch_up()
    scenario.assert_same()


def test_08_full_identity_old_tuple_larger_than_a_heap_tuple(scenario: PgScenario) -> None:
    scenario.step("INSERT INTO toasted_several(toasted_key) VALUES(repeat('9876543210', 10000))")
    scenario.step(
        "UPDATE toasted_several SET toasted_col1 = toasted_key",
        "UPDATE toasted_several SET toasted_col2 = toasted_col1",
    )
    scenario.assert_same()
    # FULL identity, TOASTed columns left unchanged by the update (the old tuple holds them whole).
    scenario.step("UPDATE toasted_several SET id = -id")
    scenario.assert_same()


def test_09_transaction_larger_than_the_decoding_memory(scenario: PgScenario) -> None:
    scenario.step(
        [
            "INSERT INTO toasted_several(toasted_key) SELECT * FROM generate_series(1, 3000)",
            "UPDATE toasted_several SET toasted_col1 = toasted_col2 WHERE id = 1",
            "DELETE FROM toasted_several WHERE id = 1",
            "UPDATE toasted_several SET toasted_col2 = repeat('x', 3000) WHERE id % 500 = 0",
        ]
    )
    scenario.assert_same()


ADDED = ("c", "d", "e", "f")


def test_10_streamed_transactions_with_ddl(scenario: PgScenario) -> None:
    """017: columns added inside small and streamed transactions (the plan takes every column):
    the target table gets them, and rows written before each ADD COLUMN hold its default."""
    scenario.step(
        "DELETE FROM test_tab WHERE (a > 2)",
        *STREAM_DDL,
        "ALTER TABLE test_tab ADD COLUMN h int DEFAULT 7",  # not upstream: the rows hold its default
        "INSERT INTO test_tab VALUES (5006, 'h')",
    )
    scenario.assert_same()


def test_10b_column_added_in_a_streamed_transaction_that_aborts(scenario: PgScenario) -> None:
    """018 and 017 together: the ALTER and rows that carry the column are streamed while the
    transaction is in progress (the test waits until the walsender has decoded past them), then
    it aborts: the source never had the column, and the run must neither stop nor add it."""
    blocks = streamed_blocks(scenario)
    with psycopg.connect(scenario.pg_url) as conn:
        for statement in (
            PAD,
            "ALTER TABLE test_tab ADD COLUMN g int",
            "INSERT INTO test_tab (a, b, g) SELECT i, md5(i::text), i FROM generate_series(6001,7000) s(i)",
            PAD,
        ):
            conn.execute(statement)
        written = scenario.scalar("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + 60
        while not scenario.scalar(
            "SELECT bool_and(s.sent_lsn >= %s::pg_lsn) FROM pg_stat_replication s"
            " JOIN pg_replication_slots r ON r.active_pid = s.pid WHERE r.database = current_database()",
            [written],
        ):
            assert time.monotonic() < deadline, "the walsender did not decode the transaction in progress"
            time.sleep(0.1)
        # ... and streamed it: the blocks of the first PAD and of the rows after the ALTER.
        while streamed_blocks(scenario) < blocks + 2:
            assert time.monotonic() < deadline, "the transaction was not streamed: the step tests nothing"
            time.sleep(0.2)
        conn.rollback()
    scenario.step(
        "INSERT INTO test_tab VALUES (7001, 'after the abort')", "UPDATE test_tab SET c = 1 WHERE a = 3"
    )
    scenario.assert_same()


def test_11_verify_agrees(scenario: PgScenario) -> None:
    scenario.verify()
