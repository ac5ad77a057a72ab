"""Verify benchmark: a full `migrator verify` against the snapshot copy of the same tables, same run.

    scripts/bench/run verify [--small] [--rows N] [--parallel N] [--target mongodb|postgres]
                             [--checksums-only] [--out DIR]

Builds the snapshot benchmark's tables (a flat table of 7 mixed columns; a parent table with 3
children per parent) on a throwaway PostgreSQL and MongoDB-compatible server; for each, copies
it with `migrator run --until snapshot` and then compares it with `migrator verify` (both as
processes, both timed from start to exit), and reports source rows/s of each and the ratio
verify / copy. Goal (issue 5): verify >= 1.0x the copy rate: it reads both sides but writes
nothing.

With `--target postgres` the flat table goes to a second throwaway PostgreSQL instead (issue 16),
and verify runs twice: by server-side checksums (the default for PostgreSQL -> PostgreSQL: only
ranges whose hashes differ are read row by row) and row by row (`--mode sample --sample 1`,
which every range takes through the mapping; `--checksums-only` leaves that one out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import devservices  # noqa: E402
from bench_snapshot import write_plan  # noqa: E402
from snapshot_sources import CHILDREN, create_tables  # noqa: E402

MIGRATOR = str(ROOT / ".venv" / "bin" / "migrator")
DEFAULT_CHUNK_ROWS = 10_000


def timed(args: list[str], env: dict[str, str], log: Path) -> tuple[float, str]:
    started = time.monotonic()
    with log.open("w+") as out:
        # Output to a file: an unread pipe would fill up and block the process.
        code = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        seconds = time.monotonic() - started
        out.seek(0)
        text = out.read()
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(args[:2])} failed ({code}):\n{text[-3000:]}")
    return seconds, text


def result_line(out: str) -> dict[str, Any]:
    """The `result` line of a streaming command's --json output (docs/json.md): event lines first."""
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            if data.get("event") == "result":
                return dict(data)
    raise SystemExit(f"no result line in the command's output:\n{out[-3000:]}")


def phase_seconds(out: str, phase: str) -> float:
    """From `phase`'s phase.started to its phase.finished event in a run's --json output."""
    times: dict[str, datetime] = {}
    for line in out.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("phase.started", "phase.finished") and event.get("phase") == phase:
                times[event["event"]] = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
    return (times["phase.finished"] - times["phase.started"]).total_seconds()


def target_scan_seconds(mongo_url: str, collection: str) -> float:
    """One pass over the collection's raw documents: what reading the target costs at least."""
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(mongo_url)
    options: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
    coll = client["bench"].get_collection(collection, codec_options=options)
    started = time.monotonic()
    for _ in coll.find({}):
        pass
    seconds = time.monotonic() - started
    client.close()
    return seconds


POSTGRES_PLAN = """version: 1
name: {name}
source: {{adapter: postgres, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: postgres, url: "${{MIGRATOR_TARGET_URL}}"}}
tables: [{{from: public.bench_flat}}]
phases: {{snapshot: {{parallel: {parallel}{snapshot_chunks}}}, verify: {{parallel: {parallel}, chunk_rows: {chunk_rows}}}}}
"""


