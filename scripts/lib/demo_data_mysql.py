"""The demo e-commerce dataset of demo_data.py in a MySQL/MariaDB database: the same generated rows,
the DDL and inserts in MySQL's dialect (InnoDB tables, primary keys, the same foreign keys).

    python scripts/lib/demo_data_mysql.py --url mysql://root@127.0.0.1:PORT/demo [--customers N]

Standard library, PyMySQL and demo_data.py's generator only. Where PostgreSQL has a type MySQL has
not, the nearest MySQL type stands in: ENUM for the customer_status type, SET for tags (text[]),
JSON for dimensions_mm (integer[]) and jsonb/json, CHAR(36) for uuid, BLOB for bytea, TIMESTAMP(6)
for timestamptz, DATETIME(6) for timestamp without time zone, TINYINT(1) for boolean.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import demo_data
import pymysql
from demo_data import (
    COLUMNS,
    DEFAULT_CUSTOMERS,
    DEFAULT_PRODUCTS,
    DEFAULT_SEED,
    LOAD_ORDER,
    TABLES,
    TAGS,
    _generate,
)
from psycopg.types.json import Json, Jsonb

# SET members in the order sorted() gives, which is the order demo_data.py writes tags in: a SET
# reads back in definition order, so each product's tags arrive as the same sorted list.
_TAG_SET = ", ".join(f"'{t}'" for t in sorted(TAGS))

SCHEMA_DDL = (
    f"""
