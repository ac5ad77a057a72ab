"""The binlog section's pure parts: positions, value conversion, DDL statements' tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson.int64 import Int64

from migrator.adapters.mysql.binlog_values import ColumnFacts, RowConverter, labels, time_text
from migrator.adapters.mysql.positions import BinlogPositions, file_name, of_file, split_file
from migrator.adapters.mysql.statements import logged_as_statement, touched
from migrator.phases.lag import measure


def test_positions_pack_file_and_offset_and_round_trip_as_text() -> None:
    value = of_file("binlog.000012", 4567)
    assert value == 12 << 32 | 4567
    assert BinlogPositions.text(value) == "000012:4567"
    assert BinlogPositions.parse("000012:4567") == value
    assert BinlogPositions.parse(BinlogPositions.text(of_file("x.1000000", 4))) == of_file("x.1000000", 4)
    assert of_file("binlog.000002", 4) > of_file("binlog.000001", 4_000_000_000)
    assert split_file("/var/lib/mysql/mysql-bin.000003") == ("mysql-bin", 3)
    assert file_name("binlog", 7) == "binlog.000007"
    for bad in ("12/34", "000012", "a:1", ""):
        with pytest.raises(ValueError):
            BinlogPositions.parse(bad)


def test_lag_in_bytes_is_known_inside_one_binlog_file_only() -> None:
    parse = BinlogPositions.parse
    assert BinlogPositions.bytes_between(parse("000012:4"), parse("000012:1004")) == 1000
    assert BinlogPositions.bytes_between(parse("000012:1004"), parse("000012:4")) == 0
    # Across a rotation the files' sizes are the server's: unknown, never 2^32 per file.
    assert BinlogPositions.bytes_between(parse("000012:900"), parse("000013:4")) is None
    lag = measure(
        now=0.0,
        applied_commit_time=None,
        caught_up_at=None,
        caught_up=False,
        applied_position=parse("000012:900"),
        current_position=parse("000013:4"),
        bytes_between=BinlogPositions.bytes_between,
    )
    assert lag.bytes is None


def test_time_is_printed_as_the_server_prints_it() -> None:
    assert time_text(timedelta(hours=1, minutes=2, seconds=3), 0) == "01:02:03"
    assert time_text(timedelta(hours=1, minutes=2, seconds=3), 2) == "01:02:03.00"
    assert time_text(-timedelta(hours=838, minutes=59, seconds=59, microseconds=500000), 2) == "-838:59:59.50"
    assert time_text(timedelta(hours=100, microseconds=123456), 6) == "100:00:00.123456"
    assert time_text(-timedelta(microseconds=1), 6) == "-00:00:00.000001"


def test_set_and_enum_labels_in_definition_order() -> None:
    assert labels("set('b','a','it''s')") == ["b", "a", "it's"]
    assert labels("enum('x')") == ["x"]


def test_each_column_type_converts_to_the_contract_value() -> None:
    columns = [
        ColumnFacts("bu", "bigint", "bigint(20) unsigned"),
        ColumnFacts("bs", "bigint", "bigint(20)"),
        ColumnFacts("f", "float", "float"),
        ColumnFacts("iu", "int", "int(10) unsigned"),
        ColumnFacts("i", "int", "int(11)"),
        ColumnFacts("b", "bit", "bit(5)", precision=5),
        ColumnFacts("bn", "binary", "binary(4)", octet_length=4),
        ColumnFacts("s", "set", "set('b','a','c')"),
        ColumnFacts("ts", "timestamp", "timestamp(3)", fsp=3),
        ColumnFacts("tm", "time", "time(1)", fsp=1),
        ColumnFacts("j", "longtext", "longtext", is_json=True),
        ColumnFacts("vb", "varbinary", "varbinary(3)"),
        ColumnFacts("d", "decimal", "decimal(5,2)"),
    ]
    converter = RowConverter(columns)
    row = converter.row(
        {
            "bu": (1 << 64) - 1,
            "bs": -5,
            "f": 1.100000023841858,
            "iu": 4294967295,
            "i": 5,
            "b": "101",
            "bn": b"ab",
            "s": {"c", "b"},
            "ts": datetime(2024, 1, 2, 3, 4, 5, 678000),
            "tm": timedelta(seconds=-1),
            "j": '{"k": [1, "x"]}',
            "vb": b"\x00",
            "d": Decimal("1.50"),
        }
    )
    assert row == {
        "bu": Decimal("18446744073709551615"),
        "bs": -5,
        "f": 1.100000023841858,  # FLOAT's exact value, widened (the snapshot reads CAST(f AS DOUBLE))
        "iu": 4294967295,
        "i": 5,
        "b": "00101",
        "bn": b"ab\x00\x00",
        "s": ["b", "c"],
        "ts": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "tm": "-00:00:01.0",
        "j": {"k": [1, "x"]},
        "vb": b"\x00",
        "d": Decimal("1.50"),
    }
    assert converter.row({"bu": 7})["bu"] == 7
    # bigint (the table's long: BIGINT, INT UNSIGNED) as BSON's Int64, as the snapshot hands it.
    assert [type(row[c]) for c in ("bs", "iu", "i")] == [Int64, Int64, int]
    assert type(converter.row({"bu": 7})["bu"]) is Int64
    # mysql-replication hands None for an empty SET: its none_sources says which None that is.
    assert converter.row({"s": None}, {"s": "empty set"}) == {"s": []}
    assert converter.row({"s": None}, {"s": "null"}) == {"s": None}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ALTER TABLE orders ADD COLUMN x INT", ("ddl", ("db.orders",))),
        ("alter online ignore table `db`.`items` drop column y", ("ddl", ("db.items",))),
        ("DROP TABLE IF EXISTS `a`,`orders` /* generated by server */", ("ddl", ("db.orders",))),
        ("TRUNCATE orders", ("truncate", ("db.orders",))),
        ("truncate table other.items", ("truncate", ())),
        ("RENAME TABLE orders TO old_orders, x TO y", ("ddl", ("db.orders",))),
        ("CREATE UNIQUE INDEX i ON items (a)", ("ddl", ("db.items",))),
        ("DROP DATABASE db", ("ddl", ("db.orders", "db.items"))),
        ("CREATE OR REPLACE TABLE orders (id INT)", ("ddl", ("db.orders",))),
        ("ALTER TABLE other ADD COLUMN orders INT", ("ddl", ())),
        ("ALTER TABLE `db`.`orders` AUTO_INCREMENT = 287", ("", ())),
        ("alter table items auto_increment 5", ("", ())),
        ("ALTER TABLE orders AUTO_INCREMENT = 5, ADD COLUMN x INT", ("ddl", ("db.orders",))),
        ("CREATE TABLE orders2 (id INT)", ("", ())),
        ("INSERT INTO orders VALUES (1)", ("", ())),
        # MariaDB logs these as written: the DDL inside still changes the table.
        ("SET STATEMENT max_statement_time = 60 FOR ALTER TABLE orders ADD x INT", ("ddl", ("db.orders",))),
        ("SET STATEMENT sql_mode = 'A FOR B', x = 1 FOR truncate items", ("truncate", ("db.items",))),
        ("/*M!100000 ALTER TABLE orders ADD x INT */", ("ddl", ("db.orders",))),
        ("/*!ALTER TABLE orders ADD x INT*/", ("ddl", ("db.orders",))),
        ("ALTER /*!50000 IGNORE */ TABLE items ADD x INT", ("ddl", ("db.items",))),
        ("/* a comment */ ALTER TABLE /* another */ orders ADD x INT", ("ddl", ("db.orders",))),
    ],
)
def test_the_mapped_tables_a_statement_changes(query: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert touched(query, "db", ["db.orders", "db.items"]) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("UPDATE orders SET total = 1 WHERE id = 2", ("db.orders",)),
        ("insert into `db`.`items` values (1)", ("db.items",)),
        ("/* app */ DELETE o FROM orders o JOIN other x ON x.id = o.id", ("db.orders",)),
        ("SET STATEMENT max_statement_time = 5 FOR REPLACE INTO items VALUES (1)", ("db.items",)),
        ("UPDATE other SET v = 1", ()),
        ("UPDATE other.orders SET v = 1", ()),  # another database's table of that name
        ("ALTER TABLE orders ADD x INT", ()),  # DDL: touched() decides
        ("SELECT * FROM orders", ()),
    ],
)
def test_the_mapped_tables_a_statement_logged_as_text_writes(query: str, expected: tuple[str, ...]) -> None:
    assert logged_as_statement(query, "db", ["db.orders", "db.items"]) == expected
