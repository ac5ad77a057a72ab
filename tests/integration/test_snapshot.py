"""The snapshot phase against real servers: what lands in MongoDB is what the source held.

Every test builds its source in a fresh PostgreSQL database, runs the plan through
`migrator.api.run(until="snapshot")` as an application would, and compares the target with
expectations computed independently (literal values, or plain SQL), down to BSON types and
key order.
"""

from __future__ import annotations

import datetime
import struct
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator.engine.events import (
    ChunkFinished,
    Collector,
    DocumentSkipped,
    Event,
    SlotCreated,
    SnapshotOpened,
)
from migrator.errors import PreflightFailed, SourceError, TerminalError
from migrator.state import SQLiteStateStore
from tests.support.docs import Migration, sorted_documents, typed
from tests.support.every_type import create_everything

UTC = datetime.UTC


def _float32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


# -- every supported type ----------------------------------------------------------------------


def _expected_everything(citext: bool) -> dict[int, dict[str, Any]]:
    def doc(**values: Any) -> dict[str, Any]:
        return values

    nulls = {
        name: None
        for name in [
            "c_smallint",
            "c_integer",
            "c_bigint",
            "c_oid",
            "c_numeric",
            "c_money",
            "c_real",
            "c_double",
            "c_text",
            "c_varchar",
            "c_char",
            "c_name",
            "c_citext",
            "c_xml",
            "c_bool",
            "c_tstz",
            "c_ts",
            "c_date",
            "c_uuid",
            "c_bytea",
            "c_json",
            "c_jsonb",
            "c_interval",
            "c_time",
            "c_timetz",
            "c_inet",
            "c_cidr",
            "c_macaddr",
            "c_macaddr8",
            "c_bit",
            "c_varbit",
            "c_point",
            "c_box",
            "c_int4range",
            "c_tstzrange",
            "c_enum",
            "c_domain",
            "a_int",
            "a_text",
            "a_numeric",
            "a_tstz",
            "a_enum",
            "a_2d",
            "a_bigint",
            "a_uuid",
            "a_date",
            "a_bool",
            "a_domain",
        ]
        if citext or name != "c_citext"
    }
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    one = doc(
        _id=1,
        c_smallint=32767,
        c_integer=-2147483648,
        c_bigint=Int64(9223372036854775807),
        c_oid=Int64(4294967295),
        c_numeric=Decimal128("12345678901234567890.123456789012"),
        c_money=Decimal128("-1234.56"),
        c_real=_float32(0.1),
        c_double=1.5e300,
        c_text="héllo wörld ✓",
        c_varchar="varchar",
        c_char="ab   ",
        c_name="a_name",
        **({"c_citext": "MiXeD"} if citext else {}),
        c_xml='<a x="1">t</a>',
        c_bool=True,
        c_tstz=datetime.datetime(2024, 2, 29, 21, 59, 59, 123000, tzinfo=UTC),
        c_ts=datetime.datetime(2024, 1, 2, 3, 4, 5, 987000, tzinfo=UTC),
        c_date=datetime.datetime(2024, 2, 29, tzinfo=UTC),
        c_uuid=u,
        c_bytea=b"\x00\xff\x10",
        c_json={"b": 1, "a": [1, 2.5, {"z": None}], "c": "s"},
        c_jsonb={"a": {"c": 2, "d": True}, "bb": 1},
        c_interval="P1Y2M3DT4H5M6S",
        c_time="13:14:15.123456",
        c_timetz="13:14:15+02",
        c_inet="192.168.0.1/24",
        c_cidr="10.0.0.0/8",
        c_macaddr="08:00:2b:01:02:03",
        c_macaddr8="08:00:2b:01:02:03:04:05",
        c_bit="1010",
        c_varbit="101",
        c_point="(1.5,2)",
        c_box="(1,2),(0,0)",
        c_int4range="[2,11)",
        c_tstzrange='["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")',
        c_enum="happy",
        c_domain=42,
        a_int=[1, 2, None],
        a_text=["a", "b c", None, ""],
        a_numeric=[Decimal128("1.5"), Decimal128("NaN"), Decimal128("-0.001")],
        a_tstz=[datetime.datetime(2024, 1, 1, 0, 0, 0, 999000, tzinfo=UTC), None],
        a_enum=["sad", "happy"],
        a_2d=[[1, 2], [3, 4]],
        a_bigint=[Int64(1), Int64(9223372036854775807)],
        a_uuid=[u],
        a_date=[datetime.datetime(2000, 1, 1, tzinfo=UTC)],
        a_bool=[True, False, None],
        a_domain=[7, 8],
    )
    two = {
        "_id": 2,
        **nulls,
        "c_smallint": -32768,
        "c_integer": 0,
        "c_bigint": Int64(5),
        "c_oid": Int64(0),
        "c_numeric": Decimal128("NaN"),
        "c_money": Decimal128("0.00"),
        "c_real": -0.0,
        "c_double": float("inf"),
        "c_text": "",
        "c_char": "     ",
        "c_tstz": datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "c_ts": datetime.datetime(1900, 1, 1, tzinfo=UTC),
        "c_date": datetime.datetime(1, 1, 1, tzinfo=UTC),
        "c_json": [1, "two", None],
        "c_jsonb": "scalar",
        "c_interval": "P-1DT-1.5S",
        "c_time": "00:00:00",
        "c_int4range": "empty",
        "a_int": [],
        "a_text": [],
        "a_numeric": [Decimal128("Infinity"), Decimal128("-Infinity")],
        "a_2d": [[None, 2], [3, None]],
    }
    numerics = {
        3: Decimal128("Infinity"),
        4: Decimal128("-Infinity"),
        5: Decimal128("1E-48"),
        6: Decimal128("-1234567890123456789012345678901234"),
        7: Decimal128("1.10"),
        # Exact, held with the 34 digits Decimal128 has (its context drops only zeros).
        8: Decimal128("1.000000000000000000000000000000000E+300"),
        10: Decimal128("1.500000000000000000000000000000000"),
    }
    expected = {1: one, 2: two}
    for i, value in numerics.items():
        expected[i] = {"_id": i, **nulls, "c_numeric": value}
    expected[9] = {"_id": 9, **nulls}
    return expected


