"""PostgreSQL src/test/subscription/t/001_rep_changes.pl, publisher side, as one migration.

Upstream's tables and statements, in its order. Where a table cannot be a collection as it
stands (no key, REPLICA IDENTITY NOTHING, duplicate rows), `migrator plan` must refuse it naming
the table and a fix, and the fix applied must make the plan pass (step 1); the documented fix
for duplicate rows is a generated `doc_id` key (docs/plan.md "Keys"), after which upstream's
duplicate-tuple updates run unchanged.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from migrator.cli.main import cli
from migrator.errors import InternalError, MigratorError
from migrator.plan.names import publication_name
from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll
from tests.support.upstream import REP_CHANGES_SETUP

scenario = scenario_fixture("rep_changes")

SETUP = REP_CHANGES_SETUP


def collections(*, fixed: bool) -> list[Coll]:
    doc_key = ("doc_id",) if fixed else ("a",)
    return [
        Coll("tab_ins", "tab_ins", doc_key),
        Coll("tab_full", "tab_full", doc_key),
        Coll("tab_full2", "tab_full2", ("doc_id",) if fixed else ("x",)),
        Coll("tab_rep", "tab_rep", ("a",)),
        Coll("tab_mixed", "tab_mixed", ("a",)),
        Coll("tab_include", "tab_include", ("a",)),
        Coll("tab_full_pk", "tab_full_pk", ("a",)),
        Coll("tab_nothing", "tab_nothing", ("a",)),
        Coll("tab_nothing_pk", "tab_nothing_pk", ("a",)),
    ]


def assert_diagnosed(stopped: BaseException, subject: str) -> None:
    """A run that stops on purpose names the object and says what to do; an internal error
    ("a defect of migrator") is no diagnosis."""
    assert isinstance(stopped, MigratorError) and not isinstance(stopped, InternalError), repr(stopped)
    assert subject in str(stopped) and stopped.hint, repr(stopped)


def repair(scenario: Scenario) -> None:
    """`migrator verify --repair` while the run follows, as a stop's hint says."""
    result = CliRunner().invoke(
        cli,
        ["verify", str(scenario.plan_path), "--state", str(scenario.state_path), "--repair", "--json"],
        env=scenario.env,
    )
    assert result.exit_code in (0, 1), result.output


def doc_id_fix(table: str) -> tuple[str, ...]:
    """docs/plan.md "Keys": a generated key, its unique index made the replica identity."""
    return (
        f"ALTER TABLE {table} ADD COLUMN doc_id bigint GENERATED ALWAYS AS IDENTITY",
        f"CREATE UNIQUE INDEX {table}_doc_id_key ON {table} (doc_id)",
        f"ALTER TABLE {table} REPLICA IDENTITY USING INDEX {table}_doc_id_key",
    )


def test_01_plan_refuses_tables_without_identity_and_the_fixes_pass(scenario: Scenario) -> None:
    scenario.sql(*SETUP)
    scenario.write_plan(collections(fixed=False))
    report = scenario.preflight()
    failed: dict[str, list[str]] = {}
    for finding in report.failures:
        failed.setdefault(finding.subject, []).append(f"{finding.check}: {finding.message} / {finding.fix}")
        assert finding.fix, f"{finding.check} {finding.subject} gives no fix"
    refused = {subject.split(".")[-1].split(" ")[0] for subject in failed}
    assert {"tab_ins", "tab_full", "tab_full2", "tab_nothing", "tab_nothing_pk"} <= refused, failed
    assert not refused & {"tab_rep", "tab_mixed", "tab_include", "tab_full_pk"}, failed
    nothing_pk = next(f for f in report.failures if f.subject.endswith("tab_nothing_pk"))
    assert "REPLICA IDENTITY DEFAULT" in (nothing_pk.fix or ""), nothing_pk

    for table in ("tab_ins", "tab_full", "tab_full2"):
        scenario.sql(*doc_id_fix(table))
    scenario.sql(
        "ALTER TABLE tab_nothing ADD PRIMARY KEY (a)",
        "ALTER TABLE tab_nothing REPLICA IDENTITY DEFAULT",
        "ALTER TABLE tab_nothing_pk REPLICA IDENTITY DEFAULT",
    )
    scenario.write_plan(collections(fixed=True))
    scenario.assert_plan_ready()


def test_02_snapshot(scenario: Scenario) -> None:
    scenario.start()
    scenario.assert_target()


def test_03_inserts_deletes_and_key_updates(scenario: Scenario) -> None:
    scenario.step(
        "INSERT INTO tab_ins SELECT generate_series(1,50)",
        "DELETE FROM tab_ins WHERE a > 20",
        "UPDATE tab_ins SET a = -a",
        "INSERT INTO tab_rep SELECT generate_series(1,50)",
        "DELETE FROM tab_rep WHERE a > 20",
        "UPDATE tab_rep SET a = -a",  # every document re-keyed
        "INSERT INTO tab_mixed VALUES (2, 'bar', 2.2)",
        "INSERT INTO tab_full_pk VALUES (1, 'foo')",
        "INSERT INTO tab_nothing VALUES (generate_series(1,20))",
        "INSERT INTO tab_include SELECT generate_series(1,50)",
        "DELETE FROM tab_include WHERE a > 20",
        "UPDATE tab_include SET a = -a",
        "INSERT INTO tab_notrep VALUES (11)",  # not mapped: nothing to do
    )
    scenario.assert_target()


