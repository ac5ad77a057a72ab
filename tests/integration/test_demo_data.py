"""The demo dataset: loads, is consistent, is reproducible, and covers what the migration must handle."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.demo import demo_data

CUSTOMERS = 300
SEED = 7

PRIMARY_KEYS = {
    "products": "id",
    "customers": "id",
    "addresses": "id",
    "customer_profiles": "customer_id",
    "orders": "id",
    "order_items": "order_id, line_no",
}


@pytest.fixture
def second_pg_url(pg_url: str) -> Iterator[str]:
    """Another fresh database on the same server as ``pg_url``, dropped afterwards."""
    name = f"demo_twin_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(pg_url)
    params["dbname"] = name
    try:
        yield make_conninfo("", **params)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def demo(pg_url: str) -> tuple[str, dict[str, int]]:
    return pg_url, demo_data.load_demo(pg_url, customers=CUSTOMERS, seed=SEED)


def _scalar(url: str, query: str | sql.Composed, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _checksums(url: str) -> dict[str, str]:
    out = {}
    with psycopg.connect(url) as conn:
        # Row text of timestamptz depends on the session time zone: pin it so two sessions agree.
        conn.execute("SET TimeZone = 'UTC'")
        for table, pk in PRIMARY_KEYS.items():
            query = sql.SQL("SELECT md5(string_agg(t::text, E'\\n' ORDER BY {pk})) FROM {table} t").format(
                pk=sql.SQL(pk), table=sql.Identifier("public", table)
            )
            row = conn.execute(query).fetchone()
            assert row is not None
            out[table] = row[0]
    return out


def test_counts_match_returned_dict(demo: tuple[str, dict[str, int]]) -> None:
    url, counts = demo
    assert set(counts) == set(PRIMARY_KEYS)
    for table, expected in counts.items():
        actual = _scalar(url, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", table)))
        assert actual == expected, table
    assert counts["customers"] == CUSTOMERS
    assert counts["products"] == demo_data.DEFAULT_PRODUCTS
    # Sizes follow the documented shape: about 1.5 addresses, 3 orders and 9 items per customer.
    assert CUSTOMERS <= counts["addresses"] <= 2 * CUSTOMERS
    assert 2 * CUSTOMERS <= counts["orders"] <= 4 * CUSTOMERS
    assert 2 * counts["orders"] <= counts["order_items"] <= 4 * counts["orders"]
    assert 0.6 * CUSTOMERS <= counts["customer_profiles"] <= 0.8 * CUSTOMERS


def test_keys_and_referential_integrity(demo: tuple[str, dict[str, int]]) -> None:
    url, _ = demo
    with psycopg.connect(url) as conn:
        pks: dict[str, str] = dict(
            conn.execute(
                """
                SELECT c.conrelid::regclass::text, string_agg(a.attname, ', ' ORDER BY k.ord)
                FROM pg_constraint c
                CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace
                GROUP BY c.conrelid
                """
            ).fetchall()
        )
        assert pks == PRIMARY_KEYS
        fks = {
            row[0]
            for row in conn.execute(
                """
                SELECT format('%s.%s -> %s', conrelid::regclass, a.attname, confrelid::regclass)
                FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                WHERE contype = 'f' AND connamespace = 'public'::regnamespace
                """
            )
        }
        assert fks == {
            "addresses.customer_id -> customers",
            "customer_profiles.customer_id -> customers",
            "orders.customer_id -> customers",
            "order_items.order_id -> orders",
            "order_items.product_id -> products",
        }
        # The constraints are validated when added, but check the data directly as well: a NOT VALID
        # constraint would pass the catalogue check above.
        orphans = conn.execute(
            """
            SELECT (SELECT count(*) FROM addresses x WHERE NOT EXISTS
                        (SELECT 1 FROM customers c WHERE c.id = x.customer_id))
                 + (SELECT count(*) FROM customer_profiles x WHERE NOT EXISTS
                        (SELECT 1 FROM customers c WHERE c.id = x.customer_id))
                 + (SELECT count(*) FROM orders x WHERE NOT EXISTS
                        (SELECT 1 FROM customers c WHERE c.id = x.customer_id))
                 + (SELECT count(*) FROM order_items x WHERE NOT EXISTS
                        (SELECT 1 FROM orders o WHERE o.id = x.order_id))
                 + (SELECT count(*) FROM order_items x WHERE NOT EXISTS
                        (SELECT 1 FROM products p WHERE p.id = x.product_id))
            """
        ).fetchone()
        assert orphans == (0,)
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE NOT convalidated").fetchone() == (0,)
        # Every order has items: an empty `items` array would be legal but is not what the demo shows.
        assert conn.execute(
            "SELECT count(*) FROM orders o"
            " WHERE NOT EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)"
        ).fetchone() == (0,)


def test_same_seed_same_data(pg_url: str, second_pg_url: str) -> None:
    first = demo_data.load_demo(pg_url, customers=CUSTOMERS, seed=SEED)
    second = demo_data.load_demo(second_pg_url, customers=CUSTOMERS, seed=SEED)
    assert first == second
    assert _checksums(pg_url) == _checksums(second_pg_url)
    # And the seed matters: another seed gives other data (guards against a checksum of nothing).
    demo_data.load_demo(second_pg_url, customers=CUSTOMERS, seed=SEED + 1)
    other = _checksums(second_pg_url)
    assert all(other[t] != digest for t, digest in _checksums(pg_url).items())


def test_reload_replaces_existing_tables(demo: tuple[str, dict[str, int]]) -> None:
    url, _ = demo
    counts = demo_data.load_demo(url, customers=50, seed=SEED)
    assert _scalar(url, "SELECT count(*) FROM customers") == 50 == counts["customers"]
    # Identity sequences continue after the loaded ids, so demo traffic can insert without an id.
    new_id = _scalar(
        url,
        "INSERT INTO customers (email, full_name, password_hash, external_id)"
        " VALUES ('new@example.com', 'New', 'x', gen_random_uuid()) RETURNING id",
    )
    assert new_id == 51


def test_every_nullable_column_has_nulls_and_values(demo: tuple[str, dict[str, int]]) -> None:
    url, _ = demo
    with psycopg.connect(url) as conn:
        nullable = conn.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND is_nullable = 'YES' AND table_name = ANY(%s)
            ORDER BY table_name, ordinal_position
            """,
            (list(PRIMARY_KEYS),),
        ).fetchall()
        assert len(nullable) >= 12, nullable
        missing = []
        for table, column in nullable:
            nulls, values = conn.execute(
                sql.SQL("SELECT count(*) FILTER (WHERE {c} IS NULL), count({c}) FROM {t}").format(
                    c=sql.Identifier(column), t=sql.Identifier("public", table)
                )
            ).fetchone() or (0, 0)
            if not (nulls and values):
                missing.append(f"{table}.{column}: {nulls} NULLs, {values} values")
        assert not missing