CREATE TABLE products (
    id            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sku           VARCHAR(32) NOT NULL UNIQUE,
    name          VARCHAR(200) NOT NULL,
    price         DECIMAL(12,2) NOT NULL,
    weight_kg     DOUBLE,
    dimensions_mm JSON,
    tags          SET({_TAG_SET}) NOT NULL DEFAULT '',
    attributes    JSON NOT NULL,
    active        TINYINT(1) NOT NULL DEFAULT 1,
    created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB""",
    """
CREATE TABLE customers (
    id             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email          VARCHAR(255) NOT NULL UNIQUE,
    full_name      TEXT NOT NULL,
    password_hash  VARCHAR(255) NOT NULL,
    status         ENUM('active', 'suspended', 'closed') NOT NULL DEFAULT 'active',
    external_id    CHAR(36) NOT NULL UNIQUE,
    birth_date     DATE,
    balance        DECIMAL(14,4) NOT NULL DEFAULT 0,
    loyalty_points INT NOT NULL DEFAULT 0,
    is_vip         TINYINT(1) NOT NULL DEFAULT 0,
    avatar         BLOB,
    preferences    JSON NOT NULL,
    signed_up_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    last_login     DATETIME(6)
) ENGINE=InnoDB""",
    """
CREATE TABLE addresses (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    kind        VARCHAR(16) NOT NULL CHECK (kind IN ('home', 'work', 'billing')),
    line1       VARCHAR(255) NOT NULL,
    line2       VARCHAR(255),
    city        VARCHAR(100) NOT NULL,
    postal_code VARCHAR(16),
    country     CHAR(2) NOT NULL,
    is_default  TINYINT(1) NOT NULL DEFAULT 0,
    UNIQUE KEY addresses_customer_id_idx (customer_id, id)
) ENGINE=InnoDB""",
    """
CREATE TABLE customer_profiles (
    customer_id      BIGINT NOT NULL PRIMARY KEY,
    bio              TEXT,
    website          VARCHAR(255),
    social_links     JSON,
    marketing_opt_in TINYINT(1) NOT NULL DEFAULT 0,
    updated_at       TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB""",
    """
CREATE TABLE orders (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    status      VARCHAR(16) NOT NULL,
    placed_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    total       DECIMAL(12,2) NOT NULL,
    currency    CHAR(3) NOT NULL,
    notes       TEXT,
    shipping    JSON,
    UNIQUE KEY orders_customer_id_idx (customer_id, id)
) ENGINE=InnoDB""",
    """
CREATE TABLE order_items (
    order_id   BIGINT NOT NULL,
    line_no    INT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity   SMALLINT NOT NULL CHECK (quantity > 0),
    unit_price DECIMAL(12,2) NOT NULL,
    discount   FLOAT,
    PRIMARY KEY (order_id, line_no),
    KEY order_items_product_id_idx (product_id)
) ENGINE=InnoDB""",
)

# As in demo_data.py, after the load, but without ON DELETE CASCADE: InnoDB runs a cascade inside
# the engine, and the binlog carries only the statement's own rows, never the cascaded ones, so
# preflight refuses a mapped child of a cascading key (docs/architecture.md, "MySQL and MariaDB
# sources"). The demo's writers delete no customer and no order.
POST_LOAD_DDL = (
    "ALTER TABLE addresses ADD CONSTRAINT addresses_customer_id_fkey "
    "FOREIGN KEY (customer_id) REFERENCES customers (id)",
    "ALTER TABLE customer_profiles ADD CONSTRAINT customer_profiles_customer_id_fkey "
    "FOREIGN KEY (customer_id) REFERENCES customers (id)",
    "ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id)",
    "ALTER TABLE order_items ADD CONSTRAINT order_items_order_id_fkey "
    "FOREIGN KEY (order_id) REFERENCES orders (id)",
    "ALTER TABLE order_items ADD CONSTRAINT order_items_product_id_fkey "
    "FOREIGN KEY (product_id) REFERENCES products (id)",
)

BATCH_ROWS = 1000


def connect(url: str, **options: Any) -> pymysql.connections.Connection[Any]:
    """A utf8mb4 connection from a mysql:// (or mariadb://) URL, its session in UTC so that a
    TIMESTAMP stores the instant an aware UTC datetime names."""
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/") or None,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
        **options,
    )


def _value(value: Any) -> Any:
    """A generated value as MySQL takes it: JSON as its text, uuid as text, arrays as JSON (the SET
    column is handled by the caller), aware datetimes as their naive UTC wall time."""
    if isinstance(value, Json | Jsonb):
        return json.dumps(value.obj, ensure_ascii=False)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def mysql_row(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    out = []
    for column, value in zip(COLUMNS[table], row, strict=True):
        if table == "products" and column == "tags":
            out.append(",".join(value))
        else:
            out.append(_value(value))
    return tuple(out)


def _insert(cur: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    columns = ", ".join(f"`{c}`" for c in COLUMNS[table])
    marks = ", ".join(["%s"] * len(COLUMNS[table]))
    statement = f"INSERT INTO `{table}` ({columns}) VALUES ({marks})"  # noqa: S608 - names from COLUMNS
    for start in range(0, len(rows), BATCH_ROWS):
        cur.executemany(statement, [mysql_row(table, r) for r in rows[start : start + BATCH_ROWS]])


def load_demo(
    url: str,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    products: int = DEFAULT_PRODUCTS,
) -> dict[str, int]:
    """(Re)create the demo tables in the database of ``url`` and load demo_data.py's rows for the
    same ``seed`` and sizes; return row counts. Existing demo tables are dropped first."""
    if customers < 0 or products < 1:
        raise ValueError("customers must be >= 0 and products >= 1")
    data = _generate(random.Random(seed), customers, products)
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        cur.execute("SET FOREIGN_KEY_CHECKS = 1")
        for statement in SCHEMA_DDL:
            cur.execute(statement)
        for table in LOAD_ORDER:
            _insert(cur, table, data[table])
        conn.commit()
        for statement in POST_LOAD_DDL:
            cur.execute(statement)
        for table in LOAD_ORDER:
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
    return {table: len(data[table]) for table in LOAD_ORDER}


def main(argv: Sequence[str] | None = None) -> int:
    return demo_data.main(argv, load_demo, (pymysql.Error,), "MySQL/MariaDB")


if __name__ == "__main__":
    sys.exit(main())
