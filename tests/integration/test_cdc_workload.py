"""CDC acceptance: a randomized live workload, `migrator run` killed with SIGKILL again and again, and
in the end a target equal to the source.

The workload (tests/support/workload.py) commits transactions of every shape the demo schema allows
(inserts, updates, deletes and key changes at every level of the customer document, children moving
between parents, profiles coming and going, TOASTed values left unchanged by later updates, rolled
back transactions and savepoints, and once a large transaction of 50k row changes) while
`migrator run PLAN --json` follows it: first through the snapshot, then CDC. The process is killed
with SIGKILL at seeded random moments, in the snapshot and in CDC, and started again each time. Then
the workload stops, `migrator run --until caught-up` finishes, and every customer and product
document must equal the document computed from the source's rows by this test itself, from SQL,
independently of migrator's mapping code: the same values with the same BSON types (Int64 for
bigint, Decimal128 for numeric, dates truncated to milliseconds, UUID subtype 4), arrays in the
plan's order, no element lost or duplicated.

The same test runs twice: with the replication stream (`phases.cdc.mode: stream`, the default), and
with SQL polling (`mode: poll`: pg_logical_slot_peek_binary_changes, then pg_replication_slot_advance
once a batch and its checkpoint are on the target). The poll variant is smaller (a 20k-row large
transaction, fewer kills) and adds kills at the moment that poll mode has of its own: after a batch
and its checkpoint are on the target, before the slot is advanced past them. That window is
microseconds wide, so the test widens it: a sitecustomize hook (ADVANCE_HOOK) in the processes it
starts holds the advance while a gate file exists and says so on stdout; the test checks that the
target holds the checkpoint and the slot does not, and kills the process there. The next process
starts with the slot behind the target's checkpoint, and must replay harmlessly.

Seeds: MIGRATOR_TEST_WORKLOAD_SEED (the workload) and MIGRATOR_TEST_KILL_SEED (the kill moments).
MIGRATOR_TEST_BIG_TXN_ROWS sets the size of the large transaction (default 50000, streamed by the
server because the stream variant's database has logical_decoding_work_mem at 64kB; 0 leaves that
step out, for a quicker run while debugging); MIGRATOR_TEST_POLL_BIG_TXN_ROWS the poll variant's
(default 20000).
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from psycopg import sql
from pymongo.database import Database
from ruamel.yaml import YAML

from migrator import api
from migrator.adapters.postgres.lsn import Lsn
from migrator.state import SQLiteStateStore
from migrator.state.labels import SnapshotLabel
from tests.support.cli_process import MigratorRun
from tests.support.demo import customer_documents, demo_data
from tests.support.docs import run_slot, typed
from tests.support.servers import ExternalServer, MongoServer
from tests.support.workload import Workload, prepare_source

ROOT = Path(__file__).resolve().parents[2]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
SEED = 20_250_301
WORKLOAD_SEED = int(os.environ.get("MIGRATOR_TEST_WORKLOAD_SEED", SEED))
KILL_SEED = int(os.environ.get("MIGRATOR_TEST_KILL_SEED", SEED + 1))
BIG_TXN_ROWS = int(os.environ.get("MIGRATOR_TEST_BIG_TXN_ROWS", 50_000))
# Stream mode's database decodes with logical_decoding_work_mem at its minimum (as PostgreSQL's own
# streaming tests do): the large transaction is streamed at a size the suite can afford, and so is
# any workload transaction that writes large values.
STREAM_WORK_MEM = "64kB"
POLL_BIG_TXN_ROWS = int(os.environ.get("MIGRATOR_TEST_POLL_BIG_TXN_ROWS", 20_000))
POLL_CHANGES = 2_000  # the poll variant's phases.cdc.poll_changes: its large transaction is 10 polls' worth
CUSTOMERS = 1_500
PACE = 0.06  # mean pause between the workload's transactions, in seconds
EVENT_TIMEOUT = 90.0
FINAL_TIMEOUT = 900.0
CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD, tz_aware=True, tzinfo=UTC
)
INT32 = range(-(2**31), 2**31)


# -- set-up ----------------------------------------------------------------------------------------


def _write_plan(
    path: Path, name: str, database: str, *, parallel: int = 2, chunk_rows: int = 300, mode: str = "stream"
) -> None:
    yaml = YAML()  # round trip: the demo plan's comments and ${VAR} references are kept
    plan = yaml.load(DEMO_PLAN.read_text(encoding="utf-8"))
    plan.insert(1, "name", name)
    plan["target"]["database"] = database
    plan["phases"]["snapshot"] = {"parallel": parallel, "chunk_rows": chunk_rows}
    plan["phases"]["cdc"] = {"heartbeat_interval": "1s", "max_lag": "1s"}
    if mode == "poll":
        plan["phases"]["cdc"].update(mode="poll", poll_changes=POLL_CHANGES)
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(plan, f)


# sitecustomize.py of the poll variant's `migrator run` processes (on their PYTHONPATH).
ADVANCE_HOOK = r'''"""Test hook of tests/integration/test_cdc_workload.py. While the gate file exists, a
PollingStream's slot advance to a position at or past the one the file names (empty: any) waits
until the file is removed or the process killed: by then the batch and its checkpoint are on the
target. A JSON line on stdout names the position held."""

import json
import os
import sys
import time

_GATE = os.environ.get("MIGRATOR_TEST_ADVANCE_GATE")

if _GATE:
    from migrator.adapters.postgres import replication
    from migrator.adapters.postgres.lsn import Lsn

    _acknowledge = replication.PollingStream.acknowledge

    def _threshold():
        try:
            with open(_GATE, encoding="utf-8") as f:
                return Lsn.parse(f.read().strip() or "0/0").value
        except FileNotFoundError:
            return None

    def acknowledge(self, lsn):
        threshold = _threshold()
        if threshold is not None and lsn >= threshold:
            sys.stdout.write(json.dumps({"event": "test.advance_held", "position": str(Lsn(lsn))}) + "\n")
            sys.stdout.flush()
            while os.path.exists(_GATE):
                time.sleep(0.05)
        _acknowledge(self, lsn)

    replication.PollingStream.acknowledge = acknowledge
'''


@dataclass
class Setup:
    pg_url: str
    target: Database[dict[str, Any]]
    plan: Path
    state: Path
    name: str
    env: dict[str, str]
    own_server: bool  # the test suite's throwaway MongoDB-compatible server, used by nobody else now
    gate: Path | None = None  # poll mode: the gate file of ADVANCE_HOOK
    processes: list[MigratorRun] = field(default_factory=list)

    def kill9(self, process: MigratorRun) -> None:
        """SIGKILL `process`. A kill inside a target transaction leaves it open, holding the documents
        it wrote: MongoDB aborts it after transactionLifetimeLimitSeconds (60 s), and until then the
        next process's first transaction on those documents waits (WriteConflict, retried). On the
        throwaway server, abort it at once (killAllSessions) so that each restart does not wait a
        minute; the final catch-up of the large transaction gets no such help."""
        process.kill9()
        if self.own_server:
            self.target.client.admin.command({"killAllSessions": []})

    def start(self, until: str | None = None) -> MigratorRun:
        args = ["run", str(self.plan), "--state", str(self.state)]
        if until is not None:
            args += ["--until", until]
        process = MigratorRun(args, self.env, self.plan.parent, EVENT_TIMEOUT)
        self.processes.append(process)
        return process

    def slot(self) -> tuple[str, bool] | None:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = %s",
                (run_slot(self.state, self.name),),
            ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def slot_stats(self) -> dict[str, int]:
        """pg_stat_replication_slots: what logical decoding did for the slot (streamed, spilled)."""
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT stream_txns, stream_count, spill_txns, total_txns FROM pg_stat_replication_slots"
                " WHERE slot_name = %s",
                (run_slot(self.state, self.name),),
            ).fetchone()
        keys = ("stream_txns", "stream_count", "spill_txns", "total_txns")
        return dict(zip(keys, (int(v or 0) for v in row), strict=True)) if row else {}


@pytest.fixture
def setup(
    pg_url: str,
    mongo_url: str,
    mongo_db_name: str,
    mongo_server: MongoServer | ExternalServer,
    tmp_path: Path,
    tmp_state_path: Path,
) -> Iterator[Any]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=10_000
    )
    made: list[Setup] = []

    def make(customers: int, mode: str = "stream") -> Setup:
        demo_data.load_demo(pg_url, customers=customers, seed=SEED)
        prepare_source(pg_url)
        if mode == "stream":
            with psycopg.connect(pg_url, autocommit=True) as conn:
                database = conn.info.dbname
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET logical_decoding_work_mem = {}").format(
                        sql.Identifier(database), sql.Literal(STREAM_WORK_MEM)
                    )
                )
        name = f"cdcwl-{uuid.uuid4().hex[:10]}"
        plan = tmp_path / f"{name}.yaml"
        _write_plan(plan, name, mongo_db_name, mode=mode)
        env = {k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}
        env.update(MIGRATOR_SOURCE_URL=pg_url, MIGRATOR_TARGET_URL=mongo_url)
        gate = None
        if mode == "poll":
            hook = tmp_path / "hook"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(ADVANCE_HOOK, encoding="utf-8")
            gate = tmp_path / "advance.gate"
            path = [str(hook), *filter(None, [env.get("PYTHONPATH")])]
            env.update(PYTHONPATH=os.pathsep.join(path), MIGRATOR_TEST_ADVANCE_GATE=str(gate))
        s = Setup(
            pg_url=pg_url,
            target=client.get_database(mongo_db_name, codec_options=CODEC),
            plan=plan,
            state=tmp_state_path,
            name=name,
            env=env,
            own_server=not isinstance(mongo_server, ExternalServer),
            gate=gate,
        )
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            for process in s.processes:
                process.kill_if_running()
        if made and not isinstance(mongo_server, ExternalServer):
            # A process killed inside a target transaction leaves it open. MongoDB aborts it after
            # transactionLifetimeLimitSeconds (60 s) and dropDatabase waits for that; SecantusDB
            # reaps only when another transaction statement comes, and its dropDatabase spins on
            # the open transaction's document forever. killAllSessions (a MongoDB command) aborts
            # them now; only on the test's own server, which no other test uses at this moment.
            client.admin.command({"killAllSessions": []})
        client.close()


# -- the documents the source's rows make, computed here from SQL ------------------------------------

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
    """A column value as the README's conversion table says BSON holds it."""
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


