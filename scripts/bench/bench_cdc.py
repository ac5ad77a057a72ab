"""CDC benchmark: decode throughput against the server's own limit, and apply lag under load.

    scripts/bench/run cdc [--small] [--only decode|lag] [--changes N] [--seconds S] [--rates 1000,3000]
                          [--cases flat,embedded,embedded-scattered] [--out DIR]

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
    write, mongodb/coalesce.py); and into the child table scattered (10 random children, each
    most likely of another parent: one target write per change). The lag of every source transaction is measured from its commit timestamp
    to the moment its batch is durable on the target. Reported: p50/p95/p99/max in ms, the
    rate actually achieved, and the baseline measured first: the target's ceiling, changes/s
    it takes written straight with pymongo, one update per change (target_ceilings).
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
from pathlib import Path
from typing import Any

import psycopg
import pymongo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import devservices  # noqa: E402

from migrator import api  # noqa: E402
from migrator.adapters.base import ColumnInfo  # noqa: E402
from migrator.adapters.postgres.connection import PgEndpoint  # noqa: E402
from migrator.adapters.postgres.inspect import PostgresInspector  # noqa: E402
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
            url, _lsn(start[0]), _lsn(end[0]), columns, parse_values
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


def _lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


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
phases: {snapshot: {parallel: 2}, cdc: {heartbeat_interval: 1s}}
"""


def generate(
    url: str, table: str, rate: int, seconds: float, stop: threading.Event, *, scattered: bool
) -> int:
    """Commit `rate` changes per second to `table` in transactions of 10 updates: of 10
    consecutive rows (for lag_child, the children of two parents), or `scattered` over rows
    chosen at random (each child most likely of another parent)."""
    per_txn = 10
    done = 0
    chooser = random.Random(7)
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
            if scattered:
                ids = chooser.sample(range(1, 10001), per_txn)
            else:
                ids = [(done + i) % 10000 + 1 for i in range(per_txn)]
            with conn.transaction():
                conn.execute(
                    f"UPDATE {table} SET counter = counter + 1, touched = clock_timestamp() WHERE id = ANY(%s)",  # noqa: S608
                    [ids],
                )
            done += per_txn
    return done


def target_ceilings(mongo_url: str, writes: int = 3000) -> dict[str, int]:
    """The baseline: how many of the bench's changes per second the target takes when each is
    written straight with pymongo, one update per change (the generator's shape, random rows),
    in transactions of 200 like CDC's batches; on copies of the collections CDC writes, with
    their indexes. A rate above it is more than the target can take, however fast migrator is,
    unless it writes fewer times than there are changes."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    db = client["benchlag"]
    rng = random.Random(11)
    ceilings: dict[str, int] = {}
    try:
        for shape, source in (("flat", "flat"), ("element", "parents")):
            copy = db[f"ceiling_{source}"]
            copy.drop()
            copy.insert_many(db[source].find({}))
            for name, spec in db[source].index_information().items():
                if name != "_id_":
                    copy.create_index(spec["key"], name=name)
            started = time.monotonic()
            for lo in range(0, writes, 200):
                ops: list[Any] = []
                for n in range(lo, lo + 200):
                    row = rng.randint(1, 10000)
                    now = datetime.datetime.now(datetime.UTC)
                    if shape == "flat":
                        ops.append(pymongo.UpdateOne({"_id": row}, {"$set": {"counter": n, "touched": now}}))
                    else:
                        ops.append(
                            pymongo.UpdateOne(
                                {"_id": 1 + (row - 1) // 5},
                                {"$set": {"children.$[e].counter": n, "children.$[e].touched": now}},
                                array_filters=[{"e.id": row}],
                            )
                        )
                with client.start_session() as session, session.start_transaction():
                    copy.bulk_write(ops, session=session)
            ceilings[shape] = round(writes / (time.monotonic() - started))
            copy.drop()
    finally:
        client.close()
    return ceilings


def lag_benchmark(
    pg_url: str, mongo_url: str, work: Path, rates: list[int], seconds: float, cases: list[str]
) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(LAG_SCHEMA)
    plan = work / "bench-lag.yaml"
    plan.write_text(LAG_PLAN)
    env = {"MIGRATOR_SOURCE_URL": pg_url, "MIGRATOR_TARGET_URL": mongo_url}
    api.run(plan, until="snapshot", state=work / "lag.db", env=env)
    api.run(plan, until="caught-up", state=work / "lag.db", env=env)  # CDC's indexes are made
    ceilings = target_ceilings(mongo_url)
    print(
        f"  target ceiling, one write per change: flat {ceilings['flat']:,}/s, "
        f"element {ceilings['element']:,}/s",
        flush=True,
    )
    results = []
    rounds = [
        (rate, table, label)
        for rate in rates
        for table, label in (
            ("lag_flat", "flat"),
            ("lag_child", "embedded"),
            ("lag_child", "embedded-scattered"),
        )
        if label in cases
    ]
    for rate, table, label in rounds:
        lags: list[float] = []

        class Sink:
            def __init__(self, into: list[float]) -> None:
                self.into = into

            def emit(self, event: Event) -> None:
                if isinstance(event, BatchApplied):
                    self.into.extend(event.lag_ms)

        # Start from a drained stream, so that no earlier round's backlog counts here.
        api.run(plan, until="caught-up", state=work / "lag.db", env=env)
        stop = threading.Event()
        runner = threading.Thread(
            target=lambda stop=stop, lags=lags: api.run(
                plan, until="stopped", state=work / "lag.db", env=env, sinks=[Sink(lags)], stop=stop
            )
        )
        runner.start()
        time.sleep(3)  # the stream is up; heartbeats only so far
        lags.clear()
        started = time.monotonic()
        done = generate(
            pg_url, table, rate, seconds, threading.Event(), scattered=label.endswith("scattered")
        )
        achieved = done / (time.monotonic() - started)
        stop.set()
        runner.join()
        # Whatever the follower had not applied yet is applied now, its lag included.
        api.run(plan, until="caught-up", state=work / "lag.db", env=env, sinks=[Sink(lags)])
        entry = {
            "case": label,
            "target_rate": rate,
            "achieved_rate": round(achieved),
            "target_ceiling_per_s": ceilings["flat" if label == "flat" else "element"],
            "transactions": len(lags),
            "p50_ms": round(percentile(lags, 50), 1),
            "p95_ms": round(percentile(lags, 95), 1),
            "p99_ms": round(percentile(lags, 99), 1),
            "max_ms": round(max(lags), 1) if lags else None,
            "mean_ms": round(statistics.fmean(lags), 1) if lags else None,
        }
        print(
            f"  lag {label:<18} {rate:>5}/s achieved {entry['achieved_rate']:>5}/s  p50 {entry['p50_ms']:>8} "
            f"p95 {entry['p95_ms']:>8} p99 {entry['p99_ms']:>8} max {entry['max_ms']} ms",
            flush=True,
        )
        results.append(entry)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run cdc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", default="1000,3000")
    parser.add_argument(
        "--cases",
        default="flat,embedded,embedded-scattered",
        help="lag cases to run, of flat, embedded, embedded-scattered (default: all)",
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
        print(
            f"\n{'lag':<18} {'rate':>5} {'achieved':>8} {'ceiling':>8} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'p99 ms':>8} {'max ms':>8}"
        )
    for r in lag:
        print(
            f"{r['case']:<18} {r['target_rate']:>5} {r['achieved_rate']:>8} {r['target_ceiling_per_s']:>8} "
            f"{r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']!s:>8}"
        )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
