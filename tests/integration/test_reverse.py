"""Reverse sync against real servers: documents back to rows through the inverse mapping, the
target's change stream applied to the source, crash and resume, and no echo in either direction.

The schema is the demo's shape (customers with addresses, a `many: false` profile, and orders with
their items nested; a compound-key collection) with the types the conversion table treats
specially: numeric, uuid, timestamptz and timestamp, date, bytea, json and jsonb, enum, interval,
inet, time, real, and arrays (of text, 2-D numeric, dates).
"""

from __future__ import annotations

import datetime
import itertools
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from pymongo.write_concern import WriteConcern

from migrator.adapters.base import SourceInfo, WriteOp
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.adapters.mongodb.codec import CODEC
from migrator.adapters.postgres import PostgresSource
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.reverse_writer import ReverseWriter, stored_checkpoint
from migrator.adapters.postgres.snapshot import RangeReader
from migrator.adapters.rows import DocumentRows
from migrator.engine.events import Collector, ErrorRaised, ReverseBatchApplied, ReverseProgress
from migrator.engine.threads import BackgroundThread
from migrator.errors import SourceError
from migrator.mapping.assemble import Assembler
from migrator.mapping.inverse import DocumentInverse, InverseError, inverses
from migrator.mapping.spec import CollectionMapping, resolve, tables_of
from migrator.phases.reverse import ReverseResult, ReverseSync
from migrator.plan import load_plan
from migrator.plan.names import cdc_checkpoint_id, reverse_origin_name
from tests.support.docs import Migration, sorted_documents, typed
from tests.support.every_type import create_everything
from tests.support.runs import follow, run, wait_for

ROOT = Path(__file__).resolve().parents[2]
UTC = datetime.UTC

SCHEMA = """
CREATE TYPE customer_status AS ENUM ('active', 'suspended', 'closed');
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    email text NOT NULL UNIQUE,
    full_name text NOT NULL,
    password_hash text,
    status customer_status NOT NULL DEFAULT 'active',
    external_id uuid NOT NULL,
    birth_date date,
    balance numeric(14,4) NOT NULL,
    loyalty_points integer NOT NULL DEFAULT 0,
    is_vip boolean NOT NULL DEFAULT false,
    avatar bytea,
    preferences jsonb NOT NULL DEFAULT '{}',
    signed_up_at timestamptz NOT NULL,
    last_login timestamp,
    tags text[] NOT NULL DEFAULT '{}',
    grid numeric[],
    rating real,
    session_length interval,
    last_ip inet,
    wake_at time);
CREATE TABLE addresses (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
    kind text NOT NULL, line1 text NOT NULL, country char(2) NOT NULL, is_default boolean NOT NULL DEFAULT false);
CREATE TABLE customer_profiles (
    customer_id bigint PRIMARY KEY REFERENCES customers, bio text, social_links json,
    updated_at timestamptz NOT NULL);
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, status text NOT NULL,
    placed_at timestamptz NOT NULL, total numeric(12,2) NOT NULL, shipping jsonb, delivery_days date[]);
CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES orders, line_no integer NOT NULL, product_id bigint NOT NULL,
    quantity smallint NOT NULL, unit_price numeric(12,2) NOT NULL, discount real,
    PRIMARY KEY (order_id, line_no));
CREATE TABLE stock (warehouse integer, sku text, qty integer NOT NULL, batch uuid, PRIMARY KEY (warehouse, sku));

INSERT INTO customers VALUES
  (1, 'ann@example.com', 'Ann', 'hash1', 'active', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1990-05-17',
   1234.5600, 10, true, '\\xdeadbeef', '{"lang": "en", "n": [1, 2.5, {"x": null}]}',
   '2024-01-02 03:04:05.678+00', '2024-02-03 04:05:06.789', '{a,b,NULL}', '{{1.5,2},{3,NULL}}', 0.1,
   'P1Y2M3DT4H5M6S', '192.168.0.1/24', '07:30:00.25'),
  (2, 'bob@example.com', 'Bob', 'hash2', 'suspended', 'b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a22', NULL,
   -0.0001, 0, false, NULL, '{}', '2023-12-31 23:59:59.999+00', NULL, '{}', NULL, NULL, NULL, NULL, NULL),
  (3, 'cy@example.com', 'Cy', NULL, 'closed', 'c2eebc99-9c0b-4ef8-bb6d-6bb9bd380a33', '2000-02-29',
   0, 3, false, '\\x', '[1, "two"]', '2020-06-01 00:00:00+00', '2020-06-01 12:00:00', '{"with space","q\\"uote"}',
   '{}', -2.5, 'PT0S', '::1', '23:59:59');
INSERT INTO addresses VALUES
  (11, 1, 'home', '1 Main St', 'US', true), (12, 1, 'work', '2 Side St', 'GB', false),
  (21, 2, 'home', '3 Rue X', 'FR', true);
INSERT INTO customer_profiles VALUES
  (1, 'bio one', '{"twitter":  "@ann",   "links":[1,2]}', '2024-03-04 05:06:07.123+00'),
  (2, NULL, NULL, '2024-03-04 00:00:00+00');
INSERT INTO orders VALUES
  (101, 1, 'paid', '2024-04-05 06:07:08.9+00', 19.99, '{"carrier": "ups"}', '{2024-04-06,2024-04-07}'),
  (102, 1, 'open', '2024-04-06 00:00:00+00', 0.50, NULL, NULL),
  (201, 2, 'paid', '2024-05-01 10:00:00+00', 5.00, '{}', '{}');
INSERT INTO order_items VALUES
  (101, 1, 1001, 2, 9.99, 0.1), (101, 2, 1002, 1, 0.01, NULL), (102, 1, 1001, 1, 0.50, 0.25),
  (201, 1, 1003, 5, 1.00, NULL);
INSERT INTO stock VALUES
  (1, 'sku-1', 5, 'd3eebc99-9c0b-4ef8-bb6d-6bb9bd380a44'), (1, 'sku-2', 0, NULL),
  (2, 'sku-1', 7, 'e4eebc99-9c0b-4ef8-bb6d-6bb9bd380a55');
"""

