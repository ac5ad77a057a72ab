"""demo_app.py's application with a MySQL/MariaDB source: renames customers at a steady rate on
whichever side the routing file names (through PyMySQL while it says source), until SIGTERM; then
prints what it saw and checks that the source holds its last write to every customer it renamed.

    python scripts/lib/demo_app_mysql.py --source mysql://... --target URL --routing FILE [--rate 100]

A write that the cutover fence interrupted (KILL QUERY: MySQL errno 1317) or that the rollback
fence refused (MongoDB error 121) is retried on the side the routing file names then, as an
application that sees no failed request does. Exit 0 when nothing failed and nothing was lost.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors
import pymysql
from demo_data_mysql import connect
from routed_writes import FENCED, Writes, primary

QUERY_INTERRUPTED = 1317  # ER_QUERY_INTERRUPTED: the cutover fence cancelled a waiting write


def write_once(conn: Any, collection: Any, doc_id: Any, text: str, routing: Path, out: Writes) -> None:
    """One rename to `text` on the side `routing` names, retried while a fence refuses it."""
    begun = time.monotonic()
    while True:
        side = primary(routing)
        try:
            if side == "source":
                with conn.cursor() as cur:
                    cur.execute("UPDATE customers SET full_name = %s WHERE id = %s", [text, int(doc_id)])
            else:
                collection.update_one({"_id": doc_id}, {"$set": {"full_name": text}})
            break
        except pymysql.Error as exc:
            if exc.args and exc.args[0] == QUERY_INTERRUPTED:
                out.counts["retried"] += 1
                continue
            out.counts["failed"] += 1
            out.errors.append(repr(exc))
            break
        except pymongo.errors.WriteError as exc:
            if exc.code == FENCED:
                out.counts["retried"] += 1
                time.sleep(0.002)
                continue
            out.counts["failed"] += 1
            out.errors.append(str(exc))
            break
        except Exception as exc:  # noqa: BLE001 - a failed request, counted and shown
            out.counts["failed"] += 1
            out.errors.append(repr(exc))
            break
    out.latencies.append(time.monotonic() - begun)
    out.counts[side] += 1
    out.last[int(doc_id)] = text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--database", default="demo")
    parser.add_argument("--routing", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    customers = pymongo.MongoClient(args.target)[args.database]["customers"]
    ids = [d["_id"] for d in customers.find({}, {"_id": 1}).sort("_id", 1).limit(args.keys)]
    done = Writes()
    with connect(args.source, autocommit=True) as conn:
        started = time.monotonic()
        n = 0
        while not stop.is_set():
            n += 1
            delay = started + n / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            write_once(conn, customers, ids[n % len(ids)], f"demo app write {n}", args.routing, done)
        with conn.cursor() as cur:
            keys = list(done.last) or [0]
            cur.execute("SELECT id, full_name FROM customers WHERE id IN %s", [keys])
            rows = dict(cur.fetchall())
    counts = done.counts
    lost = sum(1 for k, v in done.last.items() if rows.get(k) != v)
    summary = {
        "writes": counts["source"] + counts["target"],
        "on_source": counts["source"],
        "on_target": counts["target"],
        "retried": counts["retried"],
        "failed": counts["failed"],
        "max_write_latency_ms": round(max(done.latencies, default=0.0) * 1000, 1),
        "lost_on_source": lost,
        "errors": done.errors[:3],
    }
    print(json.dumps(summary))
    raise SystemExit(1 if lost or counts["failed"] else 0)


if __name__ == "__main__":
    main()
