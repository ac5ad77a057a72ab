"""PostgreSQL -> PostgreSQL CDC backlog benchmark: migrator's apply against a native logical
replication subscription applying the same backlog, same servers, same run.

    scripts/bench/run pg-cdc [--small] [--rows N] [--changes N] [--out DIR]

Two throwaway PostgreSQL clusters. The source database `bench` holds bench_flat (rows, 7 mixed
columns, a secondary index); on the target, database `bench_m` gets migrator's copy (`migrator
run --until snapshot`, which leaves its slot behind) and database `bench_n` a native
subscription's copy (copy_data, waited until `r`, then disabled). With both apply sides stopped,
the source takes a backlog of N changes in transactions of 100 rows (updates 60%, inserts 25%,
deletes 15%), ending with one sentinel row. Then, one after the other:
  migrator  `migrator run` (resumes into CDC) until the sentinel is on the target, then SIGTERM
  native    ALTER SUBSCRIPTION ... ENABLE until the sentinel is on the target
Reported: changes/s from the start (process start, or ENABLE) and from the first applied change
(what the apply itself sustains: migrator's start and preflight take seconds of their own), the
client's CPU seconds per GB of the backlog's WAL (migrator's process; native has no client) and
both servers' CPU seconds per GB. Both targets are compared with the source afterwards (a
server-side hash of every row). Writes bench-results/pg-cdc.json.
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
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import devservices  # noqa: E402
from bench_pg_snapshot import copy_schema, server_cpu  # noqa: E402

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
        conn.execute(
            """
            CREATE TABLE bench_flat (
                id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), score double precision,
                active boolean, created_at timestamptz, tag uuid)
            """
        )
        conn.execute(
            """
            INSERT INTO bench_flat
            SELECT i, 'name-' || i, (i %% 100000) / 100.0, i * 0.5, i %% 2 = 0,
                   timestamptz '2024-01-01' + i * interval '1 second', md5(i::text)::uuid
            FROM generate_series(1, %s) i
            """,
            [rows],
        )
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


def wait_applied(url: str, started: float, timeout: float = 3600) -> tuple[float, float]:
    """Seconds from `started` until the first backlog change (row 1 updated) and until the
    sentinel are on the target."""
    first = None
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < timeout:
            if first is None:
                row = conn.execute("SELECT name FROM bench_flat WHERE id = 1").fetchone()
                if row and row[0].endswith("+"):
                    first = time.monotonic() - started
            if conn.execute("SELECT 1 FROM bench_flat WHERE id = %s", [SENTINEL]).fetchone():
                done = time.monotonic() - started
                return (first if first is not None else done), done
            time.sleep(0.02)
    raise SystemExit("the backlog was not applied within the timeout")


def table_hash(url: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(HASH).fetchone() or ())


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run pg-cdc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows of the table (default 300,000)")
    parser.add_argument(
        "--changes", type=int, default=200_000, help="changes in the backlog (default 200,000)"
    )
    parser.add_argument("--small", action="store_true", help="quick run: 50,000 rows, 20,000 changes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
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
        proc = subprocess.Popen(
            [migrator, "run", str(plan), "--state", str(state), "--json"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        first, done = wait_applied(target.url_for("bench_m"), started)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        servers = server_cpu(source.pid) + server_cpu(target.pid) - cpu0  # type: ignore[arg-type]
        client = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        results.append(_entry("migrator", made, wal, first, done, client / gb, servers / gb, load))

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
        log.close()
    finally:
        target.stop()
        source.stop()
        shutil.rmtree(work, ignore_errors=True)

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "pg-cdc.json"
    out.write_text(
        json.dumps({"benchmark": "pg-cdc", "rows": rows, "changes": made, "results": results}, indent=2)
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
    print(f"\nwritten to {out}")


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
