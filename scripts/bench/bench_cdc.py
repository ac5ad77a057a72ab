"""CDC benchmark: decode throughput against the server's own limit, and apply lag under load.

    scripts/bench/run cdc [--small] [--only decode|lag] [--changes N] [--seconds S] [--rates 1000,3000]
                          [--cases flat,embedded,...] [--out DIR]

(a) decode: N changes are written to a table; the server-side limit is
    `SELECT count(*) FROM pg_logical_slot_peek_binary_changes(...)` over that WAL (the server
    decoding pgoutput, no network, no client); migrator's streaming consumer reads the same
    WAL through START_REPLICATION and decodes every message into a null sink, once with raw
    values and once as CDC decodes (every row parsed into the Python values the mapper gets).
    The server is measured again before each pass, so both sides of a ratio share the load
    of the moment. Reported: changes/s of each, the consumer's CPU seconds, and the ratios.
(b) lag: `migrator run` follows changes (in this process, through the API) while a generator
    commits changes at a fixed rate for S seconds, in transactions of 10 updates: into a flat
    table; into an embedded child table, 10 consecutive children (two parents' five each, as an
    order's lines change together: the target merges a parent's element updates into one
    write, adapters/coalesce.py); and into the child table scattered (10 random children, each
    most likely of another parent: one target write per change). And lookup (N:1) embeds, where
    each customer document embeds a copy of the address and the region its row names:
    lookup-parent updates addresses (each embedded by 5 documents: every change is written to
    all of them), lookup-fanout updates regions (each embedded by 100 documents), lookup-relink
    re-points customers to another address (the new row is read from the source and embedded).
    The lag of every source transaction is measured from its commit timestamp to the moment its
    batch is durable on the target. Reported: p50/p95/p99/max in ms, the rate actually achieved,
    the rate CDC applied (changes generated / time until the last one was durable) and its ratio
    to the baseline measured first in the same run: the target's ceiling, changes/s it takes
    written straight with pymongo in the same shape (one update per change, a lookup's change
    written to every document embedding the row; target_ceilings); and the CPU seconds this
    process spent per GB of documents CDC rewrote (the generator's own CPU left out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
import psycopg
import pymongo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import devservices  # noqa: E402

from migrator import api  # noqa: E402
from migrator.adapters.base import ColumnInfo  # noqa: E402
from migrator.adapters.postgres.connection import PgEndpoint  # noqa: E402
from migrator.adapters.postgres.inspect import PostgresInspector  # noqa: E402
from migrator.adapters.postgres.lsn import Lsn  # noqa: E402
from migrator.adapters.postgres.pgoutput import (  # noqa: E402
    Commit,
    Insert,
    Relation,
    RowChange,
    RowReader,
    decode,
)
from migrator.adapters.postgres.replication import Idle, ReplicationStream  # noqa: E402
from migrator.adapters.postgres.values import ValueParser  # noqa: E402
from migrator.engine.events import BatchApplied, Event  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class LagRound:
    """One round of a lag benchmark (here and bench_mysql_lag.py): `changes` generated at
    `rate`/s, achieved at `achieved`/s and applied (durable on the target) at `applied`/s, against
    the target's `ceiling` (changes/s written straight); `rewritten_gb` of documents CDC rewrote in
    `cpu` seconds of this process; `lags`: each source transaction's lag in ms."""

    case: str
    rate: int
    achieved: float
    applied: float
    ceiling: int | None
    rewritten_gb: float
    cpu: float
    lags: list[float]


def lag_summary(round_: LagRound, **extra: Any) -> dict[str, Any]:
    """A round's entry in the results (`extra`: the benchmark's own fields, after the shared
    ones): rates, the ratio to the ceiling, CPU per GB rewritten, lag percentiles in ms."""
    lags, applied, ceiling, gb = round_.lags, round_.applied, round_.ceiling, round_.rewritten_gb
    return {
        "case": round_.case,
        "target_rate": round_.rate,
        "achieved_rate": round(round_.achieved),
        "applied_rate": round(applied),
        "target_ceiling_per_s": ceiling,
        "ratio_to_ceiling": round(applied / ceiling, 3) if ceiling else None,
        "rewritten_gb": round(gb, 4),
        "cpu_seconds": round(round_.cpu, 2),
        "cpu_s_per_gb": round(round_.cpu / gb) if gb else None,
        "transactions": len(lags),
        "p50_ms": round(percentile(lags, 50), 1),
        "p95_ms": round(percentile(lags, 95), 1),
        "p99_ms": round(percentile(lags, 99), 1),
        "max_ms": round(max(lags), 1) if lags else None,
        "mean_ms": round(statistics.fmean(lags), 1) if lags else None,
        **extra,
    }


