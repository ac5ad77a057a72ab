"""MariaDB's replication edge cases (row-based binlog) through `migrator run` into MongoDB.

One migration (tests/support/mysql_corpus.py): a snapshot of edge values, then, while CDC
follows, one step per case, each compared with documents built from the source's rows by
tests/support/mysql_expected.py (docs/plan.md's "Types from MySQL/MariaDB"): INSERT ... ON
DUPLICATE KEY UPDATE, REPLACE (a delete and an insert, or an update, in the binlog), INSERT
IGNORE, multi-table UPDATE and DELETE, a primary key changed, SAVEPOINT + ROLLBACK TO, a rolled
back transaction that wrote a non-transactional (MyISAM, unmapped) table too, a transaction
larger than binlog_cache_size, many small transactions, NULL and empty strings, ZEROFILL and
unsigned extremes, BIT, 4-byte UTF-8, a latin1 column, JSON updates, TIMESTAMP written under a
session time_zone other than the server's, DATETIME(6), a column added to an unmapped table (the
run goes on), TRUNCATE of a mapped table (`on_truncate: apply`), and last a column added to a
mapped table, which stops the run naming the table and the statement.
"""

from __future__ import annotations

from tests.support.expected import Coll
from tests.support.mysql_corpus import MysqlScenario, mysql_scenario_fixture

scenario = mysql_scenario_fixture("mybinlog")

SCHEMA = (
    "CREATE TABLE kv (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL, n INT NOT NULL DEFAULT 0) ENGINE=InnoDB",
    "CREATE TABLE other (id INT PRIMARY KEY, kv_id INT NOT NULL, flag TINYINT NOT NULL DEFAULT 0)",
    "CREATE TABLE edge (id INT PRIMARY KEY, z INT(6) UNSIGNED ZEROFILL, big BIGINT UNSIGNED,"
    " small TINYINT, b BIT(5), s VARCHAR(40), l VARCHAR(40) CHARACTER SET latin1, j JSON,"
    " ts TIMESTAMP(3) NULL, dt DATETIME(6), st SET('a','b','c'), en ENUM('x','y'), t TIME(2), d DECIMAL(12,4))",
    "CREATE TABLE gone (id INT PRIMARY KEY, v VARCHAR(10))",
    "CREATE TABLE uniq (id INT PRIMARY KEY, u INT NOT NULL UNIQUE, v VARCHAR(20))",
    "CREATE TABLE named (code VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)",
    "CREATE TABLE pad (id INT AUTO_INCREMENT PRIMARY KEY, filler VARCHAR(200))",
    "CREATE TABLE ledger (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40)) ENGINE=MyISAM",
)
SEED = (
    "INSERT INTO kv VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3), (4, 'four', 4), (5, 'five', 5)",
    "INSERT INTO other VALUES (1, 1, 0), (2, 2, 0), (3, 3, 1), (4, 4, 1)",
    "INSERT INTO edge VALUES"
    " (1, 42, 18446744073709551615, -128, b'10101', '', 'café', '{\"b\": 1, \"a\": [1.5, null, \"x\"]}',"
    "  '2024-02-29 12:34:56.789', '2024-01-01 00:00:00.123456', 'a,c', 'y', '-838:59:59.00', -12345678.1234),"
    " (2, NULL, 9223372036854775808, 127, b'00000', NULL, NULL, NULL, NULL, NULL, '', NULL, '25:00:00.50', 0),"
    " (3, 0, 0, 0, b'11111', '😀 𝄞 ok', 'Ærø', '[]', '1970-01-01 00:00:01', '1000-01-01 00:00:00', 'a,b,c', 'x',"
    "  '00:00:00', 0.0001)",
    "INSERT INTO gone VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO uniq VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c'), (4, 40, 'd')",
    "INSERT INTO named VALUES ('abc', 1), ('Straße', 2), ('x', 3)",
)
COLLECTIONS = [
    Coll("kv", "{db}.kv", ("id",)),
    Coll("other", "{db}.other", ("id",)),
    Coll("edge", "{db}.edge", ("id",)),
    Coll("gone", "{db}.gone", ("id",)),
    Coll("uniq", "{db}.uniq", ("id",)),
    Coll("named", "{db}.named", ("code",)),
]


def test_01_plan_and_snapshot_of_edge_values(scenario: MysqlScenario) -> None:
    scenario.sql(*SCHEMA, *SEED)
    db = scenario.table("x").split(".")[0]
    colls = [Coll(c.name, c.table.format(db=db), c.key) for c in COLLECTIONS]
    scenario.write_plan(colls, {"snapshot": {"parallel": 1}, "cdc": {"on_truncate": "apply"}})
    scenario.assert_plan_ready()
    scenario.start()
    scenario.assert_target()


