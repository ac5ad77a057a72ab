"""The conformance suite's small two-level schema: customers, each with its orders embedded
(order_by id), in portable SQL; `COLLECTIONS` names each table `{table}` for the plan
(tests/support/conformance.py's `Case.plan`). `documents` builds the expected collection from the
rows the source reads back with its own driver, never with migrator's mapping."""

from __future__ import annotations

from typing import Any

from bson.decimal128 import Decimal128

from tests.support.compare import group
from tests.support.sources import SourceDb

TABLES = ("customers", "orders")

COLLECTIONS = """
- name: customers
  from: {customers}
  key: id
  embed: [{{as: orders, from: {orders}, on: {{customer_id: id}}, key: id, order_by: id}}]
"""


def setup(customers: int, orders: int) -> tuple[str, ...]:
    """Customers 1..`customers` named c<id>, each with `orders` orders: 10 * id + j, total id.j5."""
    return (
        "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(40) NOT NULL)",
        "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers (id),"
        " total decimal(10,2) NOT NULL)",
        "INSERT INTO customers VALUES " + ", ".join(f"({i}, 'c{i}')" for i in range(1, customers + 1)),
        "INSERT INTO orders VALUES "
        + ", ".join(f"({10 * i + j}, {i}, {i}.{j}5)" for i in range(1, customers + 1) for j in range(orders)),
    )


def documents(source: SourceDb) -> list[dict[str, Any]]:
    orders = group(source.records("SELECT id, customer_id, total FROM orders ORDER BY id"), "customer_id")
    return [
        {
            "_id": c["id"],
            "name": c["name"],
            "orders": [{"id": o["id"], "total": Decimal128(o["total"])} for o in orders.get(c["id"], [])],
        }
        for c in source.records("SELECT id, name FROM customers")
    ]