def test_every_supported_type_converts_as_documented(mig: Migration) -> None:
    citext = create_everything(mig)
    plan = mig.plan("- {name: everything, from: everything, key: id}", name="snap-types")
    outcome, _ = mig.run(plan)
    assert outcome.snapshot is not None and outcome.snapshot.documents == 10

    expected = _expected_everything(citext)
    actual = mig.by_id("everything")
    assert sorted(actual) == sorted(expected)
    # Field by field first, so that a failure lists every column that differs.
    wrong = [
        (key, name, typed(actual[key].get(name, "<missing>")), typed(value))
        for key, want in expected.items()
        for name, value in want.items()
        if typed(actual[key].get(name, "<missing>")) != typed(value)
    ]
    assert wrong == [], "\n".join(f"doc {k} field {n}: got {g}, want {w}" for k, n, g, w in wrong)
    # Then whole documents: no extra field, and the table's column order.
    for key, want in expected.items():
        assert typed(actual[key]) == typed(want)


# -- embedding -----------------------------------------------------------------------------------

EMBED_SQL = [
    "CREATE TABLE customers (id integer PRIMARY KEY, code text NOT NULL UNIQUE, name text, secret text)",
    # No foreign keys on purpose: orphans must be possible.
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, placed_at date, total numeric, note text)",
    "CREATE TABLE order_items (order_id integer, line_no integer, sku text, qty integer,"
    " PRIMARY KEY (order_id, line_no))",
    "CREATE TABLE profiles (customer_id integer PRIMARY KEY, bio text)",
    "CREATE TABLE addresses (customer_id integer, kind text, city text, PRIMARY KEY (customer_id, kind))",
    "CREATE TABLE notes (id integer PRIMARY KEY, customer_code text NOT NULL, body text)",
    "CREATE TABLE line_tags (order_id integer, line_no integer, tag text, PRIMARY KEY (order_id, line_no, tag))",
    "INSERT INTO customers VALUES (1, 'A', 'Ann', 's1'), (2, 'B', 'Bob', 's2'), (3, 'C', 'Cyd', NULL)",
    "INSERT INTO orders VALUES (10, 1, '2024-01-03', 5.00, 'n'), (11, 1, '2024-01-01', 7.5, NULL),"
    " (13, 3, '2024-01-02', 2, 'y'), (12, 3, '2024-01-02', 1, 'x'), (9, 3, '2024-01-05', 0, NULL),"
    " (14, 999, '2024-01-01', 3, 'orphan')",
    "INSERT INTO order_items VALUES (10, 2, 'B', 1), (10, 1, 'A', 2), (11, 1, 'C', 3), (12, 1, 'D', 4),"
    " (14, 1, 'E', 5), (5555, 1, 'F', 6)",
    "INSERT INTO profiles VALUES (1, 'hi'), (999, 'orphan')",
    "INSERT INTO addresses VALUES (1, 'work', 'Bergen'), (1, 'home', 'Oslo'), (3, 'home', 'Rome'), (4, 'x', 'y')",
    "INSERT INTO notes VALUES (100, 'A', 'z-note'), (101, 'A', 'a-note'), (102, 'C', 'c'), (103, 'Z', 'orphan')",
    "INSERT INTO line_tags VALUES (10, 1, 'gift'), (10, 1, 'fragile'), (10, 2, 'gift'), (77, 1, 'orphan')",
]

