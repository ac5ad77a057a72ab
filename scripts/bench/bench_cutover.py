"""Cutover benchmark: the write freeze of `migrator cutover` and of the rollback after it, with
an application writing at a steady rate through the switch the whole time.

    scripts/bench/run cutover [--cycles 10] [--rate 500] [--customers N] [--out DIR]

On a throwaway PostgreSQL and MongoDB-compatible server: customers with embedded orders are
copied and followed; then an application (its own process) writes `--rate` updates a second to
whichever side the routing file names, retrying a write the fence cancelled (SQLSTATE 57014)
or refused (error 121) on the side the switch names then. Each cycle cuts over (gate verify,
fence, drain, final check, flip, reverse sync), lets the application write on the target for a
second, and rolls back (target fence, reverse drain, verify, flip back).

Reported: the forward freeze (ms, p50 and max over the cycles), the back freeze, the
application's failed requests, and its write latency: p50, p99 and max over the whole run,
against the same application's latency in a quiet window measured first in the same run
(the baseline). Goal (issue 6): forward freeze under 1 s, zero failed requests. At the end the
source must hold the application's last write to every row (nothing lost), or the run fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT))
import devservices  # noqa: E402


def app(pg_url: str, mongo_url: str, switch: str, rate: float, keys: int, stop: Any, results: Any) -> None:
    """The application (in its own process): `rate` writes a second, each to the side the switch names."""
    import psycopg
    import pymongo
    from bson.int64 import Int64
    from routed_writes import PostgresRows, update_statement, write_routed_to

    customers = pymongo.MongoClient(mongo_url)["bench"]["customers"]
    ids = [Int64(k) for k in range(1, keys + 1)]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        source = PostgresRows(conn, update_statement("customers", "name"))
        done = write_routed_to(source, customers, "name", ids, Path(switch), rate, stop)
    results.put(
        {
            "latencies": done.latencies,
            "last": done.last,
            "counts": done.counts,
            "errors": done.errors[:5],
            "seconds": done.seconds,
        }
    )


class AppProcess:
    def __init__(self, pg_url: str, mongo_url: str, switch: Path, rate: float, keys: int) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._results = ctx.Queue()
        self._process = ctx.Process(
            target=app,
            args=(pg_url, mongo_url, str(switch), rate, keys, self._stop, self._results),
            daemon=True,
        )
        self._process.start()

    def finish(self) -> dict[str, Any]:
        self._stop.set()
        result: dict[str, Any] = self._results.get(timeout=60)
        self._process.join(30)
        return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def write_plan(path: Path, switch: Path, freeze: str) -> None:
    path.write_text(
        f"""version: 1
name: bench-cutover
source: {{adapter: postgres, url: "${{MIGRATOR_SOURCE_URL}}"}}
target: {{adapter: mongodb, url: "${{MIGRATOR_TARGET_URL}}", database: bench}}
collections:
  - name: customers
    from: public.customers
    key: id
    embed:
      - {{as: orders, from: public.orders, on: {{customer_id: id}}, key: id}}
phases:
  cdc: {{heartbeat_interval: 1s}}
  verify: {{parallel: 2}}
  cutover:
    max_write_freeze: {freeze}
    retries: 3
    retry_pause: 1s
    switch: {{kind: file, path: "{switch}"}}