COLLECTIONS = """
- name: customers
  from: public.customers
  key: id
  exclude: [password_hash]
  embed:
    - {as: addresses, from: public.addresses, on: {customer_id: id}, key: id}
    - {as: profile, from: public.customer_profiles, on: {customer_id: id}, many: false, key: customer_id}
    - as: orders
      from: public.orders
      on: {customer_id: id}
      key: id
      embed:
        - {as: items, from: public.order_items, on: {order_id: id}, key: [order_id, line_no], order_by: line_no}
- name: stock
  from: public.stock
  key: [warehouse, sku]
"""

TABLES = {
    "customers": "id",
    "addresses": "id",
    "customer_profiles": "customer_id",
    "orders": "id",
    "order_items": "order_id, line_no",
    "stock": "warehouse, sku",
}


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


# -- helpers -------------------------------------------------------------------------------------


def plan_file(mig: Migration, name: str) -> Path:
    return mig.plan(COLLECTIONS, name=name, phases="cdc: {heartbeat_interval: 1s}")


def mappings(mig: Migration, name: str) -> tuple[list[CollectionMapping], SourceInfo]:
    plan = load_plan(plan_file(mig, name), env=mig.env)
    tables = [t for c in plan.collections for t in tables_of(c)]
    with PostgresSource(mig.pg_url) as source:
        info = source.inspect(tables)
    resolution = resolve(plan.collections, info)
    assert resolution.ok, [f.message for f in resolution.findings]
    return resolution.collections, info


def source_documents(mig: Migration, mapping: CollectionMapping, info: SourceInfo) -> list[dict[str, Any]]:
    """Every document of `mapping` built from the source by the forward Assembler, as MongoDB
    holds it (BSON round trip: Decimal128, Int64, millisecond dates, UUIDs)."""
    key = mapping.document.key
    table = info.tables[mapping.table]
    key_types = [str(c.type_name) for k in key if (c := table.column(k)) is not None]
    reader = RangeReader(PgEndpoint(mig.pg_url))
    try:
        reader.begin()
        assembler = Assembler(mapping)
        streams = reader.stream(assembler.reads(), mapping.table, key, key_types, None, None)
        documents = [
            bson.decode(bson.encode(document, codec_options=CODEC), codec_options=CODEC)
            for _, document, _ in assembler.documents(streams)
        ]
        reader.end()
    finally:
        reader.close()
    return documents


def table_rows(mig: Migration) -> dict[str, list[Any]]:
    """Every table's rows as jsonb (exact values: numeric scale, microseconds, array shapes)."""
    return {
        table: [r[0] for r in mig.rows(f"SELECT to_jsonb(t) FROM {table} t ORDER BY {order}")]
        for table, order in TABLES.items()
    }


