"""DDL on a mapped MariaDB table written in MariaDB's other forms: the binlog logs the statement's
text as the client wrote it, so a `SET STATEMENT ... FOR ALTER TABLE` or an executable comment
`/*M!100000 ALTER TABLE ... */` must stop the run naming the table, as a plain ALTER TABLE does
(docs/architecture.md "Schema changes"). Each form on its own migration (a run it stops is gone).
Before the fix all three went unnoticed: the run followed on, decoding the table with a column
its mapping did not know."""

from __future__ import annotations

import pytest

from tests.support.expected import Coll
from tests.support.mysql_corpus import MysqlScenario, mysql_scenario_fixture

scenario = mysql_scenario_fixture("myddl")

ADD = "ALTER TABLE t ADD COLUMN note VARCHAR(10)"
FORMS = {  # the statement, and what the run's error must quote of it
    "set_statement": (f"SET STATEMENT max_statement_time = 60 FOR {ADD}", "ADD COLUMN note"),
    "executable_comment": (f"/*M!100000 {ADD} */", "ADD COLUMN note"),
    "executable_comment_any": (f"/*!{ADD} */", "ADD COLUMN note"),
    # docs/cdc.md: on_truncate `stop` (the default) stops with a clear error.
    "truncate": ("TRUNCATE TABLE t", "TRUNCATE"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_ddl_in_another_form_stops_the_run_naming_the_table(scenario: MysqlScenario, form: str) -> None:
    scenario.sql(
        "DROP TABLE IF EXISTS t", "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)"
    )
    scenario.fresh_run(form, [Coll(f"t_{form}", scenario.table("t"), ("id",))])
    statement, quoted = FORMS[form]
    scenario.sql(statement, "INSERT INTO t (id, v) VALUES (2, 2)")
    error = scenario.wait_stopped(60)
    assert error is not None, "the run went on past DDL on a mapped table"
    assert scenario.table("t") in str(error) and quoted in str(error), str(error)
    # Stopped before the row written with the new column was applied.
    assert scenario.documents(f"t_{form}") == [{"_id": 1, "v": 1}]
