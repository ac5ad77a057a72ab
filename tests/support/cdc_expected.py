"""The CDC workload tests' expectation: every customer and product document the demo plan
(plans/demo.yaml) makes of the source's rows, computed here from SQL, independently of migrator's
mapping code (the same values with the same BSON types: Int64 for bigint, Decimal128 for numeric,
dates truncated to milliseconds, UUID subtype 4; arrays in the plan's order), and the target
compared with it: no document or array element lost, duplicated or different."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo.database import Database

from tests.support.demo import customer_documents
from tests.support.docs import typed

INT32 = range(-(2**31), 2**31)

# PostgreSQL type OIDs whose BSON form differs from what psycopg returns.
INT8, NUMERIC, DATE, TIMESTAMP, TIMESTAMPTZ, BYTEA = 20, 1700, 1082, 1114, 1184, 17


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _json(value: Any) -> Any:
    """A parsed JSON value as BSON holds it: integers outside int32 become int64."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value not in INT32:
        return Int64(value)
    return value


def _bson(value: Any, oid: int) -> Any:
    """A column value as docs/plan.md's conversion table says BSON holds it."""
    if value is None:
        return None
    if oid == INT8:
        return Int64(value)
    if oid == NUMERIC:
        return Decimal128(value)
    if oid == TIMESTAMPTZ:
        return _ms(value.astimezone(UTC))
    if oid == TIMESTAMP:
        return _ms(value.replace(tzinfo=UTC))
    if oid == DATE:
        assert isinstance(value, date)
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if oid == BYTEA:
        return bytes(value)
    return _json(value)  # text, char(n) (padded), enums (labels), bool, int, float8, arrays, json(b), uuid


def _rows(conn: psycopg.Connection[Any], query: str) -> list[dict[str, Any]]:
    cur = conn.execute(query)
    assert cur.description is not None
    columns = [(c.name, c.type_code) for c in cur.description]
    return [{name: _bson(v, oid) for (name, oid), v in zip(columns, row, strict=True)} for row in cur]


def _without(row: dict[str, Any], *hidden: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in hidden}


def expected_documents(pg_url: str) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """(customers, products) by _id, per the plan copied from plans/demo.yaml: customers without
    password_hash, with addresses ordered by id, profile or null, orders ordered by id each with its
    items ordered by line_no, the `on` columns left out of the sub-documents; products with the
    plan's renamed fields. Column order is the table's (the snapshot's field order)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            customers = _rows(conn, "SELECT * FROM customers ORDER BY id")
            addresses = _rows(conn, "SELECT * FROM addresses ORDER BY id")
            profiles = _rows(conn, "SELECT * FROM customer_profiles")
            orders = _rows(conn, "SELECT * FROM orders ORDER BY id")
            # real is widened to double: read it widened in the server, not as its shortest decimal.
            items = _rows(
                conn,
                "SELECT order_id, line_no, product_id, quantity, unit_price, discount::float8 AS discount"
                " FROM order_items ORDER BY order_id, line_no",
            )
            products = _rows(
                conn,
                "SELECT id AS _id, sku, name AS title, price, weight_kg AS weight, dimensions_mm, tags,"
                " attributes, active, created_at FROM products",
            )
    docs = customer_documents(customers, addresses, profiles, orders, items, _without)
    return docs, {p["_id"]: p for p in products}


# -- comparison ------------------------------------------------------------------------------------


def _unordered(form: Any) -> Any:
    """A typed() form with every document's keys sorted: values and types, not key order."""
    kind, value = form
    if kind == "object":
        return (kind, sorted((k, _unordered(v)) for k, v in value))
    if kind == "array":
        return (kind, [_unordered(v) for v in value])
    return form