# -- the test --------------------------------------------------------------------------------------


@dataclass
class Kill:
    phase: str  # 'snapshot' or 'cdc': where the process was when killed
    after_s: float  # since the process started
    applied: str | None = None  # the last position it reported durable
    unadvanced: bool = False  # poll mode: killed with a batch and its checkpoint applied, the slot behind


def _kill_at_random(
    s: Setup, rng: random.Random, kills: list[Kill], delay: tuple[float, float]
) -> MigratorRun:
    """Start `migrator run` (following changes), let CDC run for a random delay, SIGKILL it."""
    p = s.start()
    p.wait_for("phase.started", phase="cdc")
    p.run_for(rng.uniform(*delay))
    s.kill9(p)
    positions = [e["position"] for e in p.events if e["event"] == "cdc.batch_applied"]
    kills.append(Kill("cdc", time.monotonic() - p.started, positions[-1] if positions else None))
    return p


def _kill_before_advance(
    s: Setup, rng: random.Random, kills: list[Kill], delay: tuple[float, float], at_or_past: str = ""
) -> str:
    """Poll mode: start `migrator run`, let CDC run for a random delay, then hold its next slot
    advance (to `at_or_past` or further) with ADVANCE_HOOK's gate. There the batch and its
    checkpoint are on the target and the slot is behind them: SIGKILL it. Returns the position."""
    assert s.gate is not None
    p = s.start()
    p.wait_for("phase.started", phase="cdc")
    p.run_for(rng.uniform(*delay))
    s.gate.write_text(at_or_past, encoding="utf-8")
    try:
        # (Seconds as a rule; about 20 s when the held batch ends the 20k-row transaction. Never:
        # the hook no longer fits PollingStream, and the process's stderr says why.)
        p.wait_for("test.advance_held", timeout=180)
        held = next(e["position"] for e in reversed(p.events) if e["event"] == "test.advance_held")
        checkpoint = s.target["_migrator"].find_one({"_id": f"cdc:{s.name}"})
        slot = s.slot()
        assert checkpoint is not None and checkpoint["position_text"] == held, (checkpoint, held)
        assert slot is not None and Lsn.parse(slot[0]) < Lsn.parse(held), (slot, held)
        s.kill9(p)
    finally:
        s.gate.unlink(missing_ok=True)
    kills.append(Kill("cdc", time.monotonic() - p.started, held, unadvanced=True))
    return held


