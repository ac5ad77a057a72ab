"""CDC apply lag from MariaDB, against the target's own ceiling measured first in the same run.

    scripts/bench/run mysql-cdc [--small] [--seconds S] [--rates 1000] [--cases flat,embedded] [--out DIR]

The method of bench_cdc.py's lag part, with a throwaway MariaDB (a binlog source,
scripts/lib/mariadb_server.py) as the source: `migrator run` follows the binlog (in this
process, through the API) while a generator commits changes at a fixed rate for S seconds, in
transactions of 10 updates: into a flat table, and into an embedded child table (10 consecutive
children, two parents' five each, as an order's lines change together). First the target's
ceiling is measured (bench_cdc.target_ceilings: the same writes sent straight with pymongo).

The lag of a transaction is measured from the moment its COMMIT returned to the generator to
the moment the batch holding it was durable on the target (the BatchApplied event whose
position is at or past the binlog position read right after that commit), both on this
machine's monotonic clock. migrator's own per-transaction lag (BatchApplied.lag_ms) is reported
beside it: it counts from the commit time the stream hands over. The binlog event's timestamp
has whole seconds only; a commit read while the stream keeps up is dated by its arrival instead
(adapters/mysql/binlog_events.py, committed_at), one read later by the timestamp, which reads up
to 1 s more than the real lag.

Reported: p50/p95/p99/max in ms (and migrator's own p50/p99), the rate achieved, the rate CDC
applied and its ratio to the ceiling, the target batches and source transactions per batch, and
the CPU seconds this process spent per GB of documents CDC rewrote (the generator's own CPU left
out).
"""

from __future__ import annotations

import argparse
import bisect
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pymysql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import devservices  # noqa: E402
import mariadb_server  # noqa: E402
from bench_cdc import (  # noqa: E402
    LAG_HEADING,
    LagRound,
    average_document_bytes,
    lag_line,
    lag_row,
    lag_summary,
    percentile,
    target_ceilings,
)

from migrator import api  # noqa: E402
from migrator.adapters.mysql import MysqlSource  # noqa: E402
from migrator.engine.events import BatchApplied, Event  # noqa: E402

DATABASE = "benchsrc"

# The shapes bench_cdc.target_ceilings knows: 10,000 flat rows; 2,000 parents with 5 children
# each (child n belongs to parent 1 + (n - 1) // 5).
LAG_SCHEMA = (
    "CREATE TABLE lag_flat (id BIGINT PRIMARY KEY, counter BIGINT NOT NULL, note VARCHAR(64), touched DATETIME(6))",
    "CREATE TABLE lag_parent (id BIGINT PRIMARY KEY, name VARCHAR(64))",
    "CREATE TABLE lag_child (id BIGINT PRIMARY KEY, parent_id BIGINT NOT NULL, counter BIGINT NOT NULL, "
    "touched DATETIME(6), KEY (parent_id), FOREIGN KEY (parent_id) REFERENCES lag_parent (id))",
    "INSERT INTO lag_flat SELECT seq, 0, CONCAT('row ', seq), NOW(6) FROM seq_1_to_10000",
    "INSERT INTO lag_parent SELECT seq, CONCAT('parent ', seq) FROM seq_1_to_2000",
    "INSERT INTO lag_child SELECT seq, 1 + (seq - 1) DIV 5, 0, NOW(6) FROM seq_1_to_10000",
)

LAG_PLAN = f"""version: 1
name: bench-mysql-lag
source: {{adapter: mysql, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: mongodb, url: "${{MIGRATOR_TARGET_URL}}", database: benchlag}}
collections:
  - {{name: flat, from: {DATABASE}.lag_flat, key: id}}
  - name: parents
    from: {DATABASE}.lag_parent
    key: id
    embed:
      - {{as: children, from: {DATABASE}.lag_child, on: {{parent_id: id}}, key: id}}
phases: {{snapshot: {{parallel: 2}}, cdc: {{heartbeat_interval: 1s}}}}
"""

# label -> (table, the ceiling shape, the collection the changes rewrite)
CASES = {"flat": ("lag_flat", "flat", "flat"), "embedded": ("lag_child", "element", "parents")}
PER_TXN = 10


def _connect(port: int) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True, charset="utf8mb4")


def _position(cur: Any) -> int:
    """The binlog's current end as migrator's packed position (file number << 32 | offset)."""
    cur.execute("SHOW MASTER STATUS")
    file, offset = cur.fetchone()[:2]
    return MysqlSource.positions.parse(f"{str(file).rsplit('.', 1)[1]}:{offset}")


