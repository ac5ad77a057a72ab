"""PostgreSQL -> PostgreSQL CDC backlog benchmark: migrator's apply against a native logical
replication subscription applying the same backlog, same servers, same run.

    scripts/bench/run pg-cdc [--small] [--rows N] [--changes N] [--rates 1000,10000] [--seconds S] [--out DIR]
        [--py-spy FILE]

Two throwaway PostgreSQL clusters. The source database `bench` holds bench_flat (rows, 7 mixed
columns, a secondary index); on the target, database `bench_m` gets migrator's copy (`migrator
run --until snapshot`, which leaves its slot behind) and database `bench_n` a native
subscription's copy (copy_data, waited until `r`, then disabled). With both apply sides stopped,
the source takes a backlog of N changes in transactions of 100 rows (updates 60%, inserts 25%,
deletes 15%), ending with one sentinel row. Then, one after the other:
  migrator  `migrator run` (resumes into CDC) until the sentinel is on the target, then SIGTERM
  native    ALTER SUBSCRIPTION ... ENABLE until the sentinel is on the target
Reported: changes/s from the start (process start, or ENABLE) and from the first applied change
(what the apply itself sustains: migrator's start and preflight take seconds of their own),
migrator's rate over native's (ratio_to_native, the figure to compare on a busy machine), the
client's CPU seconds per GB of the backlog's WAL (migrator's process; native has no client) and
both servers' CPU seconds per GB. Both targets are compared with the source afterwards (a
server-side hash of every row). Then migrator follows again while the source takes inserts at
each of --rates changes/s (a transaction every 0.1 s) for --seconds: the apply lag of each
transaction, from its COMMIT returning to a poll of the target (every 20 ms) finding its rows,
as p50/p95/p99/max. Writes bench-results/pg-cdc.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import devservices  # noqa: E402
from bench_pg_snapshot import copy_schema, server_cpu  # noqa: E402
from snapshot_sources import create_flat  # noqa: E402

DB = "bench"
SENTINEL = -1
BATCH = 100
HASH = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM bench_flat t"

PLAN = """version: 1
name: bench-pg-cdc
source: {adapter: postgres, url: "${MIGRATOR_SOURCE_URL}"}
target: {adapter: postgres, url: "${MIGRATOR_TARGET_URL}"}
tables: [{from: public.bench_flat}]
phases: {snapshot: {parallel: 2}}
"""


def create_source(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        create_flat(conn, rows)
        conn.execute("CREATE INDEX bench_flat_created ON bench_flat (created_at)")
        conn.execute("VACUUM ANALYZE bench_flat")


def make_backlog(url: str, rows: int, changes: int) -> tuple[int, int]:
    """`changes` row changes in transactions of BATCH rows, in a fixed pattern of 20 transactions:
    12 updates, 5 inserts, 3 deletes; then the sentinel. Returns (changes made, WAL bytes)."""
    pattern = ["u"] * 12 + ["i"] * 5 + ["d"] * 3
    # Spread the kinds: u i u d u i ...
    pattern = [pattern[(k * 7) % 20] for k in range(20)]
    made = 0
    next_insert = rows + 1
    next_update = 1
    next_delete = rows  # deletes from the top of the original rows, down
    with psycopg.connect(url, autocommit=True) as conn:
        start = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        k = 0
        while made < changes:
            kind = pattern[k % 20]
            k += 1
            if kind == "u":
                conn.execute(
                    "UPDATE bench_flat SET amount = amount + 1, name = name || '+', score = score * 1.5 "
                    "WHERE id >= %s AND id < %s",
                    [next_update, next_update + BATCH],
                )
                next_update += BATCH
            elif kind == "i":
                conn.execute(
                    """
                    INSERT INTO bench_flat
                    SELECT i, 'new-' || i, 1.25, i * 0.1, true, now(), md5(i::text)::uuid
                    FROM generate_series(%s::bigint, %s::bigint) i
                    """,
                    [next_insert, next_insert + BATCH - 1],
                )
                next_insert += BATCH
            else:
                conn.execute(
                    "DELETE FROM bench_flat WHERE id > %s AND id <= %s", [next_delete - BATCH, next_delete]
                )
                next_delete -= BATCH
            made += BATCH
        conn.execute("INSERT INTO bench_flat (id, name) VALUES (%s, 'sentinel')", [SENTINEL])
        made += 1
        wal = conn.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", [start]).fetchone()[0]  # type: ignore[index]
    return made, int(wal)


def wait_applied(
    url: str, started: float, timeout: float = 3600, on_first: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Seconds from `started` until the first backlog change (row 1 updated) and until the
    sentinel are on the target; `on_first` is called when the first is seen."""
    first = None
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            if first is None:
                row = conn.execute("SELECT name FROM bench_flat WHERE id = 1").fetchone()
                if row and row[0].endswith("+"):
                    first = time.monotonic() - started
                    if on_first is not None:
                        on_first()
            if conn.execute("SELECT 1 FROM bench_flat WHERE id = %s", [SENTINEL]).fetchone():
                done = time.monotonic() - started
                return (first if first is not None else done), done
            time.sleep(0.02)
    raise SystemExit("the backlog was not applied within the timeout")


