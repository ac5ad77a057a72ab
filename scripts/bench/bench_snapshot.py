"""Snapshot benchmark: migrator's copy against the raw limit measured in the same run.

    scripts/bench/run snapshot [--small] [--rows N] [--second-size N] [--chunk-rows N] [--out DIR]
    scripts/bench/run mysql-snapshot [--small] [--rows N] [--chunk-rows N] [--out DIR]
        (this script with --source mysql)

Builds a flat table (7 mixed columns) and a parent table with 3 children per parent on a
throwaway source (`--source postgres`, the default, or `mysql`: a MariaDB writing a binlog,
scripts/lib/mariadb_server.py) and a throwaway MongoDB-compatible server, then measures:
  raw       the flat rows read as fast as the driver allows, no mapping, into
            insert_many(ordered=False), the same parallelism: the limit this machine allows
            (PostgreSQL: COPY binary through psycopg; MySQL: an unbuffered PyMySQL SSCursor per
            thread, id ranges split evenly)
  flat      `migrator run --until snapshot` on the flat table
  embedded  the same on the parent table with its children embedded
at parallel 1 and 2, and reports rows/s, documents/s, the ratio to the raw limit and the peak
RSS of the migrator process.

PostgreSQL also measures ReplaceOne upserts (what inserting first saves) and repeats the flat
copy at a second size (memory must not grow with the table); writes snapshot.json.
MySQL runs the raw pipe before and after each migrator run and takes each ratio against the mean
of the two (the machine is shared, and both sides of a ratio must see the same load); it also
gives the ratio in documents per second (the stricter view for embedded documents of 4 rows each)
and the client's CPU seconds per GB of documents written (the raw pipe's own process, migrator's
child process; the servers' CPU left out of both); writes mysql-snapshot.json.
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
import time
from pathlib import Path
from typing import Any

import bson
import pymongo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import devservices  # noqa: E402
import snapshot_sources  # noqa: E402
from snapshot_sources import CHILDREN, create_tables  # noqa: E402

DATABASE = "bench"


def write_plan(
    path: Path,
    name: str,
    database: str,
    embedded: bool,
    parallel: int,
    chunk_rows: int,
    adapter: str = "postgres",
    schema: str = "public",
) -> None:
    """The benchmark's plan: the flat table, or the parents with their children embedded;
    `schema` qualifies the tables (PostgreSQL's schema, MySQL's database)."""
    collection = (
        f"""
  - name: parents
    from: {schema}.bench_parent
    key: id
    embed:
      - {{as: children, from: {schema}.bench_child, on: {{parent_id: id}}, key: id}}
"""
        if embedded
        else f"""
  - name: flat
    from: {schema}.bench_flat
    key: id
"""
    )
    path.write_text(
        f"""version: 1
name: {name}
source: {{adapter: {adapter}, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: mongodb, url: "${{MIGRATOR_TARGET_URL}}", database: {database}}}
collections:{collection}
phases: {{snapshot: {{parallel: {parallel}, chunk_rows: {chunk_rows}}}}}
"""
    )


def document_bytes(mongo_url: str, database: str, collection: str, docs: int, sample: int = 1000) -> float:
    """Bytes of BSON the collection holds: the mean size of a sample times the documents."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    try:
        sizes = [len(bson.encode(d)) for d in client[database][collection].find({}).limit(sample)]
    finally:
        client.close()
    return statistics.fmean(sizes) * docs if sizes else 0.0


def drop_collection(mongo_url: str, database: str, collection: str) -> None:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    client[database][collection].drop()
    client.close()


def migrator_run(
    plan: Path, state: Path, env: dict[str, str], database: str, collection: str, mongo_url: str
) -> dict[str, Any]:
    """`migrator run --until snapshot` as a child process: wall time, peak RSS (/proc polling),
    CPU seconds (the child's rusage once it has been waited for) and the documents' BSON bytes;
    the collection is dropped afterwards."""
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log.seek(0)
    out = log.read()
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"migrator run failed ({proc.returncode}):\n{out[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    docs = client[database][collection].count_documents({})
    client.close()
    size = document_bytes(mongo_url, database, collection, docs)
    drop_collection(mongo_url, database, collection)
    return {
        "rows": result["snapshot"]["rows"],
        "docs": docs,
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "bytes": size,
        "peak_rss_mb": round(peak / 1024, 1),
    }


# --- PostgreSQL ----------------------------------------------------------------------------------