def canonical(value: Any) -> Any:
    """typed() with document keys sorted: compares values and BSON types, not field order."""
    if isinstance(value, dict):
        return ("object", sorted((k, canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", [canonical(v) for v in value])
    return typed(value)


def assert_same_documents(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    got, want = sorted_documents(got), sorted_documents(want)
    assert [d["_id"] for d in got] == [d["_id"] for d in want]
    for g, w in zip(got, want, strict=True):
        assert canonical(g) == canonical(w), f"_id={w['_id']!r}:\n got {g}\nwant {w}"


def writer_for(mig: Migration, name: str) -> ReverseWriter:
    writer = ReverseWriter(PgEndpoint(mig.pg_url), name, reverse_origin_name(name))
    writer.setup()
    return writer


def delete_all_rows(mig: Migration) -> None:
    mig.sql(*(f"DELETE FROM {t}" for t in ("order_items", "orders", "customer_profiles", "addresses")))
    mig.sql("DELETE FROM customers", "DELETE FROM stock")


def by_id(documents: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {bson.encode({"k": d["_id"]}): d for d in documents}


def doc(documents: list[dict[str, Any]], document_id: Any) -> dict[str, Any]:
    return by_id(documents)[bson.encode({"k": document_id})]


# -- 1. documents -> rows ------------------------------------------------------------------------


def test_documents_round_trip_to_the_rows_they_came_from(mig: Migration) -> None:
    name = "rev-roundtrip"
    collections, info = mappings(mig, name)
    before = table_rows(mig)
    documents = {c.name: source_documents(mig, c, info) for c in collections}
    assert [len(documents["customers"]), len(documents["stock"])] == [3, 3]
    first = doc(documents["customers"], Int64(1))
    assert isinstance(first["balance"], Decimal128) and isinstance(first["external_id"], uuid.UUID)
    assert first["profile"]["social_links"] == {"twitter": "@ann", "links": [1, 2]}
    assert [i["line_no"] for i in first["orders"][0]["items"]] == [1, 2]

    delete_all_rows(mig)
    inverse = inverses(collections)
    rows = [inverse[c.name].rows(d) for c in collections for d in documents[c.name]]
    writer = writer_for(mig, name)
    try:
        assert writer.apply(rows, None) == sum(len(v) for v in before.values())
        expected = dict(before)
        # The excluded column is not in the documents, so a re-inserted row has its default.
        expected["customers"] = [{**r, "password_hash": None} for r in before["customers"]]
        assert table_rows(mig) == expected
        # Applying the same states again changes nothing.
        assert writer.apply(rows, None) == 0
        assert table_rows(mig) == expected
    finally:
        writer.close()
    for c in collections:
        assert_same_documents(source_documents(mig, c, info), documents[c.name])


def test_every_type_of_the_conversion_table_comes_back(mig: Migration) -> None:
    """The snapshot tests' table of every supported type (all edge values): written back over the
    rows it came from, nothing changes; re-inserted, every value equals the source's, timestamps
    to the millisecond (BSON dates hold no more)."""
    create_everything(mig)
    name = "rev-types"
    plan = load_plan(mig.plan("- {name: everything, from: everything, key: id}", name=name), env=mig.env)
    with PostgresSource(mig.pg_url) as source:
        info = source.inspect(["public.everything"])
    resolution = resolve(plan.collections, info)
    assert resolution.ok, [f.message for f in resolution.findings]
    (mapping,) = resolution.collections
    documents = source_documents(mig, mapping, info)
    assert len(documents) == 10
    inverse = DocumentInverse(mapping)

    def rows() -> list[Any]:
        return [r[0] for r in mig.rows("SELECT to_jsonb(e) FROM everything e ORDER BY id")]

    before = rows()
    writer = writer_for(mig, name)
    try:
        assert writer.apply([inverse.rows(d) for d in documents], None) == 0
        assert rows() == before
        mig.sql(
            "CREATE TABLE expected AS SELECT * FROM everything",
            "UPDATE expected SET c_tstz = date_trunc('milliseconds', c_tstz), "
            "c_ts = date_trunc('milliseconds', c_ts), "
            "a_tstz = CASE WHEN a_tstz IS NOT NULL THEN ARRAY(SELECT date_trunc('milliseconds', t) "
            "FROM unnest(a_tstz) WITH ORDINALITY u(t, n) ORDER BY n) END, "
            # Decimal128 keeps 34 digits: trailing zeros beyond them do not come back.
            "c_numeric = CASE WHEN length(translate(c_numeric::text, '-.', '')) > 34 "
            "THEN trim_scale(c_numeric) ELSE c_numeric END",
            "DELETE FROM everything",
        )
        assert writer.apply([inverse.rows(d) for d in documents], None) == 10
    finally:
        writer.close()
    want = [r[0] for r in mig.rows("SELECT to_jsonb(e) FROM expected e ORDER BY id")]
    assert rows() == want
    assert_same_documents(source_documents(mig, mapping, info), documents)


def test_an_update_leaves_what_the_document_does_not_carry_alone(mig: Migration) -> None:
    name = "rev-update"
    mig.sql(
        "UPDATE customers SET signed_up_at = '2024-01-02 03:04:05.678901+00', "
        "last_login = '2024-02-03 04:05:06.789123' WHERE id = 1",
        # An excluded column that an INSERT must carry: PostgreSQL checks NOT NULL on the row an
        # upsert proposes before it finds the stored one, so stored rows are updated instead.
        "ALTER TABLE customers ALTER password_hash DROP DEFAULT",
        "UPDATE customers SET password_hash = 'hash' || id WHERE password_hash IS NULL",
        "ALTER TABLE customers ALTER password_hash SET NOT NULL",
    )
    collections, info = mappings(mig, name)
    inverse = inverses(collections)["customers"]
    documents = source_documents(mig, collections[0], info)
    ann = doc(documents, Int64(1))
    assert ann["signed_up_at"] == datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

    def column(expression: str) -> Any:
        return mig.rows(f"SELECT {expression} FROM customers c WHERE id = 1")[0][0]

    profile_text = mig.rows("SELECT social_links::text FROM customer_profiles WHERE customer_id = 1")[0][0]
    ann["full_name"] = "Ann B."
    del ann["rating"]  # a field the document lacks: its column stays as stored
    del ann["orders"]  # an array the document lacks: those rows stay as stored
    writer = writer_for(mig, name)
    try:
        assert writer.apply([inverse.rows(ann)], None) == 1
        assert column("full_name") == "Ann B."
        assert column("password_hash") == "hash1"  # excluded: never written
        assert column("rating") == pytest.approx(0.1)
        # Lossy forward conversions: the stored value is kept when the document's maps to it.
        assert column("signed_up_at::text") == "2024-01-02 03:04:05.678901+00"
        assert column("last_login::text") == "2024-02-03 04:05:06.789123"
        assert mig.rows("SELECT social_links::text FROM customer_profiles WHERE customer_id = 1")[0][0] == (
            profile_text
        )
        assert mig.rows("SELECT count(*) FROM orders WHERE customer_id = 1")[0][0] == 2
        # A new value is written.
        ann["signed_up_at"] += datetime.timedelta(milliseconds=1)
        ann["profile"]["social_links"] = {"twitter": "@ann2"}
        assert writer.apply([inverse.rows(ann)], None) == 2
        assert column("signed_up_at::text") == "2024-01-02 03:04:05.679+00"
        assert mig.rows("SELECT social_links::jsonb FROM customer_profiles WHERE customer_id = 1")[0][0] == {
            "twitter": "@ann2"
        }
        # A new document cannot become a row without the column: the error names it.
        newcomer = {**ann, "_id": Int64(999)}
        newcomer.pop("profile", None)
        with pytest.raises(SourceError, match="password_hash") as refused:
            writer.apply([inverse.rows(newcomer)], None)
        assert "_id 999" in refused.value.message and "default" in (refused.value.hint or "")
    finally:
        writer.close()


def test_embedded_changes_become_child_inserts_updates_and_deletes(mig: Migration) -> None:
    name = "rev-embedded"
    collections, info = mappings(mig, name)
    inverse = inverses(collections)
    customers = source_documents(mig, collections[0], info)
    ann, bob, cy = (doc(customers, Int64(i)) for i in (1, 2, 3))
    # Addresses: one changed, one removed, one added.
    ann["addresses"][0]["line1"] = "1 Main Street"
    ann["addresses"] = [
        ann["addresses"][0],
        {"id": Int64(13), "kind": "billing", "line1": "4 New Rd", "country": "DE", "is_default": False},
    ]
    ann["profile"] = None  # many: false set to null: its row is deleted
    # Orders: 102 (and its item) removed; 101 loses item 2, gains item 3, item 1 changes.
    order = ann["orders"][0]
    order["items"] = [
        {**order["items"][0], "quantity": 3},
        {
            "line_no": 3,
            "product_id": Int64(1009),
            "quantity": 1,
            "unit_price": Decimal128("2.00"),
            "discount": None,
        },
    ]
    ann["orders"] = [order]
    # An order moves from Bob to Cy with its item; Bob's profile changes; Cy gets a profile.
    moved = bob["orders"].pop()
    moved["items"].append(
        {
            "line_no": 2,
            "product_id": Int64(7),
            "quantity": 2,
            "unit_price": Decimal128("0.10"),
            "discount": 0.5,
        }
    )
    cy["orders"] = [moved]
    bob["profile"]["bio"] = "now with a bio"
    cy["profile"] = {"bio": "cy", "social_links": [1, {"a": "b"}], "updated_at": bob["profile"]["updated_at"]}
    writer = writer_for(mig, name)
    try:
        writer.apply([inverse["customers"].rows(d) for d in (ann, bob, cy)], None)
    finally:
        writer.close()
    assert_same_documents(source_documents(mig, collections[0], info), customers)
    assert mig.rows("SELECT count(*) FROM order_items WHERE order_id = 102")[0][0] == 0
    assert mig.rows("SELECT customer_id FROM orders WHERE id = 201")[0][0] == 3


def test_one_batch_decides_each_documents_rows_as_that_document_alone_would(mig: Migration) -> None:
    """A batch is written set-based, one statement per level for all its documents: what one
    document lacks, holds or leaves alone does not leak into another's rows. Ann keeps order
    101 without its `items` field (its items stay) and drops item 1 of order 102 for a new one;
    Bob is deleted; Cy takes Ann's address 12. Expected rows written out by hand."""
    name = "rev-mixed"
    collections, info = mappings(mig, name)
    inverse = inverses(collections)["customers"]
    customers = source_documents(mig, collections[0], info)
    ann, cy = doc(customers, Int64(1)), doc(customers, Int64(3))
    work = next(a for a in ann["addresses"] if a["id"] == 12)
    ann["addresses"] = [a for a in ann["addresses"] if a["id"] != 12]
    del ann["orders"][0]["items"]
    ann["orders"][1]["items"] = [{**ann["orders"][1]["items"][0], "line_no": 2, "quantity": 4}]
    cy["addresses"] = [work]
    writer = writer_for(mig, name)
    try:
        writer.apply([inverse.rows(ann), inverse.deletion(Int64(2)), inverse.rows(cy)], None)
    finally:
        writer.close()
    assert mig.rows("SELECT id FROM customers ORDER BY id") == [(1,), (3,)]
    assert mig.rows("SELECT id, customer_id, kind FROM addresses ORDER BY id") == [
        (11, 1, "home"),
        (12, 3, "work"),
    ]
    assert mig.rows("SELECT customer_id FROM customer_profiles ORDER BY 1") == [(1,)]
    assert mig.rows("SELECT id, customer_id FROM orders ORDER BY id") == [(101, 1), (102, 1)]
    assert mig.rows("SELECT order_id, line_no, quantity FROM order_items ORDER BY 1, 2") == [
        (101, 1, 2),
        (101, 2, 1),
        (102, 2, 4),
    ]


def test_a_deleted_document_deletes_its_rows_deepest_first(mig: Migration) -> None:
    name = "rev-delete"
    collections, _ = mappings(mig, name)
    inverse = inverses(collections)
    writer = writer_for(mig, name)
    try:
        changed = writer.apply(
            [
                inverse["customers"].deletion(Int64(1)),
                inverse["stock"].deletion({"warehouse": 1, "sku": "sku-2"}),
                inverse["customers"].deletion(Int64(99)),  # absent already: nothing to do
            ],
            None,
        )
    finally:
        writer.close()
    # customer 1, 2 addresses, its profile, 2 orders, 3 items; one stock row.
    assert changed == 1 + 2 + 1 + 2 + 3 + 1
    rows = table_rows(mig)
    assert [r["id"] for r in rows["customers"]] == [2, 3]
    assert [r["id"] for r in rows["orders"]] == [201]
    assert [r["sku"] for r in rows["stock"]] == ["sku-1", "sku-1"]


def test_a_document_the_inverse_cannot_map_fails_naming_collection_id_and_field(mig: Migration) -> None:
    collections, info = mappings(mig, "rev-refuse")
    customers = source_documents(mig, collections[0], info)
    inverse = DocumentInverse(collections[0])

    def refused(change: Callable[[dict[str, Any]], None], field: str, words: str) -> None:
        document = bson.decode(
            bson.encode(doc(customers, Int64(1)), codec_options=CODEC), codec_options=CODEC
        )
        change(document)
        with pytest.raises(InverseError) as caught:
            inverse.rows(document)
        error = caught.value
        assert (error.collection, error.document_id, error.field) == ("customers", 1, field), error.message
        assert words in error.message and "customers" in error.message and field in error.message

    refused(lambda d: d.update(loyalty_points="ten"), "loyalty_points", "expected an integer")
    refused(lambda d: d.update(nickname="annie"), "nickname", "no column mapped")
    refused(lambda d: d.update(full_name=None), "full_name", "NOT NULL")
    refused(lambda d: d.update(external_id=str(d["external_id"])), "external_id", "UUID")
    refused(
        lambda d: d.update(birth_date=datetime.datetime(1990, 5, 17, 12, tzinfo=UTC)),
        "birth_date",
        "midnight",
    )
    refused(lambda d: d.update(preferences={"at": datetime.datetime.now(UTC)}), "preferences", "JSON cannot")
    refused(lambda d: d["orders"][0]["items"][1].update(quantity=70000), "orders.0.items.1.quantity", "range")
    refused(lambda d: d["addresses"].append(dict(d["addresses"][0])), "addresses", "two elements")
    refused(lambda d: d["orders"][1].pop("id"), "orders.1", "key column id")
    refused(lambda d: d.update(addresses={"id": 1}), "addresses", "expected an array")
    refused(lambda d: d.update(tags=["a", 1]), "tags", "element 1")
    stock = DocumentInverse(collections[1])
    with pytest.raises(InverseError) as caught:
        stock.rows({"_id": {"warehouse": 1}, "qty": 1})
    assert caught.value.field == "_id.sku"
    # Unknown fields may be left behind on purpose.
    lenient = DocumentInverse(collections[0], unknown_fields="ignore")
    document = doc(customers, Int64(1))
    assert isinstance(lenient.rows({**document, "nickname": "annie"}), DocumentRows)


# -- 2. the change stream ------------------------------------------------------------------------


class Reverse:
    """ReverseSync on a thread, bounded like the CDC tests' Follower."""

    def __init__(self, mig: Migration, name: str, collections: list[CollectionMapping]) -> None:
        self.events = Collector()
        self.stop = threading.Event()
        self.target = MongoTarget(mig.mongo_url, mig.database)
        self.sync = ReverseSync(
            name,
            collections,
            PostgresSource(mig.pg_url),
            self.target,
            self.events,
            stop=self.stop,
            max_await_ms=100,
        )
        self._thread = BackgroundThread("reverse-sync", lambda: self.sync.run("stopped"))

    @property
    def error(self) -> BaseException | None:
        return self._thread.error

    def start(self) -> Reverse:
        self._thread.start()
        return self

    def finish(self, timeout: float = 60) -> ReverseResult:
        self.stop.set()
        assert self._thread.started
        self._thread.join(timeout)
        assert not self._thread.alive(), "reverse sync did not stop"
        self.close()
        self._thread.raise_error()
        assert self._thread.result is not None
        return self._thread.result

    def close(self) -> None:
        self.sync.close()
        self.target.close()


@pytest.fixture
def stopper() -> Iterator[list[Reverse]]:
    started: list[Reverse] = []
    yield started
    for reverse in started:
        reverse.stop.set()
        if reverse._thread is not None:
            reverse._thread.join(30)
        reverse.close()


def load_target(mig: Migration, collections: list[CollectionMapping], info: SourceInfo) -> None:
    """The snapshot's outcome, without running one: the forward Assembler's documents."""
    for mapping in collections:
        coll = mig.client[mig.database].get_collection(mapping.name, codec_options=CODEC)
        coll.insert_many(source_documents(mig, mapping, info))


def target_documents(mig: Migration, collection: str) -> list[dict[str, Any]]:
    coll = mig.client[mig.database].get_collection(collection, codec_options=CODEC)
    return sorted_documents(list(coll.find()))


def in_step(mig: Migration, collections: list[CollectionMapping], info: SourceInfo) -> bool:
    """Whether the source maps to exactly the documents the target holds."""
    for mapping in collections:
        got = [canonical(d) for d in sorted_documents(source_documents(mig, mapping, info))]
        want = [canonical(d) for d in target_documents(mig, mapping.name)]
        if got != want:
            return False
    return True


def wait_in_step(
    mig: Migration, collections: list[CollectionMapping], info: SourceInfo, reverse: Reverse | None = None
) -> None:
    def check() -> bool:
        if reverse is not None and reverse.error is not None:
            raise reverse.error
        return in_step(mig, collections, info)

    try:
        wait_for(check, "the source to map to the target's documents", 60, 0.2)
    except BaseException:
        for mapping in collections:  # say what differs
            assert_same_documents(source_documents(mig, mapping, info), target_documents(mig, mapping.name))
        raise


NEW_CUSTOMER = {
    "_id": Int64(4),
    "email": "dee@example.com",
    "full_name": "Dee",
    "status": "active",
    "external_id": uuid.UUID("f5eebc99-9c0b-4ef8-bb6d-6bb9bd380a66"),
    "birth_date": None,
    "balance": Decimal128("10.0000"),
    "loyalty_points": 1,
    "is_vip": False,
    "avatar": None,
    "preferences": {"theme": "dark"},
    "signed_up_at": datetime.datetime(2025, 1, 1, 12, 0, 0, 500000, tzinfo=UTC),
    "last_login": None,
    "tags": ["new"],
    "grid": None,
    "rating": None,
    "session_length": "PT1H",
    "last_ip": "10.0.0.1",  # inet as the forward conversion writes it (its output: a host has no /32)
    "wake_at": "06:00:00",
    "addresses": [{"id": Int64(41), "kind": "home", "line1": "5 Elm", "country": "NL", "is_default": True}],
    "profile": {"bio": "dee", "social_links": None, "updated_at": datetime.datetime(2025, 1, 1, tzinfo=UTC)},
    "orders": [
        {
            "id": Int64(401),
            "status": "open",
            "placed_at": datetime.datetime(2025, 1, 2, tzinfo=UTC),
            "total": Decimal128("3.00"),
            "shipping": None,
            "delivery_days": [datetime.datetime(2025, 1, 3, tzinfo=UTC)],
            "items": [
                {
                    "line_no": 1,
                    "product_id": Int64(5),
                    "quantity": 3,
                    "unit_price": Decimal128("1.00"),
                    "discount": None,
                }
            ],
        }
    ],
}


def test_changes_on_the_target_arrive_as_rows(mig: Migration, stopper: list[Reverse]) -> None:
    name = "rev-stream"
    collections, info = mappings(mig, name)
    load_target(mig, collections, info)
    reverse = Reverse(mig, name, collections)
    stopper.append(reverse)
    reverse.sync.prepare()
    reverse.start()
    db = mig.client.get_database(mig.database, codec_options=CODEC)
    customers, stock = db["customers"], db["stock"]
    customers.insert_one(NEW_CUSTOMER)
    customers.update_one({"_id": 1}, {"$set": {"full_name": "Ann Changed", "balance": Decimal128("1.5000")}})
    customers.update_one(
        {"_id": 1},
        {
            "$push": {
                "addresses": {
                    "$each": [
                        {
                            "id": Int64(14),
                            "kind": "work",
                            "line1": "6 Oak",
                            "country": "IE",
                            "is_default": False,
                        }
                    ],
                    "$sort": {"id": 1},
                }
            }
        },
    )
    customers.update_one({"_id": 1}, {"$pull": {"addresses": {"id": 12}}})
    customers.update_one({"_id": 1}, {"$set": {"orders.0.items.0.quantity": 7, "orders.1.status": "paid"}})
    customers.update_one({"_id": 1}, {"$pull": {"orders": {"id": 102}}})
    customers.update_one({"_id": 2}, {"$set": {"profile": None}})
    customers.delete_one({"_id": 3})
    stock.replace_one({"_id": {"warehouse": 1, "sku": "sku-1"}}, {"qty": 50, "batch": None})
    stock.insert_one({"_id": {"warehouse": 3, "sku": "sku-9"}, "qty": 1, "batch": uuid.uuid4()})
    stock.delete_one({"_id": {"warehouse": 1, "sku": "sku-2"}})
    with mig.client.start_session() as session:  # an application transaction over two documents

        def body(s: Any) -> None:
            customers.update_one({"_id": 2}, {"$set": {"loyalty_points": 99}}, session=s)
            stock.update_one({"_id": {"warehouse": 2, "sku": "sku-1"}}, {"$inc": {"qty": 1}}, session=s)

        session.with_transaction(body)
    wait_in_step(mig, collections, info, reverse)
    result = reverse.finish()
    assert result.documents >= 5 and result.rows > 0 and result.skipped_transactions == 0
    assert mig.rows("SELECT password_hash FROM customers WHERE id = 1")[0][0] == "hash1"
    assert mig.rows("SELECT count(*) FROM customers WHERE id = 3")[0][0] == 0
    assert reverse.events.of(ReverseBatchApplied), "no batch reported"
    progress = reverse.events.of(ReverseProgress)
    assert progress and all(p.lag_seconds >= 0 for p in progress)
    applied = reverse.events.of(ReverseBatchApplied)
    assert all(lag >= 0 for event in applied for lag in event.lag_ms)
    stored = reverse.sync.writer.checkpoint()
    assert stored is not None and stored.events == result.events and stored.cluster_time is not None


def test_resumed_from_an_older_checkpoint_reapplies_without_rewriting(
    mig: Migration, stopper: list[Reverse]
) -> None:
    """A crash between applying and checkpointing cannot happen (they commit together); what a
    crash can do is leave events read but not applied, or, after a restore, an older checkpoint.
    Both replay events whose states the source already holds: nothing changes, nothing is rewritten."""
    name = "rev-replay"
    collections, info = mappings(mig, name)
    load_target(mig, collections, info)
    reverse = Reverse(mig, name, collections)
    stopper.append(reverse)
    start = reverse.sync.prepare()
    customers = mig.client.get_database(mig.database, codec_options=CODEC)["customers"]
    for i in range(20):
        customers.update_one({"_id": 1 + i % 3}, {"$set": {"loyalty_points": i}})
    customers.update_one(
        {"_id": 2},
        {
            "$push": {
                "orders.0.items": {
                    "line_no": 2,
                    "product_id": Int64(1),
                    "quantity": 1,
                    "unit_price": Decimal128("1.00"),
                    "discount": None,
                }
            }
        },
    )
    first = reverse.sync.run("caught-up")
    assert first.caught_up and first.events == 21 + 1  # and the caught-up marker
    assert in_step(mig, collections, info)
    xmins = mig.rows("SELECT xmin::text, id FROM customers ORDER BY id")
    # Back to the start, as if nothing had been checkpointed.
    reverse.sync.writer.apply([], start)
    again = reverse.sync.run("caught-up")
    assert again.events == 21 + 2 and again.rows == 0  # both runs' markers
    assert mig.rows("SELECT xmin::text, id FROM customers ORDER BY id") == xmins
    assert in_step(mig, collections, info)
    reverse.close()


_CHILD = """
import sys, threading
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres import PostgresSource
from migrator.engine.events import Collector
from migrator.phases.reverse import ReverseSync
from tests.support.reverse import child_mappings

name, pg_url, mongo_url, database, plan = sys.argv[1:6]
collections = child_mappings(plan, pg_url, mongo_url, database)
sync = ReverseSync(name, collections, PostgresSource(pg_url), MongoTarget(mongo_url, database), Collector(),
                   stop=threading.Event(), max_await_ms=50, batch_documents=5)
print("running", flush=True)
sync.run("stopped")
"""


def test_kill_9_while_applying_then_resume_converges(mig: Migration, stopper: list[Reverse]) -> None:
    name = "rev-kill"
    collections, info = mappings(mig, name)
    load_target(mig, collections, info)
    reverse = Reverse(mig, name, collections)
    stopper.append(reverse)
    start = reverse.sync.prepare()
    reverse.sync.close()  # the children bind the replication origin, one session at a time
    stock = mig.client.get_database(mig.database, codec_options=CODEC)["stock"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    covered = [start.events]
    for round_ in range(3):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                name,
                mig.pg_url,
                mig.mongo_url,
                mig.database,
                str(plan_file(mig, name)),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == b"running"
            base = round_ * 1000
            for i in range(300):
                if i == 150:
                    # Mid-stream, while it applies: the rest is written with no reverse sync running.
                    wait_for(
                        lambda: (
                            (stored_checkpoint(PgEndpoint(mig.pg_url), name) or start).events > covered[-1]
                        ),
                        "the child to apply something",
                        30,
                        0.05,
                    )
                    child.send_signal(signal.SIGKILL)
                    child.wait(30)
                stock.update_one(
                    {"_id": {"warehouse": 9, "sku": f"sku-{i % 40}"}},
                    {"$set": {"qty": base + i, "batch": None}},
                    upsert=True,
                )
                if i % 50 == 0:
                    stock.delete_one({"_id": {"warehouse": 9, "sku": f"sku-{(i + 7) % 40}"}})
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            child.wait(30)
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode() if child.stderr else ""
        stored = stored_checkpoint(PgEndpoint(mig.pg_url), name)
        assert stored is not None
        covered.append(stored.events)
    # Each child applied some, after the backlog its predecessor left (a killed child's session may
    # hold the replication origin for a moment: the next one waits and retries).
    assert all(a < b for a, b in itertools.pairwise(covered)), covered
    result = reverse.sync.run("caught-up")
    assert result.caught_up and result.events > 0  # the last child's backlog
    assert in_step(mig, collections, info)
    assert mig.rows("SELECT count(*) FROM stock WHERE warehouse = 9")[0][0] == stock.count_documents(
        {"_id.warehouse": 9}
    )


def test_a_lost_connection_is_retried_and_an_unmappable_document_stops(
    mig: Migration, stopper: list[Reverse]
) -> None:
    name = "rev-errors"
    collections, info = mappings(mig, name)
    load_target(mig, collections, info)
    reverse = Reverse(mig, name, collections)
    stopper.append(reverse)
    reverse.sync.prepare()
    reverse.start()
    customers = mig.client.get_database(mig.database, codec_options=CODEC)["customers"]

    def name_of(customer: int) -> str:
        return str(mig.rows("SELECT full_name FROM customers WHERE id = %s", [customer])[0][0])

    customers.update_one({"_id": 1}, {"$set": {"full_name": "one"}})
    wait_for(lambda: name_of(1) == "one", "the first change", 30)
    # The source drops reverse sync's connection (SQLSTATE 57P01): retried, nothing lost.
    mig.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    customers.update_one({"_id": 2}, {"$set": {"full_name": "two"}})
    wait_for(
        lambda: name_of(2) == "two" or reverse.error is not None, "the change after the lost connection", 60
    )
    retried = [e for e in reverse.events.of(ErrorRaised) if e.retrying]
    assert retried and retried[0].phase == "reverse", reverse.events.events
    before = stored_checkpoint(PgEndpoint(mig.pg_url), name)
    # A document the inverse cannot map stops reverse sync, naming it; its position is not recorded.
    customers.update_one({"_id": 3}, {"$set": {"loyalty_points": "many"}})
    wait_for(lambda: reverse.error is not None, "reverse sync to stop", 30)
    assert isinstance(reverse.error, InverseError) and reverse.error.field == "loyalty_points"
    stopped = [e for e in reverse.events.of(ErrorRaised) if not e.retrying]
    assert stopped and stopped[-1].error == "InverseError"
    assert stored_checkpoint(PgEndpoint(mig.pg_url), name) == before


# -- 3. no echo ----------------------------------------------------------------------------------


def test_forward_cdc_writes_are_not_echoed_back(mig: Migration, stopper: list[Reverse]) -> None:
    name = "rev-no-echo"
    collections, info = mappings(mig, name)
    load_target(mig, collections, info)
    reverse = Reverse(mig, name, collections)
    stopper.append(reverse)
    reverse.sync.prepare()
    reverse.start()
    db = mig.client.get_database(mig.database, codec_options=CODEC)
    applier = ChangeApplier(db, cdc_checkpoint_id(name), transactions=True)
    # A whole source transaction (with its checkpoint) and a part of a large one (without).
    applier.apply([WriteOp("customers", "update", {"_id": 1}, {"$set": {"full_name": "forward"}})], 10, "0/A")
    applier.apply(
        [WriteOp("customers", "update", {"_id": 2}, {"$set": {"full_name": "forward part"}})], None, None
    )
    applier.apply(
        [WriteOp("stock", "update", {"_id": {"warehouse": 1, "sku": "sku-1"}}, {"$set": {"qty": -1}})],
        11,
        "0/B",
    )
    # Then an application write, which must arrive.
    db["customers"].update_one({"_id": 3}, {"$set": {"full_name": "app"}})
    wait_for(
        lambda: mig.rows("SELECT full_name FROM customers WHERE id = 3")[0][0] == "app",
        "the application's write",
        30,
    )
    result = reverse.finish()
    assert mig.rows("SELECT full_name FROM customers WHERE id IN (1, 2) ORDER BY id") == [("Ann",), ("Bob",)]
    assert mig.rows("SELECT qty FROM stock WHERE warehouse = 1 AND sku = 'sku-1'")[0][0] == 5
    assert result.skipped_transactions == 3 and result.documents == 1


@pytest.mark.usefixtures("small_decoding_memory")
def test_reverse_sync_transactions_are_skipped_by_forward_cdc(mig: Migration) -> None:
    name = "rev-origin"
    plan = plan_file(mig, name)
    run(mig, plan, "snapshot")
    collections, _ = mappings(mig, name)
    inverse = inverses(collections)
    follower = follow(mig, plan, name)
    writer = writer_for(mig, name)
    try:
        customers = target_documents(mig, "customers")
        ann = dict(doc(customers, Int64(1)))
        ann["full_name"] = "only in the source"
        writer.apply([inverse["customers"].rows(ann)], None)
        # A transaction large enough for the server to stream it (logical_decoding_work_mem 64kB).
        many = [
            inverse["stock"].rows(
                {"_id": {"warehouse": 100, "sku": f"bulk-{i:05}"}, "qty": i, "batch": uuid.uuid4()}
            )
            for i in range(3000)
        ]
        writer.apply(many, None)
        # A plain source write after them, which forward CDC applies.
        mig.sql("UPDATE customers SET full_name = 'plain' WHERE id = 2")
        wait_for(
            lambda: doc(target_documents(mig, "customers"), Int64(2))["full_name"] == "plain",
            "forward CDC to apply the plain write",
            60,
        )
        streamed = mig.rows(
            "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = %s", [mig.slot(name)]
        )
        assert streamed and streamed[0][0] >= 1, "the large reverse transaction was not streamed"
    finally:
        writer.close()
        follower.finish()
    assert mig.rows("SELECT full_name FROM customers WHERE id = 1")[0][0] == "only in the source"
    assert doc(target_documents(mig, "customers"), Int64(1))["full_name"] == "Ann"
    assert mig.client[mig.database]["stock"].count_documents({"_id.warehouse": 100}) == 0
    assert mig.rows("SELECT count(*) FROM stock WHERE warehouse = 100")[0][0] == 3000


def test_prepare_and_checkpoint_are_kept_in_the_source(mig: Migration) -> None:
    name = "rev-prepare"
    collections, _ = mappings(mig, name)
    target = MongoTarget(mig.mongo_url, mig.database)
    sync = ReverseSync(
        name, collections, PostgresSource(mig.pg_url), target, Collector(), stop=threading.Event()
    )
    try:
        first = sync.prepare()
        assert sync.prepare() == first  # prepared once; later calls keep the position
        row = mig.rows("SELECT plan, resume_token, events FROM migrator.reverse_checkpoint")
        assert row[0][0] == name and bson.decode(bytes(row[0][1])) == first.resume_token
        origin = mig.rows(
            "SELECT roname FROM pg_replication_origin WHERE roname = %s", [reverse_origin_name(name)]
        )
        assert origin, "the replication origin was not created"
        assert sync.writer.forget()
        assert not mig.rows(
            "SELECT 1 FROM pg_replication_origin WHERE roname = %s", [reverse_origin_name(name)]
        )
        assert sync.writer.checkpoint() is None
    finally:
        sync.close()
        target.close()


# -- 3. a burst of rewrites ----------------------------------------------------------------------


BURST_DOCUMENTS = 60
BURST_ROUNDS = 5


def burst_customer(i: int) -> dict[str, Any]:
    """Customer i as the burst test inserts it on the target: two addresses, a profile, an order
    with two items."""
    return {
        **NEW_CUSTOMER,
        "_id": Int64(i),
        "email": f"burst{i}@example.com",
        "full_name": f"burst {i}",
        "external_id": uuid.UUID(int=i),
        "addresses": [
            {"id": Int64(i * 10 + 1), "kind": "home", "line1": "start", "country": "NL", "is_default": True},
            {
                "id": Int64(i * 10 + 2),
                "kind": "work",
                "line1": "office",
                "country": "BE",
                "is_default": False,
            },
        ],
        "profile": {
            "bio": f"bio {i}",
            "social_links": None,
            "updated_at": datetime.datetime(2025, 1, 1, tzinfo=UTC),
        },
        "orders": [
            {
                "id": Int64(i * 10),
                "status": "open",
                "placed_at": datetime.datetime(2025, 1, 2, tzinfo=UTC),
                "total": Decimal128("3.00"),
                "shipping": None,
                "delivery_days": None,
                "items": [
                    {
                        "line_no": n,
                        "product_id": Int64(5),
                        "quantity": 1,
                        "unit_price": Decimal128("1.00"),
                        "discount": None,
                    }
                    for n in (1, 2)
                ],
            }
        ],
    }


def burst_round(i: int, r: int) -> dict[str, Any]:
    """Round r's rewrite of customer i: a new name, the home address rewritten and the work
    address kept only in odd rounds, the order's status and its items (1 to 3 of them) rewritten."""
    addresses = [
        {"id": Int64(i * 10 + 1), "kind": "home", "line1": f"{r} Main", "country": "NL", "is_default": True}
    ]
    if r % 2:
        addresses.append(
            {
                "id": Int64(i * 10 + 2),
                "kind": "work",
                "line1": f"{r} Office",
                "country": "BE",
                "is_default": False,
            }
        )
    items = [
        {
            "line_no": n,
            "product_id": Int64(5),
            "quantity": r + 1,
            "unit_price": Decimal128(f"{r}.50"),
            "discount": None,
        }
        for n in range(1, r % 3 + 2)
    ]
    return {
        "$set": {
            "full_name": f"burst {i} round {r}",
            "addresses": addresses,
            "orders.0.status": f"round {r}",
            "orders.0.items": items,
        }
    }


class StatementCount:
    """Statements sent to PostgreSQL in this process while counting (an executemany counts once
    per parameter set: the server executes each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import psycopg

        self.count = 0
        self.counting = False
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

        def counted_execute(cur: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
            self.count += self.counting
            return execute(cur, query, params, **kwargs)

        def counted_executemany(cur: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            self.count += self.counting * len(params_seq)
            return executemany(cur, query, params_seq, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counted_execute)
        monkeypatch.setattr(psycopg.Cursor, "executemany", counted_executemany)


def test_a_burst_of_rewrites_is_applied_in_its_last_state_with_few_statements(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same documents rewritten again and again (the demo application's workload): each is
    read and written once per batch, in its last state, set-based (a few statements per batch,
    not several per document); the rows are the last rewrite's, built here by hand."""
    name = "rev-burst"
    collections, info = mappings(mig, name)
    load_target(mig, collections, info)
    target = MongoTarget(mig.mongo_url, mig.database)
    statements = StatementCount(monkeypatch)
    # One batch for the whole burst: no batch is closed by size or by age while it is read.
    sync = ReverseSync(
        name,
        collections,
        PostgresSource(mig.pg_url),
        target,
        Collector(),
        stop=threading.Event(),
        max_await_ms=100,
        batch_documents=10_000,
        batch_wait_s=3600,
    )
    # Majority-acknowledged: every rewrite is in the stream before reverse sync reads it.
    customers = mig.client.get_database(mig.database, codec_options=CODEC).get_collection(
        "customers", write_concern=WriteConcern("majority")
    )
    ids = range(1000, 1000 + BURST_DOCUMENTS)
    gone = [i for i in ids if i % 10 == 9]
    try:
        sync.prepare()
        customers.insert_many([burst_customer(i) for i in ids])
        assert sync.run("caught-up").caught_up
        assert (
            mig.rows("SELECT count(*) FROM order_items WHERE order_id >= 10000")[0][0] == 2 * BURST_DOCUMENTS
        )
        for r in range(BURST_ROUNDS):
            for i in ids:
                customers.update_one({"_id": Int64(i)}, burst_round(i, r))
        customers.delete_many({"_id": {"$in": [Int64(i) for i in gone]}})
        statements.counting = True
        result = sync.run("caught-up")
        statements.counting = False
    finally:
        sync.close()
        target.close()
    assert result.caught_up
    assert result.documents == BURST_DOCUMENTS  # each document once, however often it changed
    assert 0 < statements.count <= BURST_DOCUMENTS // 3, statements.count

    last = BURST_ROUNDS - 1
    kept = [i for i in ids if i not in gone]
    assert mig.rows("SELECT id, full_name, email FROM customers WHERE id >= 1000 ORDER BY id") == [
        (i, f"burst {i} round {last}", f"burst{i}@example.com") for i in kept
    ]
    assert mig.rows(
        "SELECT id, customer_id, kind, line1, country FROM addresses WHERE customer_id >= 1000 ORDER BY id"
    ) == [(i * 10 + 1, i, "home", f"{last} Main", "NL") for i in kept]  # the last round is even
    assert mig.rows(
        "SELECT customer_id, bio FROM customer_profiles WHERE customer_id >= 1000 ORDER BY 1"
    ) == [(i, f"bio {i}") for i in kept]
    assert mig.rows("SELECT id, customer_id, status FROM orders WHERE customer_id >= 1000 ORDER BY id") == [
        (i * 10, i, f"round {last}") for i in kept
    ]
    assert mig.rows(
        "SELECT order_id, line_no, quantity, unit_price::text FROM order_items WHERE order_id >= 10000 "
        "ORDER BY order_id, line_no"
    ) == [(i * 10, n, last + 1, f"{last}.50") for i in kept for n in range(1, last % 3 + 2)]
