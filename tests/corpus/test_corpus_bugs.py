"""PostgreSQL src/test/subscription/t/100_bugs.pl, publisher side, as one migration, with the
schema changes users make around a running migration that the same bugs touched.

- Bug #15114: an index whose predicate calls a function (the publisher computes the replica
  identity's columns without evaluating it).
- Temporary and unlogged tables: an UNLOGGED table cannot be published; `migrator plan` must
  refuse it naming the table and `ALTER TABLE ... SET LOGGED`, after which the plan passes.
- The replica identity switched to another unique index while changes flow: its UPDATE and
  DELETE then carry only the new index's columns. The run must stop with a diagnosis naming the
  table, or follow with every document right.
- A schema renamed inside a transaction that writes before and after (ALTER SCHEMA ... RENAME,
  a new table of the old name): the run must stop naming the table, never follow a table it no
  longer maps or drop the changes of the renamed one silently.
- REPLICA IDENTITY FULL with a dropped column; here the dropped column is one the plan excludes,
  dropped while the run follows and while none does (the run goes on / resumes).
- REPLICA IDENTITY FULL and a column added with a DEFAULT before the snapshot (rows whose value
  is the "missing" default): updates must carry false, not NULL.
"""

from __future__ import annotations

from migrator.errors import InternalError, MigratorError
from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll
from tests.support.upstream import REPLIDENTITY_SETUP, REPLIDENTITY_SWITCH

scenario = scenario_fixture("bugs")
# A second migration, so that a run stopped by one defect does not hide the steps after it.
excluded = scenario_fixture("bugs_excluded")
identity = scenario_fixture("bugs_identity")

COLLECTIONS = [
    Coll("tab1", "tab1", ("a",)),
    Coll("sch1_t1", "sch1.t1", ("c1",)),
    Coll("tab_default", "tab_default", ("id",)),
]


def test_01_unlogged_table_refused_with_a_fix(scenario: Scenario) -> None:
    scenario.sql("CREATE UNLOGGED TABLE tu1 (a int PRIMARY KEY)", "INSERT INTO tu1 VALUES (1)")
    refused = [f for f in scenario.preflight_of([Coll("tu1", "tu1", ("a",))], "unlogged").failures]
    assert refused and all("tu1" in f.subject for f in refused), refused
    assert any("SET LOGGED" in (f.fix or "") for f in refused), refused
    scenario.sql("ALTER TABLE tu1 SET LOGGED")
    assert scenario.preflight_of([Coll("tu1", "tu1", ("a",))], "unlogged").ready


def test_02_snapshot(scenario: Scenario) -> None:
    scenario.sql(
        "CREATE TABLE tab1 (a int PRIMARY KEY, b int)",
        "CREATE FUNCTION double(x int) RETURNS int IMMUTABLE LANGUAGE SQL AS 'select x * 2'",
        "CREATE INDEX ON tab1 (b) WHERE a > double(1)",
        "CREATE SCHEMA sch1",
        "CREATE TABLE sch1.t1 (c1 int PRIMARY KEY)",
        "CREATE TABLE tab_default (id int PRIMARY KEY, a int)",
        "ALTER TABLE tab_default REPLICA IDENTITY FULL",
        "INSERT INTO tab_default VALUES (1, 1)",
        "ALTER TABLE tab_default ADD COLUMN b bool DEFAULT false NOT NULL",
        "INSERT INTO tab_default VALUES (2, 2, true)",
    )
    scenario.write_plan(COLLECTIONS)
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_target()


def test_03_index_predicate_calling_a_function(scenario: Scenario) -> None:
    scenario.step("INSERT INTO tab1 VALUES (1, 2)", "INSERT INTO tab1 VALUES (5, 6)", "UPDATE tab1 SET b = 7")
    scenario.assert_target()


def test_04_full_identity_with_missing_default(scenario: Scenario) -> None:
    scenario.step("UPDATE tab_default SET a = a + 1")
    scenario.assert_target()


def test_06_schema_renamed_while_following(scenario: Scenario) -> None:
    scenario.sql(
        "BEGIN; INSERT INTO sch1.t1 VALUES (1); ALTER SCHEMA sch1 RENAME TO sch2; CREATE SCHEMA sch1;"
        " CREATE TABLE sch1.t1 (c1 int PRIMARY KEY); INSERT INTO sch1.t1 VALUES (2); INSERT INTO sch2.t1 VALUES (3);"
        " COMMIT"
    )
    error = scenario.wait_stopped()
    assert error is not None and "sch1.t1" in str(error) and "sch2.t1" in str(error), error


def test_07_snapshot_with_excluded_columns(excluded: Scenario) -> None:
    excluded.sql(
        "CREATE TABLE dropped_cols (id int PRIMARY KEY, a int, b_drop int, c int, later_drop text)",
        "ALTER TABLE dropped_cols REPLICA IDENTITY FULL",
        "INSERT INTO dropped_cols VALUES (1, 1, 1, 1, 'x')",
    )
    excluded.write_plan([Coll("dropped_cols", "dropped_cols", ("id",), exclude=("b_drop", "later_drop"))])
    excluded.assert_plan_ready()
    excluded.start()
    excluded.assert_target()


def test_08_excluded_column_dropped_while_following(excluded: Scenario) -> None:
    excluded.step("ALTER TABLE dropped_cols DROP COLUMN b_drop", "UPDATE dropped_cols SET a = 100")
    excluded.assert_target()


def test_09_excluded_column_dropped_while_no_run_follows(excluded: Scenario) -> None:
    excluded.stop()
    excluded.sql("ALTER TABLE dropped_cols DROP COLUMN later_drop", "UPDATE dropped_cols SET c = 7")
    excluded.start()
    excluded.step("UPDATE dropped_cols SET c = 8")
    excluded.assert_target()


def test_10_replica_identity_switched_to_an_index_without_the_key(identity: Scenario) -> None:
    identity.sql(
        *REPLIDENTITY_SETUP,
    )
    identity.write_plan([Coll("replidentity", "tab_replidentity_index", ("a",))])
    identity.assert_plan_ready()
    identity.start()
    identity.sql(
        *REPLIDENTITY_SWITCH,
    )
    try:
        identity.catch_up()
    except BaseException as stopped:  # noqa: BLE001 - stopping is one of the two right outcomes
        # A diagnosis naming the table and what to do, not an internal error.
        assert isinstance(stopped, MigratorError) and not isinstance(stopped, InternalError), repr(stopped)
        assert "tab_replidentity_index" in str(stopped) and stopped.hint, repr(stopped)
        identity.follower = None
        return
    identity.assert_target()
