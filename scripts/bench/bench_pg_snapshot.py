"""PostgreSQL -> PostgreSQL snapshot benchmark: migrator against `pgcopydb clone` and native
logical replication's initial sync, same servers, same data, same run.

    scripts/bench/run pg-snapshot [--small] [--rows N] [--jobs N] [--rounds N] [--chunk-rows N] [--cases migrator,pgcopydb,native] [--json] [--out DIR]

Two throwaway PostgreSQL clusters (source and target, scripts/lib/devservices.py). The source
database `bench` holds three tables: bench_customer (rows/10, a secondary index on email),
bench_order (rows, an FK to bench_customer, secondary indexes on customer_id and created_at)
and bench_order_line (2 per order, an FK to bench_order, an index on order_id). Cases, each
into a freshly created target database `bench` (dropped between cases):
  migrator   `migrator run --until snapshot` (tables created from the source's DDL, binary COPY
             in chunks, `phases.snapshot.parallel` = jobs; secondary indexes and FKs after the
             copy, in parallel)
  pgcopydb   `pgcopydb clone --table-jobs N --index-jobs N`, restricted to the same tables by a
             filters file (it also runs VACUUM ANALYZE on the copied tables: 0.10 has no switch
             to skip it)
  native     `pg_dump --schema-only` of the same tables applied first (indexes and FKs exist
             during the copy, the usual way), then CREATE SUBSCRIPTION (copy_data) with
             max_sync_workers_per_subscription = jobs, timed until every table is `r`
With --json, bench_order also holds a json and a jsonb document and a 0/1 smallint that
migrator's plan casts to boolean (`types: {rush: bool}`), so that migrator copies bench_order on
its document path (rows decoded and converted) rather than undecoded: the path a plan that changes
a column's type takes. Every case is checked afterwards: the row counts of the three tables and the number of indexes
and FKs on the target must match the source. Reported: seconds, MB/s of the tables' heap size,
the ratio to pgcopydb (goal >= 1.0), the client's CPU seconds per GB (the process tree of the
tool: migrator's process, pgcopydb with its pg_dump/pg_restore children; native has no client)
and both servers' CPU seconds per GB (their postmasters' process trees). Writes
bench-results/pg-snapshot.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import devservices  # noqa: E402

TABLES = ("bench_customer", "bench_order", "bench_order_line")
DB = "bench"
TICK = os.sysconf("SC_CLK_TCK")
# migrator's `types:` per table (--json sets JSON_TYPES).
TYPES: dict[str, str] = {}


# --json: bench_order's extra columns, their values, and the cast migrator's plan gives it.
JSON_COLUMNS = ", rush smallint NOT NULL, doc json, meta jsonb"
JSON_VALUES = (
    ", i %% 2, "
    """('{"id": ' || i || ', "status": "paid", "total": ' || (i %% 1000) || '.50, "tags": ["a", "b"]}')::json, """
    """('{"source": "web", "score": ' || (i %% 97) || '.25, "lines": [{"sku": ' || i || ', "qty": 1}]}')::jsonb"""
)
JSON_TYPES = {"bench_order": "types: {rush: bool}"}


def create_source(url: str, rows: int, with_json: bool = False) -> None:
    customers = max(rows // 10, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            CREATE TABLE bench_customer (
                id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                created_at timestamptz NOT NULL, score double precision)
            """
        )
        conn.execute(
            """
            INSERT INTO bench_customer
            SELECT i, 'customer ' || i, 'c' || i || '@example.com',
                   timestamptz '2024-01-01' + i * interval '1 minute', i * 0.25
            FROM generate_series(1, %s) i
            """,
            [customers],
        )
        conn.execute(
            """
            CREATE TABLE bench_order (
                id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES bench_customer(id),
                amount numeric(12,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL,
                tag uuid, note text"""
            + (JSON_COLUMNS if with_json else "")
            + ")"
        )
        conn.execute(
            sql.SQL(
                """
            INSERT INTO bench_order
            SELECT i, 1 + i %% %s, (i %% 100000) / 100.0,
                   (ARRAY['new','paid','shipped','closed'])[1 + i %% 4],
                   timestamptz '2024-01-01' + i * interval '1 second', md5(i::text)::uuid,
                   CASE WHEN i %% 3 = 0 THEN 'note for order ' || i END"""
            )
            + sql.SQL(JSON_VALUES if with_json else "")
            + sql.SQL(" FROM generate_series(1, %s) i"),
            [customers, rows],
        )
        conn.execute(
            """
            CREATE TABLE bench_order_line (
                id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES bench_order(id),
                sku text NOT NULL, qty integer NOT NULL, price numeric(10,2) NOT NULL)
            """
        )
        conn.execute(
            """
            INSERT INTO bench_order_line
            SELECT o * 2 + l, o, 'SKU-' || (o * 7 + l) %% 10000, 1 + l, 9.99 + l
            FROM generate_series(1, %s) o, generate_series(0, 1) l
            """,
            [rows],
        )
        conn.execute("CREATE INDEX bench_customer_email ON bench_customer (email)")
        conn.execute("CREATE INDEX bench_order_customer ON bench_order (customer_id)")
        conn.execute("CREATE INDEX bench_order_created ON bench_order (created_at)")
        conn.execute("CREATE INDEX bench_order_line_order ON bench_order_line (order_id)")
        conn.execute("VACUUM ANALYZE bench_customer, bench_order, bench_order_line")


