"""PostgreSQL src/test/subscription/t/010_truncate.pl, publisher side, as one migration with
`phases.cdc.on_truncate: apply` (docs/cdc.md "CDC replay": TRUNCATE empties the collection, or the
arrays). tab4 references tab3 and is embedded in it, so that one TRUNCATE of both empties the
documents and their arrays in one transaction; tab2 is not mapped (upstream's publication that
does not publish it), so a TRUNCATE naming it with a mapped table touches only the mapped one.
"""

from __future__ import annotations

from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll, Embed

scenario = scenario_fixture("truncate")

COLLECTIONS = [
    Coll("tab1", "tab1", ("a",)),
    Coll("tab3", "tab3", ("a",), embeds=(Embed("tab4", "tab4", {"y": "a"}, key=("x",)),)),
    Coll("tab5", "tab5", ("a",)),
]


def test_01_snapshot(scenario: Scenario) -> None:
    scenario.sql(
        "CREATE TABLE tab1 (a int PRIMARY KEY)",
        "CREATE TABLE tab2 (a int PRIMARY KEY)",
        "CREATE TABLE tab3 (a int PRIMARY KEY)",
        "CREATE TABLE tab4 (x int PRIMARY KEY, y int REFERENCES tab3)",
        "CREATE SEQUENCE seq1 OWNED BY tab1.a",
        "CREATE TABLE tab5 (a int PRIMARY KEY)",
        "INSERT INTO tab1 VALUES (1), (2), (3)",
        "INSERT INTO tab3 VALUES (1), (2), (3)",
        "INSERT INTO tab4 VALUES (11, 1), (111, 1), (22, 2)",
    )
    scenario.write_plan(COLLECTIONS, phases={"snapshot": {"parallel": 1}, "cdc": {"on_truncate": "apply"}})
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_target()


def test_02_truncate(scenario: Scenario) -> None:
    scenario.step("TRUNCATE tab1")
    assert scenario.documents("tab1") == []
    scenario.step(
        "INSERT INTO tab1 VALUES (4), (5)", "TRUNCATE tab1 RESTART IDENTITY", "INSERT INTO tab1 VALUES (6)"
    )
    scenario.assert_target()


def test_03_truncate_of_tables_tied_by_a_foreign_key(scenario: Scenario) -> None:
    scenario.step("TRUNCATE tab3, tab4")
    assert scenario.documents("tab3") == []
    scenario.step(
        "INSERT INTO tab3 VALUES (1), (2)", "INSERT INTO tab4 VALUES (11, 1), (22, 2)", "TRUNCATE tab4"
    )
    scenario.assert_target()  # tab3 documents kept, their arrays emptied
    assert [d["tab4"] for d in scenario.documents("tab3")] == [[], []]


def test_04_truncate_naming_an_unmapped_table(scenario: Scenario) -> None:
    scenario.step(
        "INSERT INTO tab1 VALUES (1), (2), (3)",
        "INSERT INTO tab2 VALUES (1), (2), (3)",
        "TRUNCATE tab1, tab2",
    )
    scenario.assert_target()


def test_05_insert_then_truncate_in_one_transaction(scenario: Scenario) -> None:
    scenario.step(["INSERT INTO tab5 VALUES (1), (2), (3)", "TRUNCATE tab5", "INSERT INTO tab5 VALUES (9)"])
    scenario.assert_target()
    scenario.verify()
