"""PostgreSQL src/test/subscription/t/013_partition.pl, publisher side, as one migration.

tab1 is published per leaf (its partitions: one attached with another column order, one
created as PARTITION OF, a DEFAULT one); rows are written through the root and through the
leaves, moved between partitions (delete + insert on the wire) and within one. tab2 is upstream's
"root identity" table, tab4 a two-level hierarchy, and a partition is created while the run
follows. A TRUNCATE of the root is applied (`on_truncate: apply`). Upstream's last tab2 step
drops and re-adds the mapped column b in one ALTER: the run must stop naming it, or follow it
with every document right.
"""

from __future__ import annotations

import pytest

from migrator.errors import InternalError, TerminalError
from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll

scenario = scenario_fixture("partition")

COLLECTIONS = [
    Coll("tab1", "tab1", ("a",)),
    Coll("tab2", "tab2", ("a",)),
    Coll("tab4", "tab4", ("a",)),
]


def test_01_snapshot(scenario: Scenario) -> None:
    scenario.sql(
        "CREATE TABLE tab1 (a int PRIMARY KEY, b text) PARTITION BY LIST (a)",
        "CREATE TABLE tab1_1 (b text, a int NOT NULL)",
        "ALTER TABLE tab1 ATTACH PARTITION tab1_1 FOR VALUES IN (1, 2, 3)",
        "CREATE TABLE tab1_2 PARTITION OF tab1 FOR VALUES IN (4, 5, 6)",
        "CREATE TABLE tab1_def PARTITION OF tab1 DEFAULT",
        "CREATE TABLE tab2 (a int PRIMARY KEY, b text) PARTITION BY LIST (a)",
        "CREATE TABLE tab2_1 (b text, a int NOT NULL)",
        "ALTER TABLE tab2 ATTACH PARTITION tab2_1 FOR VALUES IN (0, 1, 2, 3)",
        "CREATE TABLE tab2_2 PARTITION OF tab2 FOR VALUES IN (5, 6)",
        "CREATE TABLE tab4 (a int PRIMARY KEY) PARTITION BY LIST (a)",
        "CREATE TABLE tab4_1 PARTITION OF tab4 FOR VALUES IN (-1, 0, 1) PARTITION BY LIST (a)",
        "CREATE TABLE tab4_1_1 PARTITION OF tab4_1 FOR VALUES IN (-1, 0, 1)",
        "INSERT INTO tab2 VALUES (1)",
        "INSERT INTO tab4 VALUES (-1)",
    )
    scenario.write_plan(COLLECTIONS, phases={"snapshot": {"parallel": 1}, "cdc": {"on_truncate": "apply"}})
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_target()


def test_02_inserts_through_root_and_leaves(scenario: Scenario) -> None:
    scenario.step(
        "INSERT INTO tab1 VALUES (1)",
        "INSERT INTO tab1_1 (a) VALUES (3)",
        "INSERT INTO tab1_2 VALUES (5)",
        "INSERT INTO tab1 VALUES (0)",
        "INSERT INTO tab2 VALUES (0), (3), (5)",
        "INSERT INTO tab4 VALUES (0)",
        "INSERT INTO tab4_1 VALUES (1)",
    )
    scenario.assert_target()


def test_03_updates_within_a_partition(scenario: Scenario) -> None:
    scenario.step(
        "UPDATE tab1 SET a = 2 WHERE a = 1",
        "UPDATE tab1 SET a = 6 WHERE a = 5",
        "UPDATE tab1 SET a = 4 WHERE a = 6",
        "UPDATE tab1 SET a = 6 WHERE a = 4",
        "UPDATE tab2 SET a = 6 WHERE a = 5",
    )
    scenario.assert_target()


def test_04_updates_that_move_rows_between_partitions(scenario: Scenario) -> None:
    scenario.step(
        "UPDATE tab1 SET a = 1 WHERE a = 0",  # tab1_def -> tab1_1
        "UPDATE tab1 SET a = 4 WHERE a = 1",  # tab1_1 -> tab1_2
        "UPDATE tab2 SET a = 2 WHERE a = 6",  # tab2_2 -> tab2_1
        ["UPDATE tab1 SET a = 5, b = 'moved' WHERE a = 3", "UPDATE tab1 SET b = 'after' WHERE a = 5"],
    )
    scenario.assert_target()


def test_05_deletes(scenario: Scenario) -> None:
    scenario.step(
        "DELETE FROM tab1 WHERE a IN (2, 3, 5)", "DELETE FROM tab1_2", "DELETE FROM tab2 WHERE a = 0"
    )
    scenario.assert_target()


def test_06_partition_created_while_following(scenario: Scenario) -> None:
    scenario.step(
        "CREATE TABLE tab1_3 PARTITION OF tab1 FOR VALUES IN (7, 8)",
        "INSERT INTO tab1 VALUES (1, 'foo'), (4, 'bar'), (7, 'new partition'), (10, 'baz')",
        "UPDATE tab1 SET b = 'quux' WHERE a IN (4, 7)",
        "UPDATE tab1 SET a = 8 WHERE a = 10",  # tab1_def -> the new partition
    )
    scenario.assert_target()


def test_07_truncate_of_the_root(scenario: Scenario) -> None:
    scenario.step("TRUNCATE tab1", "INSERT INTO tab1 VALUES (2, 'again')")
    scenario.assert_target()
    scenario.verify()


def test_08_column_added_with_a_default_reaches_existing_documents(scenario: Scenario) -> None:
    scenario.sql("ALTER TABLE tab2 ADD COLUMN c text DEFAULT 'pub_tab2'")
    scenario.step(
        "INSERT INTO tab2 (a, b) VALUES (0, 'xxx')", "INSERT INTO tab2 (a, b, c) VALUES (5, 'zzz', 'own')"
    )
    scenario.assert_target()


def test_09_mapped_column_dropped_and_added_again(scenario: Scenario) -> None:
    """The new b is another column (a new attnum, NULL in every row; PostgreSQL logs no row
    change for it): the run stops naming tab2 and b, with the way forward, as for a dropped one."""
    scenario.step("UPDATE tab2 SET b = 'old' WHERE a IN (1, 2)")
    scenario.sql("ALTER TABLE tab2 DROP b, ADD b text", "INSERT INTO tab2 (a, b) VALUES (6, 'aaa')")
    with pytest.raises(TerminalError) as stopped:
        scenario.catch_up()
    scenario.follower = None
    assert not isinstance(stopped.value, InternalError), stopped.value
    assert "tab2.b" in str(stopped.value) and "dropped and added again" in str(stopped.value), stopped.value
    assert "migrator rollback" in (stopped.value.hint or ""), stopped.value
