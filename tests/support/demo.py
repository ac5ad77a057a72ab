"""The demo schema (plans/demo.yaml, loaded by scripts/lib/demo_data.py) as a test's source: the
`demo_url` fixture gives a fresh database holding it, owned by a realistic migration role whose
URL carries PASSWORD, so that a test can check the password never reaches any output.

Registered for every test through `pytest_plugins` in tests/conftest.py; a module that wants
another number of customers overrides the `demo_customers` fixture.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.support.scripts_lib import load

ROOT = Path(__file__).resolve().parents[2]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
CUSTOMERS = 300
PASSWORD = "Cli-Pw-4kXr9-never-shown"
DEMO_TABLES = ("products", "customers", "addresses", "customer_profiles", "orders", "order_items")


demo_data = load("demo_data")


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, parts.fragment))


@pytest.fixture
def demo_customers() -> int:
    """How many customers `demo_url`'s database holds."""
    return CUSTOMERS


# As the plan's fix names them (adapters/postgres/inspect.py), written here independently.
ORIGIN_FUNCTIONS = (
    "pg_replication_origin_create(text), pg_replication_origin_drop(text), pg_replication_origin_oid(text), "
    "pg_replication_origin_session_setup(text), pg_replication_origin_session_reset()"
)


@pytest.fixture
def demo_url(pg_url: str, demo_customers: int) -> Iterator[str]:
    """The demo schema in pg_url, owned by a role that may replicate; its URL carries PASSWORD.

    The role is a realistic migration user rather than a superuser: REPLICATION, CREATE on the
    database (for the publication), ownership of the tables, and EXECUTE on the replication
    origin functions that reverse sync tags its writes with (the plan's cutover keeps reverse
    sync; `migrator plan` asks for exactly this GRANT).
    """
    demo_data.load_demo(pg_url, customers=demo_customers, seed=7)
    role = f"migr_{uuid.uuid4().hex[:10]}"
    dbname = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        conn.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO {role}')
        conn.execute(f"GRANT EXECUTE ON FUNCTION {ORIGIN_FUNCTIONS} TO {role}")
        for table in DEMO_TABLES:
            conn.execute(f"ALTER TABLE public.{table} OWNER TO {role}")
    try:
        yield with_user(pg_url, role, PASSWORD)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def customer_documents(
    customers: Iterable[dict[str, Any]],
    addresses: Iterable[dict[str, Any]],
    profiles: Iterable[dict[str, Any]],
    orders: Iterable[dict[str, Any]],
    items: Iterable[dict[str, Any]],
    element: Callable[..., dict[str, Any]],
) -> dict[Any, dict[str, Any]]:
    """Customer documents by _id, per plans/demo.yaml, from their rows (each in the order its array
    keeps): password_hash left out, then addresses, profile (or None) and orders, each order with
    its items. `element(row, *hidden)` is a row as a (sub-)document without the `hidden` columns
    (the `on` columns), its values as the caller's oracle converts them."""
    docs: dict[Any, dict[str, Any]] = {}
    for c in customers:
        doc = {"_id": c["id"], **element(c, "id", "password_hash")}
        doc.update(addresses=[], profile=None, orders=[])
        docs[c["id"]] = doc
    for a in addresses:
        docs[a["customer_id"]]["addresses"].append(element(a, "customer_id"))
    for p in profiles:
        docs[p["customer_id"]]["profile"] = element(p, "customer_id")
    by_order: dict[Any, dict[str, Any]] = {}
    for o in orders:
        order = {**element(o, "customer_id"), "items": []}
        by_order[o["id"]] = order
        docs[o["customer_id"]]["orders"].append(order)
    for i in items:
        by_order[i["order_id"]]["items"].append(element(i, "order_id"))
    return docs
