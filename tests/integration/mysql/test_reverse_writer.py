"""Reverse sync's writer on a real MariaDB source: documents' new states (DocumentRows, built by
hand here) become rows, read back and compared with rows written by hand; values converted back
as the type contract says; the checkpoint row leads every reverse transaction in the binlog."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from bson.int64 import Int64

from migrator.adapters.mysql import MysqlSource
from migrator.adapters.rows import DocumentRows, LevelRows, ReverseCheckpoint, TableLevel
from migrator.errors import SourceError
from tests.support.mariadb import connect

UTC = datetime.UTC

LEVELS = (
    TableLevel("customers", ("id",)),
    TableLevel("orders", ("id",), parent=0, on=(("customer_id", "id"),)),
    TableLevel("items", ("order_id", "sku"), parent=1, on=(("order_id", "id"),)),
)


def _schema(url: str) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, "
            "note TEXT NULL, seen DATETIME(6) NULL)"
        )
        cur.execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2), "
            "FOREIGN KEY (customer_id) REFERENCES customers (id))"
        )
        cur.execute(
            "CREATE TABLE items (order_id INT NOT NULL, sku VARCHAR(10) NOT NULL, qty INT NOT NULL, "
            "PRIMARY KEY (order_id, sku), FOREIGN KEY (order_id) REFERENCES orders (id))"
        )


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")  # TIMESTAMP read as the UTC instant it stores
        cur.execute(query)
        return [tuple(r) for r in cur.fetchall()]


def _document(customer: int, name: str, orders: dict[int, list[tuple[str, int]]]) -> DocumentRows:
    order_rows = LevelRows(
        rows=[{"id": o, "customer_id": customer, "total": Decimal("1.50")} for o in orders],
        carried=[(customer,)],
    )
    item_rows = LevelRows(
        rows=[{"order_id": o, "sku": sku, "qty": qty} for o, items in orders.items() for sku, qty in items],
        carried=[(o,) for o in orders],
    )
    root = LevelRows(rows=[{"id": customer, "name": name}])
    return DocumentRows("customers", customer, LEVELS, {"id": customer}, [root, order_rows, item_rows])


def test_documents_become_rows_then_change_then_go(mysql_url: str) -> None:
    _schema(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers VALUES (2, 'Bo', 'kept', NULL)")  # a row the batch leaves alone
    writer = MysqlSource(mysql_url).reverse_writer("shop", "migrator_reverse_shop")
    writer.setup()
    try:
        first = ReverseCheckpoint({"_data": "01"}, None, 1)
        writer.apply(
            [_document(1, "Ann", {10: [("a", 1), ("b", 2)], 11: [("c", 3)]})],
            first,
        )
        assert _rows(mysql_url, "SELECT id, name, note FROM customers ORDER BY id") == [
            (1, "Ann", None),
            (2, "Bo", "kept"),
        ]
        assert _rows(mysql_url, "SELECT id, customer_id, total FROM orders ORDER BY id") == [
            (10, 1, Decimal("1.50")),
            (11, 1, Decimal("1.50")),
        ]
        assert _rows(mysql_url, "SELECT order_id, sku, qty FROM items ORDER BY order_id, sku") == [
            (10, "a", 1),
            (10, "b", 2),
            (11, "c", 3),
        ]
        # Order 11 leaves the document, item b of order 10 goes, a changes, d comes; the root's
        # note (not carried) stays. A second customer's document in the same batch.
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("UPDATE customers SET note = 'vip' WHERE id = 1")
        second = ReverseCheckpoint({"_data": "02"}, None, 3)
        writer.apply(
            [
                _document(1, "Anne", {10: [("a", 5), ("d", 1)]}),
                _document(2, "Bo", {20: [("x", 9)]}),
            ],
            second,
        )
        assert _rows(mysql_url, "SELECT id, name, note FROM customers ORDER BY id") == [
            (1, "Anne", "vip"),
            (2, "Bo", "kept"),
        ]
        assert _rows(mysql_url, "SELECT id, customer_id FROM orders ORDER BY id") == [(10, 1), (20, 2)]
        assert _rows(mysql_url, "SELECT order_id, sku, qty FROM items ORDER BY order_id, sku") == [
            (10, "a", 5),
            (10, "d", 1),
            (20, "x", 9),
        ]
        assert writer.checkpoint() == second
        # Replaying the same batch changes nothing.
        writer.apply([_document(2, "Bo", {20: [("x", 9)]})], second)
        assert _rows(mysql_url, "SELECT order_id, sku, qty FROM items WHERE order_id = 20") == [(20, "x", 9)]
        # The document of customer 1 is deleted: its items, orders and row go, deepest first.
        gone = DocumentRows("customers", 1, LEVELS, {"id": 1}, None)
        writer.apply([gone], ReverseCheckpoint({"_data": "03"}, None, 4))
        assert _rows(mysql_url, "SELECT id FROM customers ORDER BY id") == [(2,)]
        assert _rows(mysql_url, "SELECT id FROM orders ORDER BY id") == [(20,)]
        assert _rows(mysql_url, "SELECT order_id, sku FROM items") == [(20, "x")]
        assert writer.checkpoint() == ReverseCheckpoint({"_data": "03"}, None, 4)
    finally:
        writer.close()


def test_a_missing_field_leaves_its_level_alone(mysql_url: str) -> None:
    """`exempt`: a parent present without its array keeps its rows of that level."""
    _schema(mysql_url)
    writer = MysqlSource(mysql_url).reverse_writer("shop", "o")
    writer.setup()
    try:
        writer.apply([_document(1, "Ann", {10: [("a", 1)], 11: [("b", 2)]})], None)
        document = _document(1, "Ann", {10: [("a", 7)], 11: []})
        assert document.state is not None
        document.state[2] = LevelRows(
            rows=[{"order_id": 10, "sku": "a", "qty": 7}], carried=[(10,)], exempt=[(11,)]
        )
        writer.apply([document], None)
        assert _rows(mysql_url, "SELECT order_id, sku, qty FROM items ORDER BY order_id, sku") == [
            (10, "a", 7),
            (11, "b", 2),
        ]
    finally:
        writer.close()


# Every type of the contract: (column, DDL, value as the inverse mapping hands it, value read back).
TYPES: list[tuple[str, str, Any, Any]] = [
    ("ti", "TINYINT", -5, -5),
    ("bi", "BIGINT", Int64(-9223372036854775808), -9223372036854775808),
    ("iu", "INT UNSIGNED", Int64(4294967295), 4294967295),
    ("bu", "BIGINT UNSIGNED", Decimal(18446744073709551615), 18446744073709551615),
    ("dec_", "DECIMAL(10,2)", Decimal("-12345678.90"), Decimal("-12345678.90")),
    ("db", "DOUBLE", 2.5e-300, 2.5e-300),
    ("bits", "BIT(5)", "00101", b"\x05"),
    ("vc", "VARCHAR(20)", "héllo", "héllo"),
    ("tx", "TEXT CHARACTER SET latin1", "café", "café"),
    ("vb", "VARBINARY(8)", b"\x00\xff", b"\x00\xff"),
    ("js", "JSON", {"b": [1, 2.5, None], "a": {"x": "é"}}, {"b": [1, 2.5, None], "a": {"x": "é"}}),
    ("js_text", "JSON", "just text", "just text"),
    ("en", "ENUM('small','large')", "large", "large"),
    ("st", "SET('a','b','c')", ["a", "c"], "a,c"),
    ("st_empty", "SET('a','b','c')", [], ""),
    ("dt", "DATE", datetime.date(2024, 2, 29), datetime.date(2024, 2, 29)),
    (
        "dtm",
        "DATETIME(6)",
        datetime.datetime(1999, 12, 31, 23, 59, 59, 123000),
        datetime.datetime(1999, 12, 31, 23, 59, 59, 123000),
    ),
    (
        "ts",
        "TIMESTAMP(3) NULL",
        datetime.datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=UTC),
        datetime.datetime(2038, 1, 19, 3, 14, 7, 999000),  # the UTC wall clock (session +00:00)
    ),
    (
        "ts_zone",
        "TIMESTAMP(3) NULL",
        datetime.datetime(2024, 6, 1, 12, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        datetime.datetime(2024, 6, 1, 10, 0, 0),
    ),
    ("tm", "TIME(6)", "-838:59:59.500000", "-838:59:59.500000"),
    ("yr", "YEAR", 2155, 2155),
    ("nothing", "INT NULL", None, None),
]


def test_every_type_is_written_back_as_the_column_stores_it(mysql_url: str) -> None:
    columns = ", ".join(f"`{name}` {ddl}" for name, ddl, _, _ in TYPES)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE every (id INT PRIMARY KEY, {columns})")
    level = (TableLevel("every", ("id",)),)
    row = {"id": 1, **{name: value for name, _, value, _ in TYPES}}
    writer = MysqlSource(mysql_url).reverse_writer("types", "o")
    writer.setup()
    try:
        writer.apply([DocumentRows("every", 1, level, {"id": 1}, [LevelRows(rows=[row])])], None)
        # Written twice (a replay): the same values, nothing changes.
        writer.apply([DocumentRows("every", 1, level, {"id": 1}, [LevelRows(rows=[row])])], None)
    finally:
        writer.close()
    selected = ", ".join(
        f"CAST(`{name}` AS CHAR)" if name == "tm" else f"`{name}`" for name, _, _, _ in TYPES
    )
    read = _rows(mysql_url, f"SELECT {selected} FROM every WHERE id = 1")[0]
    got = {
        name: json.loads(value) if name.startswith("js") else value
        for (name, _, _, _), value in zip(TYPES, read, strict=True)
    }
    assert got == {name: expected for name, _, _, expected in TYPES}


def test_a_timestamp_keeps_its_microseconds_when_the_document_holds_its_milliseconds(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6), js JSON, n DECIMAL(40,0))")
        cur.execute(
            "INSERT INTO ev VALUES (1, '2024-01-01 00:00:00.123456', '{\"a\":1.50,  \"b\":2}', NULL), "
            "(2, '2024-01-01 00:00:00.123456', '[1]', NULL)"
        )
    level = (TableLevel("ev", ("id",), equivalent=(("at", "milliseconds"), ("js", "json"))),)
    same = {"id": 1, "at": datetime.datetime(2024, 1, 1, 0, 0, 0, 123000), "js": {"b": 2, "a": 1.5}}
    moved = {"id": 2, "at": datetime.datetime(2024, 1, 1, 0, 0, 0, 124000), "js": [2]}
    writer = MysqlSource(mysql_url).reverse_writer("eq", "o")
    writer.setup()
    try:
        writer.apply(
            [
                DocumentRows("ev", 1, level, {"id": 1}, [LevelRows(rows=[same])]),
                DocumentRows("ev", 2, level, {"id": 2}, [LevelRows(rows=[moved])]),
            ],
            None,
        )
    finally:
        writer.close()
    assert _rows(mysql_url, "SELECT id, at, js FROM ev ORDER BY id") == [
        (1, datetime.datetime(2024, 1, 1, 0, 0, 0, 123456), '{"a":1.50,  "b":2}'),  # stored kept
        (2, datetime.datetime(2024, 1, 1, 0, 0, 0, 124000), "[2]"),
    ]


def test_the_checkpoint_row_leads_every_reverse_transaction_in_the_binlog(mysql_url: str) -> None:
    """The echo mark: in the binlog, a reverse transaction's first table map is the plan's row
    in `_migrator_reverse`, before any mapped table's (the forward stream skips on it)."""
    _schema(mysql_url)
    database = mysql_url.rsplit("/", 1)[1].split("?")[0]
    writer = MysqlSource(mysql_url).reverse_writer("shop", "o")
    writer.setup()
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        log, start = cur.fetchone()[:2]
    try:
        writer.apply([_document(1, "Ann", {10: [("a", 1)]})], ReverseCheckpoint({"_data": "01"}, None, 1))
        writer.apply([_document(1, "Ann", {10: [("a", 2)]})], None)
    finally:
        writer.close()
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"SHOW BINLOG EVENTS IN '{log}' FROM {int(start)}")
        events = [(str(r[2]), str(r[5])) for r in cur.fetchall()]
    transactions: list[list[str]] = []
    for kind, info in events:
        if kind == "Gtid":
            transactions.append([])
        elif kind == "Table_map" and transactions:
            transactions[-1].append(info.split("(", 1)[1].rstrip(")"))
    tables = [t for t in transactions if t]
    assert tables == [
        [f"{database}._migrator_reverse", f"{database}.customers", f"{database}.orders", f"{database}.items"],
        [f"{database}._migrator_reverse", f"{database}.items"],
    ]