def table_hash(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(HASH).fetchone() or ())


def measure_lag(src: str, target_url: str, rate: int, seconds: float, base: int) -> dict[str, Any]:
    """Inserts at `rate` rows/s for `seconds` (a transaction every 0.1 s) while migrator follows;
    a transaction's lag runs from its COMMIT returning to the first poll of the target (every
    20 ms) that sees its last row (apply is in commit order: the highest id applied covers every
    transaction before it)."""
    per_tx = max(rate // 10, 1)
    commits: list[tuple[int, float]] = []  # (last id, commit time)
    seen: list[tuple[float, int]] = []  # (poll time, highest id applied)
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(target_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT max(id) FROM bench_flat WHERE id >= %s", [base]).fetchone()
                seen.append((time.monotonic(), int(row[0]) if row and row[0] is not None else 0))
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    next_id = base
    try:
        with psycopg.connect(src, autocommit=True) as conn:
            started = time.monotonic()
            k = 0
            while time.monotonic() - started < seconds:
                conn.execute(
                    """
                    INSERT INTO bench_flat
                    SELECT i, 'lag-' || i, 1.25, i * 0.1, true, now(), md5(i::text)::uuid
                    FROM generate_series(%s::bigint, %s::bigint) i
                    """,
                    [next_id, next_id + per_tx - 1],
                )
                next_id += per_tx
                commits.append((next_id - 1, time.monotonic()))
                k += 1
                # Paced against the start, not the last transaction: a slow commit is caught up.
                time.sleep(max(started + k * 0.1 - time.monotonic(), 0))
            generated = time.monotonic() - started
        deadline = time.monotonic() + 300
        while (not seen or seen[-1][1] < next_id - 1) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        poller.join()
    lags: list[float] = []
    j = 0
    for last_id, at in commits:
        while j < len(seen) and (seen[j][1] < last_id or seen[j][0] < at):
            j += 1
        if j == len(seen):
            raise SystemExit(f"lag at {rate}/s: transactions still not applied after 300 s")
        lags.append((seen[j][0] - at) * 1000)
    lags.sort()

    def pct(q: float) -> int:
        return round(lags[min(int(q * len(lags)), len(lags) - 1)])

    entry = {
        "case": f"lag {rate}/s",
        "offered_changes_per_s": round(len(commits) * per_tx / generated),
        "transactions": len(commits),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(lags[-1]),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(
        f"  lag at {rate:,}/s (offered {entry['offered_changes_per_s']:,}/s): p50 {entry['p50_ms']} ms  "
        f"p95 {entry['p95_ms']} ms  p99 {entry['p99_ms']} ms  max {entry['max_ms']} ms",
        flush=True,
    )
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run pg-cdc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows of the table (default 300,000)")
    parser.add_argument(
        "--changes", type=int, default=200_000, help="changes in the backlog (default 200,000)"
    )
    parser.add_argument(
        "--rates",
        default="1000,10000",
        help="insert rates for migrator's apply lag ('' to skip; default 1000,10000)",
    )
    parser.add_argument("--seconds", type=float, default=15, help="seconds at each rate (default 15)")
    parser.add_argument("--small", action="store_true", help="quick run: 50,000 rows, 20,000 changes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="record migrator's backlog apply with py-spy into this file (collapsed stacks; slows it down)",
    )
    args = parser.parse_args()
    rows, changes = (50_000, 20_000) if args.small else (args.rows, args.changes)
    if changes * 0.75 > rows:
        # Updates walk up from the first row and deletes down from the last: they must not meet.
        raise SystemExit("--changes must stay under rows / 0.75")

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-pgcdc-"))
    source = devservices.start_postgres(work / "source")
    target = devservices.start_postgres(work / "target")
    results: list[dict[str, Any]] = []
    migrator = str(ROOT / ".venv" / "bin" / "migrator")
    try:
        for server, names in ((source, [DB]), (target, ["bench_m", "bench_n"])):
            with psycopg.connect(server.url, autocommit=True) as conn:
                for name in names:
                    conn.execute(f"CREATE DATABASE {name}")
        src = source.url_for(DB)
        print(f"building {rows:,} rows ...", flush=True)
        create_source(src, rows)

        # migrator's copy; its slot stays and holds the backlog.
        plan = work / "pg-cdc.yaml"
        plan.write_text(PLAN)
        state = work / "pg-cdc.db"
        log = (work / "migrator.log").open("w+")
        env = {**os.environ, "MIGRATOR_SOURCE_URL": src, "MIGRATOR_TARGET_URL": target.url_for("bench_m")}
        subprocess.run(
            [migrator, "run", str(plan), "--until", "snapshot", "--state", str(state), "--json"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )

        # The native subscription's copy, then disabled: its slot holds the same backlog.
        copy_schema(src, target.url_for("bench_n"), ("bench_flat",))
        with psycopg.connect(src, autocommit=True) as conn:
            conn.execute("CREATE PUBLICATION bench_native FOR TABLE bench_flat")
        native = target.url_for("bench_n")
        with psycopg.connect(native, autocommit=True) as conn:
            conn.execute(
                f"CREATE SUBSCRIPTION bench_native CONNECTION '{src}' PUBLICATION bench_native WITH (copy_data = true)"
            )
            while conn.execute("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'").fetchone()[
                0
            ]:  # type: ignore[index]
                time.sleep(0.1)
            conn.execute("ALTER SUBSCRIPTION bench_native DISABLE")
            # The apply worker exits once disabled; the backlog must wait for both sides.
            while conn.execute(
                "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'bench_native' AND pid IS NOT NULL"
            ).fetchone()[0]:  # type: ignore[index]
                time.sleep(0.1)

        print(f"backlog of {changes:,} changes ...", flush=True)
        made, wal = make_backlog(src, rows, changes)
        gb = wal / 1e9
        print(f"  {made:,} changes, {wal / 1e6:.0f} MB of WAL; load average {os.getloadavg()}", flush=True)

        # migrator
        cpu0 = server_cpu(source.pid) + server_cpu(target.pid)  # type: ignore[arg-type]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()[0]
        started = time.monotonic()
        profiler = (
            [
                str(ROOT / ".venv" / "bin" / "py-spy"),
                "record",
                "--format",
                "raw",
                "-r",
                "250",
                "-o",
                str(args.py_spy),
                "--",
            ]
            if args.py_spy
            else []
        )
        proc = subprocess.Popen(
            [*profiler, migrator, "run", str(plan), "--state", str(state), "--json"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # migrator's own CPU from the first applied change on (its start and preflight left out).
        measured = proc.pid if not profiler else None
        at_first: list[float] = []
        first, done = wait_applied(
            target.url_for("bench_m"),
            started,
            on_first=lambda: at_first.append(server_cpu(measured) if measured else 0.0),
        )
        applying = (server_cpu(measured) - at_first[0]) if measured and at_first else None
        # Under py-spy, migrator is its child: stopping migrator lets py-spy write its file.
        os.kill(_child(proc.pid) if profiler else proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        servers = server_cpu(source.pid) + server_cpu(target.pid) - cpu0  # type: ignore[arg-type]
        client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        results.append(_entry("migrator", made, wal, first, done, client / gb, servers / gb, load))
        if applying is not None:
            # From the first change on (the backlog's first is its oldest): what the apply costs.
            results[-1]["client_cpu_s_per_gb_from_first"] = round(applying / gb, 1)
            print(f"  migrator client cpu from the first change {applying / gb:.1f} s/GB", flush=True)

        # native
        cpu0 = server_cpu(source.pid) + server_cpu(target.pid)  # type: ignore[arg-type]
        load = os.getloadavg()[0]
        with psycopg.connect(native, autocommit=True) as conn:
            started = time.monotonic()
            conn.execute("ALTER SUBSCRIPTION bench_native ENABLE")
            first, done = wait_applied(native, started)
            servers = server_cpu(source.pid) + server_cpu(target.pid) - cpu0  # type: ignore[arg-type]
            conn.execute("DROP SUBSCRIPTION bench_native")
        results.append(_entry("native", made, wal, first, done, None, servers / gb, load))

        expected = table_hash(src)
        for name, db in (("migrator", "bench_m"), ("native", "bench_n")):
            if table_hash(target.url_for(db)) != expected:
                raise SystemExit(f"{name}: the target table differs from the source after the backlog")
        # migrator following a steady insert rate: its apply lag.
        lags: list[dict[str, Any]] = []
        rates = [int(r) for r in args.rates.split(",") if r.strip()]
        if rates:
            proc = subprocess.Popen(
                [migrator, "run", str(plan), "--state", str(state), "--json"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                base = 10 * (rows + changes)
                # Timed only once migrator follows: a row written now must reach the target first.
                with psycopg.connect(src, autocommit=True) as conn:
                    conn.execute("INSERT INTO bench_flat (id, name) VALUES (%s, 'ready')", [base - 1])
                with psycopg.connect(target.url_for("bench_m"), autocommit=True) as conn:
                    while not conn.execute("SELECT 1 FROM bench_flat WHERE id = %s", [base - 1]).fetchone():
                        time.sleep(0.05)
                for rate in rates:
                    lags.append(measure_lag(src, target.url_for("bench_m"), rate, args.seconds, base))
                    base += 10 * rate * int(args.seconds + 1)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
        log.close()
    finally:
        target.stop()
        source.stop()
        shutil.rmtree(work, ignore_errors=True)

    # The figure to compare between runs on a busy machine: migrator's rate over the native
    # subscription's, both measured in this run.
    native_rates = {k: results[1][k] for k in ("changes_per_s", "changes_per_s_from_first")}
    results[0]["ratio_to_native"] = round(results[0]["changes_per_s"] / native_rates["changes_per_s"], 3)
    results[0]["ratio_to_native_from_first"] = round(
        results[0]["changes_per_s_from_first"] / native_rates["changes_per_s_from_first"], 3
    )
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "pg-cdc.json"
    out.write_text(
        json.dumps(
            {"benchmark": "pg-cdc", "rows": rows, "changes": made, "results": results, "lag": lags}, indent=2
        )
    )
    print()
    print(
        f"{'case':<9} {'changes':>8} {'WAL MB':>6} {'seconds':>8} {'changes/s':>10} {'from 1st':>9} "
        f"{'client s/GB':>11} {'servers s/GB':>12} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['case']:<9} {r['changes']:>8,} {r['wal_mb']:>6} {r['seconds']:>8.1f} {r['changes_per_s']:>10,} "
            f"{r['changes_per_s_from_first']:>9,} {r['client_cpu_s_per_gb']!s:>11} {r['servers_cpu_s_per_gb']:>12} "
            f"{r['load_1min']:>5}"
        )
    print(
        f"migrator / native: {results[0]['ratio_to_native']:.3f} "
        f"({results[0]['ratio_to_native_from_first']:.3f} from the first applied change)"
    )
    for lag in lags:
        print(
            f"migrator {lag['case']:<11} offered {lag['offered_changes_per_s']:>7,}/s  p50 {lag['p50_ms']:>6,} ms  "
            f"p95 {lag['p95_ms']:>6,} ms  p99 {lag['p99_ms']:>6,} ms  max {lag['max_ms']:>6,} ms"
        )
    print(f"\nwritten to {out}")


def _child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


def _entry(
    case: str,
    made: int,
    wal: int,
    first: float,
    done: float,
    client: float | None,
    servers: float,
    load: float,
) -> dict[str, Any]:
    entry = {
        "case": case,
        "changes": made,
        "wal_mb": round(wal / 1e6),
        "seconds": round(done, 2),
        "first_change_seconds": round(first, 2),
        "changes_per_s": round(made / done),
        "changes_per_s_from_first": round(made / max(done - first, 1e-3)),
        "client_cpu_s_per_gb": None if client is None else round(client, 1),
        "servers_cpu_s_per_gb": round(servers, 1),
        "load_1min": round(load, 2),
    }
    print(
        f"  {case:<9} {done:7.1f} s {entry['changes_per_s']:>8,} changes/s "
        f"({entry['changes_per_s_from_first']:,}/s after the first, at {first:.1f} s)  "
        f"client cpu {entry['client_cpu_s_per_gb']} s/GB  servers cpu {servers:.1f} s/GB  load {load:.2f}",
        flush=True,
    )
    return entry


if __name__ == "__main__":
    main()