def test_04_replica_identity_full_with_duplicate_rows(scenario: Scenario) -> None:
    scenario.step(
        "INSERT INTO tab_full SELECT generate_series(1,10)",
        "ALTER TABLE tab_full REPLICA IDENTITY FULL",
        "ALTER TABLE tab_full2 REPLICA IDENTITY FULL",
        "ALTER TABLE tab_ins REPLICA IDENTITY FULL",
        "UPDATE tab_full SET a = a * a",
        "UPDATE tab_full2 SET x = 'bb' WHERE x = 'b'",
        "UPDATE tab_mixed SET b = 'baz' WHERE a = 1",
        "UPDATE tab_full_pk SET b = 'bar' WHERE a = 1",
    )
    scenario.assert_target()


def test_05_large_value_then_update_that_leaves_it_unchanged(scenario: Scenario) -> None:
    scenario.step("UPDATE tab_mixed SET b = repeat('xyzzy', 100000) WHERE a = 2")
    scenario.assert_target()
    scenario.step("UPDATE tab_mixed SET c = 3.3 WHERE a = 2")  # b arrives as unchanged TOAST
    scenario.assert_target()


def test_06_source_restart_while_following(scenario: Scenario, pg_server: object) -> None:
    if not getattr(pg_server, "restartable", True):
        pytest.skip("needs a throwaway PostgreSQL")
    scenario.step(
        "INSERT INTO tab_ins SELECT generate_series(1001,1100)",
        "DELETE FROM tab_rep",
    )
    scenario.sql("INSERT INTO tab_full VALUES (-1)")
    pg_server.restart()  # type: ignore[attr-defined]
    scenario.step("DELETE FROM tab_ins WHERE a > 0", "INSERT INTO tab_full VALUES (0)")
    scenario.assert_target()
    scenario.verify()


def test_07_mapped_table_dropped_from_the_publication_is_not_lost_silently(scenario: Scenario) -> None:
    """Upstream drops tab_ins from the publication and inserts 8888, which the subscriber must
    not see. For a migration that row is data: the run stops naming the table (a diagnosis with
    a hint, not an internal error), or it follows the row."""
    publication = publication_name(scenario.name)
    scenario.sql(f"ALTER PUBLICATION {publication} DROP TABLE tab_ins", "INSERT INTO tab_ins VALUES (8888)")
    try:
        scenario.catch_up()
    except BaseException as stopped:  # noqa: BLE001 - the run may stop on purpose
        assert_diagnosed(stopped, "tab_ins")
        assert publication in str(stopped) and "verify --repair" in str(stopped.hint), stopped
        scenario.follower = None
        # The way forward the hint gives: restore the publication, resume, repair.
        scenario.sql(f"ALTER PUBLICATION {publication} ADD TABLE tab_ins")
        scenario.start()
        lost = scenario.differences()  # the row inserted while unpublished (keyed by its doc_id)
        assert list(lost) == ["tab_ins"] and len(lost["tab_ins"]) == 1 and "missing" in lost["tab_ins"][0], (
            lost
        )
        repair(scenario)
    scenario.assert_target()


def test_07b_publication_options_changed_under_the_run(scenario: Scenario) -> None:
    """Upstream's tap_pub_ins_only, done to the run's own publication: the run must stop naming
    the publication, or apply the changes anyway."""
    publication = publication_name(scenario.name)
    scenario.sql(
        f"ALTER PUBLICATION {publication} SET (publish = 'insert')",
        "UPDATE tab_full_pk SET b = 'after publish = insert' WHERE a = 1",
        "DELETE FROM tab_include WHERE a = -1",
    )
    try:
        scenario.catch_up()
    except BaseException as stopped:  # noqa: BLE001 - the run may stop on purpose
        assert_diagnosed(stopped, publication)
        assert "UPDATE, DELETE, TRUNCATE" in str(stopped), stopped
        assert "publish = 'insert, update, delete, truncate'" in str(stopped.hint), stopped
        scenario.follower = None
        scenario.sql(f"ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete, truncate')")
        scenario.start()
        repair(scenario)
    else:
        scenario.sql(f"ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete, truncate')")
    scenario.assert_target(only={"tab_full_pk": (), "tab_include": ()})


def test_08_dropped_mapped_column_stops_the_run_naming_it(scenario: Scenario) -> None:
    scenario.step("UPDATE tab_mixed SET b = 'bar', c = 2.2 WHERE a = 2")
    scenario.sql("ALTER TABLE tab_mixed DROP COLUMN b", "UPDATE tab_mixed SET c = 11.11 WHERE a = 1")
    error = scenario.wait_stopped()
    assert error is not None, "the run went on after a mapped column was dropped"
    assert "public.tab_mixed.b" in str(error), error
    doc = next(d for d in scenario.documents("tab_mixed") if d["_id"] == 2)
    assert doc["b"] == "bar"
