"""The whole way back on a real MariaDB: documents as MongoDB holds them (BSON values) through the
real inverse mapping (resolved from the inspected MySQL tables) into the reverse writer; the rows
read back equal rows written by hand."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from pathlib import Path

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator.adapters.mysql import MysqlSource
from migrator.mapping.inverse import inverses
from migrator.mapping.spec import resolve
from migrator.plan import load_plan
from tests.support.mariadb import connect, database
from tests.support.mysql_plans import customers_plan


def test_documents_go_back_through_the_inverse_mapping(mysql_url: str, tmp_path: Path) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20), joined TIMESTAMP(6) NULL, "
            "tags SET('a','b','c') NOT NULL DEFAULT '', flags BIT(4), prefs JSON, big BIGINT UNSIGNED)"
        )
        cur.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, total DECIMAL(10,2))")
        cur.execute(
            "INSERT INTO customers VALUES (1, 'old', '2023-06-01 12:00:00.250999', 'a', b'0001', '{}', 1)"
        )
        cur.execute("INSERT INTO orders VALUES (100, 1, '1.00'), (101, 1, '2.00')")
    schema = database(mysql_url)
    plan = load_plan(customers_plan(tmp_path / "plan.yaml", mysql_url, "key: id, order_by: id"))
    source = MysqlSource(mysql_url)
    try:
        info = source.inspect([f"{schema}.customers", f"{schema}.orders"])
        resolution = resolve(plan.collections, info)
        assert resolution.collections, resolution.findings
        inverse = inverses(resolution.collections)["customers"]
        changed = {
            "_id": 1,
            "name": "new",
            "joined": datetime.datetime(2023, 6, 1, 12, 0, 0, 250000),  # its milliseconds: kept as stored
            "tags": ["a", "c"],
            "flags": "1010",
            "prefs": {"theme": "dark", "n": Int64(3)},
            "big": Decimal128(Decimal(18446744073709551615)),
            "orders": [{"id": Int64(100), "total": Decimal128("7.50")}],  # 101 is gone
        }
        added = {
            "_id": 2,
            "name": "two",
            "joined": datetime.datetime(2024, 5, 6, 7, 8, 9, 500000),
            "tags": [],
            "flags": "0000",
            "prefs": [1, "x"],
            "big": Int64(5),
            "orders": [{"id": Int64(200), "total": Decimal128("0.10")}],
        }
        writer = source.reverse_writer("shop", "migrator_reverse_shop")
        writer.setup()
        try:
            writer.apply([inverse.rows(changed), inverse.rows(added)], None)
        finally:
            writer.close()
    finally:
        source.close()
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")  # TIMESTAMP read as the UTC instant it stores
        cur.execute("SELECT id, name, joined, tags, flags + 0, prefs, big FROM customers ORDER BY id")
        customers = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT id, customer_id, total FROM orders ORDER BY id")
        orders = [tuple(r) for r in cur.fetchall()]
    assert customers == [
        (
            1,
            "new",
            datetime.datetime(2023, 6, 1, 12, 0, 0, 250999),
            "a,c",
            10,
            '{"theme": "dark", "n": 3}',
            18446744073709551615,
        ),
        (2, "two", datetime.datetime(2024, 5, 6, 7, 8, 9, 500000), "", 0, '[1, "x"]', 5),
    ]
    assert orders == [(100, 1, Decimal("7.50")), (200, 2, Decimal("0.10"))]


def test_json_numbers_stored_as_decimal128_go_back_with_their_digits(mysql_url: str, tmp_path: Path) -> None:
    """What the forward conversion stores as a Decimal128 (a JSON number no double prints back) is
    written back as the same number: the source's JSON text, every number read as a Decimal."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, prefs JSON)")
        cur.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT)")
    schema = database(mysql_url)
    plan = load_plan(customers_plan(tmp_path / "plan.yaml", mysql_url, "key: id, order_by: id"))
    numbers = [
        Decimal128("12345678901234567890123"),
        Decimal128("0.1000000000000000055511151231257827"),
        Decimal128("1E+400"),
        -0.0,
        1.0,
    ]
    source = MysqlSource(mysql_url)
    try:
        info = source.inspect([f"{schema}.customers", f"{schema}.orders"])
        inverse = inverses(resolve(plan.collections, info).collections)["customers"]
        writer = source.reverse_writer("shop", "migrator_reverse_shop")
        writer.setup()
        try:
            writer.apply([inverse.rows({"_id": 1, "prefs": {"n": numbers}, "orders": []})], None)
        finally:
            writer.close()
    finally:
        source.close()
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT prefs FROM customers")
        ((text,),) = cur.fetchall()
    held = json.loads(text, parse_float=Decimal, parse_int=Decimal)["n"]
    assert held == [
        Decimal("12345678901234567890123"),
        Decimal("0.1000000000000000055511151231257827"),
        Decimal("1E+400"),
        Decimal("0"),
        Decimal("1"),
    ]
    assert held[3].is_signed() and str(held[4]) == "1.0"  # -0.0 and 1.0 as the document holds them
