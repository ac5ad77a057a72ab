"""A small live workload on the demo schema: what an application does while it is migrated.

    python scripts/lib/demo_workload.py --url URL [--seconds 8] [--rate 200] [--seed 7]

Commits small transactions at about `rate` changes per second: new customers with addresses
and orders, renamed customers, moved and deleted addresses, changed and deleted order items,
profile changes. Prints what it did. Standard library and psycopg only.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections import Counter

import psycopg


def run(url: str, seconds: float, rate: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    done: Counter[str] = Counter()
    with psycopg.connect(url, autocommit=True) as conn:
        max_customer = conn.execute("SELECT max(id) FROM customers").fetchone()[0] or 0  # type: ignore[index]
        max_address = conn.execute("SELECT max(id) FROM addresses").fetchone()[0] or 0  # type: ignore[index]
        max_order = conn.execute("SELECT max(id) FROM orders").fetchone()[0] or 0  # type: ignore[index]
        products = [r[0] for r in conn.execute("SELECT id FROM products").fetchall()]
        started = time.monotonic()
        changes = 0
        while time.monotonic() - started < seconds:
            if changes > (time.monotonic() - started) * rate:
                time.sleep(0.005)
                continue
            action = rng.choice(
                ["new_customer", "rename", "move_address", "delete_address", "items", "profile"]
            )
            customer = rng.randint(1, max_customer)
            with conn.transaction():
                if action == "new_customer":
                    max_customer += 1
                    max_address += 1
                    max_order += 1
                    conn.execute(
                        "INSERT INTO customers (id, email, full_name, password_hash, status, external_id, balance, "
                        "loyalty_points, is_vip, preferences, signed_up_at) VALUES "
                        "(%s, %s, %s, 'x', 'active', %s, 0, 0, false, '{}', now())",
                        [
                            max_customer,
                            f"live{max_customer}@example.org",
                            f"Live Customer {max_customer}",
                            uuid.uuid4(),
                        ],
                    )
                    conn.execute(
                        "INSERT INTO addresses (id, customer_id, kind, line1, city, country, is_default) "
                        "VALUES (%s, %s, 'home', '1 Live Street', 'Zürich', 'CH', true)",
                        [max_address, max_customer],
                    )
                    conn.execute(
                        "INSERT INTO orders (id, customer_id, status, placed_at, total, currency) "
                        "VALUES (%s, %s, 'placed', now(), 0, 'CHF')",
                        [max_order, max_customer],
                    )
                    for line in range(1, rng.randint(1, 4) + 1):
                        conn.execute(
                            "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
                            "VALUES (%s, %s, %s, %s, 9.90)",
                            [max_order, line, rng.choice(products), rng.randint(1, 5)],
                        )
                    changes += 6
                elif action == "rename":
                    conn.execute(
                        "UPDATE customers SET full_name = full_name || ' ✓' WHERE id = %s", [customer]
                    )
                    changes += 1
                elif action == "move_address":
                    conn.execute(
                        "UPDATE addresses SET customer_id = %s WHERE id = (SELECT min(id) FROM addresses "
                        "WHERE customer_id = %s)",
                        [rng.randint(1, max_customer), customer],
                    )
                    changes += 1
                elif action == "delete_address":
                    conn.execute(
                        "DELETE FROM addresses WHERE id = (SELECT max(id) FROM addresses WHERE customer_id = %s)",
                        [customer],
                    )
                    changes += 1
                elif action == "items":
                    conn.execute(
                        "UPDATE order_items SET quantity = quantity + 1 WHERE order_id IN "
                        "(SELECT id FROM orders WHERE customer_id = %s)",
                        [customer],
                    )
                    conn.execute(
                        "DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE customer_id = %s) "
                        "AND line_no = 1",
                        [rng.randint(1, max_customer)],
                    )
                    changes += 3
                else:
                    conn.execute(
                        "INSERT INTO customer_profiles (customer_id, bio, marketing_opt_in, updated_at) "
                        "VALUES (%s, 'hello', true, now()) ON CONFLICT (customer_id) DO UPDATE SET bio = "
                        "customer_profiles.bio || '!', updated_at = now()",
                        [customer],
                    )
                    changes += 1
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
