"""PostgreSQL contrib/test_decoding/sql/toast.sql, as one migration followed by CDC.

Values stored out of line, compressed and uncompressed; an update that leaves them unchanged
(pgoutput sends 'u'); INSERT ... ON CONFLICT DO UPDATE; a TOASTed primary key updated without
changing it and then changed; COPY with TOASTed and plain rows mixed (multi-insert); a table
with REPLICA IDENTITY FULL whose old tuple is larger than a heap tuple; a transaction large
enough to spill to disk on the server. Expected documents come from SQL after each step.
"""

from __future__ import annotations

from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll
from tests.support.upstream import TOAST_SETUP, toast_copy

scenario = scenario_fixture("toast")

COLLECTIONS = [
    Coll("xpto", "xpto", ("id",)),
    Coll("toasted_key", "toasted_key", ("toasted_key",)),
    Coll("toasted_copy", "toasted_copy", ("id",)),
    Coll("toasted_several", "toasted_several", ("toasted_key",)),
]


def test_01_snapshot(scenario: Scenario) -> None:
    scenario.sql(
        f"ALTER DATABASE {scenario.database} SET logical_decoding_work_mem = '64kB'",
        *TOAST_SETUP,
    )
    scenario.write_plan(COLLECTIONS)
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_target()


def test_02_toasted_values_updated_and_left_unchanged(scenario: Scenario) -> None:
    scenario.step(
        # compressed external toast data
        "INSERT INTO xpto (toasted_col2) SELECT repeat(string_agg(to_char(g.i, 'FM0000'), ''), 50)"
        " FROM generate_series(1, 500) g(i)",
        "UPDATE xpto SET toasted_col1 = (SELECT string_agg(g.i::text, '') FROM generate_series(1, 2000) g(i))"
        " WHERE id = 1",
        "UPDATE xpto SET rand1 = 123.456 WHERE id = 1",
        "INSERT INTO xpto(id, toasted_col2) VALUES (2, 'toasted2-upsert') ON CONFLICT (id)"
        " DO UPDATE SET toasted_col2 = EXCLUDED.toasted_col2 || xpto.toasted_col2",
    )
    scenario.assert_target()
    scenario.step("DELETE FROM xpto WHERE id = 1")
    scenario.assert_target()


def test_03_toasted_key_unchanged_then_changed(scenario: Scenario) -> None:
    scenario.step(
        "INSERT INTO toasted_key(toasted_key, toasted_col1) VALUES(repeat('1234567890', 200), repeat('9876543210', 200))"
    )
    scenario.assert_target()
    scenario.step("UPDATE toasted_key SET toasted_col2 = toasted_col1")  # the key arrives as unchanged TOAST
    scenario.assert_target()
    scenario.step("UPDATE toasted_key SET toasted_key = toasted_key || '1'")
    scenario.assert_target()
    scenario.step("DELETE FROM toasted_key")
    scenario.assert_target()


def test_04_copy_mixes_toasted_and_plain_rows(scenario: Scenario) -> None:
    toast_copy(scenario.pg_url)
    scenario.catch_up()
    scenario.assert_target()


def test_05_old_tuple_larger_than_a_heap_tuple(scenario: Scenario) -> None:
    scenario.step("INSERT INTO toasted_several(toasted_key) VALUES(repeat('9876543210', 10000))")
    scenario.step(
        "UPDATE toasted_several SET toasted_col1 = toasted_key",
        "UPDATE toasted_several SET toasted_col2 = toasted_col1",
    )
    scenario.assert_target()


def test_06_transaction_larger_than_the_decoding_memory(scenario: Scenario) -> None:
    # Upstream inserts 10234 rows to make the server spool the transaction to disk; with the
    # database's logical_decoding_work_mem at its 64 kB minimum (set before the run started),
    # 3000 rows are enough, and the transaction is streamed (protocol 2).
    scenario.step(
        [
            "INSERT INTO toasted_several(toasted_key) SELECT * FROM generate_series(1, 3000)",
            "UPDATE toasted_several SET toasted_col1 = toasted_col2 WHERE id = 1",
            "DELETE FROM toasted_several WHERE id = 1",
        ]
    )
    scenario.assert_target()
    scenario.verify()
