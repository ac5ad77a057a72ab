"""scripts/lib/demo_data_mysql.py: the demo dataset in MariaDB holds the rows demo_data.py generates,
every column read back equal to the generated value (as MySQL stores it), for the source of
`scripts/demo --source mariadb`."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import demo_data_mysql  # scripts/lib, on sys.path through tests/support/servers.py (a conftest plugin)
import pytest
from psycopg.types.json import Json, Jsonb

from tests.support.demo import demo_data

CUSTOMERS = 60
SEED = 7
KEYS = {"order_items": "order_id, line_no", "customer_profiles": "customer_id"}


def _expected(table: str, column: str, value: Any) -> Any:
    """A generated value as MySQL gives it back: JSON parsed, uuid as text, booleans as 0/1,
    timestamps as naive UTC, tags as the SET's members."""
    if value is None:
        return None
    if isinstance(value, Json | Jsonb):
        return value.obj
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if table == "products" and column == "tags":
        return ",".join(value)
    return value


def _read(table: str, column: str, value: Any, json_columns: set[str]) -> Any:
    if value is not None and column in json_columns:
        return json.loads(value)
    if column == "discount" and value is not None:
        return round(value, 6)  # FLOAT holds the value to 4 bytes
    return value


@pytest.mark.parametrize("table", demo_data.LOAD_ORDER)
def test_mariadb_holds_the_generated_rows(mysql_url: str, table: str) -> None:
    counts = demo_data_mysql.load_demo(mysql_url, customers=CUSTOMERS, seed=SEED)
    generated = demo_data._generate(random.Random(SEED), CUSTOMERS, demo_data.DEFAULT_PRODUCTS)[table]
    assert counts[table] == len(generated) > 0
    columns = demo_data.COLUMNS[table]
    json_columns = {"attributes", "preferences", "social_links", "shipping", "dimensions_mm"}
    with demo_data_mysql.connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {KEYS.get(table, 'id')}")
        rows = [tuple(_read(table, c, v, json_columns) for c, v in zip(columns, r, strict=True)) for r in cur]
        cur.execute(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [table],
        )
        assert cur.fetchone() == ("InnoDB",)
    expected = [
        tuple(
            round(v, 6) if c == "discount" and v is not None else _expected(table, c, v)
            for c, v in zip(columns, row, strict=True)
        )
        for row in generated
    ]
    assert rows == expected