def shape(url: str) -> dict[str, Any]:
    """What a copy must reproduce: rows per table, indexes and FKs on the tables."""
    with psycopg.connect(url) as conn:
        counts = {
            t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]  # type: ignore[index]
            for t in TABLES
        }
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%s)",
            [list(TABLES)],
        ).fetchone()[0]  # type: ignore[index]
        fks = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [list(TABLES)],
        ).fetchone()[0]  # type: ignore[index]
    return {"rows": counts, "indexes": indexes, "fks": fks}


def heap_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT sum(pg_table_size(c)) FROM unnest(%s::regclass[]) c", [list(TABLES)]
        ).fetchone()
    return int(row[0]) if row else 0


def server_cpu(pid: int) -> float:
    """CPU seconds of a postmaster's tree: its own, its waited-for children's (exited backends)
    and its live children's."""

    def fields(p: int) -> list[str]:
        text = Path(f"/proc/{p}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()

    own = fields(pid)
    total = sum(int(x) for x in own[11:15])  # utime stime cutime cstime
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            f = fields(int(child))
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
    return total / TICK


def recreate_target(target: Any) -> None:
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")


def run_tool(args: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the process tree (rusage of waited-for descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log.open("w+") as out:
        code = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
        seconds = time.monotonic() - started
        out.seek(0)
        text = out.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({code}):\n{text[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


PLAN = """version: 1
name: bench-pg-snapshot
source: {{adapter: postgres, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: postgres, url: "${{MIGRATOR_TARGET_URL}}"}}
tables: [{tables}]
phases: {{snapshot: {{parallel: {jobs}{chunk}}}}}
"""


def case_migrator(
    work: Path, source: Any, target: Any, jobs: int, rnd: int, chunk_rows: int | None
) -> tuple[float, float]:
    plan = work / "pg-snapshot.yaml"
    chunk = "" if chunk_rows is None else f", chunk_rows: {chunk_rows}"
    tables = ", ".join(f"{{from: public.{t}{', ' + TYPES[t] if t in TYPES else ''}}}" for t in TABLES)
    plan.write_text(PLAN.format(tables=tables, jobs=jobs, chunk=chunk))
    env = {**os.environ, "MIGRATOR_SOURCE_URL": source.url_for(DB), "MIGRATOR_TARGET_URL": target.url_for(DB)}
    state = work / f"migrator-{rnd}.db"
    result = run_tool(
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
        env,
        work / f"migrator-{rnd}.log",
    )
    # The slot would hold WAL for nothing, and the next round creates its own.
    _drop_migrator_source_objects(source.url_for(DB))
    return result


def _drop_migrator_source_objects(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name LIKE 'migrator%' AND NOT active"
        )
        for (name,) in conn.execute(
            "SELECT pubname FROM pg_publication WHERE pubname LIKE 'migrator%'"
        ).fetchall():
            conn.execute(f'DROP PUBLICATION "{name}"')


def case_pgcopydb(
    work: Path, source: Any, target: Any, jobs: int, rnd: int, chunk_rows: int | None
) -> tuple[float, float]:
    filters = work / "pgcopydb-filters.ini"
    filters.write_text("[include-only-table]\n" + "".join(f"public.{t}\n" for t in TABLES))
    directory = work / f"pgcopydb-{rnd}"
    shutil.rmtree(directory, ignore_errors=True)
    bindir = devservices.find_pg_bindir()
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    return run_tool(
        [
            "pgcopydb",
            "clone",
            "--source",
            source.url_for(DB),
            "--target",
            target.url_for(DB),
            "--table-jobs",
            str(jobs),
            "--index-jobs",
            str(jobs),
            "--filters",
            str(filters),
            "--dir",
            str(directory),
            "--no-owner",
            "--no-acl",
        ],
        env,
        work / f"pgcopydb-{rnd}.log",
    )


def copy_schema(source_url: str, target_url: str, tables: tuple[str, ...]) -> None:
    """The tables' DDL (pg_dump --schema-only, indexes and constraints included) applied to the
    target by psql: pg_dump's output holds psql meta-commands (\\restrict)."""
    bindir = devservices.find_pg_bindir()
    dump = subprocess.run(
        [
            str(bindir / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-acl",
            *[f"--table=public.{t}" for t in tables],
            source_url,
        ],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(
        [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target_url],
        input=dump,
        capture_output=True,
        check=True,
    )


def case_native(
    work: Path, source: Any, target: Any, jobs: int, rnd: int, chunk_rows: int | None
) -> tuple[float, float]:
    copy_schema(source.url_for(DB), target.url_for(DB), TABLES)
    with psycopg.connect(source.url_for(DB), autocommit=True) as conn:
        conn.execute("DROP PUBLICATION IF EXISTS bench_native")
        conn.execute(f"CREATE PUBLICATION bench_native FOR TABLE {', '.join(TABLES)}")
    started = time.monotonic()
    with psycopg.connect(target.url_for(DB), autocommit=True) as conn:
        conn.execute(
            f"CREATE SUBSCRIPTION bench_native CONNECTION '{source.url_for(DB)}' "
            "PUBLICATION bench_native WITH (copy_data = true)"
        )
        while True:
            pending = conn.execute(
                "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'"
            ).fetchone()[0]  # type: ignore[index]
            ready = conn.execute("SELECT count(*) FROM pg_subscription_rel").fetchone()[0]  # type: ignore[index]
            if pending == 0 and ready == len(TABLES):
                break
            time.sleep(0.05)
        seconds = time.monotonic() - started
        conn.execute("DROP SUBSCRIPTION bench_native")
    with psycopg.connect(source.url_for(DB), autocommit=True) as conn:
        conn.execute("DROP PUBLICATION bench_native")
    return seconds, 0.0


CASES = {"migrator": case_migrator, "pgcopydb": case_pgcopydb, "native": case_native}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/run pg-snapshot", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="orders (default 1,000,000: about 250 MB of tables)"
    )
    parser.add_argument("--small", action="store_true", help="quick run: 100,000 orders")
    parser.add_argument(
        "--jobs", type=int, default=2, help="table jobs and index jobs of every case (default 2)"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=None,
        help="migrator's phases.snapshot.chunk_rows (default: the plan's)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="each case this many times, alternating")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help="comma-separated cases to run (default: all of migrator,pgcopydb,native)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="bench_order with json/jsonb documents and a cast column: migrator's document path",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (the tools' logs) and print its path"
    )
    args = parser.parse_args()
    rows = 100_000 if args.small else args.rows
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)} (known: {', '.join(CASES)})")
    if "pgcopydb" in chosen and shutil.which("pgcopydb") is None:
        parser.error(
            "pgcopydb is not installed, the baseline this benchmark measures against "
            "(Debian/Ubuntu: apt-get install pgcopydb), or leave it out: --cases migrator,native"
        )

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-pgsnap-"))
    source = devservices.start_postgres(work / "source")
    target = devservices.start_postgres(
        work / "target",
        settings={
            "max_sync_workers_per_subscription": args.jobs,
            "max_logical_replication_workers": args.jobs + 4,
        },
    )
    results: list[dict[str, Any]] = []
    try:
        with psycopg.connect(source.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB}")
        print(f"building {rows:,} orders, {2 * rows:,} order lines, {rows // 10:,} customers ...", flush=True)
        if args.json:
            TYPES.update(JSON_TYPES)
        create_source(source.url_for(DB), rows, args.json)
        expected = shape(source.url_for(DB))
        size = heap_bytes(source.url_for(DB))
        gb = size / 1e9
        print(f"  {size / 1e6:.0f} MB of tables; load average {os.getloadavg()}", flush=True)
        for rnd in range(1, args.rounds + 1):
            for name in chosen:
                case = CASES[name]
                recreate_target(target)
                cpu0 = server_cpu(source.pid) + server_cpu(target.pid)  # type: ignore[arg-type]
                load = os.getloadavg()[0]
                seconds, client_cpu = case(work, source, target, args.jobs, rnd, args.chunk_rows)
                servers = server_cpu(source.pid) + server_cpu(target.pid) - cpu0  # type: ignore[arg-type]
                got = shape(target.url_for(DB))
                if got != expected:
                    raise SystemExit(f"{name}: the target differs from the source: {got} != {expected}")
                entry = {
                    "case": name,
                    "chunk_rows": args.chunk_rows if name == "migrator" else None,
                    "round": rnd,
                    "jobs": args.jobs,
                    "mb": round(size / 1e6),
                    "seconds": round(seconds, 2),
                    "mb_per_s": round(size / 1e6 / seconds, 1),
                    "client_cpu_s_per_gb": round(client_cpu / gb, 1) if name != "native" else None,
                    "servers_cpu_s_per_gb": round(servers / gb, 1),
                    "load_1min": round(load, 2),
                }
                results.append(entry)
                print(
                    f"  round {rnd} {name:<9} {seconds:7.1f} s {entry['mb_per_s']:6.1f} MB/s  client cpu "
                    f"{entry['client_cpu_s_per_gb']} s/GB  servers cpu {entry['servers_cpu_s_per_gb']} s/GB  "
                    f"load {load:.2f}",
                    flush=True,
                )
    finally:
        target.stop()
        source.stop()
        if args.keep:
            print(f"work directory kept: {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    for r in results:
        ref = [x["seconds"] for x in results if x["case"] == "pgcopydb" and x["round"] == r["round"]]
        r["ratio_to_pgcopydb"] = round(ref[0] / r["seconds"], 3) if ref else None
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "pg-snapshot.json"
    out.write_text(json.dumps({"benchmark": "pg-snapshot", "rows": rows, "results": results}, indent=2))
    print()
    print(
        f"{'case':<9} {'round':>5} {'jobs':>4} {'MB':>5} {'seconds':>8} {'MB/s':>6} {'vs pgcopydb':>11} {'client s/GB':>11} {'servers s/GB':>12} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['case']:<9} {r['round']:>5} {r['jobs']:>4} {r['mb']:>5} {r['seconds']:>8.1f} {r['mb_per_s']:>6.1f} "
            f"{(r['ratio_to_pgcopydb'] or 0):>11.2f} {r['client_cpu_s_per_gb']!s:>11} {r['servers_cpu_s_per_gb']:>12} {r['load_1min']:>5}"
        )
    print(f"\nwritten to {out}  (goal: migrator >= 1.0x pgcopydb)")


if __name__ == "__main__":
    main()
