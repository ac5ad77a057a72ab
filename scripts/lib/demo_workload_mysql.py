"""demo_workload.py's live workload on the demo schema in MySQL/MariaDB (PyMySQL, MySQL's dialect):

    python scripts/lib/demo_workload_mysql.py --url mysql://... [--seconds 8] [--rate 200] [--seed 7]

The same mix of small transactions at about `rate` changes per second: new customers with
addresses and orders, renamed customers, moved and deleted addresses, changed and deleted order
items, profile changes. Prints what it did.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections import Counter
from typing import Any

from demo_data_mysql import connect

# The address a move takes (the customer's first) and a delete takes (its last), locked.
MOVED = "SELECT min(id) FROM addresses WHERE customer_id = %s FOR UPDATE"
DELETED = "SELECT max(id) FROM addresses WHERE customer_id = %s FOR UPDATE"
ACTIONS = ("new_customer", "rename", "move_address", "delete_address", "items", "profile")


def _scalar(cur: Any, statement: str, params: Any = None) -> Any:
    cur.execute(statement, params)
    row = cur.fetchone()
    return row[0] if row else None


def _new_customer(cur: Any, rng: random.Random, ids: dict[str, int], products: list[int]) -> int:
    for name in ("customer", "address", "order"):
        ids[name] += 1
    customer, order = ids["customer"], ids["order"]
    cur.execute(
        "INSERT INTO customers (id, email, full_name, password_hash, status, external_id, balance, "
        "loyalty_points, is_vip, preferences, signed_up_at) VALUES "
        "(%s, %s, %s, 'x', 'active', %s, 0, 0, 0, '{}', NOW(6))",
        [customer, f"live{customer}@example.org", f"Live Customer {customer}", str(uuid.uuid4())],
    )
    cur.execute(
        "INSERT INTO addresses (id, customer_id, kind, line1, city, country, is_default) "
        "VALUES (%s, %s, 'home', '1 Live Street', 'Zürich', 'CH', 1)",
        [ids["address"], customer],
    )
    cur.execute(
        "INSERT INTO orders (id, customer_id, status, placed_at, total, currency) "
        "VALUES (%s, %s, 'placed', NOW(6), 0, 'CHF')",
        [order, customer],
    )
    for line in range(1, rng.randint(1, 4) + 1):
        cur.execute(
            "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
            "VALUES (%s, %s, %s, %s, 9.90)",
            [order, line, rng.choice(products), rng.randint(1, 5)],
        )
    return 6


def _change(cur: Any, action: str, rng: random.Random, customer: int, max_customer: int) -> int:
    if action == "rename":
        cur.execute("UPDATE customers SET full_name = CONCAT(full_name, ' ✓') WHERE id = %s", [customer])
        return 1
    if action in ("move_address", "delete_address"):
        # MySQL refuses a subquery on the table being changed (errno 1093): read the id first.
        statement = MOVED if action == "move_address" else DELETED
        address = _scalar(cur, statement, [customer])
        if address is not None and action == "move_address":
            cur.execute(
                "UPDATE addresses SET customer_id = %s WHERE id = %s", [rng.randint(1, max_customer), address]
            )
        elif address is not None:
            cur.execute("DELETE FROM addresses WHERE id = %s", [address])
        return 1
    if action == "items":
        cur.execute(
            "UPDATE order_items SET quantity = quantity + 1 WHERE order_id IN "
            "(SELECT id FROM orders WHERE customer_id = %s)",
            [customer],
        )
        cur.execute(
            "DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE customer_id = %s) "
            "AND line_no = 1",
            [rng.randint(1, max_customer)],
        )
        return 3
    cur.execute(
        "INSERT INTO customer_profiles (customer_id, bio, marketing_opt_in, updated_at) "
        "VALUES (%s, 'hello', 1, NOW(6)) ON DUPLICATE KEY UPDATE "
        "bio = CONCAT(COALESCE(bio, ''), '!'), updated_at = NOW(6)",
        [customer],
    )
    return 1


def run(url: str, seconds: float, rate: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    done: Counter[str] = Counter()
    with connect(url, autocommit=False) as conn, conn.cursor() as cur:
        ids = {
            "customer": _scalar(cur, "SELECT COALESCE(max(id), 0) FROM customers"),
            "address": _scalar(cur, "SELECT COALESCE(max(id), 0) FROM addresses"),
            "order": _scalar(cur, "SELECT COALESCE(max(id), 0) FROM orders"),
        }
        cur.execute("SELECT id FROM products")
        products = [r[0] for r in cur.fetchall()]
        conn.commit()
        started = time.monotonic()
        changes = 0
        while time.monotonic() - started < seconds:
            if changes > (time.monotonic() - started) * rate:
                time.sleep(0.005)
                continue
            action = rng.choice(ACTIONS)
            customer = rng.randint(1, ids["customer"])
            if action == "new_customer":
                changes += _new_customer(cur, rng, ids, products)
            else:
                changes += _change(cur, action, rng, customer, ids["customer"])
            conn.commit()
            done[action] += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    done = run(args.url, args.seconds, args.rate, args.seed)
    print("workload: " + ", ".join(f"{k} x{v}" for k, v in sorted(done.items())))


if __name__ == "__main__":
    main()
