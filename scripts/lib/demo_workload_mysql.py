"""demo_workload.py's live workload on the demo schema in MySQL/MariaDB (PyMySQL, MySQL's dialect):

    python scripts/lib/demo_workload_mysql.py --url mysql://... [--seconds 8] [--rate 200] [--seed 7]

The same mix of transactions (demo_workload.run_on); here only the statements MySQL spells
otherwise: 0/1 for booleans, NOW(6), CONCAT, ON DUPLICATE KEY UPDATE.
"""

from __future__ import annotations

from collections import Counter

from demo_data_mysql import connect
from demo_workload import WorkloadSql, main, run_on

MYSQL = WorkloadSql(
    new_customer="INSERT INTO customers (id, email, full_name, password_hash, status, external_id, balance, "
    "loyalty_points, is_vip, preferences, signed_up_at) VALUES "
    "(%s, %s, %s, 'x', 'active', %s, 0, 0, 0, '{}', NOW(6))",
    new_address="INSERT INTO addresses (id, customer_id, kind, line1, city, country, is_default) "
    "VALUES (%s, %s, 'home', '1 Live Street', 'Zürich', 'CH', 1)",
    new_order="INSERT INTO orders (id, customer_id, status, placed_at, total, currency) "
    "VALUES (%s, %s, 'placed', NOW(6), 0, 'CHF')",
    rename="UPDATE customers SET full_name = CONCAT(full_name, ' ✓') WHERE id = %s",
    profile="INSERT INTO customer_profiles (customer_id, bio, marketing_opt_in, updated_at) "
    "VALUES (%s, 'hello', 1, NOW(6)) ON DUPLICATE KEY UPDATE "
    "bio = CONCAT(COALESCE(bio, ''), '!'), updated_at = NOW(6)",
)


def run(url: str, seconds: float, rate: int, seed: int) -> Counter[str]:
    with connect(url, autocommit=False) as conn:
        return run_on(conn, MYSQL, seconds, rate, seed)


if __name__ == "__main__":
    main(run)