EMBED_PLAN = """
- name: customers
  from: customers
  key: id
  exclude: [secret]
  embed:
    - as: orders
      from: orders
      on: {customer_id: id}
      order_by: placed_at
      exclude: [note]
      embed:
        - as: items
          from: order_items
          on: {order_id: id}
          fields: {line: line_no, product: sku, quantity: qty}
    - as: profile
      from: profiles
      on: {customer_id: id}
      many: false
    - as: addresses
      from: addresses
      on: {customer_id: id}
    - as: notes
      from: public.notes
      on: {customer_code: code}
      order_by: [body]
- name: lines
  from: order_items
  key: [order_id, line_no]
  embed:
    - as: tags
      from: line_tags
      on: {order_id: order_id, line_no: line_no}
"""


def _day(y: int, m: int, d: int) -> datetime.datetime:
    return datetime.datetime(y, m, d, tzinfo=UTC)


EMBED_EXPECTED = {
    "customers": [
        {
            "_id": 1,
            "code": "A",
            "name": "Ann",
            "orders": [
                {
                    "id": 11,
                    "placed_at": _day(2024, 1, 1),
                    "total": Decimal128("7.5"),
                    "items": [{"line": 1, "product": "C", "quantity": 3}],
                },
                {
                    "id": 10,
                    "placed_at": _day(2024, 1, 3),
                    "total": Decimal128("5.00"),
                    "items": [
                        {"line": 1, "product": "A", "quantity": 2},
                        {"line": 2, "product": "B", "quantity": 1},
                    ],
                },
            ],
            "profile": {"bio": "hi"},
            "addresses": [{"kind": "home", "city": "Oslo"}, {"kind": "work", "city": "Bergen"}],
            "notes": [{"id": 101, "body": "a-note"}, {"id": 100, "body": "z-note"}],
        },
        {"_id": 2, "code": "B", "name": "Bob", "orders": [], "profile": None, "addresses": [], "notes": []},
        {
            "_id": 3,
            "code": "C",
            "name": "Cyd",
            "orders": [
                # placed_at ties: the child key breaks them.
                {
                    "id": 12,
                    "placed_at": _day(2024, 1, 2),
                    "total": Decimal128("1"),
                    "items": [{"line": 1, "product": "D", "quantity": 4}],
                },
                {"id": 13, "placed_at": _day(2024, 1, 2), "total": Decimal128("2"), "items": []},
                {"id": 9, "placed_at": _day(2024, 1, 5), "total": Decimal128("0"), "items": []},
            ],
            "profile": None,
            "addresses": [{"kind": "home", "city": "Rome"}],
            "notes": [{"id": 102, "body": "c"}],
        },
    ],
    "lines": [
        {
            "_id": {"order_id": 10, "line_no": 1},
            "sku": "A",
            "qty": 2,
            "tags": [{"tag": "fragile"}, {"tag": "gift"}],
        },
        {"_id": {"order_id": 10, "line_no": 2}, "sku": "B", "qty": 1, "tags": [{"tag": "gift"}]},
        {"_id": {"order_id": 11, "line_no": 1}, "sku": "C", "qty": 3, "tags": []},
        {"_id": {"order_id": 12, "line_no": 1}, "sku": "D", "qty": 4, "tags": []},
        {"_id": {"order_id": 14, "line_no": 1}, "sku": "E", "qty": 5, "tags": []},
        {"_id": {"order_id": 5555, "line_no": 1}, "sku": "F", "qty": 6, "tags": []},
    ],
}


@pytest.mark.parametrize("chunk_rows", [10_000, 1])
def test_embedding_places_every_child_under_its_own_parent(mig: Migration, chunk_rows: int) -> None:
    """1:N, 1:1, two levels deep, orphans, a non-key join column, renames, exclude, compound _id;
    with one chunk for everything and with one chunk per parent row."""
    mig.sql(*EMBED_SQL)
    plan = mig.plan(
        EMBED_PLAN,
        name=f"snap-embed-{chunk_rows}",
        phases=f"snapshot: {{parallel: 2, chunk_rows: {chunk_rows}}}",
    )
    outcome, _ = mig.run(plan)
    for collection, want in EMBED_EXPECTED.items():
        assert typed(mig.documents(collection)) == typed(sorted_documents(want)), collection
    # One document per parent row: orphans add none and leave none out.
    assert outcome.snapshot is not None and outcome.snapshot.documents == 3 + 6