def _catch_up(s: Setup) -> dict[str, Any]:
    """`migrator run --until caught-up` to its end: exit 0, caught up."""
    final = s.start(until="caught-up")
    code = final.finish(FINAL_TIMEOUT)
    assert code == 0, final.describe()
    result = final.result()
    assert result["stopped_after"] == "caught-up" and result["cdc"]["caught_up"] is True, result
    print(f"caught up in {time.monotonic() - final.started:.1f}s: {result['cdc']}")
    return result


def _assert_checkpoints(s: Setup, result: dict[str, Any]) -> None:
    """The checkpoint beside the data is the position reported, and the slot was acknowledged."""
    checkpoint = s.target["_migrator"].find_one({"_id": f"cdc:{s.name}"})
    assert checkpoint is not None and checkpoint["position_text"] == result["cdc"]["position"]
    with SQLiteStateStore(s.state) as store:
        (run,) = store.runs()
        (start,) = [c for c in store.checkpoints(run.id, "snapshot") if c.label == SnapshotLabel.SLOT]
    slot = s.slot()
    # (The slot may be acknowledged past the last applied commit: WAL with nothing to apply.)
    assert slot is not None and Lsn.parse(start.position) < Lsn.parse(slot[0]), (start.position, slot)


@dataclass(frozen=True)
class Variant:
    mode: str  # phases.cdc.mode
    big_txn_rows: int  # row changes of the large transaction (0: none)
    kills_in_snapshot: int
    kills_in_cdc: int  # before the large transaction; kills at the large transaction come on top
    kills_before_advance: int  # poll mode: how many of kills_in_cdc wait for a held slot advance
    min_kills: int  # in all


