"""The shop scenario of embedded changes (issue 15's conformance suite, and the PostgreSQL CDC
tests that build on it): customers with their orders embedded (each with its items) and a 1:1
profile; after the snapshot, inserts, updates and deletes on every level, children moving between
parents (a middle level carrying its grandchildren, there and back), key changes of a root and of
an element, a tree inserted in one transaction.

Portable SQL, so that every source adapter runs it; `COLLECTIONS` names each table `{table}`, for
the plan to name it as its source does. `documents` builds the expected collection from the rows a
source reads back with its own driver (`records`), never with migrator's mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.compare import group

TABLES = ("customers", "orders", "items", "profiles")

SETUP = (
    "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(40) NOT NULL)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers (id),"
    " pos integer NOT NULL, note varchar(40))",
    "CREATE TABLE items (id integer PRIMARY KEY, order_id integer NOT NULL REFERENCES orders (id),"
    " sku varchar(20), qty integer)",
    "CREATE TABLE profiles (id integer PRIMARY KEY, customer_id integer NOT NULL UNIQUE REFERENCES customers (id),"
    " bio varchar(40))",
    "INSERT INTO customers VALUES (1, 'c1'), (2, 'c2'), (3, 'c3'), (4, 'c4'), (5, 'c5'), (6, 'c6')",
    "INSERT INTO orders VALUES (101, 1, 10, 'a'), (102, 1, 20, 'b'), (103, 1, 30, 'c'),"
    " (201, 2, 10, 'd'), (301, 3, 10, 'e')",
    "INSERT INTO items VALUES (1011, 101, 'x', 1), (1012, 101, 'y', 2), (1021, 102, 'z', 3),"
    " (1031, 103, 'w', 4), (2011, 201, 'v', 5), (3011, 301, 'u', 6),"
    " (1013, 101, 'untouched', 8), (1023, 102, 'untouched', 9)",
    "INSERT INTO profiles VALUES (1, 1, 'bio1'), (2, 2, 'bio2')",
)

COLLECTIONS = """\
  - name: customers
    from: {customers}
    key: id
    embed:
      - as: orders
        from: {orders}
        on: {{customer_id: id}}
        key: id
        order_by: pos
        embed: [{{as: items, from: {items}, on: {{order_id: id}}, key: id}}]
      - {{as: profile, from: {profiles}, on: {{customer_id: id}}, many: false, key: id}}
"""

CHANGES: tuple[list[str] | str, ...] = (
    # 1:N: an element whose order key falls in the middle, an update, a delete.
    "INSERT INTO orders VALUES (104, 1, 15, 'middle')",
    "UPDATE orders SET note = 'b-changed' WHERE id = 102",  # its items stay
    ["DELETE FROM items WHERE order_id = 103", "DELETE FROM orders WHERE id = 103"],
    # A middle-level element moves to another root parent, carrying its grandchildren.
    "UPDATE orders SET customer_id = 2 WHERE id = 101",
    "UPDATE items SET qty = 99 WHERE id = 1011",  # a grandchild of the moved order
    "UPDATE orders SET customer_id = 3 WHERE id = 201",  # there and back, with its grandchild
    "UPDATE orders SET customer_id = 2, note = 'd-back' WHERE id = 201",
    # A parent without children gets one; an element inserted and deleted in one transaction.
    "INSERT INTO orders VALUES (401, 4, 5, 'first')",
    ["INSERT INTO orders VALUES (105, 1, 1, 'fleeting')", "DELETE FROM orders WHERE id = 105"],
    "UPDATE orders SET pos = 40 WHERE id = 104",  # reorders the array
    # Grandchildren: insert, update, delete, moves within and across root parents.
    "INSERT INTO items VALUES (1022, 102, 'new', 7)",
    "UPDATE items SET sku = 'z2' WHERE id = 1021",
    "DELETE FROM items WHERE id = 2011",
    "UPDATE items SET order_id = 201 WHERE id = 1012",
    "UPDATE items SET order_id = 301, qty = 30 WHERE id = 1021",
    # 1:1: insert, update, delete, and a move to another parent.
    "INSERT INTO profiles VALUES (3, 3, 'bio3')",
    "UPDATE profiles SET bio = 'bio1-changed' WHERE id = 1",
    "DELETE FROM profiles WHERE id = 2",
    "UPDATE profiles SET customer_id = 4 WHERE id = 3",
    # Roots: a new document with its whole tree in one transaction; a delete; a key change.
    [
        "INSERT INTO customers VALUES (7, 'c7')",
        "INSERT INTO orders VALUES (701, 7, 1, 'o')",
        "INSERT INTO items VALUES (7011, 701, 's', 1)",
        "INSERT INTO profiles VALUES (7, 7, 'bio7')",
    ],
    "DELETE FROM customers WHERE id = 6",
    "UPDATE customers SET name = 'c5-renamed' WHERE id = 5",
    "UPDATE customers SET id = 55 WHERE id = 5",  # a root key change keeps the document's arrays
    "UPDATE orders SET id = 106, note = 'rekeyed' WHERE id = 104",  # an element key change
)


def documents(records: Callable[[str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    items = group(records("SELECT id, order_id, sku, qty FROM items ORDER BY id"), "order_id", ("order_id",))
    orders = group(
        records("SELECT id, customer_id, pos, note FROM orders ORDER BY pos, id"),
        "customer_id",
        ("customer_id",),
    )
    for elements in orders.values():
        for order in elements:
            order["items"] = items.get(order["id"], [])
    profiles = {p.pop("customer_id"): p for p in records("SELECT id, customer_id, bio FROM profiles")}
    return [
        {
            "_id": c["id"],
            "name": c["name"],
            "orders": orders.get(c["id"], []),
            "profile": profiles.get(c["id"]),
        }
        for c in records("SELECT id, name FROM customers")
    ]