# -- a document over 16 MB ---------------------------------------------------------------------

BIG_SQL = [
    "CREATE TABLE big (id integer PRIMARY KEY, label text)",
    "CREATE TABLE big_part (id integer PRIMARY KEY, big_id integer NOT NULL, body text)",
    "INSERT INTO big VALUES (1, 'small'), (2, 'huge'), (3, 'small too')",
    # 20 x 1 MB of one repeated letter: stored compressed (about 12 kB each), so even the
    # estimate `migrator plan` makes from stored sizes stays far below 16 MB: only the copy
    # sees the real size.
    "INSERT INTO big_part SELECT g, 2, repeat(chr(97 + g), 1000000) FROM generate_series(1, 20) g",
    "INSERT INTO big_part VALUES (100, 1, 'a'), (101, 3, 'b')",
]
BIG_PLAN = """
- name: big
  from: big
  key: id
  embed: [{as: parts, from: big_part, on: {big_id: id}}]
"""


def test_document_over_16_mb_stops_the_run_naming_its_key(mig: Migration) -> None:
    mig.sql(*BIG_SQL)
    report_plan = mig.plan(BIG_PLAN, name="snap-big-stop")
    with pytest.raises(TerminalError) as caught:
        mig.run(report_plan)
    message = str(caught.value)
    assert "document 2 of big" in message and "16 MB" in message
    assert "on_oversize: skip" in message  # the hint names the way out
    # The failed run let go of every source connection: an open copy transaction would hold
    # the snapshot (and the vacuum horizon) for as long as the caller's process lives.
    assert (
        mig.rows(
            "SELECT pid, backend_type, state FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        == []
    )


def test_document_over_16_mb_is_skipped_and_reported_on_request(mig: Migration) -> None:
    mig.sql(*BIG_SQL)
    plan = mig.plan(BIG_PLAN, name="snap-big-skip", phases="snapshot: {on_oversize: skip}")
    outcome, events = mig.run(plan)
    assert [d["_id"] for d in mig.documents("big")] == [1, 3]
    skipped = events.of(DocumentSkipped)
    assert [(e.collection, e.key) for e in skipped] == [("big", 2)]
    assert skipped[0].bytes > 16 * 1024 * 1024
    assert outcome.snapshot is not None and outcome.snapshot.skipped == [2]
    # The skip is in the run's durable event log too, not only on screen.
    with SQLiteStateStore(mig.state_path) as store:
        logged = [e.payload for e in store.events(outcome.run_id) if e.kind == DocumentSkipped.kind]
    assert [(p["collection"], p["key"]) for p in logged] == [("big", 2)]


# -- a plan that fails preflight -----------------------------------------------------------------


def test_run_refuses_to_start_when_preflight_fails_and_creates_no_slot(mig: Migration) -> None:
    mig.sql(
        "CREATE TABLE keyed (id integer PRIMARY KEY)",
        "CREATE TABLE loose (id integer, keyed_id integer)",  # no primary key, no replica identity
        "INSERT INTO keyed VALUES (1)",
        "INSERT INTO loose VALUES (1, 1)",
    )
    plan = mig.plan(
        """
        - name: keyed
          from: keyed
          key: id
          embed: [{as: loose, from: loose, on: {keyed_id: id}, key: id}]
        """,
        name="snap-refused",
    )
    with pytest.raises(PreflightFailed) as caught:
        mig.run(plan)
    assert any("public.loose" in f for f in caught.value.failures), caught.value.failures
    assert mig.slots() == []
    assert mig.rows("SELECT pubname FROM pg_publication") == []
    assert mig.client[mig.database].list_collection_names() == []


# -- parallel copy equals serial copy --------------------------------------------------------------

PARALLEL_SQL = [
    # Text keys whose order depends on the collation (case, accents, spaces), compound keys,
    # a bigint key, and embedded children (some orphaned).
    "CREATE TABLE kv (k text PRIMARY KEY, n integer NOT NULL, payload text)",
    "INSERT INTO kv SELECT (ARRAY['k', 'K', 'é', 'Z ', 'a-'])[1 + g % 5] || g::text || repeat('z', g % 3),"
    " g, md5(g::text) FROM generate_series(1, 3000) g",
    "CREATE TABLE pairs (a integer, b text, v numeric, PRIMARY KEY (a, b))",
    "INSERT INTO pairs SELECT g % 37, 'b' || g, g / 7.0 FROM generate_series(1, 3000) g",
    "CREATE TABLE pair_kids (a integer, b text, n integer, note text, PRIMARY KEY (a, b, n))",
    "INSERT INTO pair_kids SELECT p.a, p.b, s, p.b || '/' || s FROM pairs p, generate_series(1, (p.a % 3)) s",
    "CREATE TABLE parents (id bigint PRIMARY KEY, name text)",
    "INSERT INTO parents SELECT g * 1000, 'p' || g FROM generate_series(1, 2000) g",
    "CREATE TABLE kids (id integer PRIMARY KEY, parent_id bigint, pos integer, val text)",
    "INSERT INTO kids SELECT g, (g * 7919 % 2100 + 1) * 1000, g % 5, 'v' || g FROM generate_series(1, 4000) g",
]
PARALLEL_PLAN = """
- {name: kv, from: kv, key: k}
- name: pairs
  from: pairs
  key: [a, b]
  embed: [{as: kids, from: pair_kids, on: {a: a, b: b}, order_by: n}]
- name: parents
  from: parents
  key: id
  embed: [{as: kids, from: kids, on: {parent_id: id}, order_by: [pos, val]}]
"""


class _Workers:
    """Which threads finished chunks."""

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def emit(self, event: Event) -> None:
        if isinstance(event, ChunkFinished):
            self.threads.add(threading.current_thread().name)


@pytest.fixture
def second_database(mig: Migration) -> Iterator[str]:
    name = f"{mig.database}_b"
    try:
        yield name
    finally:
        mig.client.drop_database(name)


def test_parallel_copy_in_small_chunks_equals_serial_copy(mig: Migration, second_database: str) -> None:
    mig.sql(*PARALLEL_SQL)
    serial = mig.plan(PARALLEL_PLAN, name="snap-serial", phases="snapshot: {parallel: 1, chunk_rows: 50}")
    parallel = mig.plan(
        PARALLEL_PLAN,
        name="snap-parallel",
        phases="snapshot: {parallel: 4, chunk_rows: 50}",
        database=second_database,
    )
    _, serial_events = mig.run(serial)
    workers = _Workers()
    _, parallel_events = mig.run(parallel, workers, state=mig.tmp_path / "parallel.db")

    for collection in ("kv", "pairs", "parents"):
        one = mig.raw_documents(collection)
        four = mig.raw_documents(collection, database=second_database)
        assert len(one) == len(four) and one == four, collection  # byte for byte: types, order, all
    # The copies are complete, not just equal.
    assert sorted(d["_id"] for d in mig.documents("kv")) == sorted(r[0] for r in mig.rows("SELECT k FROM kv"))
    assert len(mig.documents("pairs")) == 3000
    parents = mig.documents("parents")
    assert len(parents) == 2000
    assert (
        sum(len(p["kids"]) for p in parents)
        == mig.rows("SELECT count(*) FROM kids WHERE parent_id IN (SELECT id FROM parents)")[0][0]
    )
    # And they were really copied in chunks of at most 50 parents, by several workers.
    for events in (serial_events, parallel_events):
        chunks = events.of(ChunkFinished)
        assert len(chunks) >= 3000 // 50 + 3000 // 50 + 2000 // 50
        assert max(c.docs_written for c in chunks) == 50
    assert len(workers.threads) >= 2, workers.threads


# -- writes after the slot was created stay out of the copy ---------------------------------------

ACCOUNTS_SQL = [
    "CREATE TABLE accounts (id integer PRIMARY KEY, name text NOT NULL, balance integer NOT NULL)",
    "INSERT INTO accounts SELECT g, 'acct ' || g, g * 10 FROM generate_series(1, 600) g",
    "CREATE TABLE entries (id integer PRIMARY KEY, account_id integer NOT NULL, amount integer NOT NULL)",
    "INSERT INTO entries SELECT g, 1 + g % 600, g FROM generate_series(1, 1800) g",
]
ACCOUNTS_PLAN = """
- name: accounts
  from: accounts
  key: id
  embed: [{as: entries, from: entries, on: {account_id: id}}]
"""
FIRST_WRITES = [
    "UPDATE accounts SET balance = balance + 1000, name = 'changed' WHERE id % 10 = 0",
    "DELETE FROM accounts WHERE id % 10 = 1",
    "DELETE FROM entries WHERE account_id % 10 = 2",
    "INSERT INTO accounts SELECT g, 'new', 0 FROM generate_series(10001, 10050) g",
    "INSERT INTO entries SELECT g, 5, -1 FROM generate_series(20001, 20010) g",
    "UPDATE entries SET account_id = 3 WHERE account_id = 4",  # children move to another parent
    "UPDATE accounts SET id = id + 100000 WHERE id = 7",  # a key changes
]
LATER_WRITES = [
    "UPDATE accounts SET balance = -1",
    "DELETE FROM entries WHERE id % 2 = 0",
    "INSERT INTO accounts SELECT g, 'newer', 0 FROM generate_series(30001, 30100) g",
]


def _expected_accounts(mig: Migration) -> list[dict[str, Any]]:
    """The documents the plan should give for the source as it is now, from plain SQL."""
    entries: dict[int, list[dict[str, Any]]] = {}
    for entry_id, account_id, amount in mig.rows("SELECT id, account_id, amount FROM entries ORDER BY id"):
        entries.setdefault(account_id, []).append({"id": entry_id, "amount": amount})
    return [
        {"_id": i, "name": name, "balance": balance, "entries": entries.get(i, [])}
        for i, name, balance in mig.rows("SELECT id, name, balance FROM accounts ORDER BY id")
    ]


class _ConcurrentWriter:
    """Commits writes from another connection while the snapshot runs (sinks run in the engine)."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self.done: list[str] = []

    def _write(self, statements: list[str]) -> None:
        with psycopg.connect(self.pg_url) as conn:  # one transaction, committed on exit
            for statement in statements:
                conn.execute(statement)

    def emit(self, event: Event) -> None:
        if isinstance(event, SnapshotOpened) and "opened" not in self.done:
            self._write(FIRST_WRITES)
            self.done.append("opened")
        elif isinstance(event, ChunkFinished) and "chunk" not in self.done:
            self._write(LATER_WRITES)
            self.done.append("chunk")


def test_writes_committed_after_the_slot_was_created_stay_out_of_the_copy(mig: Migration) -> None:
    mig.sql(*ACCOUNTS_SQL)
    expected = _expected_accounts(mig)
    plan = mig.plan(ACCOUNTS_PLAN, name="snap-concurrent", phases="snapshot: {parallel: 2, chunk_rows: 100}")
    writer = _ConcurrentWriter(mig.pg_url)
    outcome, _ = mig.run(plan, writer)

    assert writer.done == ["opened", "chunk"]
    after = _expected_accounts(mig)
    assert after != expected  # the writes did land in the source
    assert typed(mig.documents("accounts")) == typed(sorted_documents(expected))
    # CDC picks up exactly there: the slot's consistent point, which the writes come after.
    assert outcome.snapshot is not None
    assert mig.slots() == [(mig.slot("snap-concurrent"), outcome.snapshot.position)]
    assert outcome.snapshot.consistent_after == outcome.snapshot.position


# -- lineage -----------------------------------------------------------------------------------------

LINEAGE_SQL = [
    "CREATE TABLE shelves (id integer PRIMARY KEY, label text)",
    "INSERT INTO shelves SELECT g, 'shelf ' || g FROM generate_series(1, 450) g",
    "CREATE TABLE books (id integer PRIMARY KEY, shelf_id integer, title text)",
    # 40 books stand on shelves 451..470, which do not exist.
    "INSERT INTO books SELECT g, 1 + g % 470, 'book ' || g FROM generate_series(1, 1300) g",
]
LINEAGE_PLAN = """
- name: shelves
  from: shelves
  key: id
  embed: [{as: books, from: books, on: {shelf_id: id}}]
"""


def _lineage_run(mig: Migration, name: str) -> tuple[Any, Collector]:
    mig.sql(*LINEAGE_SQL)
    plan = mig.plan(LINEAGE_PLAN, name=name, phases="snapshot: {parallel: 2, chunk_rows: 100}")
    return mig.run(plan)


def test_every_chunk_leaves_a_lineage_record(mig: Migration) -> None:
    outcome, events = _lineage_run(mig, "snap-lineage")
    assert outcome.snapshot is not None
    position = outcome.snapshot.position
    # The slot's consistent point, as the slot itself reports it.
    assert mig.slots() == [(mig.slot("snap-lineage"), position)]
    assert [e.position for e in events.of(SlotCreated)] == [position]

    with SQLiteStateStore(mig.state_path) as store:
        logged = [e.payload for e in store.events(outcome.run_id) if e.kind == ChunkFinished.kind]
        chunks = store.chunks(outcome.run_id, "shelves")
    # 450 rows in chunks of 100: boundaries after rows 100, 200, 300, 400, so five key ranges.
    assert len(chunks) == 5 and all(c.status == "done" for c in chunks)
    assert sorted(p["chunk_id"] for p in logged) == [c.chunk_id for c in chunks]  # one record per chunk
    by_id = {p["chunk_id"]: p for p in logged}
    assert [(by_id[c.chunk_id]["lo"], by_id[c.chunk_id]["hi"]) for c in chunks] == [
        (None, ["100"]),
        (["100"], ["200"]),
        (["200"], ["300"]),
        (["300"], ["400"]),
        (["400"], None),
    ]
    for chunk in chunks:
        record = by_id[chunk.chunk_id]
        assert record["collection"] == "shelves" and record["table"] == "public.shelves"
        assert record["position"] == position
        assert isinstance(record["seconds"], float) and record["seconds"] >= 0
        assert (record["rows_read"], record["docs_written"]) == (chunk.rows_read, chunk.docs_written)
        lo = int(record["lo"][0]) if record["lo"] else 0
        hi = int(record["hi"][0]) if record["hi"] else 450
        books = mig.rows("SELECT count(*) FROM books WHERE shelf_id > %s AND shelf_id <= %s", [lo, hi])[0][0]
        assert record["docs_written"] == hi - lo
        assert record["rows_read"] == hi - lo + books
    assert sum(p["docs_written"] for p in logged) == mig.client[mig.database]["shelves"].count_documents({})
    assert sum(p["rows_read"] for p in logged) == 450 + 1300 - 40


@pytest.mark.parametrize(
    ("rows", "parallel", "expected"),
    [
        # Exactly chunk_rows rows, one worker: one chunk, not one of every row and an empty one.
        (2000, 1, [2000]),
        # The same table with two workers: shared between them.
        (2000, 2, [1000, 1000]),
        # Shared, but no chunk below MIN_SPLIT_ROWS (1,000) but the last.
        (1500, 2, [1000, 500]),
        # Larger than chunk_rows: chunk_rows at most, the rest in the last chunk.
        (4500, 2, [2000, 2000, 500]),
    ],
)
def test_chunks_share_a_table_between_workers_and_none_is_empty(
    mig: Migration, rows: int, parallel: int, expected: list[int]
) -> None:
    mig.sql(
        "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)",
        f"INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, {rows}) g",
    )
    plan = mig.plan(
        "- {name: notes, from: notes, key: id}",
        name=f"snap-split-{rows}-{parallel}",
        phases=f"snapshot: {{parallel: {parallel}, chunk_rows: 2000}}",
    )
    outcome, _ = mig.run(plan)
    with SQLiteStateStore(mig.state_path) as store:
        chunks = store.chunks(outcome.run_id, "notes")
    assert [c.rows_read for c in chunks] == expected
    assert sorted(d["_id"] for d in mig.documents("notes")) == list(range(1, rows + 1))


# -- a finished snapshot is not copied again ---------------------------------------------------------


def test_running_again_after_a_finished_snapshot_copies_nothing(mig: Migration) -> None:
    first, _ = _lineage_run(mig, "snap-again")
    before = mig.raw_documents("shelves")
    with SQLiteStateStore(mig.state_path) as store:
        logged_before = len(store.events(first.run_id))

    second, events = mig.run(mig.tmp_path / "snap-again.yaml")

    assert second.run_id == first.run_id and second.resumed
    assert second.snapshot is None
    assert events.of(ChunkFinished) == [] and events.of(SlotCreated) == []
    with SQLiteStateStore(mig.state_path) as store:
        new = [e.kind for e in store.events(first.run_id)[logged_before:]]
    assert not [k for k in new if k.startswith("snapshot.")], new
    assert mig.raw_documents("shelves") == before
    assert len(mig.slots()) == 1  # the same slot, kept for CDC; no second one


# -- a schema we did not design for: the music store -------------------------------------------------

MUSIC = Path(__file__).resolve().parents[1] / "scenarios" / "music"


def _bson(value: Any, *, long: bool = False) -> Any:
    """A value as the conversion table says it lands in MongoDB, written out independently."""
    if value is None:
        return None
    if long:
        return Int64(value)
    if isinstance(value, Decimal):
        return Decimal128(str(value))
    if isinstance(value, datetime.datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(microsecond=aware.microsecond // 1000 * 1000)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _group(rows: list[tuple[Any, ...]], by: int, sort: Any) -> dict[Any, list[tuple[Any, ...]]]:
    groups: dict[Any, list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault(row[by], []).append(row)
    return {k: sorted(v, key=sort) for k, v in groups.items()}


def _music_expected(mig: Migration) -> dict[str, list[dict[str, Any]]]:
    q = mig.rows
    tracks = _group(
        q("SELECT album_id, track_id, track_no, name, genre, milliseconds, bytes, unit_price FROM track"),
        0,
        lambda r: (r[2], r[1]),  # order_by track_no, then the key
    )
    albums = _group(q("SELECT artist_id, album_id, title, released FROM album"), 0, lambda r: r[1])
    artists = [
        {
            "_id": artist_id,
            "name": name,
            "albums": [
                {
                    "album_id": album_id,
                    "title": title,
                    "released": _bson(released),
                    "tracks": [
                        {
                            "id": t[1],
                            "no": t[2],
                            "title": t[3],
                            "genre": t[4],
                            "ms": t[5],
                            "bytes": _bson(t[6], long=True),
                            "price": _bson(t[7]),
                        }
                        for t in tracks.get(album_id, [])
                    ],
                }
                for _, album_id, title, released in albums.get(artist_id, [])
            ],
        }
        for artist_id, name in q("SELECT artist_id, name FROM artist")
    ]
    genres = [{"_id": n, "description": d} for n, d in q("SELECT name, description FROM genre")]
    flat_tracks = [
        {
            "_id": r[0],
            "album_id": r[1],
            "track_no": r[2],
            "name": r[3],
            "genre": r[4],
            "milliseconds": r[5],
            "bytes": _bson(r[6], long=True),
            "unit_price": _bson(r[7]),
        }
        for r in q(
            "SELECT track_id, album_id, track_no, name, genre, milliseconds, bytes, unit_price FROM track"
        )
    ]
    links = q("SELECT playlist_id, track_id, position, added_at FROM playlist_track")
    in_playlist = _group(links, 0, lambda r: (r[2], r[1]))
    playlists = [
        {
            "_id": p,
            "name": name,
            "tracks": [
                {"track_id": t, "position": pos, "added_at": _bson(at)}
                for _, t, pos, at in in_playlist.get(p, [])
            ],
        }
        for p, name in q("SELECT playlist_id, name FROM playlist")
    ]
    playlist_tracks = [
        {"_id": {"playlist_id": p, "track_id": t}, "position": pos, "added_at": _bson(at)}
        for p, t, pos, at in links
    ]
    lines = _group(
        q("SELECT invoice_id, invoice_line_id, track_id, unit_price, quantity FROM invoice_line"),
        0,
        lambda r: r[1],
    )
    invoices = _group(
        q("SELECT customer_id, invoice_id, invoice_date, billing_country, total FROM invoice"),
        0,
        lambda r: (r[2], r[1]),  # order_by invoice_date, then the key
    )
    customers = [
        {
            "_id": c,
            "first_name": first,
            "last_name": last,
            "country": country,
            "support_rep": rep,
            "invoices": [
                {
                    "invoice_id": i,
                    "invoice_date": _bson(date),
                    "billing_country": billing,
                    "total": _bson(total),
                    "lines": [
                        {"invoice_line_id": li, "track_id": t, "unit_price": _bson(price), "quantity": n}
                        for _, li, t, price, n in lines.get(i, [])
                    ],
                }
                for _, i, date, billing, total in invoices.get(c, [])
            ],
        }
        for c, first, last, country, rep in q(
            "SELECT customer_id, first_name, last_name, country, support_rep FROM customer"
        )
    ]
    return {
        "artists": artists,
        "genres": genres,
        "tracks": flat_tracks,
        "playlists": playlists,
        "playlist_tracks": playlist_tracks,
        "customers": customers,
    }


def test_music_store_snapshot_matches_documents_built_from_plain_sql(mig: Migration) -> None:
    mig.sql((MUSIC / "schema.sql").read_text())
    plan_name = f"music-{uuid.uuid4().hex[:8]}"
    outcome, _ = mig.run(MUSIC / "plan.yaml", env={"MUSIC_PLAN_NAME": plan_name})

    expected = _music_expected(mig)
    assert outcome.snapshot is not None
    assert outcome.snapshot.documents == sum(len(docs) for docs in expected.values())
    for collection, want in expected.items():
        got = mig.documents(collection)
        assert len(got) == len(want), collection
        assert typed(got) == typed(sorted_documents(want)), collection
    # The data really has what the mapping has to get right.
    customers = {d["_id"]: d for d in expected["customers"]}
    assert customers["C-0500"]["invoices"] == [] and customers["C-0001"]["first_name"] == "Zoë"
    assert any(not a["albums"] for a in expected["artists"])
    nested = sum(len(album["tracks"]) for a in expected["artists"] for album in a["albums"])
    assert 3900 < nested < 4000  # every track but the singles sits two levels down
    assert any(t["bytes"] is not None and t["bytes"] > 2**31 for t in expected["tracks"])


def test_a_value_python_cannot_hold_stops_the_run_naming_table_and_rows(mig: Migration) -> None:
    """'infinity' timestamps have no BSON (nor Python) form: the run stops and says where."""
    mig.sql(
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz)",
        "INSERT INTO events VALUES (1, now()), (2, 'infinity'), (3, now())",
    )
    plan = mig.plan("  - {name: events, from: public.events, key: id}\n", name="snap-infinity")
    with pytest.raises(SourceError) as caught:
        mig.run(plan)
    message = str(caught.value)
    assert "public.events" in message and "collection events" in message
    assert "years 1 to 9999" in message  # the hint says what is allowed
