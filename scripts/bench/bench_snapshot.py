"""Snapshot benchmark: migrator's copy against the raw limit measured in the same run.

    scripts/bench/run snapshot [--small] [--rows N] [--sizes N,M] [--out DIR]

Builds a flat table (7 mixed columns) and a parent table with 3 children per parent on a
throwaway PostgreSQL, and a throwaway MongoDB-compatible server, then measures:
  raw       COPY-speed read of the same rows (psycopg binary) into insert_many(ordered=False),
            no mapping, the same parallelism: the limit this machine allows
  flat      `migrator run --until snapshot` on the flat table
  embedded  the same on the parent table with its children embedded
at parallel 1 and 2, and reports rows/s, documents/s, the ratio to the raw limit and the
peak RSS of the migrator process. With --sizes the flat copy is repeated at a second size
to show that memory does not grow with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pymongo
from psycopg import sql
from pymongo import ReplaceOne

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import devservices  # noqa: E402

from migrator.adapters.mongodb.codec import CODEC  # noqa: E402

CHILDREN = 3


def create_tables(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_child, bench_parent, bench_flat")
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
        conn.execute(
            """
            CREATE TABLE bench_parent (
                id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), score double precision,
                active boolean, created_at timestamptz, tag uuid)
            """
        )
        conn.execute("INSERT INTO bench_parent SELECT * FROM bench_flat")
        conn.execute(
            """
            CREATE TABLE bench_child (
                id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES bench_parent(id),
                label text, qty integer, price numeric(10,2))
            """
        )
        conn.execute(
            """
            INSERT INTO bench_child
            SELECT p * %s + c, p, 'item ' || c, c, c * 1.25
            FROM generate_series(1, %s) p, generate_series(0, %s) c
            """,
            [CHILDREN, rows, CHILDREN - 1],
        )
        conn.execute("CREATE INDEX ON bench_child (parent_id)")
        conn.execute("VACUUM ANALYZE bench_flat, bench_parent, bench_child")


def write_plan(path: Path, name: str, database: str, embedded: bool, parallel: int, chunk_rows: int) -> None:
    collection = (
        """
  - name: parents
    from: public.bench_parent
    key: id
    embed:
      - {as: children, from: public.bench_child, on: {parent_id: id}, key: id}
"""
        if embedded
        else """
  - name: flat
    from: public.bench_flat
    key: id
"""
    )
    path.write_text(
        f"""version: 1