STREAM = Variant(
    "stream", BIG_TXN_ROWS, kills_in_snapshot=2, kills_in_cdc=8, kills_before_advance=0, min_kills=10
)
POLL = Variant(
    "poll", POLL_BIG_TXN_ROWS, kills_in_snapshot=1, kills_in_cdc=5, kills_before_advance=3, min_kills=5
)


@pytest.mark.parametrize("variant", [STREAM, POLL], ids=lambda v: v.mode)
def test_cdc_follows_a_random_workload_through_repeated_kill_9(setup: Any, variant: Variant) -> None:
    big_rows = variant.big_txn_rows
    print(
        f"{variant.mode} mode: workload seed {WORKLOAD_SEED}, kill seed {KILL_SEED}, large transaction "
        f"{big_rows} rows"
    )
    rng = random.Random(KILL_SEED)
    s: Setup = setup(CUSTOMERS, variant.mode)
    workload = Workload(s.pg_url, WORKLOAD_SEED, max_transactions=3_000, max_seconds=180, pace=PACE)
    workload.start()
    time.sleep(1.0)  # changes before the slot exists too
    kills: list[Kill] = []
    started = time.monotonic()

    # 1. Kills during the snapshot: once the copy has begun, after a short random delay.
    for _ in range(variant.kills_in_snapshot):
        p = s.start()
        p.wait_for("snapshot.table_planned")
        p.run_for(rng.uniform(0.0, 0.4))
        in_snapshot = not p.seen("phase.started", phase="cdc")
        s.kill9(p)
        kills.append(Kill("snapshot" if in_snapshot else "cdc", time.monotonic() - p.started))
        assert not workload.failed, workload.error

    # 2. Kills during CDC, at seeded random delays after it starts, while the workload goes on; in
    # poll mode, some of them at the first slot advance after the delay.
    before_advance = set(rng.sample(range(variant.kills_in_cdc), variant.kills_before_advance))
    for i in range(variant.kills_in_cdc):
        if i in before_advance:
            _kill_before_advance(s, rng, kills, (0.5, 4.0))
        else:
            _kill_at_random(s, rng, kills, (0.5, 4.0))
        assert not workload.failed, workload.error
    stats = workload.stop()
    print(f"workload: {stats.summary()}")
    print(
        f"kills: {[(k.phase + ' unadvanced' * k.unadvanced, round(k.after_s, 2)) for k in kills]}; "
        f"{time.monotonic() - started:.1f}s so far"
    )
    assert Counter(k.phase for k in kills)["snapshot"] >= 1, kills
    assert sum(k.phase == "cdc" for k in kills) >= variant.kills_in_cdc, kills

    # 3. Catch up with the stopped source; the target equals the source.
    result = _catch_up(s)
    counts = assert_target_equals_source(s.pg_url, s.target)
    print(f"compared: {counts}; {time.monotonic() - started:.1f}s so far")
    _assert_checkpoints(s, result)
    # The workload did what it claims: every kind of change was committed.
    for kind in (
        "customer.insert", "customer.update", "customer.delete", "customer.rekey", "address.move",
        "profile.insert", "profile.delete", "order.move", "order.rekey", "order.rekey_items", "item.move",
        "toast.write.customers", "toast.write.orders", "toast.write.addresses",
    ):  # fmt: skip
        assert stats.operations[kind] > 0, f"the workload never committed {kind}: {stats.summary()}"
    assert stats.rolled_back > 0 and stats.savepoints_rolled_back > 0
    assert sum(n for k, n in stats.operations.items() if k.startswith("toast.touch.")) > 0

    # 4. THE LARGE TRANSACTION (MIGRATOR_TEST_BIG_TXN_ROWS rows, default 50k, in stream mode;
    # MIGRATOR_TEST_POLL_BIG_TXN_ROWS, default 20k, in poll mode; 0 leaves this step out). A large
    # rolled-back transaction, then one of `big_rows` row changes committed amid more workload;
    # `migrator run` killed while it decodes, spools and applies it (a partial apply has no
    # checkpoint: the next process replays it whole), then caught up and compared again.
    if not big_rows:
        assert len(kills) >= variant.min_kills
        return
    more = Workload(s.pg_url, WORKLOAD_SEED + 1, max_transactions=300, max_seconds=120, pace=4 * PACE)
    more.start()
    big_done = more.request_big_transaction(big_rows)
    assert big_done.wait(600) and not more.failed, more.error
    assert more.big_commit_lsn is not None and more.big_tag is not None
    print(f"large transaction committed; {time.monotonic() - started:.1f}s so far")
    first = more.big_first_product
    big_product = {"_id": Int64(first) if first is not None else None}
    big_sku = {"sku": {"$regex": f"^BIG-{more.big_tag}-"}}
    if variant.mode == "stream":
        # (a) At a random moment: mostly while the server decodes and streams it and migrator spools it.
        _kill_at_random(s, rng, kills, (1.0, 6.0))
    # (b) Once part of it is on the target (its product inserts come last): a partial apply.
    p = s.start()
    p.wait_for("phase.started", phase="cdc")
    deadline = time.monotonic() + FINAL_TIMEOUT
    while s.target.products.find_one(big_product, {"_id": 1}) is None:
        assert time.monotonic() < deadline, "the large transaction never reached the target"
        p.run_for(0.2)
    if variant.mode == "stream":
        p.run_for(rng.uniform(0.5, 5.0))
        p.kill9()  # its open target transaction left to expire: the catch-up waits it out
    else:
        # Poll mode applies it faster (from memory: a shorter delay). Expiring the killed
        # process's target transaction is tested above; here it would only cost a minute.
        p.run_for(rng.uniform(0.1, 1.0))
        s.kill9(p)
    positions = [e["position"] for e in p.events if e["event"] == "cdc.batch_applied"]
    kills.append(Kill("cdc", time.monotonic() - p.started, positions[-1] if positions else None))
    partial = s.target.products.count_documents({"_id": {"$gte": first}})
    big_kills = kills[-2:] if variant.mode == "stream" else kills[-1:]
    assert all(
        k.applied is None or Lsn.parse(k.applied) < Lsn.parse(more.big_commit_lsn) for k in big_kills
    ), "a kill meant for the large transaction came after it was applied"
    if variant.mode == "poll":
        # (c) Once all of it is on the target with the checkpoint past its commit, the slot still
        # before it: the next process must not apply it again from the slot's position, nor stall
        # on a slot whose first polls (poll_changes each) hold nothing but it. (The workload has
        # one connection: the first commit past big_precommit_lsn is the large transaction's.)
        assert more.big_precommit_lsn is not None
        held = _kill_before_advance(s, rng, kills, (0.0, 0.0), at_or_past=more.big_precommit_lsn)
        assert Lsn.parse(held) >= Lsn.parse(more.big_precommit_lsn)
        assert s.target.products.count_documents(big_sku) > 0.9 * big_rows
    assert not more.failed, more.error
    more_stats = more.stop()
    print(
        f"large transaction: {more_stats.summary()}; {partial} of its product inserts applied at the kill; "
        f"kills: {[(k.phase + ' unadvanced' * k.unadvanced, round(k.after_s, 2)) for k in kills[-3:]]}; "
        f"{time.monotonic() - started:.1f}s so far"
    )
    assert len(kills) >= variant.min_kills
    result = _catch_up(s)
    counts = assert_target_equals_source(s.pg_url, s.target)
    print(f"compared: {counts}; {time.monotonic() - started:.1f}s in all")
    _assert_checkpoints(s, result)
    assert more_stats.big_rows >= big_rows and more_stats.big_rolled_back_rows > 0, more_stats.summary()
    assert s.target.products.count_documents(big_sku) > 0.9 * big_rows
    assert s.target.products.count_documents({"sku": {"$regex": "^(RB|SP)-"}}) == 0  # rolled back
    retries = Counter(
        e["message"].split(";")[0]
        for process in s.processes
        for e in process.events
        if e["event"] == "notice" and e.get("level") == "warn" and "retrying in" in e.get("message", "")
    )
    print(f"retried: {dict(retries) or 'nothing'}")
    if variant.mode == "stream":
        # It reached migrator as a streamed in-progress transaction (protocol 2), spooled to disk.
        assert s.slot_stats().get("stream_txns", 0) > 0, s.slot_stats()


