"""The shop schema many integration tests start from: customers with their orders and the orders'
lines embedded (three levels), and stock keyed by a compound key; its plan's collections, and a
plan with a verify phase. A test module starts its `mig` from it by overriding `source_schema`:

    @pytest.fixture
    def source_schema() -> tuple[str, ...]:
        return (SCHEMA,)
"""

from __future__ import annotations

from pathlib import Path

from tests.support.docs import Migration

CUSTOMERS = 300

SCHEMA = f"""
CREATE TABLE customers (
    id bigint PRIMARY KEY, name text NOT NULL, balance numeric(12,2) NOT NULL,
    created timestamptz NOT NULL, tags text[] NOT NULL DEFAULT '{{}}');
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric(12,2) NOT NULL);
CREATE INDEX ON orders (customer_id);
CREATE TABLE lines (
    order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE, line_no int NOT NULL, qty int NOT NULL,
    PRIMARY KEY (order_id, line_no));
CREATE TABLE stock (warehouse int, sku text, qty int NOT NULL, PRIMARY KEY (warehouse, sku));
INSERT INTO customers
    SELECT i, 'customer ' || i, (i * 7 % 1000) + 0.25,
           '2024-01-01 00:00:00.123+00'::timestamptz + i * interval '1 hour', ARRAY['t' || (i % 3)]
    FROM generate_series(1, {CUSTOMERS}) AS i;
INSERT INTO orders SELECT i * 10 + j, i, i + j + 0.5 FROM generate_series(1, {CUSTOMERS}) i, generate_series(1, 3) j;
INSERT INTO lines SELECT o.id, l, l * 2 FROM orders o, generate_series(1, 2) l;
INSERT INTO stock SELECT w, 'sku-' || s, w * s FROM generate_series(1, 3) w, generate_series(1, 20) s;
"""

COLLECTIONS = """
- name: customers
  from: customers
  key: id
  embed:
    - as: orders
      from: orders
      on: {customer_id: id}
      key: id
      embed:
        - {as: lines, from: lines, on: {order_id: id}, key: [order_id, line_no], order_by: line_no}
- name: stock
  from: stock
  key: [warehouse, sku]
"""


def plan(mig: Migration, name: str, verify: str = "{chunk_rows: 100}") -> Path:
    return mig.plan(COLLECTIONS, name=name, phases=f"verify: {verify}\ncdc: {{heartbeat_interval: 1s}}")
