"""PostgreSQL's src/test/subscription/t/001_rep_changes.pl, 010_truncate.pl, 011_generated.pl and
013_partition.pl, publisher side, as one migration PostgreSQL -> PostgreSQL
(tests/support/pg_corpus.py): every upstream table is a table of the plan, followed by CDC
through every step, and each step compares every table's rows on both servers as text.

- 001: tables without a key (and one with duplicate rows) and a NOTHING identity are refused by
  `plan` naming the table with a fix; the fix is run and the plan passes. Then every key updated,
  FULL identity, a TOASTed value left unchanged by an update, a primary key with INCLUDE.
- 010 (`on_truncate: apply`): TRUNCATE, RESTART IDENTITY, two tables tied by a foreign key (the
  target has the foreign key too), a TRUNCATE naming an unmapped table, insert + TRUNCATE + insert
  in one transaction.
- 011: stored generated columns computed from inputs changed by inserts, key updates and updates;
  one over a TOASTed column outside the identity refused until REPLICA IDENTITY FULL. On the
  target a generated column stays GENERATED (as pg_dump and pgcopydb keep it): the copy and CDC
  must not write it (PostgreSQL refuses, SQLSTATE 428C9), and the application's inserts after
  cutover get it computed.
- 013: a partitioned table written through root and leaves (a leaf with another column order, a
  DEFAULT leaf, two levels), updates within and across partitions, a partition created while
  following, TRUNCATE of the root.
"""

from __future__ import annotations

import psycopg

from tests.support.pg_corpus import PgScenario, Table, assert_diagnosed, pg_scenario_fixture, refusals
from tests.support.upstream import REP_CHANGES_SETUP

scenario = pg_scenario_fixture("pg_replication")

SETUP_001 = REP_CHANGES_SETUP
SETUP_010 = (
    "CREATE TABLE tr1 (a int PRIMARY KEY)",
    "CREATE TABLE tr2 (a int PRIMARY KEY)",  # not mapped
    "CREATE TABLE tr3 (a int PRIMARY KEY)",
    "CREATE TABLE tr4 (x int PRIMARY KEY, y int REFERENCES tr3)",
    "CREATE SEQUENCE seq1 OWNED BY tr1.a",
    "CREATE TABLE tr5 (a int PRIMARY KEY)",
    "CREATE TABLE tr_ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)",
    "INSERT INTO tr1 VALUES (1), (2), (3)",
    "INSERT INTO tr3 VALUES (1), (2), (3)",
    "INSERT INTO tr4 VALUES (11, 1), (111, 1), (22, 2)",
    "INSERT INTO tr_ident (v) VALUES ('one'), ('two')",
)
SETUP_011 = (
    "CREATE TABLE gen1 (a int PRIMARY KEY, b int GENERATED ALWAYS AS (a * 2) STORED)",
    "INSERT INTO gen1 (a) VALUES (1), (2), (3)",
    "CREATE TABLE gen2 (a int PRIMARY KEY, x int, y int,"
    " sum int GENERATED ALWAYS AS (a + x + coalesce(y, 0)) STORED)",
    "INSERT INTO gen2 (a, x, y) VALUES (1, 10, NULL), (2, 20, 200)",
    "CREATE TABLE gen3 (id int PRIMARY KEY, body text, n int,"
    " body_len int GENERATED ALWAYS AS (length(body)) STORED)",
    "ALTER TABLE gen3 ALTER COLUMN body SET STORAGE EXTERNAL",
    "INSERT INTO gen3 (id, body, n) VALUES (1, repeat('x', 5000), 1), (2, 'short', 2)",
    # Over a function of the source's own, which the target may not have: a plain column there.
    "CREATE FUNCTION double(x int) RETURNS int IMMUTABLE LANGUAGE SQL AS 'SELECT x * 2'",
    "CREATE TABLE gen4 (a int PRIMARY KEY, d int GENERATED ALWAYS AS (double(a)) STORED)",
    "INSERT INTO gen4 (a) VALUES (1), (2)",
)
SETUP_013 = (
    "CREATE TABLE part1 (a int PRIMARY KEY, b text) PARTITION BY LIST (a)",
    "CREATE TABLE part1_1 (b text, a int NOT NULL)",
    "ALTER TABLE part1 ATTACH PARTITION part1_1 FOR VALUES IN (1, 2, 3)",
    "CREATE TABLE part1_2 PARTITION OF part1 FOR VALUES IN (4, 5, 6)",
    "CREATE TABLE part1_def PARTITION OF part1 DEFAULT",
    "CREATE TABLE part4 (a int PRIMARY KEY) PARTITION BY LIST (a)",
    "CREATE TABLE part4_1 PARTITION OF part4 FOR VALUES IN (-1, 0, 1) PARTITION BY LIST (a)",
    "CREATE TABLE part4_1_1 PARTITION OF part4_1 FOR VALUES IN (-1, 0, 1)",
    "INSERT INTO part4 VALUES (-1)",
)