def test_02_on_duplicate_key_update_replace_and_insert_ignore(scenario: MysqlScenario) -> None:
    scenario.step(
        "INSERT INTO kv VALUES (1, 'one!', 10) ON DUPLICATE KEY UPDATE v = VALUES(v), n = n + 100",
        "INSERT INTO kv VALUES (6, 'six', 6) ON DUPLICATE KEY UPDATE n = n + 1",
        "INSERT INTO kv VALUES (2, 'same', 2) ON DUPLICATE KEY UPDATE n = n",  # no change at all
        "REPLACE INTO kv VALUES (3, 'replaced', 33)",
        "REPLACE INTO kv VALUES (7, 'seven', 7)",
        "INSERT IGNORE INTO kv VALUES (4, 'ignored', 0), (8, 'eight', 8)",
    )
    scenario.assert_target()


def test_03_multi_table_update_and_delete(scenario: MysqlScenario) -> None:
    scenario.step(
        "UPDATE kv JOIN other ON other.kv_id = kv.id SET kv.n = kv.n + 1000, other.flag = 2 WHERE other.flag = 1",
        "DELETE kv, other FROM kv JOIN other ON other.kv_id = kv.id WHERE other.id = 4",
    )
    scenario.assert_target()


def test_04_a_primary_key_changed(scenario: MysqlScenario) -> None:
    scenario.step("UPDATE kv SET id = id + 100 WHERE id IN (5, 6)", "UPDATE other SET id = 20 WHERE id = 2")
    scenario.assert_target()
    assert scenario.documents("kv")[-1]["_id"] == 106


def test_05_savepoint_rolled_back_to(scenario: MysqlScenario) -> None:
    scenario.step(
        [
            "INSERT INTO kv VALUES (9, 'kept', 9)",
            "SAVEPOINT s1",
            "INSERT INTO kv VALUES (10, 'rolled back', 10)",
            "UPDATE kv SET v = 'rolled back' WHERE id = 1",
            "SAVEPOINT s2",
            "DELETE FROM kv WHERE id = 2",
            "ROLLBACK TO SAVEPOINT s1",
            "UPDATE kv SET v = 'after rollback to' WHERE id = 7",
        ]
    )
    scenario.assert_target()
    assert scenario.scalar("SELECT COUNT(*) FROM kv WHERE id = 10") == 0


def test_06_a_rolled_back_transaction_that_wrote_a_myisam_table(scenario: MysqlScenario) -> None:
    # MyISAM cannot roll back: its row stays and is logged; the InnoDB rows are gone.
    scenario.sql(
        "BEGIN",
        "INSERT INTO kv VALUES (11, 'never', 11)",
        "INSERT INTO ledger (note) VALUES ('kept though rolled back')",
        "UPDATE kv SET v = 'never' WHERE id = 1",
        "ROLLBACK",
    )
    scenario.catch_up()
    assert scenario.scalar("SELECT COUNT(*) FROM ledger") == 1
    scenario.assert_target()


def test_07_a_transaction_larger_than_the_binlog_cache(scenario: MysqlScenario) -> None:
    cache = int(scenario.scalar("SELECT @@binlog_cache_size"))
    spills = _disk_use(scenario)
    rows = ", ".join(f"({1000 + i}, '{'x' * 30}{i}', {i})" for i in range(3000))
    padding = ", ".join(f"('{'p' * 200}')" for _ in range(300))
    scenario.step([f"INSERT INTO kv VALUES {rows}", f"INSERT INTO pad (filler) VALUES {padding}",
                   "UPDATE kv SET n = -n WHERE id >= 1000 AND id % 7 = 0",
                   "DELETE FROM kv WHERE id >= 1000 AND id % 11 = 0"])  # fmt: skip
    assert cache < 3000 * 40 and _disk_use(scenario) > spills  # spilled to a temporary file
    scenario.assert_target()


def _disk_use(scenario: MysqlScenario) -> int:
    return int(scenario.rows("SHOW GLOBAL STATUS LIKE 'Binlog_cache_disk_use'")[0][1])


def test_08_many_small_transactions(scenario: MysqlScenario) -> None:
    statements = [f"INSERT INTO kv VALUES ({5000 + i}, 'small', {i})" for i in range(300)]
    statements += [f"UPDATE kv SET n = n + 1 WHERE id = {5000 + i}" for i in range(0, 300, 3)]
    statements += [f"DELETE FROM kv WHERE id = {5000 + i}" for i in range(1, 300, 5)]
    scenario.step(*statements)
    scenario.assert_target()