def test_a_not_null_column_the_rows_do_not_carry_updates_and_refuses_a_new_row(mysql_url: str) -> None:
    """`code` is NOT NULL without a default and not mapped: a stored row is updated; a new row
    cannot be inserted, and the error names the document, the table and errno 1364's cause."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE p (id INT PRIMARY KEY, code VARCHAR(5) NOT NULL, v INT)")
        cur.execute("INSERT INTO p VALUES (1, 'X', 1)")
    level = (TableLevel("p", ("id",)),)
    writer = MysqlSource(mysql_url).reverse_writer("nn", "o")
    writer.setup()
    try:
        writer.apply([DocumentRows("p", 1, level, {"id": 1}, [LevelRows(rows=[{"id": 1, "v": 2}])])], None)
        assert _rows(mysql_url, "SELECT id, code, v FROM p") == [(1, "X", 2)]
        with pytest.raises(SourceError) as caught:
            writer.apply(
                [
                    DocumentRows("p", 1, level, {"id": 1}, [LevelRows(rows=[{"id": 1, "v": 3}])]),
                    DocumentRows("p", 9, level, {"id": 9}, [LevelRows(rows=[{"id": 9, "v": 9}])]),
                ],
                ReverseCheckpoint({"_data": "09"}, None, 9),
            )
        assert "document _id 9 of collection 'p'" in caught.value.message
        assert "to p" in caught.value.message
        assert caught.value.hint is not None and "NOT NULL" in caught.value.hint
        # Nothing of the failed batch was written, its checkpoint neither.
        assert _rows(mysql_url, "SELECT id, code, v FROM p") == [(1, "X", 2)]
        assert writer.checkpoint() is None
    finally:
        writer.close()


def test_a_foreign_key_refusal_names_the_document(mysql_url: str) -> None:
    _schema(mysql_url)
    orphan = DocumentRows(
        "customers",
        5,
        LEVELS[:2],
        {"id": 5},
        [
            LevelRows(rows=[{"id": 5, "name": "E"}]),
            LevelRows(rows=[{"id": 50, "customer_id": 6}], carried=[(5,)]),
        ],
    )
    writer = MysqlSource(mysql_url).reverse_writer("fk", "o")
    writer.setup()
    try:
        with pytest.raises(SourceError) as caught:
            writer.apply([orphan], None)
        assert "document _id 5 of collection 'customers'" in caught.value.message
        assert "1452" in caught.value.message
    finally:
        writer.close()
    assert _rows(mysql_url, "SELECT id FROM customers") == []


def test_one_batch_decides_each_documents_rows_as_that_document_alone_would(mysql_url: str) -> None:
    """A batch of three documents: customer 1 keeps order 10 without its items field (its items
    stay) and gives order 11 up; customer 2 is deleted; customer 3 takes order 11 with a changed
    item and adds an item to order 30."""
    _schema(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers (id, name) VALUES (1, 'A'), (2, 'B'), (3, 'C')")
        cur.execute("INSERT INTO orders VALUES (10, 1, 1), (11, 1, 1), (20, 2, 1), (30, 3, 1)")
        cur.execute(
            "INSERT INTO items VALUES (10, 'a', 1), (10, 'b', 1), (11, 'c', 1), (20, 'x', 1), (30, 'y', 1)"
        )
    first = DocumentRows(
        "customers",
        1,
        LEVELS,
        {"id": 1},
        [
            LevelRows(rows=[{"id": 1, "name": "A"}]),
            LevelRows(rows=[{"id": 10, "customer_id": 1, "total": Decimal("1.00")}], carried=[(1,)]),
            LevelRows(exempt=[(10,)]),
        ],
    )
    third = DocumentRows(
        "customers",
        3,
        LEVELS,
        {"id": 3},
        [
            LevelRows(rows=[{"id": 3, "name": "C"}]),
            LevelRows(
                rows=[
                    {"id": 30, "customer_id": 3, "total": Decimal("1.00")},
                    {"id": 11, "customer_id": 3, "total": Decimal("1.00")},
                ],
                carried=[(3,)],
            ),
            LevelRows(
                rows=[
                    {"order_id": 30, "sku": "y", "qty": 1},
                    {"order_id": 30, "sku": "z", "qty": 2},
                    {"order_id": 11, "sku": "c", "qty": 9},
                ],
                carried=[(30,), (11,)],
            ),
        ],
    )
    gone = DocumentRows("customers", 2, LEVELS, {"id": 2}, None)
    writer = MysqlSource(mysql_url).reverse_writer("mix", "o")
    writer.setup()
    try:
        writer.apply([first, gone, third], None)
    finally:
        writer.close()
    assert _rows(mysql_url, "SELECT id, name FROM customers ORDER BY id") == [(1, "A"), (3, "C")]
    assert _rows(mysql_url, "SELECT id, customer_id FROM orders ORDER BY id") == [(10, 1), (11, 3), (30, 3)]
    assert _rows(mysql_url, "SELECT order_id, sku, qty FROM items ORDER BY order_id, sku") == [
        (10, "a", 1),
        (10, "b", 1),
        (11, "c", 9),
        (30, "y", 1),
        (30, "z", 2),
    ]


def test_a_document_without_an_embed_leaves_that_level_and_those_below_alone(mysql_url: str) -> None:
    _schema(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers (id, name) VALUES (1, 'A')")
        cur.execute("INSERT INTO orders VALUES (10, 1, 1)")
        cur.execute("INSERT INTO items VALUES (10, 'a', 1)")
    document = DocumentRows(
        "customers",
        1,
        LEVELS,
        {"id": 1},
        [LevelRows(rows=[{"id": 1, "name": "Z"}]), LevelRows(exempt=[(1,)]), LevelRows()],
    )
    writer = MysqlSource(mysql_url).reverse_writer("ex", "o")
    writer.setup()
    try:
        writer.apply([document], None)
    finally:
        writer.close()
    assert _rows(mysql_url, "SELECT id, name FROM customers") == [(1, "Z")]
    assert _rows(mysql_url, "SELECT id FROM orders") == [(10,)]
    assert _rows(mysql_url, "SELECT order_id, sku FROM items") == [(10, "a")]


def test_a_clash_on_another_unique_index_fails_instead_of_updating_that_row(mysql_url: str) -> None:
    """ON DUPLICATE KEY UPDATE would match the other row by its email and overwrite it: with a
    second unique index the writer updates by the key and inserts, so the clash is errno 1062."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE u (id INT PRIMARY KEY, email VARCHAR(20) UNIQUE, name VARCHAR(20))")
        cur.execute("INSERT INTO u VALUES (1, 'a@x', 'A'), (2, 'b@x', 'B')")
    level = (TableLevel("u", ("id",)),)
    writer = MysqlSource(mysql_url).reverse_writer("uq", "o")
    writer.setup()
    try:
        writer.apply(
            [
                DocumentRows(
                    "u", 1, level, {"id": 1}, [LevelRows(rows=[{"id": 1, "email": "a@y", "name": "A2"}])]
                )
            ],
            None,
        )
        with pytest.raises(SourceError) as caught:
            writer.apply(
                [
                    DocumentRows(
                        "u", 3, level, {"id": 3}, [LevelRows(rows=[{"id": 3, "email": "b@x", "name": "C"}])]
                    )
                ],
                None,
            )
        assert "document _id 3" in caught.value.message and "1062" in caught.value.message
    finally:
        writer.close()
    assert _rows(mysql_url, "SELECT id, email, name FROM u ORDER BY id") == [
        (1, "a@y", "A2"),
        (2, "b@x", "B"),
    ]
