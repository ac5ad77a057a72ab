"""A small live workload on the demo schema: what an application does while it is migrated.

    python scripts/lib/demo_workload.py --url URL [--seconds 8] [--rate 200] [--seed 7]

Commits small transactions at about `rate` changes per second: new customers with addresses
and orders, renamed customers, moved and deleted addresses, changed and deleted order items,
profile changes. Prints what it did. Standard library and psycopg only; the statements that
differ by dialect are a `WorkloadSql` (PostgreSQL's here, MySQL's in demo_workload_mysql.py).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

ACTIONS = ("new_customer", "rename", "move_address", "delete_address", "items", "profile")
# The address a move takes (the customer's first) and a delete takes (its last), locked: read
# first, then changed by id (MySQL refuses a subquery on the table a statement changes, errno 1093).
MOVED = "SELECT id FROM addresses WHERE customer_id = %s ORDER BY id LIMIT 1 FOR UPDATE"
DELETED = "SELECT id FROM addresses WHERE customer_id = %s ORDER BY id DESC LIMIT 1 FOR UPDATE"


@dataclass(frozen=True)
class WorkloadSql:
    """The statements whose text differs by dialect (each takes the parameters shown)."""

    new_customer: str  # id, email, full_name, external_id
    new_address: str  # id, customer_id
    new_order: str  # id, customer_id
    rename: str  # id
    profile: str  # customer_id: insert or change the profile


POSTGRES = WorkloadSql(
    new_customer="INSERT INTO customers (id, email, full_name, password_hash, status, external_id, balance, "
    "loyalty_points, is_vip, preferences, signed_up_at) VALUES "
    "(%s, %s, %s, 'x', 'active', %s, 0, 0, false, '{}', now())",
    new_address="INSERT INTO addresses (id, customer_id, kind, line1, city, country, is_default) "
    "VALUES (%s, %s, 'home', '1 Live Street', 'Zürich', 'CH', true)",
    new_order="INSERT INTO orders (id, customer_id, status, placed_at, total, currency) "
    "VALUES (%s, %s, 'placed', now(), 0, 'CHF')",
    rename="UPDATE customers SET full_name = full_name || ' ✓' WHERE id = %s",
    profile="INSERT INTO customer_profiles (customer_id, bio, marketing_opt_in, updated_at) "
    "VALUES (%s, 'hello', true, now()) ON CONFLICT (customer_id) DO UPDATE SET bio = "
    "customer_profiles.bio || '!', updated_at = now()",
)


def _scalar(cur: Any, statement: str, params: Any = None) -> Any:
    cur.execute(statement, params)
    row = cur.fetchone()
    return row[0] if row else None


def _new_customer(
    cur: Any, sql: WorkloadSql, rng: random.Random, ids: dict[str, int], products: list[int]
) -> int:
    for name in ("customer", "address", "order"):
        ids[name] += 1
    customer, order = ids["customer"], ids["order"]
    external = str(uuid.uuid4())
    cur.execute(
        sql.new_customer, [customer, f"live{customer}@example.org", f"Live Customer {customer}", external]
    )
    cur.execute(sql.new_address, [ids["address"], customer])
    cur.execute(sql.new_order, [order, customer])
    for line in range(1, rng.randint(1, 4) + 1):
        cur.execute(
            "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
            "VALUES (%s, %s, %s, %s, 9.90)",
            [order, line, rng.choice(products), rng.randint(1, 5)],
        )
    return 6


def _change(
    cur: Any, sql: WorkloadSql, action: str, rng: random.Random, customer: int, max_customer: int
) -> int:
    if action == "rename":
        cur.execute(sql.rename, [customer])
        return 1
    if action in ("move_address", "delete_address"):
        address = _scalar(cur, MOVED if action == "move_address" else DELETED, [customer])
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
    cur.execute(sql.profile, [customer])
    return 1


def run_on(conn: Any, sql: WorkloadSql, seconds: float, rate: int, seed: int) -> Counter[str]:
    """The workload on `conn` (a DB-API connection, not in autocommit), one transaction per action."""
    rng = random.Random(seed)
    done: Counter[str] = Counter()
    with conn.cursor() as cur:
        ids = {
            name: _scalar(cur, f"SELECT COALESCE(max(id), 0) FROM {table}")  # noqa: S608 - names above
            for name, table in (("customer", "customers"), ("address", "addresses"), ("order", "orders"))
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
                changes += _new_customer(cur, sql, rng, ids, products)
            else:
                changes += _change(cur, sql, action, rng, customer, ids["customer"])
            conn.commit()
            done[action] += 1
    return done


def run(url: str, seconds: float, rate: int, seed: int) -> Counter[str]:
    with psycopg.connect(url) as conn:
        return run_on(conn, POSTGRES, seconds, rate, seed)


def main(run_url: Callable[[str, float, int, int], Counter[str]] = run) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    done = run_url(args.url, args.seconds, args.rate, args.seed)
    print("workload: " + ", ".join(f"{k} x{v}" for k, v in sorted(done.items())))


if __name__ == "__main__":
    main()
