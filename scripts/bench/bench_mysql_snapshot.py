"""Snapshot benchmark from MariaDB: migrator's copy against a raw pipe measured in the same run.

    scripts/bench/run mysql-snapshot [--small] [--rows N] [--chunk-rows N] [--out DIR]

Builds a flat table (7 mixed columns) and a parent table with 3 children per parent on a
throwaway MariaDB (scripts/lib/mariadb_server.py, a binlog source), and a throwaway
MongoDB-compatible server, then measures:
  raw       the flat rows SELECTed through an unbuffered PyMySQL SSCursor (one per thread, id
            ranges split evenly) into insert_many(ordered=False) of plain dicts, no mapping, the
            same parallelism: the limit this machine allows for these servers
  flat      `migrator run --until snapshot` on the flat table
  embedded  the same on the parent table with its children embedded
at parallel 1 and 2, and reports rows/s, documents/s, the ratio to the raw pipe (source rows
per second against the raw pipe's, as bench_snapshot.py; and documents per second against its
documents per second, the stricter view for embedded documents of 4 rows each), the peak RSS of the migrator process and the client's CPU
seconds per GB of documents written (the raw pipe's own process, migrator's child process; the
servers' CPU left out of both).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import bson
import pymongo
import pymysql
import pymysql.cursors

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import devservices  # noqa: E402
import mariadb_server  # noqa: E402

from migrator.adapters.mongodb.codec import CODEC  # noqa: E402

CHILDREN = 3
DATABASE = "bench"


def _connect(port: int, **options: Any) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        database=DATABASE,
        autocommit=True,
        charset="utf8mb4",
        **options,
    )


def create_tables(port: int, rows: int) -> None:
    """The rows come from MariaDB's SEQUENCE engine (seq_1_to_N), written server-side."""
    with _connect(port) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_child, bench_parent, bench_flat")
        columns = (
            "id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2), score DOUBLE, "
            "active TINYINT(1), created_at DATETIME(6), tag CHAR(36)"
        )
        cur.execute(f"CREATE TABLE bench_flat ({columns}) ENGINE=InnoDB")
        cur.execute(
            f"""
            INSERT INTO bench_flat
            SELECT seq, CONCAT('name-', seq), (seq % 100000) / 100.0, seq * 0.5, seq % 2 = 0,
                   TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, UUID()
            FROM seq_1_to_{int(rows)}
            """  # noqa: S608 (numbers only)
        )
        cur.execute(f"CREATE TABLE bench_parent ({columns}) ENGINE=InnoDB")
        cur.execute("INSERT INTO bench_parent SELECT * FROM bench_flat")
        cur.execute(
            """
            CREATE TABLE bench_child (
                id BIGINT PRIMARY KEY, parent_id BIGINT NOT NULL, label VARCHAR(32), qty INT,
                price DECIMAL(10,2), KEY (parent_id),
                FOREIGN KEY (parent_id) REFERENCES bench_parent (id)) ENGINE=InnoDB
            """
        )
        cur.execute(
            f"""
            INSERT INTO bench_child
            SELECT p.seq * {CHILDREN} + c.seq, p.seq, CONCAT('item ', c.seq), c.seq, c.seq * 1.25
            FROM seq_1_to_{int(rows)} p, seq_0_to_{CHILDREN - 1} c
            """  # noqa: S608 (numbers only)
        )
        cur.execute("ANALYZE TABLE bench_flat, bench_parent, bench_child")
        cur.fetchall()


def write_plan(path: Path, name: str, embedded: bool, parallel: int, chunk_rows: int) -> None:
    collection = (
        f"""
  - name: parents
    from: {DATABASE}.bench_parent
    key: id
    embed:
      - {{as: children, from: {DATABASE}.bench_child, on: {{parent_id: id}}, key: id}}
"""
        if embedded
        else f"""
  - name: flat
    from: {DATABASE}.bench_flat
    key: id
"""
    )
    path.write_text(
        f"""version: 1
name: {name}
source: {{adapter: mysql, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: mongodb, url: "${{MIGRATOR_TARGET_URL}}", database: {DATABASE}}}
collections:{collection}
phases: {{snapshot: {{parallel: {parallel}, chunk_rows: {chunk_rows}}}}}
"""
    )


