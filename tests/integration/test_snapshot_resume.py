"""Snapshot resume end to end: `migrator run --json` in a subprocess, killed, interrupted and resumed.

What a crash can do to a snapshot, proven against real PostgreSQL and the MongoDB-compatible server:

- what a resume reads: unfinished chunks are re-read at a newer point, and everything between the
  slot's point and that newer point is in the slot, ready for CDC (see that test's docstring);
- a lost slot stops the run with a clear error instead of being silently recreated;
- SIGTERM / SIGINT finish the chunks in flight, checkpoint them, exit 130, and the run resumes.

kill -9 at many moments of the snapshot, resumed after each, is proven for every source adapter by
the conformance suite (tests/integration/conformance/test_conformance_snapshot_kill.py).

The demo schema (scripts/lib/demo_data.py) and a copy of plans/demo.yaml with small chunks are used,
so there are many chunks to kill between.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from psycopg.rows import dict_row
from pymongo.database import Database
from ruamel.yaml import YAML

from migrator.adapters.postgres.lsn import Lsn
from migrator.plan.names import publication_name
from migrator.state import CheckpointRecord, SQLiteStateStore
from migrator.state.labels import SnapshotLabel
from tests.support.cli_process import MigratorRun
from tests.support.demo import customer_documents, demo_data
from tests.support.docs import run_slot

ROOT = Path(__file__).resolve().parents[2]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
CHUNK_ROWS = 200
SEED = 20_240_611
EVENT_TIMEOUT = 60.0
# `migrator run` stopped by SIGINT/SIGTERM before its end: the shell's code for an interrupt.
INTERRUPTED_EXIT = 130
# Decode what migrator wrote the way it wrote it: UUIDs as subtype 4, dates in UTC.
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD, tz_aware=True, tzinfo=UTC
)


# -- set-up ------------------------------------------------------------------------------------


@dataclass
class Migration:
    """The demo schema in a fresh database, a plan with small chunks, and a way to run it."""

    pg_url: str
    target: Database[dict[str, Any]]
    plan: Path
    state: Path
    name: str
    env: dict[str, str]
    counts: dict[str, int]
    started: list[MigratorRun] = field(default_factory=list)

    @property
    def slot(self) -> str:
        return run_slot(self.state, self.name)

    @property
    def publication(self) -> str:
        return publication_name(self.name)

    def start(self) -> MigratorRun:
        # `--until snapshot`: these tests are about the snapshot; CDC would follow changes.
        args = ["run", str(self.plan), "--until", "snapshot", "--state", str(self.state)]
        process = MigratorRun(args, self.env, self.plan.parent, EVENT_TIMEOUT)
        self.started.append(process)
        return process

    def run_to_end(self) -> MigratorRun:
        process = self.start()
        code = process.finish()
        assert code == 0, process.describe()
        return process

    @contextmanager
    def store(self) -> Iterator[SQLiteStateStore]:
        with SQLiteStateStore(self.state) as store:
            yield store

    def checkpoints(self, label: str) -> list[CheckpointRecord]:
        with self.store() as store:
            (run,) = store.runs()
            return [c for c in store.checkpoints(run.id, "snapshot") if c.label == label]

    def slot_row(self) -> tuple[str, bool] | None:
        """(confirmed_flush_lsn, active) of the plan's slot, or None when there is none."""
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def wait_slot_idle(self, timeout: float = 15.0) -> None:
        """A killed process's walsender may take a moment to notice and release the slot."""
        deadline = time.monotonic() + timeout
        while (row := self.slot_row()) is not None and row[1]:
            assert time.monotonic() < deadline, f"slot {self.slot} still active after {timeout}s"
            time.sleep(0.05)


def _write_plan(path: Path, name: str, database: str) -> None:
    yaml = YAML()  # round trip: the demo plan's comments and ${VAR} references are kept
    plan = yaml.load(DEMO_PLAN.read_text(encoding="utf-8"))
    plan.insert(1, "name", name)
    plan["target"]["database"] = database
    plan["phases"]["snapshot"] = {"parallel": 2, "chunk_rows": CHUNK_ROWS}
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(plan, f)