def test_every_supported_type_appears(demo: tuple[str, dict[str, int]]) -> None:
    url, _ = demo
    with psycopg.connect(url) as conn:
        types = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT udt_name FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = ANY(%s)",
                (list(PRIMARY_KEYS),),
            )
        }
        enum = conn.execute(
            "SELECT enum_range(NULL::customer_status)::text[], pg_typeof(status)::text FROM customers LIMIT 1"
        ).fetchone()
    expected = {
        "int2", "int4", "int8", "numeric", "float4", "float8", "text", "bpchar", "bool",
        "timestamptz", "timestamp", "date", "uuid", "bytea", "json", "jsonb", "_text", "_int4",
        "customer_status",
    }  # fmt: skip
    assert expected <= types, expected - types
    assert enum == (["active", "suspended", "closed"], "customer_status")


def test_empty_embeds_and_precision_cases_exist(demo: tuple[str, dict[str, int]]) -> None:
    url, _ = demo
    # many: true embeds become [] and many: false embeds become null for these customers.
    for child in ("addresses", "customer_profiles", "orders"):
        childless = _scalar(
            url,
            sql.SQL(
                "SELECT count(*) FROM customers c"
                " WHERE NOT EXISTS (SELECT 1 FROM {} x WHERE x.customer_id = c.id)"
            ).format(sql.Identifier("public", child)),
        )
        assert childless > 0, f"every customer has {child}"
    # Both sub-millisecond timestamps (BSON loses them: the preflight warns) and millisecond ones.
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE extract(microseconds FROM placed_at)::bigint % 1000 <> 0),"
            " count(*) FROM orders"
        ).fetchone()
    assert row is not None
    with_micros, total = row
    assert 0 < with_micros < total
    # Empty text and empty arrays are values, distinct from NULL, and must stay so.
    assert _scalar(url, "SELECT count(*) FROM products WHERE tags = '{}'") > 0
    assert _scalar(url, "SELECT count(*) FROM customer_profiles WHERE bio = ''") > 0


def test_unicode_survives(demo: tuple[str, dict[str, int]]) -> None:
    url, _ = demo
    with psycopg.connect(url) as conn:
        cities = {row[0] for row in conn.execute("SELECT DISTINCT city FROM addresses")}
        names = [row[0] for row in conn.execute("SELECT full_name FROM customers")]
        products = [row[0] for row in conn.execute("SELECT name FROM products")]
        bios = {row[0] for row in conn.execute("SELECT bio FROM customer_profiles WHERE bio IS NOT NULL")}
        encoding = conn.execute("SHOW server_encoding").fetchone()
    assert encoding == ("UTF8",)
    known_cities = {c[0] for c in demo_data.CITIES}
    # Exact equality with the generator's strings shows the bytes round-tripped, not just "some text".
    assert cities <= known_cities
    assert any(not c.isascii() for c in cities)
    assert bios <= set(demo_data.BIOS)
    assert any(ch > "\u3000" for name in names for ch in name), "no CJK customer name"
    assert any("é" in name or "ö" in name or "ø" in name for name in names), "no accented customer name"
    emoji = [p for p in products if any(ord(ch) >= 0x1F300 for ch in p)]
    assert emoji, "no product name with an emoji"
    # An astral-plane character is one character in PostgreSQL, not a surrogate pair.
    assert _scalar(url, "SELECT char_length(name) FROM products WHERE name = %s", (emoji[0],)) == len(
        emoji[0]
    )
