"""A session may log its own changes otherwise than the server's settings `plan` checks
(docs/architecture.md "Server settings": binlog_format=ROW, binlog_row_image=FULL): `SET SESSION
binlog_row_image = 'MINIMAL'` logs an update's before image as the key only and its after image
as the changed columns only, 'NOBLOB' leaves out an unchanged BLOB, and `SET SESSION
binlog_format = 'STATEMENT'` logs the writes as SQL text, no row events. Before the fix the run
went on: MINIMAL turned document 1 into one keyed null, NOBLOB nulled the BLOB, and STATEMENT's
writes were never applied. Now each stops the run naming the table and the session setting,
before the target is changed (each form on its own migration: a run it stops is gone)."""

from __future__ import annotations

import pytest

from tests.support.expected import Coll
from tests.support.mysql_corpus import MysqlScenario, mysql_scenario_fixture

scenario = mysql_scenario_fixture("mysession")

SETTINGS = {
    "minimal": ("binlog_row_image = 'MINIMAL'", "binlog_row_image is not FULL"),
    "noblob": ("binlog_row_image = 'NOBLOB'", "binlog_row_image is not FULL"),
    "statement": ("binlog_format = 'STATEMENT'", "binlog_format is not ROW"),
}
SNAPSHOT = [{"_id": 1, "v": 1, "w": "one", "b": b"x"}, {"_id": 2, "v": 2, "w": "two", "b": b"y"}]


@pytest.mark.parametrize("form", list(SETTINGS))
def test_a_session_logging_otherwise_stops_the_run_before_the_target_changes(
    scenario: MysqlScenario, form: str
) -> None:
    setting, said = SETTINGS[form]
    scenario.sql(
        "DROP TABLE IF EXISTS t",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, w VARCHAR(10), b BLOB)",
        "INSERT INTO t VALUES (1, 1, 'one', 'x'), (2, 2, 'two', 'y')",
    )
    scenario.fresh_run(form, [Coll(f"t_{form}", scenario.table("t"), ("id",))])
    scenario.assert_target()
    scenario.sql(
        f"SET SESSION {setting}",
        "UPDATE t SET v = 10 WHERE id = 1",
        "INSERT INTO t (id, v) VALUES (3, 3)",
        "DELETE FROM t WHERE id = 2",
    )
    error = scenario.wait_stopped(60)
    assert error is not None, "the run went on past changes it cannot follow"
    assert scenario.table("t") in str(error) and said in str(error), str(error)
    assert scenario.documents(f"t_{form}") == SNAPSHOT