@pytest.fixture
def migration(
    pg_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, tmp_state_path: Path
) -> Iterator[Callable[[int], Migration]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=10_000
    )
    made: list[Migration] = []

    def make(customers: int) -> Migration:
        counts = demo_data.load_demo(pg_url, customers=customers, seed=SEED)
        name = f"resume-{uuid.uuid4().hex[:10]}"
        plan = tmp_path / f"{name}.yaml"
        _write_plan(plan, name, mongo_db_name)
        env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
        env.update(MIGRATOR_SOURCE_URL=pg_url, MIGRATOR_TARGET_URL=mongo_url)
        m = Migration(
            pg_url=pg_url,
            target=client.get_database(mongo_db_name, codec_options=CODEC),
            plan=plan,
            state=tmp_state_path,
            name=name,
            env=env,
            counts=counts,
        )
        made.append(m)
        return m

    try:
        yield make
    finally:
        for m in made:
            for process in m.started:
                process.kill_if_running()
        client.close()


# -- what the target must hold, computed from SQL ---------------------------------------------------


Shape = tuple[tuple[int, ...], bool, tuple[tuple[int, tuple[int, ...]], ...]]


def _source_shapes(pg_url: str) -> dict[int, Shape]:
    """customer id -> (address ids, has a profile, ((order id, item line_nos), ...)), in plan order."""
    with psycopg.connect(pg_url) as conn:
        items: dict[int, tuple[int, ...]] = {
            order_id: tuple(lines)
            for order_id, lines in conn.execute(
                "SELECT order_id, array_agg(line_no ORDER BY line_no) FROM order_items GROUP BY order_id"
            )
        }
        rows = conn.execute(
            """
            SELECT c.id,
                   coalesce((SELECT array_agg(a.id ORDER BY a.id) FROM addresses a
                             WHERE a.customer_id = c.id), '{}'),
                   EXISTS (SELECT 1 FROM customer_profiles p WHERE p.customer_id = c.id),
                   coalesce((SELECT array_agg(o.id ORDER BY o.id) FROM orders o
                             WHERE o.customer_id = c.id), '{}')
            FROM customers c
            """
        ).fetchall()
    return {
        cid: (tuple(addresses), has_profile, tuple((o, items.get(o, ())) for o in orders))
        for cid, addresses, has_profile, orders in rows
    }


def _target_shapes(target: Database[dict[str, Any]]) -> dict[int, Shape]:
    shapes: dict[int, Shape] = {}
    projection = {"addresses.id": 1, "profile": 1, "orders.id": 1, "orders.items.line_no": 1}
    for doc in target.customers.find({}, projection):
        assert doc["_id"] not in shapes, f"duplicate _id {doc['_id']}"
        shapes[doc["_id"]] = (
            tuple(a["id"] for a in doc["addresses"]),
            doc["profile"] is not None,
            tuple((o["id"], tuple(i["line_no"] for i in o["items"])) for o in doc["orders"]),
        )
    return shapes


def _bson(value: Any) -> Any:
    """A source value as BSON holds it, per docs/plan.md's conversion table (independently of migrator)."""
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, list):
        return [_bson(v) for v in value]
    if isinstance(value, dict):
        return {k: _bson(v) for k, v in value.items()}
    return value


def _element(row: dict[str, Any], *hidden: str) -> dict[str, Any]:
    return {k: _bson(v) for k, v in row.items() if k not in hidden}


