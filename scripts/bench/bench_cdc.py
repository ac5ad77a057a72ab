"""CDC benchmark: decode throughput against the server's own limit, and apply lag under load.

    scripts/bench/run cdc [--small] [--only decode|lag] [--changes N] [--seconds S] [--rates 1000,3000]
                          [--out DIR]

(a) decode: N changes are written to a table; the server-side limit is
    `SELECT count(*) FROM pg_logical_slot_peek_binary_changes(...)` over that WAL (the server
    decoding pgoutput, no network, no client); migrator's streaming consumer reads the same
    WAL through START_REPLICATION and decodes every message into a null sink, once with raw
    values and once as CDC decodes (every row parsed into the Python values the mapper gets).
    The server is measured again before each pass, so both sides of a ratio share the load
    of the moment. Reported: changes/s of each, the consumer's CPU seconds, and the ratios.
(b) lag: `migrator run` follows changes (in this process, through the API) while a generator
    commits changes at a fixed rate for S seconds, into a flat table and into an embedded
    child table; the lag of every source transaction is measured from its commit timestamp
    to the moment its batch is durable on the target. Reported: p50/p95/p99/max in ms and
    the rate actually achieved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

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


def generate(url: str, table: str, rate: int, seconds: float, stop: threading.Event) -> int:
    """Commit `rate` changes per second to `table` in transactions of 10 updates."""
    per_txn = 10
    done = 0
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
            ids = [(done + i) % 10000 + 1 for i in range(per_txn)]
            with conn.transaction():
                conn.execute(
                    f"UPDATE {table} SET counter = counter + 1, touched = clock_timestamp() WHERE id = ANY(%s)",  # noqa: S608
                    [ids],
                )
            done += per_txn
    return done


def lag_benchmark(
    pg_url: str, mongo_url: str, work: Path, rates: list[int], seconds: float
) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(LAG_SCHEMA)
    plan = work / "bench-lag.yaml"
    plan.write_text(LAG_PLAN)
    env = {"MIGRATOR_SOURCE_URL": pg_url, "MIGRATOR_TARGET_URL": mongo_url}
    api.run(plan, until="snapshot", state=work / "lag.db", env=env)
    results = []
    rounds = [
        (rate, table, label)
        for rate in rates
        for table, label in (("lag_flat", "flat"), ("lag_child", "embedded"))
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
        done = generate(pg_url, table, rate, seconds, threading.Event())
        achieved = done / (time.monotonic() - started)
        stop.set()
        runner.join()
        # Whatever the follower had not applied yet is applied now, its lag included.
        api.run(plan, until="caught-up", state=work / "lag.db", env=env, sinks=[Sink(lags)])
        entry = {
            "case": label,
            "target_rate": rate,
            "achieved_rate": round(achieved),
            "transactions": len(lags),
            "p50_ms": round(percentile(lags, 50), 1),
            "p95_ms": round(percentile(lags, 95), 1),
            "p99_ms": round(percentile(lags, 99), 1),
            "max_ms": round(max(lags), 1) if lags else None,
            "mean_ms": round(statistics.fmean(lags), 1) if lags else None,
        }
        print(
            f"  lag {label:<9} {rate:>5}/s achieved {entry['achieved_rate']:>5}/s  p50 {entry['p50_ms']:>8} "
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
            lag = lag_benchmark(pg.url, mongo.url, work, rates, seconds)
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
            f"\n{'lag':<10} {'rate':>5} {'achieved':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        )
    for r in lag:
        print(
            f"{r['case']:<10} {r['target_rate']:>5} {r['achieved_rate']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['p99_ms']:>8} {r['max_ms']!s:>8}"
        )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