def document_bytes(mongo_url: str, collection: str, docs: int, sample: int = 1000) -> float:
    """Bytes of BSON the collection holds: the mean size of a sample times the documents."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    try:
        sizes = [len(bson.encode(d)) for d in client[DATABASE][collection].find({}).limit(sample)]
    finally:
        client.close()
    return statistics.fmean(sizes) * docs if sizes else 0.0


def raw_pipe(port: int, mongo_url: str, rows: int, parallel: int) -> dict[str, Any]:
    """SELECT of the flat rows through an unbuffered SSCursor into insert_many(ordered=False).

    Plain dicts of what PyMySQL returns (DECIMAL as Decimal, written as Decimal128 through the
    same codec migrator uses: with float instead, the target server does measurably less work
    and the limit would not be one for these rows)."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url, uuidRepresentation="standard")
    collection = client[DATABASE].get_collection("raw", codec_options=CODEC)
    collection.drop()
    bounds = [rows * i // parallel for i in range(parallel + 1)]
    names = ["_id", "name", "amount", "score", "active", "created_at", "tag"]
    errors: list[BaseException] = []

    def copy(lo: int, hi: int) -> None:
        try:
            with _connect(port, cursorclass=pymysql.cursors.SSCursor) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT id, name, amount, score, active, created_at, tag FROM bench_flat "
                    "WHERE id > %s AND id <= %s ORDER BY id",
                    [lo, hi],
                )
                batch: list[dict[str, Any]] = []
                for row in cur:
                    batch.append(dict(zip(names, row, strict=True)))
                    if len(batch) >= 1000:
                        collection.insert_many(batch, ordered=False)
                        batch = []
                if batch:
                    collection.insert_many(batch, ordered=False)
        except BaseException as exc:  # noqa: BLE001 (raised again by the main thread)
            errors.append(exc)

    cpu = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=copy, args=(bounds[i], bounds[i + 1])) for i in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu
    if errors:
        raise errors[0]
    docs = collection.count_documents({})
    client.close()
    size = document_bytes(mongo_url, "raw", docs)
    client = pymongo.MongoClient(mongo_url)
    client[DATABASE]["raw"].drop()
    client.close()
    return {"rows": rows, "docs": docs, "seconds": seconds, "cpu_seconds": cpu, "bytes": size}


def migrator_run(
    plan: Path, state: Path, env: dict[str, str], collection: str, mongo_url: str
) -> dict[str, Any]:
    """`migrator run --until snapshot` as a child process: wall time, peak RSS (/proc polling)
    and CPU seconds (the child's rusage once it has been waited for)."""
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # stdout goes to a file: a pipe nobody reads while the run goes on fills up and blocks it.
    log = state.with_suffix(".log").open("w+")
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "migrator"),
            "run",
            str(plan),
            "--until",
            "snapshot",
            "--state",
            str(state),
            "--json",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.1)
    proc.wait()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.seek(0)
    out = log.read()
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"migrator run failed ({proc.returncode}):\n{out[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    docs = client[DATABASE][collection].count_documents({})
    client.close()
    size = document_bytes(mongo_url, collection, docs)
    client = pymongo.MongoClient(mongo_url)
    client[DATABASE][collection].drop()
    client.close()
    return {
        "rows": result["snapshot"]["rows"],
        "docs": docs,
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "bytes": size,
        "peak_rss_mb": round(peak / 1024, 1),
    }