def _expected_customers(pg_url: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Whole customer documents per plans/demo.yaml: password_hash excluded, `on` columns left out."""
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        customers = conn.execute("SELECT * FROM customers WHERE id = ANY(%s)", (ids,)).fetchall()
        addresses = conn.execute(
            "SELECT * FROM addresses WHERE customer_id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
        profiles = conn.execute(
            "SELECT * FROM customer_profiles WHERE customer_id = ANY(%s)", (ids,)
        ).fetchall()
        orders = conn.execute(
            "SELECT * FROM orders WHERE customer_id = ANY(%s) ORDER BY id", (ids,)
        ).fetchall()
        # real is widened to double: read it widened in the server, not as its shortest decimal text.
        items = conn.execute(
            "SELECT order_id, line_no, product_id, quantity, unit_price, discount::float8 AS discount"
            " FROM order_items WHERE order_id = ANY(%s) ORDER BY order_id, line_no",
            ([o["id"] for o in orders],),
        ).fetchall()
    return customer_documents(customers, addresses, profiles, orders, items, _element)


def _expected_products(pg_url: str) -> dict[int, dict[str, Any]]:
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM products").fetchall()
    renamed = {"name": "title", "weight_kg": "weight"}
    return {
        r["id"]: {"_id": r["id"], **{renamed.get(k, k): _bson(v) for k, v in r.items() if k != "id"}}
        for r in rows
    }


def _assert_target_equals_source(m: Migration, sample: int = 60) -> None:
    expected = _source_shapes(m.pg_url)
    actual = _target_shapes(m.target)
    assert m.target.customers.count_documents({}) == len(expected)
    missing, extra = expected.keys() - actual.keys(), actual.keys() - expected.keys()
    assert not missing and not extra, f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
    wrong = [cid for cid in expected if expected[cid] != actual[cid]]
    assert not wrong, f"{len(wrong)} documents differ in shape, e.g. {wrong[:5]}"
    # Every field on a sample: the pinned rows (all values, all NULLs, the sparse customer), the
    # last one and a seeded random draw.
    ids = sorted(expected)
    picked = sorted({*ids[:3], ids[-1], *random.Random(SEED).sample(ids, min(sample, len(ids)))})
    want = _expected_customers(m.pg_url, picked)
    got = {d["_id"]: d for d in m.target.customers.find({"_id": {"$in": picked}})}
    for cid in picked:
        assert got[cid] == want[cid], f"customer {cid} differs"
    products = _expected_products(m.pg_url)
    got_products = {d["_id"]: d for d in m.target.products.find()}
    assert got_products == products


def _assert_chunks_complete(m: Migration) -> None:
    with m.store() as store:
        (run,) = store.runs()
        (planned,) = [c for c in store.checkpoints(run.id, "snapshot") if c.label == SnapshotLabel.PLANNED]
        chunks = store.chunks(run.id)
    statuses = Counter(c.status for c in chunks)
    assert statuses == {"done": len(chunks)}, statuses
    assert Counter(c.table for c in chunks) == planned.detail["chunks"]
    # Each chunk's last attempt read and wrote exactly its key range: no row twice, none missing.
    tree = ("customers", "addresses", "customer_profiles", "orders", "order_items")
    rows = {
        "customers": sum(m.counts[t] for t in tree) + _new_rows(m),
        "products": m.counts["products"],
    }
    for collection, total in rows.items():
        mine = [c for c in chunks if c.table == collection]
        assert sum(c.rows_read for c in mine) == total, collection
        assert sum(c.docs_written for c in mine) == m.target[collection].count_documents({})


def _new_rows(m: Migration) -> int:
    """Rows added or removed since load (only the re-read test changes the source)."""
    tree = ("customers", "addresses", "customer_profiles", "orders", "order_items")
    with psycopg.connect(m.pg_url) as conn:
        row = conn.execute("SELECT " + " + ".join(f"(SELECT count(*) FROM {t})" for t in tree)).fetchone()
    assert row is not None
    return int(row[0]) - sum(m.counts[t] for t in tree)


# -- 1. what a resume reads, and why it converges --------------------------------------------------


def _decode_changes(rows: list[tuple[str, bytes]]) -> tuple[Counter[tuple[str, str]], int, list[int]]:
    """pgoutput v1 messages -> ((table, 'I'|'U'|'D') counts, commits, LSNs of the data changes).

    The first byte is the message type; R (relation) maps the Int32 relation id that starts every
    I/U/D message to its schema and name.
    """
    relations: dict[int, str] = {}
    changes: Counter[tuple[str, str]] = Counter()
    commits = 0
    positions: list[int] = []
    for lsn, data in rows:
        kind = chr(data[0])
        if kind == "R":
            (relid,) = struct.unpack("!I", data[1:5])
            namespace, relname, _ = data[5:].split(b"\0", 2)
            relations[relid] = f"{namespace.decode()}.{relname.decode()}"
        elif kind in "IUD":
            (relid,) = struct.unpack("!I", data[1:5])
            changes[(relations[relid], kind)] += 1
            positions.append(Lsn.parse(lsn).value)
        elif kind == "C":
            commits += 1
        elif kind == "T":
            raise AssertionError("unexpected TRUNCATE in the slot")
    return changes, commits, positions


def test_resume_rereads_at_a_newer_point_and_the_slot_holds_the_gap(
    migration: Callable[[int], Migration],
) -> None:
    """A resume reads unfinished chunks at T2 > T1, and every change in (T1, T2] waits in the slot.

    Proves: after a kill, changes made to the source (renames in copied and uncopied chunks, an
    address update in a copied chunk, a customer deleted with its children from an uncopied chunk,
    a new customer with an address, an order and an item) show up exactly where the docstring of
    migrator/phases/snapshot.py says: copied chunks keep the values of T1 (the slot's consistent
    point), uncopied chunks show those of T2 (the 'reread' checkpoint, > T1), and the run reports
    T2 as `consistent_after`. Then, by peeking (never consuming) the slot with pgoutput, that every
    one of those changes, and nothing else, is in the slot between T1 and T2, per table and kind.

    Leaves to CDC (a later issue): replaying those changes from T1 onto the target and showing
    that the documents converge (the copied chunks' stale names and city get fixed; the
    re-read ones are rewritten to the same values, idempotently), and that the target equals the
    source once CDC has passed T2. A document that a killed attempt wrote for a customer deleted
    before T2 would also wait for CDC's delete; this test deletes from a chunk no attempt had
    started, so the snapshot alone leaves it absent.
    """
    m = migration(3000)
    p = m.start()
    p.wait_for("snapshot.chunk_finished", nth=3)
    p.kill9()
    (slot_cp,) = m.checkpoints(SnapshotLabel.SLOT)
    with m.store() as store:
        (run,) = store.runs()
        chunks = store.chunks(run.id, "customers")
    done = [c for c in chunks if c.status == "done"]
    pending = [c for c in chunks if c.status == "pending"]
    assert done and len(pending) >= 3, Counter(c.status for c in chunks)
    assert pending[-1].hi is None, "the open-ended last chunk (where new ids go) must not be copied yet"

    def bounds(chunk: Any) -> tuple[int, int]:
        return (int(chunk.lo[0]) if chunk.lo else 0, int(chunk.hi[0]) if chunk.hi else 2**62)

    with psycopg.connect(m.pg_url, autocommit=True) as conn:

        def ids_in(chunk: Any, condition: str = "TRUE", limit: int = 3) -> list[int]:
            lo, hi = bounds(chunk)
            return [
                int(r[0])
                for r in conn.execute(
                    f"SELECT id FROM customers c WHERE id > %s AND id <= %s AND {condition}"
                    " ORDER BY id LIMIT %s",
                    (lo, hi, limit),
                )
            ]

        copied = ids_in(done[0])
        uncopied = ids_in(pending[0])
        has_all = (
            "EXISTS (SELECT 1 FROM addresses a WHERE a.customer_id = c.id)"
            " AND EXISTS (SELECT 1 FROM customer_profiles p WHERE p.customer_id = c.id)"
            " AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"
        )
        (deleted,) = ids_in(pending[1], has_all, limit=1)
        names = dict(
            conn.execute("SELECT id, full_name FROM customers WHERE id = ANY(%s)", (copied + uncopied,))
        )
        address_id, address_city = conn.execute(
            "SELECT id, city FROM addresses WHERE customer_id = ANY(%s) ORDER BY id LIMIT 1", (copied,)
        ).fetchone() or (None, None)
        assert address_id is not None
        n_addresses, n_profiles, n_orders, n_items = conn.execute(
            "SELECT (SELECT count(*) FROM addresses WHERE customer_id = %(c)s),"
            " (SELECT count(*) FROM customer_profiles WHERE customer_id = %(c)s),"
            " (SELECT count(*) FROM orders WHERE customer_id = %(c)s),"
            " (SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id"
            "  WHERE o.customer_id = %(c)s)",
            {"c": deleted},
        ).fetchone() or (0, 0, 0, 0)

        # Five transactions, all after T1 (the slot) and before the resume.
        rename = "UPDATE customers SET full_name = full_name || ' (renamed)' WHERE id = ANY(%s)"
        conn.execute(rename, (copied,))
        conn.execute(rename, (uncopied,))
        conn.execute("UPDATE addresses SET city = 'Nouvelle-Ville' WHERE id = %s", (address_id,))
        with conn.transaction():
            conn.execute("DELETE FROM orders WHERE customer_id = %s", (deleted,))  # items cascade
            conn.execute("DELETE FROM customers WHERE id = %s", (deleted,))  # address, profile cascade
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO customers (email, full_name, password_hash, external_id)"
                " VALUES ('nouveau.client@example.com', 'Nouveau Client 新', 'x', gen_random_uuid())"
                " RETURNING id"
            ).fetchone()
            assert row is not None
            new_id = int(row[0])
            conn.execute(
                "INSERT INTO addresses (customer_id, kind, line1, city, country)"
                " VALUES (%s, 'home', '1 Rue Neuve', 'Lyon', 'FR')",
                (new_id,),
            )
            order = conn.execute(
                "INSERT INTO orders (customer_id, status, placed_at, total, currency)"
                " VALUES (%s, 'paid', now(), 9.99, 'EUR') RETURNING id",
                (new_id,),
            ).fetchone()
            assert order is not None
            conn.execute(
                "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)"
                " VALUES (%s, 1, 1, 1, 9.99)",
                (order[0],),
            )
    assert new_id > bounds(pending[-1])[0]
    # A killed attempt may leave documents of a chunk it never recorded as done: plant one, as of
    # T1, for a renamed customer of an uncopied chunk. The re-read must replace it, not skip it.
    stale = uncopied[0]
    m.target.customers.insert_one({"_id": stale, "full_name": names[stale], "left_by": "a killed attempt"})

    resumed = m.run_to_end()
    opened = resumed.wait_for("snapshot.opened")
    (reread,) = m.checkpoints(SnapshotLabel.REREAD)
    t1, t2 = Lsn.parse(slot_cp.position).value, Lsn.parse(reread.position).value
    assert t2 > t1
    assert (opened["position"], opened["reread"]) == (reread.position, True)
    assert resumed.result()["snapshot"]["consistent_after"] == reread.position
    assert resumed.result()["snapshot"]["position"] == slot_cp.position

    # Copied chunks hold T1, uncopied ones T2.
    docs = {d["_id"]: d for d in m.target.customers.find({"_id": {"$in": [*copied, *uncopied]}})}
    assert {cid: docs[cid]["full_name"] for cid in copied} == {cid: names[cid] for cid in copied}
    assert {cid: docs[cid]["full_name"] for cid in uncopied} == {
        cid: f"{names[cid]} (renamed)" for cid in uncopied
    }
    assert docs[stale] == _expected_customers(m.pg_url, [stale])[stale]
    (rewritten,) = [
        e
        for e in resumed.events
        if e["event"] == "snapshot.chunk_finished"
        and e["collection"] == "customers"
        and e["chunk_id"] == pending[0].chunk_id
    ]
    assert rewritten["replaced"] == 1
    owner = m.target.customers.find_one({"addresses.id": address_id}, {"addresses": 1})
    assert owner is not None
    assert [a["city"] for a in owner["addresses"] if a["id"] == address_id] == [address_city]
    assert m.target.customers.find_one({"_id": deleted}) is None
    new_doc = m.target.customers.find_one({"_id": new_id})
    assert new_doc is not None and new_doc["full_name"] == "Nouveau Client 新"
    assert [len(new_doc["addresses"]), len(new_doc["orders"]), len(new_doc["orders"][0]["items"])] == [
        1,
        1,
        1,
    ]
    # Shapes ignore names and cities, so apart from those the target equals the source at T2.
    assert _target_shapes(m.target) == _source_shapes(m.pg_url)
    _assert_chunks_complete(m)

    # The gap (T1, T2] is in the slot: peek (never get: invariant 4) with pgoutput, binary.
    m.wait_slot_idle()
    with psycopg.connect(m.pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes("
            "%s, NULL, NULL, 'proto_version', '1', 'publication_names', %s)",
            (m.slot, m.publication),
        ).fetchall()
    changes, commits, positions = _decode_changes([(str(lsn), bytes(data)) for lsn, data in rows])
    assert commits == 5
    assert positions and all(t1 < pos <= t2 for pos in positions)
    assert changes == Counter(
        {
            ("public.customers", "U"): len(copied) + len(uncopied),
            ("public.customers", "D"): 1,
            ("public.customers", "I"): 1,
            ("public.addresses", "U"): 1,
            ("public.addresses", "D"): n_addresses,
            ("public.addresses", "I"): 1,
            ("public.customer_profiles", "D"): n_profiles,
            ("public.orders", "D"): n_orders,
            ("public.orders", "I"): 1,
            ("public.order_items", "D"): n_items,
            ("public.order_items", "I"): 1,
        }
    )
    # Peeking consumed nothing: CDC will start at T1 and see all of it.
    assert m.slot_row() == (slot_cp.position, False)


# -- 2. a lost slot ---------------------------------------------------------------------------


def test_lost_slot_stops_the_run_and_is_never_recreated(migration: Callable[[int], Migration]) -> None:
    m = migration(1500)
    p = m.start()
    p.wait_for("snapshot.chunk_finished", nth=2)
    p.kill9()
    m.wait_slot_idle()
    with psycopg.connect(m.pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (m.slot,))

    for _ in range(2):  # and again: a failed resume must not have "repaired" anything
        again = m.start()
        assert again.finish() == 3, again.describe()  # operational (docs/json.md)
        error = again.error()
        assert error["error"] == "TerminalError"
        assert m.slot in error["message"] and "no longer exists" in error["message"]
        assert "new snapshot is needed" in error["message"]
        assert "rollback" in error["hint"]
        assert m.slot_row() is None, "the lost slot was recreated"
        assert again.count("snapshot.chunk_finished") == 0

    with m.store() as store:
        (run,) = store.runs()
        labels = Counter(c.label for c in store.checkpoints(run.id, "snapshot"))
        phases = {ph.name: ph.status for ph in store.phases(run.id)}
    assert run.status == "active"  # still there for `migrator rollback`
    assert (
        labels[SnapshotLabel.SLOT] == 1
        and labels[SnapshotLabel.REREAD] == 0
        and labels[SnapshotLabel.DONE] == 0
    ), labels
    assert phases == {"snapshot": "failed"}


# -- 3. SIGTERM / SIGINT --------------------------------------------------------------------------


def test_signal_finishes_chunks_in_flight_then_resumes(migration: Callable[[int], Migration]) -> None:
    # SIGTERM (what a service manager sends). SIGINT has the same handler (migrator/cli/signals.py
    # installs one for both), and the next test sends it: the first one starts the same stop.
    m = migration(3000)
    p = m.start()
    p.wait_for("snapshot.chunk_finished", nth=3)
    p.signal(signal.SIGTERM)
    assert p.finish() == INTERRUPTED_EXIT, p.describe()
    assert p.result()["interrupted"] is True
    assert p.count("phase.finished") == 0

    with m.store() as store:
        (run,) = store.runs()
        chunks = store.chunks(run.id)
        labels = Counter(c.label for c in store.checkpoints(run.id, "snapshot"))
        phases = {ph.name: ph.status for ph in store.phases(run.id)}
    statuses = Counter(c.status for c in chunks)
    assert "running" not in statuses, statuses  # the chunks in flight were finished and checkpointed
    assert statuses["done"] == p.count("snapshot.chunk_finished") >= 3
    assert statuses["pending"] > 0, "stopped after the copy ended: nothing left to resume"
    assert labels[SnapshotLabel.DONE] == 0 and phases == {"snapshot": "running"}
    # Finished chunks are in the target; the rest is not yet.
    copied = sum(c.docs_written for c in chunks if c.status == "done")
    assert m.target.customers.count_documents({}) + m.target.products.count_documents({}) == copied

    resumed = m.run_to_end()
    assert resumed.result()["resumed"] is True
    # Only the chunks left pending were copied by the resume.
    assert resumed.count("snapshot.chunk_finished") == statuses["pending"]
    _assert_chunks_complete(m)
    _assert_target_equals_source(m, sample=20)


def test_a_second_signal_stops_at_once_and_the_run_resumes(migration: Callable[[int], Migration]) -> None:
    """The first SIGINT finishes the chunks in flight; a second one must not wait for them (it
    used to, for as long as a chunk took), and what it leaves unfinished is redone by the next run."""
    m = migration(3000)
    # One chunk of every customer, so that one is in flight for a while.
    m.plan.write_text(m.plan.read_text().replace(f"chunk_rows: {CHUNK_ROWS}", "chunk_rows: 3000"))
    m.plan.write_text(m.plan.read_text().replace("parallel: 2", "parallel: 1"))
    p = m.start()
    p.wait_for("snapshot.rows")  # the chunk is being copied
    p.signal(signal.SIGINT)
    # Signals sent together may arrive as one: send the second once the first was taken.
    deadline = time.monotonic() + EVENT_TIMEOUT
    while "stopping: finishing the work in flight" not in p.stderr:
        assert time.monotonic() < deadline and p.proc.poll() is None, p.describe()
        time.sleep(0.01)
    p.signal(signal.SIGINT)
    assert p.finish() == INTERRUPTED_EXIT, p.describe()
    assert "stopped at once" in p.stderr, p.describe()
    with m.store() as store:
        (run,) = store.runs()
        statuses = Counter(c.status for c in store.chunks(run.id))
    # The chunks in flight were abandoned, not finished.
    assert statuses["running"] > 0, statuses

    resumed = m.run_to_end()
    assert resumed.result()["resumed"] is True
    _assert_chunks_complete(m)
    _assert_target_equals_source(m, sample=20)