def run_postgres(args: argparse.Namespace, rows: int, work: Path) -> list[dict[str, Any]]:
    second = args.second_size or max(rows // 4, 10_000)
    pg = devservices.start_postgres(work / "pg")
    mongo = devservices.start_mongo(work / "mongo")
    results: list[dict[str, Any]] = []
    try:
        env = {**os.environ, "MIGRATOR_SOURCE_URL": pg.url, "MIGRATOR_TARGET_URL": mongo.url}
        _build(lambda: create_tables(pg.url, rows), rows)
        for parallel in (1, 2):
            raw = snapshot_sources.raw_limit(pg.url, mongo.url, DATABASE, rows, parallel)
            _record_postgres(results, "raw", parallel, rows, raw, raw)
            if parallel == 1 and not args.skip_upsert:
                upserts = snapshot_sources.raw_limit(pg.url, mongo.url, DATABASE, rows, parallel, upsert=True)
                _record_postgres(results, "raw-upsert", parallel, rows, upserts, raw)
            for embedded in (False, True):
                name = f"bench-{'emb' if embedded else 'flat'}-{parallel}"
                plan = work / f"{name}.yaml"
                write_plan(plan, name, DATABASE, embedded, parallel, args.chunk_rows)
                collection = "parents" if embedded else "flat"
                data = migrator_run(plan, work / f"{name}.db", env, DATABASE, collection, mongo.url)
                _record_postgres(results, "embedded" if embedded else "flat", parallel, rows, data, raw)
                snapshot_sources.drop_slots(pg.url, name)

        # The second size: memory must not grow with the table.
        create_tables(pg.url, second)
        plan = work / "bench-small.yaml"
        write_plan(plan, "bench-small", DATABASE, False, 2, args.chunk_rows)
        data = migrator_run(plan, work / "bench-small.db", env, DATABASE, "flat", mongo.url)
        _record_postgres(results, "flat", 2, second, data, None)
    finally:
        mongo.stop()
        pg.stop()
    return results


def _record_postgres(
    results: list[dict[str, Any]],
    case: str,
    parallel: int,
    size: int,
    data: dict[str, Any],
    raw: dict[str, Any] | None,
) -> None:
    # Source rows per second against the raw limit's rows per second (one row, one document
    # there); docs_per_s shows the other view for embedded documents.
    entry = _entry(case, parallel, data, None if raw is None else raw["rows"] / raw["seconds"], size=size)
    entry["peak_rss_mb"] = data.get("peak_rss_mb")
    results.append(entry)
    _say(entry, 10, "")


def _table_postgres(results: list[dict[str, Any]]) -> None:
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


# --- MySQL ---------------------------------------------------------------------------------------


def run_mysql(args: argparse.Namespace, rows: int, work: Path) -> list[dict[str, Any]]:
    source = snapshot_sources.start_mariadb(work / "mariadb", DATABASE)
    mongo = devservices.start_mongo(work / "mongo")
    results: list[dict[str, Any]] = []
    try:
        env = {
            **os.environ,
            "MIGRATOR_SOURCE_URL": source.url_for(DATABASE),
            "MIGRATOR_TARGET_URL": mongo.url,
        }
        _build(lambda: snapshot_sources.create_mysql_tables(source.port, DATABASE, rows), rows)

        def raw_pipe() -> dict[str, Any]:
            data = snapshot_sources.raw_pipe(source.port, DATABASE, mongo.url, rows, parallel)
            data["bytes"] = document_bytes(mongo.url, DATABASE, "raw", data["docs"])
            drop_collection(mongo.url, DATABASE, "raw")
            return {**data, "rows_raw": rows}

        for parallel in (1, 2):
            # The raw pipe runs before and after each migrator run, and each ratio is taken
            # against the mean of the two: the machine is shared, its load comes and goes, and
            # both sides of a ratio must see the same load (bench_cdc.py measures the server
            # before each pass for the same reason).
            raw = raw_pipe()
            first = raw["seconds"]
            _record_mysql(results, "raw", parallel, raw, first)
            for embedded in (False, True):
                label = "embedded" if embedded else "flat"
                name = f"bench-mysql-{label}-{parallel}"
                plan = work / f"{name}.yaml"
                write_plan(plan, name, DATABASE, embedded, parallel, args.chunk_rows, "mysql", DATABASE)
                collection = "parents" if embedded else "flat"
                data = migrator_run(plan, work / f"{name}.db", env, DATABASE, collection, mongo.url)
                after = raw_pipe()
                _record_mysql(
                    results,
                    label,
                    parallel,
                    {**data, "rows_raw": rows},
                    (raw["seconds"] + after["seconds"]) / 2,
                )
                # The raw pipe's own rows: its ratio to the first one shows how the load moved.
                _record_mysql(results, f"raw-after-{label}", parallel, after, first)
                raw = after
    finally:
        mongo.stop()
        source.stop()
    return results


def _record_mysql(
    results: list[dict[str, Any]], case: str, parallel: int, data: dict[str, Any], raw_seconds: float
) -> None:
    """One result row; `raw_seconds`: the raw pipe's time for the same rows at the same load
    (the mean of its runs right before and right after this one)."""
    raw_rate = data["rows_raw"] / raw_seconds
    gb = data["bytes"] / 1e9
    # ratio_to_raw: source rows per second against the raw pipe's (one row, one document there);
    # an embedded run's parent rows carry 3 children each, docs_per_s shows documents.
    entry = _entry(case, parallel, data, raw_rate)
    entry.update(
        {
            # Documents per second against the raw pipe's: the stricter view for embedded
            # documents (one document holds a parent and its 3 children, 4 source rows).
            "docs_ratio_to_raw": round(data["docs"] / data["seconds"] / raw_rate, 3),
            "gb": round(gb, 4),
            "cpu_seconds": round(data["cpu_seconds"], 2),
            "cpu_s_per_gb": round(data["cpu_seconds"] / gb) if gb else None,
            "peak_rss_mb": data.get("peak_rss_mb"),
        }
    )
    results.append(entry)
    _say(entry, 18, f"(docs {entry['docs_ratio_to_raw']}) cpu={entry['cpu_s_per_gb']} s/GB ")


def _table_mysql(results: list[dict[str, Any]]) -> None:
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


# --- both ------------------------------------------------------------------------------------------


def _entry(
    case: str, parallel: int, data: dict[str, Any], raw_rate: float | None, **labels: Any
) -> dict[str, Any]:
    """The fields of a result row both sources give; `raw_rate`: the raw limit's rows per second."""
    rows_per_s = data["rows"] / data["seconds"]
    return {
        "case": case,
        "parallel": parallel,
        **labels,
        "rows": data["rows"],
        "docs": data["docs"],
        "seconds": round(data["seconds"], 2),
        "rows_per_s": round(rows_per_s),
        "docs_per_s": round(data["docs"] / data["seconds"]),
        "ratio_to_raw": None if raw_rate is None else round(rows_per_s / raw_rate, 3),
    }


def _say(entry: dict[str, Any], width: int, extra: str) -> None:
    print(
        f"  {entry['case']:<{width}} parallel={entry['parallel']} rows={entry['rows']:>9,} "
        f"docs={entry['docs']:>9,} {entry['seconds']:>7.1f} s {entry['docs_per_s']:>8,} docs/s "
        f"ratio={entry['ratio_to_raw']} {extra}rss={entry['peak_rss_mb']} MB",
        flush=True,
    )


# Per source: its measurements, its table, the benchmark's name (and its JSON file's).
SOURCES = {
    "postgres": (run_postgres, _table_postgres, "snapshot"),
    "mysql": (run_mysql, _table_mysql, "mysql-snapshot"),
}


def _build(create: Any, rows: int) -> None:
    print(f"building {rows:,} flat rows and {rows:,} parents with {CHILDREN} children each ...", flush=True)
    started = time.monotonic()
    create()
    print(f"  built in {time.monotonic() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=tuple(SOURCES), default="postgres", help="default: postgres")
    parser.add_argument("--rows", type=int, default=1_000_000, help="parent rows (default 1,000,000)")
    parser.add_argument("--small", action="store_true", help="quick run: 100,000 rows")
    parser.add_argument(
        "--second-size",
        type=int,
        default=None,
        help="postgres: flat rows of a second size for the RSS check (default rows/4)",
    )
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument(
        "--skip-upsert", action="store_true", help="postgres: do not measure ReplaceOne upserts (slow)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    rows = 100_000 if args.small else args.rows
    measure, table, benchmark = SOURCES[args.source]

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-"))
    try:
        results = measure(args, rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # plans, state files and logs of this run only

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{benchmark}.json"
    out.write_text(json.dumps({"benchmark": benchmark, "rows": rows, "results": results}, indent=2))
    print()
    table(results)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