"""
    )


def create_tables(pg_url: str, customers: int) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, balance numeric(12,2) NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, "
            "total numeric(12,2) NOT NULL)"
        )
        conn.execute("CREATE INDEX ON orders (customer_id)")
        conn.execute(
            "INSERT INTO customers SELECT i, 'customer ' || i, i %% 1000 + 0.5 FROM generate_series(1, %s) i",
            [customers],
        )
        conn.execute(
            "INSERT INTO orders SELECT i * 10 + j, i, j + 0.25 FROM generate_series(1, %s) i, generate_series(1, 3) j",
            [customers],
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench/run cutover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10, help="cutover + rollback cycles (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="application writes/s (default 500)")
    parser.add_argument(
        "--customers", type=int, default=5_000, help="customers (3 orders each; default 5,000)"
    )
    parser.add_argument("--freeze", default="2s", help="phases.cutover.max_write_freeze (default 2s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()

    from migrator import api
    from migrator.engine.events import Collector, CutoverAbandoned, CutoverStep, RollbackStepDone

    work = Path(tempfile.mkdtemp(prefix="migrator-bench-cutover-"))
    pg = devservices.start_postgres(work / "pg")
    mongo = devservices.start_mongo(work / "mongo")
    switch = work / "routing"
    plan = work / "bench-cutover.yaml"
    state = work / "state.db"
    write_plan(plan, switch, args.freeze)
    env = {**os.environ, "MIGRATOR_SOURCE_URL": pg.url, "MIGRATOR_TARGET_URL": mongo.url}
    cycles: list[dict[str, Any]] = []
    try:
        create_tables(pg.url, args.customers)
        api.run(plan, until="caught-up", state=state, env=env)
        keys = min(args.customers, 1_000)
        print(f"baseline: the application alone at {args.rate:.0f} writes/s for 5 s ...", flush=True)
        baseline_app = AppProcess(pg.url, mongo.url, switch, args.rate, keys)
        time.sleep(5)
        baseline = baseline_app.finish()
        api.run(plan, until="caught-up", state=state, env=env)  # what the baseline wrote
        app_process = AppProcess(pg.url, mongo.url, switch, args.rate, keys)
        try:
            time.sleep(2)
            for cycle in range(1, args.cycles + 1):
                stop = threading.Event()
                outcome: dict[str, Any] = {}
                events = Collector()

                def body(
                    stop: threading.Event = stop, outcome: dict[str, Any] = outcome, events: Any = events
                ) -> None:
                    try:
                        outcome["result"] = api.cutover(
                            plan, follow=True, state=state, env=env, stop=stop, sinks=[events]
                        )
                    except BaseException as exc:  # noqa: BLE001 - reported below
                        outcome["error"] = exc

                thread = threading.Thread(target=body, daemon=True)
                thread.start()
                deadline = time.monotonic() + 300
                while not (switch.exists() and switch.read_text() == "target\n"):
                    if "error" in outcome or time.monotonic() > deadline:
                        stop.set()
                        thread.join(60)
                        raise SystemExit(f"cycle {cycle}: cutover failed: {outcome.get('error')}")
                    time.sleep(0.05)
                time.sleep(1.0)  # the application writes on the target
                stop.set()
                thread.join(120)
                if "error" in outcome:
                    raise SystemExit(f"cycle {cycle}: cutover failed: {outcome['error']}")
                report = outcome["result"].report
                back_events = Collector()
                back = api.rollback(plan, state=state, env=env, sinks=[back_events])
                if os.environ.get("BENCH_STEPS"):
                    for step in events.of(CutoverStep):
                        print(f"    {step.at:.3f} {step.step}: {step.message}")
                    for done in back_events.of(RollbackStepDone):
                        print(f"    {done.at:.3f} rollback {done.step}: {done.outcome}")
                    for e in back_events.events:
                        if type(e).__name__ in ("ErrorRaised", "Notice", "ReverseBatchApplied"):
                            print(f"    {e.at:.3f} {e.to_dict()}"[:300])
                entry = {
                    "cycle": cycle,
                    "freeze_ms": report.freeze_ms,
                    "attempts": report.attempts,
                    "abandoned": len(events.of(CutoverAbandoned)),
                    "cancelled_writes": report.cancelled_writes,
                    "back_freeze_ms": back.to_dict().get("freeze_ms"),
                }
                cycles.append(entry)
                print(
                    f"  cycle {cycle:>2}: freeze {entry['freeze_ms']:7.1f} ms (attempts {entry['attempts']}, "
                    f"{entry['cancelled_writes']} held write(s) retried on the target); back freeze "
                    f"{entry['back_freeze_ms']:7.1f} ms",
                    flush=True,
                )
                time.sleep(1.0)
        finally:
            run_app = app_process.finish()
        # Nothing lost: the source holds the application's last write to every row.
        import psycopg

        with psycopg.connect(pg.url) as conn:
            names = dict(conn.execute("SELECT id, name FROM customers WHERE id <= %s", [keys]).fetchall())
        lost = {k: v for k, v in run_app["last"].items() if names.get(k) != v}
    finally:
        mongo.stop()
        pg.stop()

    freezes = [c["freeze_ms"] for c in cycles]
    backs = [c["back_freeze_ms"] for c in cycles if c["back_freeze_ms"] is not None]
    lat = run_app["latencies"]
    base = baseline["latencies"]
    writes = sum(run_app["counts"][s] for s in ("source", "target"))
    result = {
        "benchmark": "cutover",
        "cycles": len(cycles),
        "rate_asked": args.rate,
        "rate_achieved": round(writes / run_app["seconds"], 1),
        "max_write_freeze_s": args.freeze,
        "freeze_ms": {"p50": statistics.median(freezes), "max": max(freezes), "all": freezes},
        "back_freeze_ms": {"p50": statistics.median(backs), "max": max(backs), "all": backs},
        "app": {
            "writes": writes,
            "failed": run_app["counts"]["failed"],
            "retried": run_app["counts"]["retried"],
            "errors": run_app["errors"],
            "latency_ms": {
                "p50": round(percentile(lat, 0.5) * 1000, 2),
                "p99": round(percentile(lat, 0.99) * 1000, 2),
                "max": round(max(lat) * 1000, 1),
            },
            "baseline_latency_ms": {
                "p50": round(percentile(base, 0.5) * 1000, 2),
                "p99": round(percentile(base, 0.99) * 1000, 2),
                "max": round(max(base) * 1000, 1),
            },
        },
        "lost_writes": len(lost),
        "cycles_detail": cycles,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / "cutover.json"
    out_file.write_text(json.dumps(result, indent=2))
    a = result["app"]
    print()
    print(f"{'':<28} {'p50':>9} {'max':>9}")
    print(
        f"{'forward freeze (ms)':<28} {result['freeze_ms']['p50']:>9.1f} {result['freeze_ms']['max']:>9.1f}"
    )
    print(
        f"{'back freeze (ms)':<28} {result['back_freeze_ms']['p50']:>9.1f} {result['back_freeze_ms']['max']:>9.1f}"
    )
    print(f"{'app write latency (ms)':<28} {a['latency_ms']['p50']:>9.2f} {a['latency_ms']['max']:>9.1f}")
    print(
        f"{'baseline app latency (ms)':<28} {a['baseline_latency_ms']['p50']:>9.2f} "
        f"{a['baseline_latency_ms']['max']:>9.1f}"
    )
    print(
        f"\napplication: {a['writes']:,} writes at {result['rate_achieved']:.0f}/s (asked {args.rate:.0f}), "
        f"{a['failed']} failed, {a['retried']} retried; lost writes: {len(lost)}"
    )
    print(
        f"max app latency / baseline max: {a['latency_ms']['max'] / max(a['baseline_latency_ms']['max'], 0.001):.1f}x"
    )
    print(f"written to {out_file}  (goal: forward freeze max < 1000 ms, 0 failed)")
    if lost or a["failed"]:
        raise SystemExit(f"FAILED: {len(lost)} lost write(s), {a['failed']} failed request(s): {a['errors']}")


if __name__ == "__main__":
    main()