def lag_line(entry: dict[str, Any]) -> str:
    """A round's progress line, as lag_summary's entry has it."""
    return (
        f"  lag {entry['case']:<18} {entry['target_rate']:>5}/s achieved {entry['achieved_rate']:>5}/s applied "
        f"{entry['applied_rate']:>5}/s  p50 {entry['p50_ms']:>8} p95 {entry['p95_ms']:>8} "
        f"p99 {entry['p99_ms']:>8} max {entry['max_ms']} ms"
    )


# The results table of the lag benchmarks: heading and row, then each benchmark's own columns.
LAG_HEADING = (
    f"{'lag':<18} {'rate':>5} {'achieved':>8} {'applied':>8} {'ceiling':>8} {'ratio':>6} "
    f"{'cpu s/GB':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
)


def lag_row(r: dict[str, Any]) -> str:
    return (
        f"{r['case']:<18} {r['target_rate']:>5} {r['achieved_rate']:>8} {r['applied_rate']:>8} "
        f"{r['target_ceiling_per_s']!s:>8} {r['ratio_to_ceiling']!s:>6} {r['cpu_s_per_gb']!s:>8} "
        f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['max_ms']!s:>8}"
    )


def decode_benchmark(url: str, changes: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_decode")
        conn.execute(
            "CREATE TABLE bench_decode (id bigint PRIMARY KEY, name text, amount numeric(12,2), "
            "score double precision, active boolean, created_at timestamptz, tag uuid)"
        )
        conn.execute("DROP PUBLICATION IF EXISTS bench_decode_pub")
        conn.execute("CREATE PUBLICATION bench_decode_pub FOR TABLE bench_decode")
        conn.execute("SELECT pg_create_logical_replication_slot('bench_decode_slot', 'pgoutput')")
        start = conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'bench_decode_slot'"
        ).fetchone()
        assert start is not None
        # Transactions of 100 rows: a realistic mix of commits and changes.
        step = 100
        for lo in range(0, changes, step):
            conn.execute(
                "INSERT INTO bench_decode SELECT i, 'name-' || i, i / 100.0, i * 0.5, i %% 2 = 0, "
                "now(), md5(i::text)::uuid FROM generate_series(%s::bigint, %s::bigint) i",
                [lo + 1, min(lo + step, changes)],
            )
        end = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert end is not None
        table = PostgresInspector(conn, "bench").table("public.bench_decode")
        assert table is not None
    columns: dict[str, ColumnInfo] = {c.name: c for c in table.columns}
    results: dict[str, Any] = {"changes": changes}
    # The server's rate is measured right before each pass, so that both sides of a ratio
    # share the machine's load of the moment (other processes come and go).
    for label, parse_values in (("consumer", False), ("consumer_parse", True)):
        server_seconds, messages = _server_pass(url)
        consumer_seconds, consumer_cpu, seen, rows = _consumer_pass(
            url, Lsn.parse(start[0]).value, Lsn.parse(end[0]).value, columns, parse_values
        )
        if rows != changes:
            raise RuntimeError(f"{label}: {rows:,} changes streamed, {changes:,} written")
        results.update(
            {
                f"{label}_server_seconds": round(server_seconds, 3),
                f"{label}_server_changes_per_s": round(changes / server_seconds),
                f"{label}_seconds": round(consumer_seconds, 3),
                f"{label}_cpu_seconds": round(consumer_cpu, 3),
                f"{label}_changes_per_s": round(changes / consumer_seconds),
                f"{label}_ratio_to_server": round(server_seconds / consumer_seconds, 3),
            }
        )
        results["messages"], results["server_messages"] = seen, messages
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot('bench_decode_slot')")
        conn.execute("DROP PUBLICATION bench_decode_pub")
        conn.execute("DROP TABLE bench_decode")
    return results