def test_09_edge_values_written_while_following(scenario: MysqlScenario) -> None:
    scenario.sql(
        "SET time_zone = '+05:30'",  # TIMESTAMP's text is the session's: the instant is UTC
        "INSERT INTO edge VALUES (4, 999999, 18446744073709551614, -1, b'1', '', '', '{\"z\": 1, \"a\": {\"n\": 1.0}}',"
        " '2024-06-30 23:59:59.999', '2038-01-19 03:14:07.999999', 'b', NULL, '838:59:59.99', 99999999.9999)",
        "UPDATE edge SET ts = '2000-01-01 05:30:00', s = NULL, l = 'àéî', z = 7 WHERE id = 2",
        "UPDATE edge SET j = JSON_SET(j, '$.b', 2, '$.c', JSON_OBJECT('k', 12345678901234567890123)) WHERE id = 1",
        "UPDATE edge SET j = JSON_ARRAY_APPEND(j, '$', 0.1) WHERE id = 3",
        "UPDATE edge SET s = '\U0001d518 \U0001f389', b = b'01110', st = '', dt = '2024-12-31 23:59:59.000999' WHERE id = 3",
    )
    scenario.catch_up()
    assert scenario.rows("SELECT UNIX_TIMESTAMP(ts) FROM edge WHERE id = 2")[0][0] == 946684800
    scenario.assert_target()


def test_09a_replace_over_two_rows_and_upserts_that_move_keys(scenario: MysqlScenario) -> None:
    scenario.step(
        "REPLACE INTO uniq VALUES (1, 20, 'both')",  # deletes id 1 and the row holding u = 20 (id 2)
        "INSERT INTO uniq VALUES (9, 30, 'x') ON DUPLICATE KEY UPDATE id = 33, v = 'moved'",
        "UPDATE uniq SET id = id + 1 ORDER BY id DESC",  # every key shifted, each onto the next's old one
        ["DELETE FROM uniq WHERE id = 5", "INSERT INTO uniq VALUES (5, 50, 'again')"],
    )
    assert scenario.rows("SELECT id, u, v FROM uniq ORDER BY id") == [
        (2, 20, "both"),
        (5, 50, "again"),
        (34, 30, "moved"),
    ]
    scenario.assert_target()


def test_09b_a_key_changed_to_an_equal_value_of_its_collation(scenario: MysqlScenario) -> None:
    # 'abc' = 'ABC' and 'Straße' = 'STRASSE'? (general_ci: ß = s only): the row keeps its place
    # but its key's text changes, and so must the document's _id.
    scenario.step(
        "UPDATE named SET code = 'ABC' WHERE code = 'abc'",
        "UPDATE named SET code = 'X ', v = 4 WHERE code = 'x'",
    )
    assert sorted(r[0] for r in scenario.rows("SELECT code FROM named")) == ["ABC", "Straße", "X "]
    scenario.assert_target()


def test_09c_a_temporary_table_shadowing_a_mapped_name(scenario: MysqlScenario) -> None:
    # In ROW format a temporary table's writes are not logged; its DDL names a mapped table's name
    # but changes no mapped table: the run goes on.
    scenario.sql(
        "CREATE TEMPORARY TABLE kv (id INT PRIMARY KEY, other TEXT)",
        "INSERT INTO kv VALUES (1, 'temporary')",
        "DROP TEMPORARY TABLE kv",
        "DROP TEMPORARY TABLE IF EXISTS kv",
        "CREATE TEMPORARY TABLE other LIKE uniq",
        "INSERT INTO other SELECT * FROM uniq",
        "UPDATE kv SET n = 4242 WHERE id = 1",
    )  # the session ends with `other` still there: the server drops it
    scenario.catch_up()
    scenario.assert_target()


def test_10_a_column_added_to_an_unmapped_table_does_not_stop_the_run(scenario: MysqlScenario) -> None:
    scenario.step("ALTER TABLE pad ADD COLUMN extra INT", "INSERT INTO pad (filler, extra) VALUES ('x', 1)",
                  "UPDATE kv SET v = 'after ddl' WHERE id = 1")  # fmt: skip
    scenario.assert_target()


def test_11_truncate_of_a_mapped_table_empties_the_collection(scenario: MysqlScenario) -> None:
    scenario.step("TRUNCATE TABLE gone", "INSERT INTO gone VALUES (3, 'c')")
    scenario.assert_target()
    assert [d["_id"] for d in scenario.documents("gone")] == [3]


def test_12_verify_agrees(scenario: MysqlScenario) -> None:
    scenario.verify()


def test_13_a_column_added_to_a_mapped_table_stops_the_run_naming_it(scenario: MysqlScenario) -> None:
    scenario.sql("ALTER TABLE other ADD COLUMN note VARCHAR(10)", "INSERT INTO other VALUES (30, 1, 0, 'n')")
    error = scenario.wait_stopped()
    assert error is not None, "the run went on past DDL on a mapped table"
    text = str(error)
    assert scenario.table("other") in text and "ADD COLUMN note" in text, text