NO_KEY = ("tab_ins", "tab_full", "tab_full2")


def tables() -> list[Table]:
    keyed = [Table(f"public.{t}") for t in NO_KEY]
    return [
        *keyed,
        Table("public.tab_rep"),
        Table("public.tab_mixed"),
        Table("public.tab_include"),
        Table("public.tab_full_pk"),
        Table("public.tab_nothing"),
        Table("public.tab_nothing_pk"),
        Table("public.tr1"),
        Table("public.tr3"),
        Table("public.tr4"),
        Table("public.tr5"),
        Table("public.tr_ident"),
        Table("public.gen1"),
        Table("public.gen2"),
        Table("public.gen3"),
        Table("public.gen4"),
        Table("public.part1"),
        Table("public.part4"),
    ]


def test_01_plan_refuses_what_cannot_be_followed_and_the_fixes_pass(scenario: PgScenario) -> None:
    scenario.sql(*SETUP_001, *SETUP_010, *SETUP_011, *SETUP_013)
    scenario.write_plan(tables(), phases={"snapshot": {"parallel": 2}, "cdc": {"on_truncate": "apply"}})
    refused = refusals(scenario.preflight())
    named = {subject.split(".")[-1].split(" ")[0] for subject in refused}
    # tab_ins/tab_full/tab_full2: no primary key (the plan names an "id" none has yet).
    assert {*NO_KEY, "tab_nothing", "tab_nothing_pk", "body_len"} <= named | {
        s.split(".")[-2] for s in refused if s.count(".") >= 2
    }, refused
    assert (
        not {"tab_rep", "tab_mixed", "tab_include", "tab_full_pk", "gen1", "gen2", "part1", "part4"} & named
    ), refused
    fixes = {subject: " / ".join(str(f.fix) for f in found) for subject, found in refused.items()}
    text = "\n".join(f"{s}: {f}" for s, f in fixes.items())
    assert "REPLICA IDENTITY DEFAULT" in fixes["public.tab_nothing_pk"], text
    assert "REPLICA IDENTITY FULL" in next(f for s, f in fixes.items() if "gen3" in s), text
    tab_full2 = next(f for s, f in fixes.items() if s.startswith("public.tab_full2"))
    assert "ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY" in tab_full2, (
        text
    )  # duplicates: no natural key

    # The fixes as the refusals word them: a surrogate key where the rows have none (tab_full2
    # holds duplicates), the identity back to DEFAULT, FULL for the generated column over TOAST.
    for table in NO_KEY:
        scenario.sql(
            f"ALTER TABLE public.{table} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        )
    scenario.sql(
        "ALTER TABLE public.tab_nothing ADD PRIMARY KEY (a)",
        "ALTER TABLE public.tab_nothing REPLICA IDENTITY DEFAULT",
        "ALTER TABLE public.tab_nothing_pk REPLICA IDENTITY DEFAULT",
        "ALTER TABLE public.gen3 REPLICA IDENTITY FULL",
    )
    scenario.assert_plan_ready()


def test_02_snapshot(scenario: PgScenario) -> None:
    scenario.start()
    scenario.assert_same()


def test_03_inserts_deletes_and_every_key_updated(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO tab_ins SELECT generate_series(1,50)",
        "DELETE FROM tab_ins WHERE a > 20",
        "UPDATE tab_ins SET a = -a",
        "INSERT INTO tab_rep SELECT generate_series(1,50)",
        "DELETE FROM tab_rep WHERE a > 20",
        "UPDATE tab_rep SET a = -a",  # every row re-keyed
        "INSERT INTO tab_mixed VALUES (2, 'bar', 2.2)",
        "INSERT INTO tab_full_pk VALUES (1, 'foo'), (2, 'baz')",
        "INSERT INTO tab_nothing VALUES (generate_series(1,20))",
        "INSERT INTO tab_include SELECT generate_series(1,50)",
        "DELETE FROM tab_include WHERE a > 20",
        "UPDATE tab_include SET a = -a",
        "INSERT INTO tab_notrep VALUES (11)",  # not mapped
    )
    scenario.assert_same()


def test_04_replica_identity_full(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO tab_full SELECT generate_series(1,10)",
        "ALTER TABLE tab_full REPLICA IDENTITY FULL",
        "ALTER TABLE tab_full2 REPLICA IDENTITY FULL",
        "ALTER TABLE tab_ins REPLICA IDENTITY FULL",
        "UPDATE tab_full SET a = a * a",
        "UPDATE tab_full2 SET x = 'bb' WHERE x = 'b'",
        "UPDATE tab_mixed SET b = 'baz' WHERE a = 1",
        "UPDATE tab_full_pk SET b = 'bar' WHERE a = 1",
        "UPDATE tab_full_pk SET a = 3 WHERE a = 2",  # FULL identity, key changed
        "DELETE FROM tab_full WHERE a = 4",
        "DELETE FROM tab_ins WHERE a = -3",
    )
    scenario.assert_same()


def test_05_toasted_value_left_unchanged_by_an_update(scenario: PgScenario) -> None:
    scenario.step("UPDATE tab_mixed SET b = repeat('xyzzy', 100000) WHERE a = 2")
    scenario.step("UPDATE tab_mixed SET c = 3.3 WHERE a = 2")  # b arrives as unchanged TOAST
    scenario.step("UPDATE tab_mixed SET a = 20 WHERE a = 2")  # and with the key changed
    scenario.assert_same()
    assert scenario.target_scalar("SELECT length(b) FROM tab_mixed WHERE a = 20") == 500000


def test_06_truncate_and_restart_identity(scenario: PgScenario) -> None:
    scenario.step("TRUNCATE tr1")
    assert scenario.rows("tr1", "a") == []
    scenario.step(
        "INSERT INTO tr1 VALUES (4), (5)",
        "TRUNCATE tr1 RESTART IDENTITY",
        "INSERT INTO tr1 VALUES (6)",
        "TRUNCATE tr_ident RESTART IDENTITY",
        "INSERT INTO tr_ident (v) VALUES ('again')",  # id 1 again on the source
    )
    scenario.assert_same()


def test_07_truncate_of_tables_tied_by_a_foreign_key(scenario: PgScenario) -> None:
    assert scenario.target_scalar(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.tr4'::regclass AND contype = 'f'"
    ), "the target lacks tr4's foreign key: the step would test nothing"
    scenario.step("TRUNCATE tr3, tr4")
    assert scenario.rows("tr3", "a") == []
    scenario.step(
        "INSERT INTO tr3 VALUES (1), (2)", "INSERT INTO tr4 VALUES (11, 1), (22, 2)", "TRUNCATE tr4"
    )
    scenario.step(["INSERT INTO tr4 VALUES (33, 1)", "DELETE FROM tr4", "TRUNCATE tr3 CASCADE"])
    scenario.assert_same()


def test_08_truncate_naming_an_unmapped_table_and_insert_truncate_insert(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO tr1 VALUES (1), (2), (3)",
        "INSERT INTO tr2 VALUES (1), (2), (3)",
        "TRUNCATE tr1, tr2",
        ["INSERT INTO tr5 VALUES (1), (2), (3)", "TRUNCATE tr5", "INSERT INTO tr5 VALUES (9)"],
    )
    scenario.assert_same()
    assert scenario.rows("tr5", "a") == ["(9)"]


def test_09_generated_columns_stay_generated_on_the_target(scenario: PgScenario) -> None:
    generated = scenario.target_scalar(
        "SELECT string_agg(attrelid::regclass || '.' || attname, ', ' ORDER BY 1) FROM pg_attribute"
        " WHERE attgenerated = 's' AND attrelid::regclass::text IN ('gen1', 'gen2', 'gen3', 'gen4')"
    )
    assert generated == "gen1.b, gen2.sum, gen3.body_len", generated
    # The application's insert after cutover gets it computed (tried in a transaction rolled back).
    with psycopg.connect(scenario.target_url) as conn:
        computed = conn.execute("INSERT INTO gen1 (a) VALUES (1000) RETURNING b").fetchone()
        conn.rollback()
    assert computed == (2000,)


def test_10_generated_columns_through_changes(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO gen1 VALUES (4), (5)",
        "UPDATE gen1 SET a = 6 WHERE a = 5",
        "INSERT INTO gen2 (a, x) VALUES (3, 30)",
        "UPDATE gen2 SET y = 7 WHERE a = 1",
        "UPDATE gen2 SET x = x + 1, a = a + 10 WHERE a = 2",
        ["UPDATE gen2 SET y = NULL WHERE a = 3", "UPDATE gen2 SET x = 0 WHERE a = 3"],
        "UPDATE gen3 SET n = 10 WHERE id = 1",  # body unchanged (TOASTed)
        "UPDATE gen3 SET body = body || 'y' WHERE id = 1",
        "INSERT INTO gen3 (id, body, n) VALUES (3, repeat('z', 6000), 3)",
        "DELETE FROM gen3 WHERE id = 2",
        "INSERT INTO gen4 (a) VALUES (3)",
        "UPDATE gen4 SET a = 10 WHERE a = 1",
    )
    scenario.assert_same()
    # Many rows in one batch: the target's staged merge (32 rows and more).
    scenario.step(
        "INSERT INTO gen2 (a, x, y) SELECT g, g, g FROM generate_series(100, 199) g",
        "UPDATE gen2 SET y = y + 1 WHERE a >= 100",
    )
    scenario.assert_same()


def test_11_partitions_written_through_root_and_leaves(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO part1 VALUES (1)",
        "INSERT INTO part1_1 (a) VALUES (3)",
        "INSERT INTO part1_2 VALUES (5)",
        "INSERT INTO part1 VALUES (0)",
        "INSERT INTO part4 VALUES (0)",
        "INSERT INTO part4_1 VALUES (1)",
    )
    scenario.assert_same()
    scenario.step(
        "UPDATE part1 SET a = 2 WHERE a = 1",
        "UPDATE part1 SET a = 6 WHERE a = 5",
        "UPDATE part1 SET b = 'within' WHERE a = 6",
        "UPDATE part1 SET a = 1 WHERE a = 0",  # part1_def -> part1_1
        "UPDATE part1 SET a = 4 WHERE a = 1",  # part1_1 -> part1_2
        ["UPDATE part1 SET a = 5, b = 'moved' WHERE a = 3", "UPDATE part1 SET b = 'after' WHERE a = 5"],
        "DELETE FROM part4 WHERE a = -1",
    )
    scenario.assert_same()


def test_12_partition_created_while_following_and_truncate_of_the_root(scenario: PgScenario) -> None:
    scenario.step(
        "CREATE TABLE part1_3 PARTITION OF part1 FOR VALUES IN (7, 8)",
        "INSERT INTO part1 VALUES (7, 'new partition'), (10, 'baz')",
        "UPDATE part1 SET b = 'quux' WHERE a IN (4, 7)",
        "UPDATE part1 SET a = 8 WHERE a = 10",  # part1_def -> the new partition
    )
    scenario.assert_same()
    scenario.step("TRUNCATE part1", "INSERT INTO part1 VALUES (2, 'again'), (8, 'new')")
    scenario.assert_same()


def test_13_column_added_to_the_partitioned_table(scenario: PgScenario) -> None:
    """013's tab2: a column added with a DEFAULT, rows written through the root after it; the
    target table gets the column, and the rows already there its default."""
    scenario.sql(
        "ALTER TABLE part1 ADD COLUMN c text DEFAULT 'pub_tab1'",
        "CREATE TYPE mood AS ENUM ('ok', 'sad')",  # a type the target does not have yet
        "ALTER TABLE part1 ADD COLUMN m mood",
    )
    scenario.step(
        "INSERT INTO part1 (a, b) VALUES (3, 'xxx')",
        "INSERT INTO part1 VALUES (5, 'zzz', 'own', 'sad')",
        "UPDATE part1 SET m = 'ok' WHERE a = 2",
    )
    scenario.assert_same()


def test_14_verify_agrees(scenario: PgScenario) -> None:
    scenario.verify()


def test_15_truncate_of_one_partition_stops_the_run_naming_it(scenario: PgScenario) -> None:
    """Which target rows came from one partition is not known: the run stops rather than empty
    more or fewer (docs/architecture.md, "Partitioned tables in CDC")."""
    scenario.sql("TRUNCATE part1_1")
    stopped = scenario.wait_stopped()
    assert_diagnosed(stopped, "part1_1")
    assert scenario.rows("part1", "a")  # nothing emptied