def postgres_case(
    work: Path, source: Any, rows: int, parallel: int, chunk_rows: int | None, checksums_only: bool = False
) -> list[dict[str, Any]]:
    """The flat table copied to a second PostgreSQL, then verified by checksums and row by row."""
    target = devservices.start_postgres(work / "pg-target")
    try:
        env = {**os.environ, "MIGRATOR_SOURCE_URL": source.url, "MIGRATOR_TARGET_URL": target.url}
        with psycopg.connect(source.url) as conn:
            row = conn.execute("SELECT pg_table_size('bench_flat')").fetchone()
            table_bytes = int(row[0]) if row else 0
        name = "bench-verify-pg"
        plan = work / f"{name}.yaml"
        # The copy at its own chunk size unless one is asked for (a table copied undecoded takes
        # chunks of ten times the default), so that the ratio is against the copy as it runs.
        snapshot_chunks = f", chunk_rows: {chunk_rows}" if chunk_rows is not None else ""
        plan.write_text(
            POSTGRES_PLAN.format(
                name=name,
                parallel=parallel,
                chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
                snapshot_chunks=snapshot_chunks,
            )
        )
        state = str(work / f"{name}.db")
        copy_s, run_out = timed(
            [MIGRATOR, "run", str(plan), "--until", "snapshot", "--state", state, "--json"],
            env,
            work / f"{name}-run.log",
        )
        copy_load = os.getloadavg()[0]  # the machine's load at the end of each timed command
        copy_phase_s = phase_seconds(run_out, "snapshot")
        results = []
        cases: list[tuple[str, list[str]]] = [("pg checksums", [])]
        if not checksums_only:
            cases.append(("pg row-by-row", ["--mode", "sample", "--sample", "1"]))
        for case, extra in cases:
            verify_s, out = timed(
                [MIGRATOR, "verify", str(plan), "--state", state, "--json", *extra],
                env,
                work / f"{name}-{case.split()[1]}.log",
            )
            report = result_line(out)
            if report["verdict"] != "equal" or report["checked"] != rows:
                raise SystemExit(
                    f"verify of a fresh copy did not come out equal: {json.dumps(report)[:2000]}"
                )
            entry = {
                "case": case,
                "parallel": parallel,
                "documents": rows,
                "source_rows": rows,
                "table_mb": round(table_bytes / 1e6),
                "copy_seconds": round(copy_s, 2),
                "verify_seconds": round(verify_s, 2),
                "copy_rows_per_s": round(rows / copy_s),
                "verify_rows_per_s": round(rows / verify_s),
                "ratio": round(copy_s / verify_s, 3),
                # The phases alone (no process start, plan, connections): the snapshot phase's
                # events, verify's own report.
                "copy_phase_seconds": round(copy_phase_s, 2),
                "verify_phase_seconds": report["seconds"],
                "phase_ratio": round(copy_phase_s / report["seconds"], 3),
                "hashed_ranges": report.get("hashed_ranges"),
                "ranges": report.get("ranges"),
                "copy_load": round(copy_load, 2),
                "verify_load": round(os.getloadavg()[0], 2),
            }
            results.append(entry)
            print(
                f"  {case:<13} {entry['table_mb']} MB  copy {copy_s:6.1f} s  verify {verify_s:6.1f} s  "
                f"ratio {entry['ratio']:.2f}  (phases {copy_phase_s:.1f} s / {report['seconds']:.1f} s: "
                f"{entry['phase_ratio']:.2f})  ({entry['hashed_ranges']}/{entry['ranges']} ranges hashed)  "
                f"load {entry['copy_load']:.1f} / {entry['verify_load']:.1f}",
                flush=True,
            )
        return results
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows of each table (default 300,000)")
    parser.add_argument("--small", action="store_true", help="quick run: 50,000 rows")
    parser.add_argument("--parallel", type=int, default=2, help="copy and verify workers (default 2)")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help=f"chunk_rows of snapshot and verify (default {DEFAULT_CHUNK_ROWS:,}; with --target postgres "
        "the snapshot's own default, verify's 10,000)",
    )
    parser.add_argument("--target", choices=("mongodb", "postgres"), default="mongodb")
    parser.add_argument(
        "--checksums-only",
        action="store_true",
        help="with --target postgres: leave out the row by row verify",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    rows = 50_000 if args.small else args.rows
    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-verify-"))
    pg = devservices.start_postgres(work / "pg")
    if args.target == "postgres":
        try:
            print(f"building {rows:,} flat rows ...", flush=True)
            create_tables(pg.url, rows)
            results = postgres_case(work, pg, rows, args.parallel, args.chunk_rows, args.checksums_only)
        finally:
            pg.stop()
        out_file = write_results(args.out, "verify-postgres.json", rows, results)
        print(f"\nwritten to {out_file}  (goal: ratio >= 1.0)")
        return
    mongo = devservices.start_mongo(work / "mongo")
    results: list[dict[str, Any]] = []
    try:
        env = {**os.environ, "MIGRATOR_SOURCE_URL": pg.url, "MIGRATOR_TARGET_URL": mongo.url}
        print(
            f"building {rows:,} flat rows and {rows:,} parents with {CHILDREN} children each ...", flush=True
        )
        create_tables(pg.url, rows)
        for embedded in (False, True):
            case = "embedded" if embedded else "flat"
            name = f"bench-verify-{case}"
            plan = work / f"{name}.yaml"
            write_plan(plan, name, "bench", embedded, args.parallel, chunk_rows)
            text = plan.read_text().replace(
                "phases: {snapshot: {",
                f"phases: {{verify: {{parallel: {args.parallel}, chunk_rows: {chunk_rows}}}, snapshot: {{",
            )
            plan.write_text(text)
            state = str(work / f"{name}.db")
            source_rows = rows * (1 + CHILDREN) if embedded else rows
            copy_s, _ = timed(
                [MIGRATOR, "run", str(plan), "--until", "snapshot", "--state", state, "--json"],
                env,
                work / f"{name}-run.log",
            )
            verify_s, out = timed(
                [MIGRATOR, "verify", str(plan), "--state", state, "--json"], env, work / f"{name}-verify.log"
            )
            report = result_line(out)
            scan_s = target_scan_seconds(mongo.url, "parents" if embedded else "flat")
            if report["verdict"] != "equal" or report["checked"] != rows:
                raise SystemExit(
                    f"verify of a fresh copy did not come out equal: {json.dumps(report)[:2000]}"
                )
            entry = {
                "case": case,
                "parallel": args.parallel,
                "documents": rows,
                "source_rows": source_rows,
                "copy_seconds": round(copy_s, 2),
                "verify_seconds": round(verify_s, 2),
                "copy_rows_per_s": round(source_rows / copy_s),
                "verify_rows_per_s": round(source_rows / verify_s),
                "ratio": round(copy_s / verify_s, 3),
                # The floor under any verify: reading every target document once, raw, no work.
                "target_scan_docs_per_s": round(rows / scan_s),
                "verify_docs_per_s": round(rows / verify_s),
            }
            results.append(entry)
            print(
                f"  {case:<9} copy {copy_s:6.1f} s  verify {verify_s:6.1f} s  ratio {entry['ratio']:.2f}",
                flush=True,
            )
    finally:
        mongo.stop()
        pg.stop()

    out_file = write_results(args.out, "verify.json", rows, results)
    print()
    print(
        f"{'case':<9} {'par':>3} {'docs':>9} {'rows':>9} {'copy rows/s':>12} {'verify rows/s':>14} "
        f"{'ratio':>6} {'verify docs/s':>14} {'target scan docs/s':>19}"
    )
    for r in results:
        print(
            f"{r['case']:<9} {r['parallel']:>3} {r['documents']:>9,} {r['source_rows']:>9,} "
            f"{r['copy_rows_per_s']:>12,} {r['verify_rows_per_s']:>14,} {r['ratio']:>6.2f} "
            f"{r['verify_docs_per_s']:>14,} {r['target_scan_docs_per_s']:>19,}"
        )
    print(f"\nwritten to {out_file}  (goal: ratio >= 1.0)")


def write_results(out: Path, name: str, rows: int, results: list[dict[str, Any]]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    out_file = out / name
    out_file.write_text(json.dumps({"benchmark": "verify", "rows": rows, "results": results}, indent=2))
    return out_file


if __name__ == "__main__":
    main()