name: {name}
source: {{adapter: postgres, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: mongodb, url: "${{MIGRATOR_TARGET_URL}}", database: {database}}}
collections:{collection}
phases: {{snapshot: {{parallel: {parallel}, chunk_rows: {chunk_rows}}}}}
"""
    )


def raw_limit(
    pg_url: str, mongo_url: str, database: str, rows: int, parallel: int, upsert: bool = False
) -> dict[str, Any]:
    """COPY of the flat rows into insert_many(ordered=False), no mapping, `parallel` threads.

    Values keep their BSON types (numeric as Decimal128 through the same codec): with
    float instead, the target server does measurably less work and the limit would
    not be one for these rows."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url, uuidRepresentation="standard")
    collection = client[database].get_collection("raw", codec_options=CODEC)
    collection.drop()
    bounds = [rows * i // parallel for i in range(parallel + 1)]
    names = ["_id", "name", "amount", "score", "active", "created_at", "tag"]

    def write(batch: list[dict[str, Any]]) -> None:
        if upsert:
            # The alternative the snapshot does not take: idempotent by construction, but it
            # is measured here to show what inserting first saves.
            collection.bulk_write(
                [ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in batch], ordered=False
            )
        else:
            collection.insert_many(batch, ordered=False)

    def copy(lo: int, hi: int) -> None:
        with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
            query = sql.SQL(
                "COPY (SELECT id, name, amount, score, active, created_at, tag FROM bench_flat "
                "WHERE id > {} AND id <= {} ORDER BY id) TO STDOUT (FORMAT BINARY)"
            ).format(sql.Literal(lo), sql.Literal(hi))
            with cur.copy(query) as cp:
                cp.set_types(["int8", "text", "numeric", "float8", "bool", "timestamptz", "uuid"])
                batch: list[dict[str, Any]] = []
                for row in cp.rows():
                    batch.append(dict(zip(names, row, strict=True)))
                    if len(batch) >= 1000:
                        write(batch)
                        batch = []
                if batch:
                    write(batch)

    started = time.monotonic()
    threads = [threading.Thread(target=copy, args=(bounds[i], bounds[i + 1])) for i in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    docs = collection.estimated_document_count()
    collection.drop()
    client.close()
    return {"rows": rows, "docs": docs, "seconds": seconds}


def peak_rss_of(
    plan: Path, state: Path, env: dict[str, str], database: str, collection: str, mongo_url: str
) -> dict[str, Any]:
    """Like migrator_run, but measures the peak RSS of this one process with /proc polling."""
    started = time.monotonic()
    # stdout goes to a file: a pipe that nobody reads while the run goes on fills up (64 kB of
    # JSON lines) and blocks the run.
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
    log.seek(0)
    out = log.read()
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"migrator run failed ({proc.returncode}):\n{out[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    docs = client[database][collection].count_documents({})
    client[database][collection].drop()
    client.close()
    return {
        "rows": result["snapshot"]["rows"],
        "docs": docs,
        "seconds": seconds,
        "peak_rss_mb": round(peak / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (default 1,000,000)")
    parser.add_argument("--small", action="store_true", help="quick run: 100,000 rows")
    parser.add_argument(
        "--second-size",
        type=int,
        default=None,
        help="flat rows of a second size for the RSS check (default rows/4)",
    )
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--skip-upsert", action="store_true", help="do not measure ReplaceOne upserts (slow)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    rows = 100_000 if args.small else args.rows
    second = args.second_size or max(rows // 4, 10_000)

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-"))
    pg = devservices.start_postgres(work / "pg")
    mongo = devservices.start_mongo(work / "mongo")
    results: list[dict[str, Any]] = []
    try:
        env = {**os.environ, "MIGRATOR_SOURCE_URL": pg.url, "MIGRATOR_TARGET_URL": mongo.url}
        print(
            f"building {rows:,} flat rows and {rows:,} parents with {CHILDREN} children each ...", flush=True
        )
        t = time.monotonic()
        create_tables(pg.url, rows)
        print(f"  built in {time.monotonic() - t:.1f} s", flush=True)

        def record(
            case: str, parallel: int, size: int, data: dict[str, Any], raw: dict[str, Any] | None
        ) -> None:
            rows_per_s = data["rows"] / data["seconds"]
            entry = {
                "case": case,
                "parallel": parallel,
                "size": size,
                "rows": data["rows"],
                "docs": data["docs"],
                "seconds": round(data["seconds"], 2),
                "rows_per_s": round(rows_per_s),
                "docs_per_s": round(data["docs"] / data["seconds"]),
                # Source rows per second against the raw limit's rows per second (one row, one
                # document there); docs_per_s shows the other view for embedded documents.
                "ratio_to_raw": None
                if raw is None
                else round(rows_per_s / (raw["rows"] / raw["seconds"]), 3),
                "peak_rss_mb": data.get("peak_rss_mb"),
            }
            results.append(entry)
            print(
                f"  {case:<10} parallel={parallel} rows={entry['rows']:>9,} docs={entry['docs']:>9,} "
                f"{entry['seconds']:>7.1f} s {entry['docs_per_s']:>8,} docs/s ratio={entry['ratio_to_raw']} "
                f"rss={entry['peak_rss_mb']} MB",
                flush=True,
            )

        for parallel in (1, 2):
            raw = raw_limit(pg.url, mongo.url, "bench", rows, parallel)
            record("raw", parallel, rows, raw, raw)
            if parallel == 1 and not args.skip_upsert:
                upserts = raw_limit(pg.url, mongo.url, "bench", rows, parallel, upsert=True)
                record("raw-upsert", parallel, rows, upserts, raw)
            for embedded in (False, True):
                name = f"bench-{'emb' if embedded else 'flat'}-{parallel}"
                plan = work / f"{name}.yaml"
                write_plan(plan, name, "bench", embedded, parallel, args.chunk_rows)
                data = peak_rss_of(
                    plan, work / f"{name}.db", env, "bench", "parents" if embedded else "flat", mongo.url
                )
                record("embedded" if embedded else "flat", parallel, rows, data, raw)
                _drop_slot(pg.url, name)

        # The second size: memory must not grow with the table.
        create_tables(pg.url, second)
        plan = work / "bench-small.yaml"
        write_plan(plan, "bench-small", "bench", False, 2, args.chunk_rows)
        data = peak_rss_of(plan, work / "bench-small.db", env, "bench", "flat", mongo.url)
        record("flat", 2, second, data, None)
    finally:
        mongo.stop()
        pg.stop()

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "snapshot.json"
    out.write_text(json.dumps({"benchmark": "snapshot", "rows": rows, "results": results}, indent=2))
    print()
    print(
        f"{'case':<10} {'par':>3} {'size':>9} {'docs':>9} {'seconds':>8} {'rows/s':>9} {'docs/s':>8} {'ratio':>6} {'rss MB':>7}"
    )
    for r in results:
        ratio = "" if r["ratio_to_raw"] is None else f"{r['ratio_to_raw']:.2f}"
        rss = "" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
        print(
            f"{r['case']:<10} {r['parallel']:>3} {r['size']:>9,} {r['docs']:>9,} {r['seconds']:>8.1f} "
            f"{r['rows_per_s']:>9,} {r['docs_per_s']:>8,} {ratio:>6} {rss:>7}"
        )
    print(f"\nwritten to {out}")


def _drop_slot(url: str, plan_name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE %s",
            [f"migrator_{plan_name.replace('-', '_')}_%"],
        )


if __name__ == "__main__":
    main()
