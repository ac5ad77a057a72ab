"""The snapshot's reader delivers every type of the MySQL/MariaDB contract as the exact Python value
the conversion table names (expected values written by hand, not derived from the reader)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from bson.int64 import Int64

from migrator.adapters.base import ColumnInfo, LevelRead
from migrator.adapters.mysql import MysqlSource
from tests.support.mariadb import column_info, connect

UTC = datetime.UTC

# (column, DDL type, canonical type_name, type_kind)
COLUMNS = [
    ("id", "INT", "integer", "base"),
    ("ti", "TINYINT", "smallint", "base"),
    ("si", "SMALLINT", "smallint", "base"),
    ("flag", "TINYINT(1)", "smallint", "base"),
    ("tiu", "TINYINT UNSIGNED", "integer", "base"),
    ("mi", "MEDIUMINT", "integer", "base"),
    ("iu", "INT UNSIGNED", "bigint", "base"),
    ("bi", "BIGINT", "bigint", "base"),
    ("bu", "BIGINT UNSIGNED", "bigint unsigned", "base"),
    ("dec_", "DECIMAL(10,2)", "numeric", "base"),
    ("fl", "FLOAT", "real", "base"),
    ("db", "DOUBLE", "double precision", "base"),
    ("bits", "BIT(5)", "bit", "base"),
    ("ch", "CHAR(5)", "character", "base"),
    ("vc", "VARCHAR(20)", "character varying", "base"),
    ("tx", "TEXT CHARACTER SET latin1", "text", "base"),
    ("bn", "BINARY(4)", "bytea", "base"),
    ("vb", "VARBINARY(8)", "bytea", "base"),
    ("bl", "BLOB", "bytea", "base"),
    ("js", "JSON", "json", "base"),
    ("en", "ENUM('small','large')", "enum", "enum"),
    ("st", "SET('a','b','c')", "text[]", "array"),
    ("dt", "DATE", "date", "base"),
    ("dtm", "DATETIME(6)", "timestamp without time zone", "base"),
    ("ts", "TIMESTAMP(3) NULL", "timestamp with time zone", "base"),
    ("tm", "TIME(6)", "time without time zone", "base"),
    ("yr", "YEAR", "smallint", "base"),
]

ROW_1 = (
    "1, -128, -32768, 1, 255, -8388608, 4294967295, -9223372036854775808, 18446744073709551615, "
    "'-12345678.90', 1.2345678, 2.5e-300, b'00101', 'ab   ', 'héllo', 'café', 'ab', x'00ff', x'deadbeef', "
    "'{\"b\": [1, 2.5, null], \"a\": {\"x\": \"y\"}}', 'large', 'c,a', '2024-02-29', "
    "'1999-12-31 23:59:59.123456', '2038-01-19 03:14:07.999', '-838:59:59.500000', 2155"
)
ROW_2_SMALL = "2, 0, 0, 0, 0, 0, 0, 5, 5, '0.50', 0.5, 0, b'00000', '', '', '', '', '', '', '[]', 'small', '', '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', 1901"

EXPECTED_1 = (
    1,
    -128,
    -32768,
    1,
    255,
    -8388608,
    4294967295,
    -9223372036854775808,
    Decimal(18446744073709551615),
    Decimal("-12345678.90"),
    1.2345677614212036,  # the FLOAT's exact 4-byte value, as the binlog carries it
    2.5e-300,
    "00101",
    "ab",  # CHAR without its trailing spaces
    "héllo",
    "café",
    b"ab\x00\x00",  # BINARY(4) pads with zero bytes
    b"\x00\xff",
    b"\xde\xad\xbe\xef",
    {"b": [1, 2.5, None], "a": {"x": "y"}},
    "large",
    ["a", "c"],  # definition order, whatever the insert's order
    datetime.date(2024, 2, 29),
    datetime.datetime(1999, 12, 31, 23, 59, 59, 123456),
    datetime.datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=UTC),
    "-838:59:59.500000",
    2155,
)
EXPECTED_2 = (
    2,
    0,
    0,
    0,
    0,
    0,
    0,
    5,
    5,
    Decimal("0.50"),
    0.5,
    0.0,
    "00000",
    "",
    "",
    "",
    b"\x00\x00\x00\x00",
    b"",
    b"",
    [],
    "small",
    [],
    datetime.date(1000, 1, 1),
    datetime.datetime(1000, 1, 1, 0, 0),
    datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    "00:00:00.000000",
    1901,
)


def all_columns() -> tuple[ColumnInfo, ...]:
    return tuple(column_info(n, t, k, i) for i, (n, _, t, k) in enumerate(COLUMNS, start=1))


def test_every_type_arrives_as_the_contract_says(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        # A session in another time zone writes the TIMESTAMP: the reader's UTC must not depend on it.
        cur.execute("SET time_zone = '+05:00'")
        ddl = ", ".join(f"`{n}` {t}" for n, t, _, _ in COLUMNS)
        cur.execute(f"CREATE TABLE everything ({ddl}, PRIMARY KEY (id))")
        ts_local = "'2038-01-19 08:14:07.999'"  # 03:14:07.999 UTC, written at +05:00
        cur.execute(
            f"INSERT INTO everything VALUES ({ROW_1.replace(chr(39) + '2038-01-19 03:14:07.999' + chr(39), ts_local)})"
        )
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"INSERT INTO everything VALUES ({ROW_2_SMALL})")
        cur.execute("INSERT INTO everything (id) VALUES (3)")
    source = MysqlSource(mysql_url)
    level = LevelRead(path=(), columns=all_columns(), order_by=())
    reader = source.snapshot_reader("")
    try:
        (stream,) = reader.stream([level], "everything", ["id"], ["integer"], None, None)
        rows = list(stream)
    finally:
        reader.close()
    assert rows[0] == EXPECTED_1
    assert rows[1] == EXPECTED_2
    assert rows[2] == (3,) + (None,) * (len(COLUMNS) - 1)
    # Equal is not enough where BSON tells types apart: bigint is int64 however small.
    assert [type(v) for v in rows[1][6:9]] == [Int64, Int64, Int64]
    assert type(rows[0][8]) is Decimal and type(rows[0][7]) is Int64
    assert list(rows[0][19]) == ["b", "a"]  # JSON object key order kept


def test_table_rows_deliver_the_same_values(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        ddl = ", ".join(f"`{n}` {t}" for n, t, _, _ in COLUMNS)
        cur.execute(f"CREATE TABLE everything ({ddl}, PRIMARY KEY (id))")
        cur.execute(f"INSERT INTO everything VALUES ({ROW_1}), ({ROW_2_SMALL})")
    columns = {c.name: c for c in all_columns()}
    chunks = list(MysqlSource(mysql_url).table_rows("everything", columns, ["id"], 1))
    assert len(chunks) == 2
    assert chunks[0] == [dict(zip(columns, EXPECTED_1, strict=True))]
    assert chunks[1] == [dict(zip(columns, EXPECTED_2, strict=True))]


def test_table_shapes_name_columns_and_declared_types(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id INT UNSIGNED PRIMARY KEY, v VARCHAR(10), s SET('x','y'))")
        cur.execute("SELECT DATABASE()")
        database = cur.fetchone()[0]
    shapes = MysqlSource(mysql_url).table_shapes(["a", "missing"])
    assert shapes == {
        "a": {
            "name": f"{database}.a",
            "columns": [["id", "int(10) unsigned"], ["v", "varchar(10)"], ["s", "set('x','y')"]],
        }
    }
