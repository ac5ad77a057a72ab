"""MySQL/MariaDB reverse writer benchmark: batches of documents written back as rows.

    .venv/bin/python scripts/bench/bench_mysql_reverse.py [--customers N] [--batches N]

A throwaway MariaDB (scripts/lib/mariadb_server.py) gets customers (N), orders (3 per customer,
indexed by customer) and items (2 per order, keyed by order and sku). Each batch is 200 documents
of one customer, its 3 orders and 6 items, changed (a name, an order's total, an item's quantity),
applied by the reverse writer in one transaction. Reported per batch: statements, rows affected
(ON DUPLICATE KEY UPDATE counts 2 for an updated row), milliseconds, milliseconds per document.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT))
import mariadb_server  # noqa: E402
import pymysql  # noqa: E402

from migrator.adapters.mysql import MysqlSource  # noqa: E402
from migrator.adapters.rows import DocumentRows, LevelRows, TableLevel  # noqa: E402

LEVELS = (
    TableLevel("customers", ("id",)),
    TableLevel("orders", ("id",), parent=0, on=(("customer_id", "id"),)),
    TableLevel("items", ("order_id", "sku"), parent=1, on=(("order_id", "id"),)),
)
PER_BATCH = 200


def _document(customer: int, round_: int) -> DocumentRows:
    orders = {customer * 3 + j: [("a", round_), ("b", 1)] for j in range(3)}
    return DocumentRows(
        "customers",
        customer,
        LEVELS,
        {"id": customer},
        [
            LevelRows(rows=[{"id": customer, "name": f"n{round_}"}]),
            LevelRows(
                rows=[{"id": o, "customer_id": customer, "total": Decimal("2.00")} for o in orders],
                carried=[(customer,)],
            ),
            LevelRows(
                rows=[{"order_id": o, "sku": s, "qty": q} for o, items in orders.items() for s, q in items],
                carried=[(o,) for o in orders],
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    server = mariadb_server.start_mariadb(Path(tempfile.mkdtemp()))
    try:
        conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE bench")
            cur.execute("USE bench")
            cur.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50))")
            cur.execute(
                "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2), "
                "KEY (customer_id))"
            )
            cur.execute(
                "CREATE TABLE items (order_id INT NOT NULL, sku VARCHAR(10) NOT NULL, qty INT, "
                "PRIMARY KEY (order_id, sku))"
            )
            n = args.customers
            cur.executemany("INSERT INTO customers VALUES (%s, %s)", [(i, f"c{i}") for i in range(n)])
            cur.executemany(
                "INSERT INTO orders VALUES (%s, %s, 1.00)",
                [(i * 3 + j, i) for i in range(n) for j in range(3)],
            )
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s, 1)", [(o, s) for o in range(n * 3) for s in ("a", "b")]
            )
        conn.close()
        writer = MysqlSource(f"mysql://root@127.0.0.1:{server.port}/bench").reverse_writer("bench", "o")
        writer.setup()
        try:
            for round_ in range(args.batches):
                first = (round_ * PER_BATCH) % max(1, n - PER_BATCH)
                documents = [_document(c, round_ + 2) for c in range(first, first + PER_BATCH)]
                statements = len(writer._statements(documents))
                started = time.perf_counter()
                written = writer.apply(documents, None)
                elapsed = time.perf_counter() - started
                print(
                    f"batch {round_ + 1}: {PER_BATCH} documents, {statements} statements, {written} rows affected, "
                    f"{elapsed * 1000:.0f} ms, {elapsed / PER_BATCH * 1000:.2f} ms/document"
                )
        finally:
            writer.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