# -- the same, in process, without kills: quicker to debug ---------------------------------------


def test_cdc_workload_through_the_api_until_caught_up(setup: Any) -> None:
    """api.run: snapshot while the workload runs, catch up, compare; more workload (and a large
    transaction applied in several batches), catch up again, compare."""
    s: Setup = setup(300)
    env = {
        "MIGRATOR_SOURCE_URL": s.env["MIGRATOR_SOURCE_URL"],
        "MIGRATOR_TARGET_URL": s.env["MIGRATOR_TARGET_URL"],
    }
    workload = Workload(s.pg_url, WORKLOAD_SEED + 7, max_transactions=300, pace=0.005)
    workload.start()
    outcome = api.run(s.plan, until="snapshot", state=s.state, env=env)
    assert outcome.snapshot is not None and not outcome.interrupted
    workload.wait()

    outcome = api.run(s.plan, until="caught-up", state=s.state, env=env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    assert_target_equals_source(s.pg_url, s.target)

    more = Workload(s.pg_url, WORKLOAD_SEED + 8, max_transactions=150, pace=0)
    more.start()
    more.request_big_transaction(12_000)
    stats = more.wait()
    assert stats.big_rows >= 12_000
    outcome = api.run(s.plan, until="caught-up", state=s.state, env=env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    assert_target_equals_source(s.pg_url, s.target)


# -- a deterministic case of what the workload test found ------------------------------------------


def test_changes_made_while_a_resumed_snapshot_was_down_converge(setup: Any) -> None:
    """The snapshot stops after its first chunk (customers 1-5, read at T1, the slot's point); while
    it is down, rows move from customers of later chunks into customers of the first one, and a
    customer of a later chunk changes its key to one in the first chunk's range; the resume reads
    the later chunks at T2 > T1, and CDC replays everything after T1.

    What those changes need is in neither place: the moved address's TOASTed line2 and the moved
    order's items are neither in the stream (unchanged since before T1) nor in the target (the old
    parents were read at T2, after the move; the new ones at T1, before it); likewise the re-keyed
    customer's TOASTed preferences and its orders' items. Where a change needs stored state that
    the target holds nowhere, migrator reads the document again from the source (ChangeApplier's
    `current`), and the replay of the later changes converges on it."""
    s: Setup = setup(20)
    with psycopg.connect(s.pg_url, autocommit=True) as conn:
        big = "x" + base64.b64encode(random.Random(1).randbytes(6000)).decode()
        # Stored out of line before the snapshot; never changed again.
        address = conn.execute(
            "INSERT INTO addresses (customer_id, kind, line1, line2, city, country)"
            " VALUES (18, 'work', '1 Rue', %s, 'Lyon', 'FR') RETURNING id",
            (big,),
        ).fetchone()
        conn.execute(
            "UPDATE customers SET preferences = jsonb_build_object('blob', %s::text) WHERE id = 19", (big,)
        )
        order = conn.execute(
            "SELECT o.id FROM orders o WHERE customer_id BETWEEN 11 AND 18 AND EXISTS"
            " (SELECT 1 FROM order_items i WHERE i.order_id = o.id) ORDER BY id LIMIT 1"
        ).fetchone()
        assert address is not None and order is not None
    _write_plan(s.plan, s.name, s.target.name, parallel=1, chunk_rows=5)
    env = {
        "MIGRATOR_SOURCE_URL": s.env["MIGRATOR_SOURCE_URL"],
        "MIGRATOR_TARGET_URL": s.env["MIGRATOR_TARGET_URL"],
    }

    stop = threading.Event()

    def after_first_chunk(event: Any) -> None:
        if getattr(event, "kind", "") == "snapshot.chunk_finished" and event.collection == "customers":
            stop.set()

    outcome = api.run(s.plan, until="snapshot", state=s.state, env=env, sinks=[after_first_chunk], stop=stop)
    assert outcome.interrupted
    with SQLiteStateStore(s.state) as store:
        (run,) = store.runs()
        done = [(c.lo, c.hi) for c in store.chunks(run.id, "customers") if c.status == "done"]
    assert done == [(None, ["5"])], done
    with psycopg.connect(s.pg_url, autocommit=True) as conn:
        conn.execute("UPDATE addresses SET customer_id = 3 WHERE id = %s", (address[0],))
        conn.execute("UPDATE orders SET customer_id = 4 WHERE id = %s", (order[0],))
        conn.execute("UPDATE customers SET id = -19 WHERE id = 19")  # children follow (ON UPDATE CASCADE)
    outcome = api.run(s.plan, until="caught-up", state=s.state, env=env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    with SQLiteStateStore(s.state) as store:
        (run,) = store.runs()
        assert [c.label for c in store.checkpoints(run.id, "snapshot")].count(SnapshotLabel.REREAD) == 1
    assert_target_equals_source(s.pg_url, s.target)