def record(
    results: list[dict[str, Any]], case: str, parallel: int, data: dict[str, Any], raw_seconds: float
) -> None:
    """One result row; `raw_seconds`: the raw pipe's time for the same rows at the same load
    (the mean of its runs right before and right after this one)."""
    rows_per_s = data["rows"] / data["seconds"]
    raw_rate = data["rows_raw"] / raw_seconds if "rows_raw" in data else None
    gb = data["bytes"] / 1e9
    entry = {
        "case": case,
        "parallel": parallel,
        "rows": data["rows"],
        "docs": data["docs"],
        "seconds": round(data["seconds"], 2),
        "rows_per_s": round(rows_per_s),
        "docs_per_s": round(data["docs"] / data["seconds"]),
        # Source rows per second against the raw pipe's (one row, one document there); an
        # embedded run's parent rows carry 3 children each, docs_per_s shows documents.
        "ratio_to_raw": round(rows_per_s / raw_rate, 3) if raw_rate else None,
        # Documents per second against the raw pipe's: the stricter view for embedded documents
        # (one document holds a parent and its 3 children, 4 source rows).
        "docs_ratio_to_raw": round(data["docs"] / data["seconds"] / raw_rate, 3) if raw_rate else None,
        "gb": round(gb, 4),
        "cpu_seconds": round(data["cpu_seconds"], 2),
        "cpu_s_per_gb": round(data["cpu_seconds"] / gb) if gb else None,
        "peak_rss_mb": data.get("peak_rss_mb"),
    }
    results.append(entry)
    print(
        f"  {case:<18} parallel={parallel} rows={entry['rows']:>9,} docs={entry['docs']:>9,} "
        f"{entry['seconds']:>7.1f} s {entry['docs_per_s']:>8,} docs/s ratio={entry['ratio_to_raw']} "
        f"(docs {entry['docs_ratio_to_raw']}) "
        f"cpu={entry['cpu_s_per_gb']} s/GB rss={entry['peak_rss_mb']} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/run mysql-snapshot", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (default 1,000,000)")
    parser.add_argument("--small", action="store_true", help="quick run: 100,000 rows")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    rows = 100_000 if args.small else args.rows

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-mysql-"))
    source = mariadb_server.start_mariadb(work / "mariadb")
    mongo = devservices.start_mongo(work / "mongo")
    results: list[dict[str, Any]] = []
    try:
        with _connect_root(source.port) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
        env = {
            **os.environ,
            "MIGRATOR_SOURCE_URL": source.url_for(DATABASE),
            "MIGRATOR_TARGET_URL": mongo.url,
        }
        print(
            f"building {rows:,} flat rows and {rows:,} parents with {CHILDREN} children each ...", flush=True
        )
        t = time.monotonic()
        create_tables(source.port, rows)
        print(f"  built in {time.monotonic() - t:.1f} s", flush=True)
        for parallel in (1, 2):
            # The raw pipe runs before and after each migrator run, and each ratio is taken
            # against the mean of the two: the machine is shared, its load comes and goes, and
            # both sides of a ratio must see the same load (bench_cdc.py measures the server
            # before each pass for the same reason).
            raw = raw_pipe(source.port, mongo.url, rows, parallel)
            first = raw["seconds"]
            record(results, "raw", parallel, {**raw, "rows_raw": rows}, first)
            for embedded in (False, True):
                label = "embedded" if embedded else "flat"
                name = f"bench-mysql-{label}-{parallel}"
                plan = work / f"{name}.yaml"
                write_plan(plan, name, embedded, parallel, args.chunk_rows)
                data = migrator_run(
                    plan, work / f"{name}.db", env, "parents" if embedded else "flat", mongo.url
                )
                after = raw_pipe(source.port, mongo.url, rows, parallel)
                bracket = (raw["seconds"] + after["seconds"]) / 2
                record(results, label, parallel, {**data, "rows_raw": rows}, bracket)
                # The raw pipe's own rows: its ratio to the first one shows how the load moved.
                record(results, f"raw-after-{label}", parallel, {**after, "rows_raw": rows}, first)
                raw = after
    finally:
        mongo.stop()
        source.stop()
        shutil.rmtree(work, ignore_errors=True)  # plans, state files and logs of this run only

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "mysql-snapshot.json"
    out.write_text(json.dumps({"benchmark": "mysql-snapshot", "rows": rows, "results": results}, indent=2))
    print()
    print(
        f"{'case':<18} {'par':>3} {'rows':>9} {'docs':>9} {'seconds':>8} {'rows/s':>9} {'docs/s':>8} "
        f"{'ratio':>6} {'docs r':>6} {'cpu s/GB':>8} {'rss MB':>7}"
    )
    for r in results:
        rss = "" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        print(
            f"{r['case']:<18} {r['parallel']:>3} {r['rows']:>9,} {r['docs']:>9,} {r['seconds']:>8.1f} "
            f"{r['rows_per_s']:>9,} {r['docs_per_s']:>8,} {r['ratio_to_raw']:>6.2f} {r['docs_ratio_to_raw']:>6.2f} "
            f"{r['cpu_s_per_gb']!s:>8} {rss:>7}"
        )
    print(f"\nwritten to {out}")


def _connect_root(port: int) -> pymysql.connections.Connection[Any]:
    return pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)


if __name__ == "__main__":
    main()