def _server_pass(url: str) -> tuple[float, int]:
    """The server decoding pgoutput on its own: no network, no client."""
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        counted = conn.execute(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('bench_decode_slot', NULL, NULL, "
            "'proto_version', '1', 'publication_names', 'bench_decode_pub')"
        ).fetchone()
        seconds = time.monotonic() - started
    assert counted is not None
    return seconds, int(counted[0])


def _consumer_pass(
    url: str, start: int, end: int, columns: dict[str, ColumnInfo], parse_values: bool
) -> tuple[float, float, int, int]:
    """migrator's streaming consumer over the slot's WAL into a null sink: (seconds, CPU seconds,
    messages, changes). With `parse_values`, decoded as CDC decodes: through each relation's
    RowReader, with the parsers CDC gives it, into the rows the mapper receives."""
    parser = ValueParser()
    readers: dict[int, RowReader] = {}
    stream = ReplicationStream(
        PgEndpoint(url), "bench_decode_slot", "bench_decode_pub", start, streaming=False
    )
    seen = rows = 0
    started, cpu = time.monotonic(), time.process_time()
    try:
        # The loop itself is kept lean (type tests, common cases first): it is timed too.
        for item in stream.messages(wait_s=5.0):
            if type(item) is not bytes:
                if isinstance(item, Idle):
                    raise RuntimeError(f"the stream went idle after {seen:,} messages")
                continue  # a keepalive
            message = decode(item, readers=readers if parse_values else None)
            seen += 1
            kind = type(message)
            if kind is RowChange or kind is Insert:
                rows += 1
            elif isinstance(message, Relation):
                readers[message.relation_id] = RowReader(
                    [c.name for c in message.columns],
                    [parser.for_column(columns[c.name]) for c in message.columns],
                    [c.is_key for c in message.columns],
                )
            elif isinstance(message, Commit) and message.end_lsn >= end:
                break
        return time.monotonic() - started, time.process_time() - cpu, seen, rows
    finally:
        stream.close()


LAG_SCHEMA = """
DROP TABLE IF EXISTS lag_child, lag_parent, lag_flat;
CREATE TABLE lag_flat (id bigint PRIMARY KEY, counter bigint NOT NULL, note text, touched timestamptz);
CREATE TABLE lag_parent (id bigint PRIMARY KEY, name text);
CREATE TABLE lag_child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES lag_parent(id),
                        counter bigint NOT NULL, touched timestamptz);
INSERT INTO lag_flat SELECT i, 0, 'row ' || i, now() FROM generate_series(1, 10000) i;
INSERT INTO lag_parent SELECT i, 'parent ' || i FROM generate_series(1, 2000) i;
INSERT INTO lag_child SELECT i, 1 + (i - 1) / 5, 0, now() FROM generate_series(1, 10000) i;
CREATE INDEX ON lag_child (parent_id);
-- What preflight recommends for embedded tables: a replica identity that names the parent,
-- so that an update says whether the child moved and costs one target write.
CREATE UNIQUE INDEX lag_child_parent_id ON lag_child (parent_id, id);
ALTER TABLE lag_child REPLICA IDENTITY USING INDEX lag_child_parent_id;
-- Lookup (N:1) embeds: each customer names an address (5 customers each) and a region (100
-- customers each); the documents embed copies of both rows.
DROP TABLE IF EXISTS lk_customer, lk_address, lk_region;
CREATE TABLE lk_region (id bigint PRIMARY KEY, name text NOT NULL, counter bigint NOT NULL, touched timestamptz);
CREATE TABLE lk_address (id bigint PRIMARY KEY, street text NOT NULL, city text NOT NULL,
                         counter bigint NOT NULL, touched timestamptz);
CREATE TABLE lk_customer (id bigint PRIMARY KEY, name text NOT NULL,
                          address_id bigint NOT NULL REFERENCES lk_address(id),
                          region_id bigint NOT NULL REFERENCES lk_region(id));
INSERT INTO lk_region SELECT i, 'region ' || i, 0, now() FROM generate_series(1, 100) i;
INSERT INTO lk_address SELECT i, i || ' Main Street', 'city ' || (i % 50), 0, now() FROM generate_series(1, 2000) i;
INSERT INTO lk_customer SELECT i, 'customer ' || i, 1 + (i - 1) / 5, 1 + (i - 1) / 100 FROM generate_series(1, 10000) i;
CREATE INDEX ON lk_customer (address_id);
CREATE INDEX ON lk_customer (region_id);
ANALYZE;
"""

LAG_PLAN = """version: 1
name: bench-lag
source: {adapter: postgres, url: "${MIGRATOR_SOURCE_URL}"}
target: {adapter: mongodb, url: "${MIGRATOR_TARGET_URL}", database: benchlag}
collections:
  - {name: flat, from: public.lag_flat, key: id}
  - name: parents
    from: public.lag_parent
    key: id
    embed:
      - {as: children, from: public.lag_child, on: {parent_id: id}, key: id}
  - name: customers
    from: public.lk_customer
    key: id
    embed:
      - {as: address, from: public.lk_address, on: {id: address_id}, many: false}
      - {as: region, from: public.lk_region, on: {id: region_id}, many: false}
phases: {snapshot: {parallel: 2}, cdc: {heartbeat_interval: 1s}}
"""


@dataclass(frozen=True)
class Case:
    """A lag case: what the generator updates, and what one change costs the target."""

    label: str
    statement: str  # an UPDATE of the rows whose ids are %s
    rows: int  # ids 1..rows
    ceiling: str  # the shape target_ceilings measures for it
    collection: str  # the collection whose documents the changes rewrite
    fanout: int  # documents rewritten per change
    scattered: bool = False


_COUNT = "SET counter = counter + 1, touched = clock_timestamp() WHERE id = ANY(%s)"
CASES = (
    Case("flat", f"UPDATE lag_flat {_COUNT}", 10000, "flat", "flat", 1),
    Case("embedded", f"UPDATE lag_child {_COUNT}", 10000, "element", "parents", 1),
    Case("embedded-scattered", f"UPDATE lag_child {_COUNT}", 10000, "element", "parents", 1, scattered=True),
    Case(
        "lookup-parent", f"UPDATE lk_address {_COUNT}", 2000, "lookup-parent", "customers", 5, scattered=True
    ),
    Case(
        "lookup-fanout", f"UPDATE lk_region {_COUNT}", 100, "lookup-fanout", "customers", 100, scattered=True
    ),
    Case(
        "lookup-relink",
        "UPDATE lk_customer SET address_id = 1 + (address_id + 6) %% 2000 WHERE id = ANY(%s)",
        10000,
        "relink",
        "customers",
        1,
        scattered=True,
    ),
)


def generate(url: str, case: Case, rate: int, seconds: float, stop: threading.Event) -> tuple[int, float]:
    """Commit `rate` changes per second in transactions of 10 updates: of 10 consecutive rows
    (for lag_child, the children of two parents), or `scattered` over rows chosen at random
    (each child most likely of another parent). Returns the changes and this thread's CPU
    seconds (left out of the follower's)."""
    per_txn = 10
    done = 0
    chooser = random.Random(7)
    cpu = time.thread_time()
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= seconds:
                break
            due = int(elapsed * rate)
            if done >= due:
                time.sleep(0.002)
                continue
            if case.scattered:
                ids = chooser.sample(range(1, case.rows + 1), per_txn)
            else:
                ids = [(done + i) % case.rows + 1 for i in range(per_txn)]
            with conn.transaction():
                conn.execute(case.statement, [ids])
            done += per_txn
    return done, time.thread_time() - cpu


def _ceiling_writes(shape: str, rng: random.Random, n: int) -> list[Any]:
    """The target writes of one change in `shape`, as pymongo would make them by hand."""
    now = datetime.datetime.now(datetime.UTC)
    if shape == "flat":
        return [pymongo.UpdateOne({"_id": rng.randint(1, 10000)}, {"$set": {"counter": n, "touched": now}})]
    if shape == "element":
        row = rng.randint(1, 10000)
        return [
            pymongo.UpdateOne(
                {"_id": 1 + (row - 1) // 5},
                {"$set": {"children.$[e].counter": n, "children.$[e].touched": now}},
                array_filters=[{"e.id": row}],
            )
        ]
    if shape in ("lookup-parent", "lookup-fanout"):
        field, rows = ("address", 2000) if shape == "lookup-parent" else ("region", 100)
        row = rng.randint(1, rows)
        return [
            pymongo.UpdateMany(
                {f"{field}_id": row}, {"$set": {f"{field}.counter": n, f"{field}.touched": now}}
            )
        ]
    assert shape == "relink"
    address = rng.randint(1, 2000)
    return [
        pymongo.UpdateOne(
            {"_id": rng.randint(1, 10000)},
            {
                "$set": {
                    "address_id": address,
                    "address": {
                        "id": address,
                        "street": f"{address} Main Street",
                        "city": f"city {address % 50}",
                        "counter": n,
                        "touched": now,
                    },
                }
            },
        )
    ]


def target_ceilings(mongo_url: str, shapes: list[str], writes: int = 3000) -> dict[str, int]:
    """The baseline: how many of the bench's changes per second the target takes when each is
    written straight with pymongo in its shape (one update per change, random rows; a lookup
    row's change written to every document embedding it, by the indexed link field), in
    transactions of about 200 document writes like CDC's batches; on copies of the collections
    CDC writes, with their indexes. A rate above it is more than the target can take, however
    fast migrator is, unless it writes fewer times than there are changes."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    db = client["benchlag"]
    rng = random.Random(11)
    ceilings: dict[str, int] = {}
    collection = {"flat": "flat", "element": "parents"}
    fanout = {"lookup-parent": 5, "lookup-fanout": 100}
    try:
        for shape in shapes:
            source = collection.get(shape, "customers")
            copy = db[f"ceiling_{source}"]
            copy.drop()
            copy.insert_many(db[source].find({}))
            for name, spec in db[source].index_information().items():
                if name != "_id_":
                    copy.create_index(spec["key"], name=name)
            changes = writes // fanout.get(shape, 1)
            per_txn = max(1, 200 // fanout.get(shape, 1))
            started = time.monotonic()
            for lo in range(0, changes, per_txn):
                ops: list[Any] = []
                for n in range(lo, min(lo + per_txn, changes)):
                    ops.extend(_ceiling_writes(shape, rng, n))
                with client.start_session() as session, session.start_transaction():
                    copy.bulk_write(ops, session=session)
            ceilings[shape] = round(changes / (time.monotonic() - started))
            copy.drop()
    finally:
        client.close()
    return ceilings


def average_document_bytes(mongo_url: str, collection: str, sample: int = 500) -> float:
    """The mean BSON size of the collection's documents (a sample): what one rewrite costs."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    try:
        sizes = [len(bson.encode(d)) for d in client["benchlag"][collection].find({}).limit(sample)]
    finally:
        client.close()
    return statistics.fmean(sizes) if sizes else 0.0


class Sink:
    """Collects the lag of every applied source transaction and when the last batch was durable."""

    def __init__(self, into: list[float], clock: Callable[[], float] = time.monotonic) -> None:
        self.into = into
        self.clock = clock
        self.last_applied: float | None = None

    def emit(self, event: Event) -> None:
        if isinstance(event, BatchApplied) and event.lag_ms:
            self.into.extend(event.lag_ms)
            self.last_applied = self.clock()


def lag_benchmark(
    pg_url: str, mongo_url: str, work: Path, rates: list[int], seconds: float, cases: list[str]
) -> list[dict[str, Any]]:
    unknown = sorted(set(cases) - {c.label for c in CASES})
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(c.label for c in CASES)}")
    chosen = [c for c in CASES if c.label in cases]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(LAG_SCHEMA)
    plan = work / "bench-lag.yaml"
    plan.write_text(LAG_PLAN)
    env = {"MIGRATOR_SOURCE_URL": pg_url, "MIGRATOR_TARGET_URL": mongo_url}
    api.run(plan, until="snapshot", state=work / "lag.db", env=env)
    api.run(plan, until="caught-up", state=work / "lag.db", env=env)  # CDC's indexes are made
    ceilings = target_ceilings(mongo_url, list(dict.fromkeys(c.ceiling for c in chosen)))
    print(
        "  target ceiling, changes/s written straight: "
        + ", ".join(f"{k} {v:,}/s" for k, v in ceilings.items()),
        flush=True,
    )
    document_bytes = {c.collection: average_document_bytes(mongo_url, c.collection) for c in chosen}
    results = []
    for rate, case in [(rate, case) for rate in rates for case in chosen]:
        lags: list[float] = []
        # Start from a drained stream, so that no earlier round's backlog counts here.
        api.run(plan, until="caught-up", state=work / "lag.db", env=env)
        stop = threading.Event()
        sink = Sink(lags)
        runner = threading.Thread(
            target=lambda stop=stop, sink=sink: api.run(
                plan, until="stopped", state=work / "lag.db", env=env, sinks=[sink], stop=stop
            )
        )
        runner.start()
        time.sleep(3)  # the stream is up; heartbeats only so far
        lags.clear()
        cpu = time.process_time()
        started = time.monotonic()
        done, generator_cpu = generate(pg_url, case, rate, seconds, threading.Event())
        achieved = done / (time.monotonic() - started)
        stop.set()
        runner.join()
        # Whatever the follower had not applied yet is applied now, its lag included.
        api.run(plan, until="caught-up", state=work / "lag.db", env=env, sinks=[sink])
        cpu = time.process_time() - cpu - generator_cpu
        applied_s = (sink.last_applied or time.monotonic()) - started
        applied = done / applied_s if applied_s > 0 else float("nan")
        rewritten_gb = done * case.fanout * document_bytes[case.collection] / 1e9
        round_ = LagRound(
            case.label, rate, achieved, applied, ceilings[case.ceiling], rewritten_gb, cpu, list(lags)
        )
        entry = lag_summary(round_, documents_per_change=case.fanout)
        print(lag_line(entry), flush=True)
        results.append(entry)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run cdc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", default="1000,3000")
    parser.add_argument(
        "--cases",
        default=",".join(c.label for c in CASES),
        help="lag cases to run, of " + ", ".join(c.label for c in CASES) + " (default: all)",
    )
    parser.add_argument("--small", action="store_true", help="quick run: 100,000 changes, 15 s per rate")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--only", choices=("decode", "lag"), help="run one part (default: both)")
    args = parser.parse_args()
    changes = 100_000 if args.small else args.changes
    seconds = 15.0 if args.small else args.seconds
    rates = [int(r) for r in args.rates.split(",")]

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-cdc-"))
    pg = devservices.start_postgres(work / "pg")
    mongo = devservices.start_mongo(work / "mongo") if args.only != "decode" else None
    decoding: dict[str, Any] | None = None
    lag: list[dict[str, Any]] = []
    try:
        if args.only != "lag":
            print(f"decode: {changes:,} changes", flush=True)
            decoding = decode_benchmark(pg.url, changes)
        if mongo is not None:
            print(f"lag: {seconds:.0f} s per rate", flush=True)
            lag = lag_benchmark(pg.url, mongo.url, work, rates, seconds, args.cases.split(","))
    finally:
        if mongo is not None:
            mongo.stop()
        pg.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / (f"cdc-{args.only}.json" if args.only else "cdc.json")
    out.write_text(json.dumps({"benchmark": "cdc", "decode": decoding, "lag": lag}, indent=2))
    print()
    if decoding is not None:
        print(f"{'decode':<16} {'changes':>9} {'server/s':>10} {'consumer/s':>11} {'cpu s':>6} {'ratio':>6}")
        for label, key in (("messages", "consumer"), ("+ parse values", "consumer_parse")):
            print(
                f"{label:<16} {decoding['changes']:>9,} {decoding[key + '_server_changes_per_s']:>10,} "
                f"{decoding[key + '_changes_per_s']:>11,} {decoding[key + '_cpu_seconds']:>6} "
                f"{decoding[key + '_ratio_to_server']:>6}"
            )
    if lag:
        print(f"\n{LAG_HEADING} {'docs':>4}")
    for r in lag:
        print(f"{lag_row(r)} {r['documents_per_change']:>4}")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
