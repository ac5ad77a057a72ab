"""PostgreSQL src/test/subscription/t/011_generated.pl, publisher side, as one migration.

PostgreSQL before 18 does not send stored generated columns through logical replication; the
docs/preflight.md says migrator computes them on the source for each changed row. tab1 is upstream's; tab2
adds what upstream's later versions test (a generated column over several inputs, one of them
NULLable) and tab3 a generated column computed from a TOAST-able column outside the replica
identity, which `migrator plan` must refuse (`source.generated_column`) until the fix it names
(REPLICA IDENTITY FULL) is applied.
"""

from __future__ import annotations

from tests.support.corpus import Scenario, scenario_fixture
from tests.support.expected import Coll

scenario = scenario_fixture("generated")

COLLECTIONS = [
    Coll("tab1", "tab1", ("a",)),
    Coll("tab2", "tab2", ("a",)),
    Coll("tab3", "tab3", ("id",)),
]


def test_01_plan_refuses_a_generated_column_over_toast_outside_the_identity(scenario: Scenario) -> None:
    scenario.sql(
        "CREATE TABLE tab1 (a int PRIMARY KEY, b int GENERATED ALWAYS AS (a * 2) STORED)",
        "INSERT INTO tab1 (a) VALUES (1), (2), (3)",
        "CREATE TABLE tab2 (a int PRIMARY KEY, x int, y int, sum int GENERATED ALWAYS AS (a + x + coalesce(y, 0)) STORED)",
        "INSERT INTO tab2 (a, x, y) VALUES (1, 10, NULL), (2, 20, 200)",
        "CREATE TABLE tab3 (id int PRIMARY KEY, body text, n int, body_len int GENERATED ALWAYS AS (length(body)) STORED)",
        "ALTER TABLE tab3 ALTER COLUMN body SET STORAGE EXTERNAL",
        "INSERT INTO tab3 (id, body, n) VALUES (1, repeat('x', 5000), 1), (2, 'short', 2)",
    )
    scenario.write_plan(COLLECTIONS)
    refused = [f for f in scenario.preflight().failures]
    assert [(f.check, f.subject) for f in refused] == [
        ("source.generated_column", "public.tab3.body_len")
    ] or (refused and all(f.check == "source.generated_column" and "tab3" in f.subject for f in refused)), (
        refused
    )
    assert "REPLICA IDENTITY FULL" in (refused[0].fix or ""), refused[0]
    scenario.sql("ALTER TABLE tab3 REPLICA IDENTITY FULL")
    scenario.assert_plan_ready()


def test_02_snapshot(scenario: Scenario) -> None:
    scenario.start()
    scenario.assert_target()


def test_03_upstream_changes(scenario: Scenario) -> None:
    scenario.step("INSERT INTO tab1 VALUES (4), (5)", "UPDATE tab1 SET a = 6 WHERE a = 5")
    scenario.assert_target()


def test_04_inputs_change(scenario: Scenario) -> None:
    scenario.step(
        "INSERT INTO tab2 (a, x) VALUES (3, 30)",
        "UPDATE tab2 SET y = 7 WHERE a = 1",
        "UPDATE tab2 SET x = x + 1, a = a + 10 WHERE a = 2",
        ["UPDATE tab2 SET y = NULL WHERE a = 3", "UPDATE tab2 SET x = 0 WHERE a = 3"],
        "UPDATE tab3 SET n = 10 WHERE id = 1",  # body unchanged (TOASTed)
        "UPDATE tab3 SET body = body || 'y' WHERE id = 1",
        "INSERT INTO tab3 (id, body, n) VALUES (3, repeat('z', 6000), 3)",
    )
    scenario.assert_target()
    scenario.verify()


gkey = scenario_fixture("generated_key")


def test_05_generated_column_as_the_document_key(gkey: Scenario) -> None:
    """Not upstream: the document key is itself a stored generated column (a unique code derived
    from the primary key, made the replica identity), so its value never travels on the wire:
    `plan` refuses the key and the identity, naming table and column with a fix, and the fix
    (an ordinary key, the default replica identity) passes and is followed."""
    gkey.sql(
        "CREATE TABLE tab4 (id int NOT NULL, name text, code text GENERATED ALWAYS AS ('G-' || id) STORED NOT NULL)",
        "CREATE UNIQUE INDEX tab4_code ON tab4 (code)",
        "ALTER TABLE tab4 REPLICA IDENTITY USING INDEX tab4_code",
        "INSERT INTO tab4 (id, name) VALUES (1, 'one'), (2, 'two')",
    )
    gkey.write_plan([Coll("tab4", "tab4", ("code",))])
    refused = gkey.preflight().failures
    assert refused and all(f.check == "source.generated_key" for f in refused), refused
    assert {f.subject for f in refused} == {"public.tab4.code"}, refused
    assert any("replica identity" in f.message for f in refused), refused
    assert any("keys public.tab4 by (code)" in f.message for f in refused), refused
    fix = next(f.fix for f in refused if "keys public.tab4" in f.message)
    assert fix is not None and "ADD PRIMARY KEY (id)" in fix and "key it by (id)" in fix, fix
    gkey.sql(
        "ALTER TABLE public.tab4 ADD PRIMARY KEY (id)", "ALTER TABLE public.tab4 REPLICA IDENTITY DEFAULT"
    )
    gkey.write_plan([Coll("tab4", "tab4", ("id",))])
    gkey.assert_plan_ready()
    gkey.start()
    gkey.assert_target()
    gkey.step(
        "INSERT INTO tab4 (id, name) VALUES (3, 'three')",
        "UPDATE tab4 SET name = 'uno' WHERE id = 1",
        "UPDATE tab4 SET id = 20 WHERE id = 2",  # the key changes, and the generated code with it
        "DELETE FROM tab4 WHERE id = 3",
    )
    gkey.assert_target()
