"""MariaDB key columns of every kind a MySQL table may use as its primary key, through snapshot
and binlog into MongoDB `_id`s (tests/support/mysql_corpus.py), compared with documents built from
the source's rows: DATETIME(6) keys a millisecond apart and within one, BINARY(n), ENUM, YEAR,
DECIMAL, a compound key of CHAR and BIGINT UNSIGNED."""

from __future__ import annotations

from tests.support.expected import Coll
from tests.support.mysql_corpus import MysqlScenario, mysql_scenario_fixture

scenario = mysql_scenario_fixture("mykeys")

SCHEMA = (
    "CREATE TABLE at6 (at DATETIME(6) PRIMARY KEY, v INT)",
    "CREATE TABLE bin (k BINARY(4) PRIMARY KEY, v INT)",
    "CREATE TABLE en (k ENUM('b','a','c') PRIMARY KEY, v INT)",
    "CREATE TABLE yr (k YEAR PRIMARY KEY, v INT)",
    "CREATE TABLE dec2 (k DECIMAL(6,2) PRIMARY KEY, v INT)",
    "CREATE TABLE two (c CHAR(3), n BIGINT UNSIGNED, v INT, PRIMARY KEY (c, n))",
)
SEED = (
    "INSERT INTO at6 VALUES ('2024-01-01 00:00:00.001000', 1), ('2024-01-01 00:00:00.002000', 2)",
    "INSERT INTO bin VALUES ('ab', 1), (x'00ff', 2)",
    "INSERT INTO en VALUES ('a', 1), ('b', 2)",
    "INSERT INTO yr VALUES (1901, 1), (2155, 2)",
    "INSERT INTO dec2 VALUES (1.5, 1), (-0.01, 2)",
    "INSERT INTO two VALUES ('a', 18446744073709551615, 1), ('a ', 1, 2), ('b', 0, 3)",
)
TABLES = {"at6": ("at",), "bin": ("k",), "en": ("k",), "yr": ("k",), "dec2": ("k",), "two": ("c", "n")}


def test_01_snapshot(scenario: MysqlScenario) -> None:
    scenario.sql(*SCHEMA, *SEED)
    scenario.write_plan([Coll(t, scenario.table(t), key) for t, key in TABLES.items()])
    report = scenario.preflight()
    if not report.ready:
        raise AssertionError([(f.check, f.subject, f.message, f.fix) for f in report.failures])
    # BSON dates hold milliseconds: docs/plan.md "Keys" says preflight warns of such a key.
    warned = {f.subject for f in report.findings if f.check == "mapping.key_precision"}
    assert warned == {scenario.table("at6") + ".at"}, warned
    scenario.start()
    scenario.assert_target()


def test_02_changes(scenario: MysqlScenario) -> None:
    scenario.step(
        "INSERT INTO at6 VALUES ('2024-01-01 00:00:00.003000', 3)",
        "UPDATE at6 SET at = '2024-01-01 00:00:00.004000' WHERE v = 1",
        "UPDATE bin SET k = 'zz', v = 9 WHERE v = 1",
        "UPDATE en SET k = 'c' WHERE v = 1",
        "UPDATE yr SET v = 3 WHERE k = 2155",
        "UPDATE dec2 SET k = 2.25 WHERE v = 2",
        "UPDATE two SET n = 5 WHERE c = 'b'",
        "DELETE FROM two WHERE n = 18446744073709551615",
    )
    scenario.assert_target()


def test_03_verify_agrees(scenario: MysqlScenario) -> None:
    scenario.verify()