def _differences(want: Any, got: Any, path: str = "") -> list[str]:
    """Where two typed() forms differ, as readable paths."""
    if want[0] != got[0]:
        return [f"{path or '.'}: want {want[0]} {want[1]!r:.120}, got {got[0]} {got[1]!r:.120}"]
    if want[0] == "object":
        w, g = dict(want[1]), dict(got[1])
        out = [f"{path}.{k}: missing" for k in w if k not in g]
        out += [f"{path}.{k}: unexpected {g[k]!r:.120}" for k in g if k not in w]
        for k in w:
            if k in g:
                out += _differences(w[k], g[k], f"{path}.{k}")
        if not out and [k for k, _ in want[1]] != [k for k, _ in got[1]]:
            out.append(f"{path or '.'}: key order {[k for k, _ in got[1]]}, want {[k for k, _ in want[1]]}")
        return out
    if want[0] == "array":
        if len(want[1]) != len(got[1]):
            ids = [dict(e[1]).get("id", dict(e[1]).get("line_no")) for e in want[1] if e[0] == "object"]
            got_ids = [dict(e[1]).get("id", dict(e[1]).get("line_no")) for e in got[1] if e[0] == "object"]
            return [f"{path}: {len(got[1])} elements, want {len(want[1])} (keys {got_ids}, want {ids})"]
        out = []
        for i, (w, g) in enumerate(zip(want[1], got[1], strict=True)):
            out += _differences(w, g, f"{path}[{i}]")
        return out
    return [] if want == got else [f"{path}: want {want[1]!r:.120}, got {got[1]!r:.120}"]


def _hashable(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def assert_target_equals_source(pg_url: str, target: Database[dict[str, Any]]) -> dict[str, int]:
    """Every customer and product document equals the one computed from the source, field by field
    with BSON types; returns the counts compared."""
    want_customers, want_products = expected_documents(pg_url)
    problems: list[str] = []
    counts: Counter[str] = Counter()
    for collection, want in (("customers", want_customers), ("products", want_products)):
        got: dict[Any, dict[str, Any]] = {}
        duplicates = []
        for doc in target[collection].find():
            key = _hashable(doc["_id"])
            if key in got:
                duplicates.append(key)
            got[key] = doc
        assert not duplicates, f"{collection}: duplicate _id {duplicates[:10]}"
        missing = sorted(set(want) - set(got), key=repr)
        extra = sorted(set(got) - set(want), key=repr)
        if missing or extra:
            problems.append(
                f"{collection}: {len(missing)} missing (e.g. {missing[:10]}), {len(extra)} unexpected "
                f"(e.g. {extra[:10]})"
            )
        wrong_values, wrong_order = [], []
        for key in sorted(set(want) & set(got), key=repr):
            w, g = typed(want[key]), typed(got[key])
            if _unordered(w) != _unordered(g):
                wrong_values.append((key, _differences(w, g)))
            elif w != g:
                wrong_order.append((key, _differences(w, g)))
        for key, diffs in wrong_values[:8]:
            problems.append(f"{collection} {key!r}: " + "; ".join(diffs[:6]))
        if wrong_values:
            problems.append(f"{collection}: {len(wrong_values)} of {len(want)} documents differ in values")
        for key, diffs in wrong_order[:3]:
            problems.append(f"{collection} {key!r} (field order only): " + "; ".join(diffs[:3]))
        if wrong_order:
            problems.append(f"{collection}: {len(wrong_order)} documents differ in field order only")
        counts[collection] = len(got)
    assert not problems, "target differs from source:\n" + "\n".join(problems)

    # No element lost or duplicated: unique element keys per array and across documents, and the
    # element counts equal the source's row counts.
    seen_addresses: Counter[Any] = Counter()
    seen_orders: Counter[Any] = Counter()
    for doc in target.customers.find(
        {}, {"addresses.id": 1, "orders.id": 1, "orders.items.line_no": 1, "profile": 1}
    ):
        seen_addresses.update(a["id"] for a in doc["addresses"])
        seen_orders.update(o["id"] for o in doc["orders"])
        for order in doc["orders"]:
            lines = [i["line_no"] for i in order["items"]]
            assert len(lines) == len(set(lines)), f"order {order['id']}: duplicate items {lines}"
            counts["order_items"] += len(lines)
        counts["customer_profiles"] += doc["profile"] is not None
    assert all(n == 1 for n in seen_addresses.values()), "an address in two places"
    assert all(n == 1 for n in seen_orders.values()), "an order in two places"
    counts["addresses"], counts["orders"] = len(seen_addresses), len(seen_orders)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("customers", "products", "addresses", "customer_profiles", "orders", "order_items"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None and counts[table] == row[0], (
                f"{table}: {counts[table]} in the target, {row[0]} rows"
            )
    return dict(counts)