class Applied:
    """Every BatchApplied: when (monotonic) it was durable, up to which position; and
    migrator's own per-transaction lag_ms."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.times: list[float] = []
        self.reported_ms: list[float] = []
        self.sizes: list[int] = []  # source transactions per target batch
        self.lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if isinstance(event, BatchApplied):
            now = time.monotonic()
            with self.lock:
                self.positions.append(MysqlSource.positions.parse(event.position))
                self.times.append(now)
                self.reported_ms.extend(event.lag_ms)
                if event.transactions:
                    self.sizes.append(event.transactions)

    def applied_at(self, position: int) -> float | None:
        """When the first batch at or past `position` was durable (positions only grow)."""
        with self.lock:
            i = bisect.bisect_left(self.positions, position)
            return self.times[i] if i < len(self.times) else None


def generate(port: int, table: str, rate: int, seconds: float) -> tuple[list[tuple[float, int]], float]:
    """Commit `rate` changes per second in autocommitted UPDATEs of 10 consecutive rows (for
    lag_child, the children of two parents). Returns (commit moment, binlog position after it)
    per transaction and this thread's CPU seconds (left out of the follower's)."""
    commits: list[tuple[float, int]] = []
    done = 0
    cpu = time.thread_time()
    with _connect(port) as conn, conn.cursor() as cur:
        cur.execute(f"USE {DATABASE}")
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            if done >= int(elapsed * rate):
                time.sleep(0.002)
                continue
            ids = tuple((done + i) % 10000 + 1 for i in range(PER_TXN))
            # `table` is one of CASES' constants.
            cur.execute(f"UPDATE {table} SET counter = counter + 1, touched = NOW(6) WHERE id IN %s", [ids])  # noqa: S608
            committed = time.monotonic()
            commits.append((committed, _position(cur)))
            done += PER_TXN
    return commits, time.thread_time() - cpu


def lag_benchmark(
    port: int, source_url: str, mongo_url: str, work: Path, rates: list[int], seconds: float, cases: list[str]
) -> list[dict[str, Any]]:
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}")
    with _connect(port) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {DATABASE}")
        cur.execute(f"USE {DATABASE}")
        for statement in LAG_SCHEMA:
            cur.execute(statement)
    plan = work / "bench-mysql-lag.yaml"
    plan.write_text(LAG_PLAN)
    env = {"MIGRATOR_SOURCE_URL": source_url, "MIGRATOR_TARGET_URL": mongo_url}
    state = work / "lag.db"
    api.run(plan, until="snapshot", state=state, env=env)
    api.run(plan, until="caught-up", state=state, env=env)  # CDC's indexes are made
    ceilings = target_ceilings(mongo_url, list(dict.fromkeys(CASES[c][1] for c in cases)))
    print(
        "  target ceiling, changes/s written straight: "
        + ", ".join(f"{k} {v:,}/s" for k, v in ceilings.items()),
        flush=True,
    )
    document_bytes = {CASES[c][2]: average_document_bytes(mongo_url, CASES[c][2]) for c in cases}
    results = []
    for rate, case in [(rate, case) for rate in rates for case in cases]:
        table, shape, collection = CASES[case]
        # Start from a drained stream, so that no earlier round's backlog counts here.
        api.run(plan, until="caught-up", state=state, env=env)
        stop = threading.Event()
        applied = Applied()
        failed: list[BaseException] = []

        def follow(
            stop: threading.Event = stop, applied: Applied = applied, failed: list[BaseException] = failed
        ) -> None:
            try:
                api.run(plan, until="stopped", state=state, env=env, sinks=[applied], stop=stop)
            except BaseException as exc:  # noqa: BLE001 (raised again by the main thread)
                failed.append(exc)

        runner = threading.Thread(target=follow)
        runner.start()
        time.sleep(3)  # the stream is up; heartbeats only so far
        cpu = time.process_time()
        started = time.monotonic()
        commits, generator_cpu = generate(port, table, rate, seconds)
        achieved = len(commits) * PER_TXN / (time.monotonic() - started)
        # Whatever the follower had not applied yet is applied now (a second follower would
        # race it for the checkpoint): wait for the last commit's position, then stop.
        deadline = time.monotonic() + 120
        while applied.applied_at(commits[-1][1]) is None and time.monotonic() < deadline and not failed:
            time.sleep(0.05)
        stop.set()
        runner.join()
        if failed:
            raise failed[0]
        cpu = time.process_time() - cpu - generator_cpu
        lags = []
        for committed, position in commits:
            at = applied.applied_at(position)
            if at is None:
                raise SystemExit(f"{case}: a transaction at {position} was not applied within 120 s")
            lags.append((at - committed) * 1000)
        changes = len(commits) * PER_TXN
        applied_s = (applied.applied_at(commits[-1][1]) or time.monotonic()) - started
        applied_rate = changes / applied_s
        rewritten_gb = changes * document_bytes[collection] / 1e9
        reported = applied.reported_ms
        round_ = LagRound(case, rate, achieved, applied_rate, ceilings[shape], rewritten_gb, cpu, lags)
        entry = lag_summary(
            round_,
            # migrator's own lag_ms: from whole-second binlog timestamps (see the docstring).
            reported_p50_ms=round(percentile(reported, 50), 1),
            reported_p99_ms=round(percentile(reported, 99), 1),
            # How the engine grouped the source's transactions into target batches.
            batches=len(applied.sizes),
            transactions_per_batch=round(statistics.fmean(applied.sizes), 1) if applied.sizes else None,
        )
        print(
            f"{lag_line(entry)} (migrator's own p50 {entry['reported_p50_ms']} p99 {entry['reported_p99_ms']}); "
            f"{entry['batches']} batches of {entry['transactions_per_batch']} transactions on average",
            flush=True,
        )
        results.append(entry)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run mysql-cdc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rates", default="1000")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="of " + ", ".join(CASES) + " (default: both)"
    )
    parser.add_argument("--small", action="store_true", help="quick run: 15 s per rate")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    seconds = 15.0 if args.small else args.seconds
    rates = [int(r) for r in args.rates.split(",")]

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-mysql-cdc-"))
    source = mariadb_server.start_mariadb(work / "mariadb")
    mongo = devservices.start_mongo(work / "mongo")
    try:
        print(f"lag: {seconds:.0f} s per rate", flush=True)
        lag = lag_benchmark(
            source.port, source.url_for(DATABASE), mongo.url, work, rates, seconds, args.cases.split(",")
        )
    finally:
        mongo.stop()
        source.stop()
        shutil.rmtree(work, ignore_errors=True)  # plans, state files and logs of this run only
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "mysql-cdc.json"
    out.write_text(json.dumps({"benchmark": "mysql-cdc", "lag": lag}, indent=2))
    print(f"\n{LAG_HEADING} {'own p99':>8}")
    for r in lag:
        print(f"{lag_row(r)} {r['reported_p99_ms']:>8}")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
