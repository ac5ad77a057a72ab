"""The demo's application: renames customers at a steady rate on whichever side the routing
file names, until SIGTERM; then prints what it saw and checks that the source holds its last
write to every customer it renamed.

    python scripts/lib/demo_app.py --source URL --target URL --routing FILE [--rate 100]

A write that the cutover fence cancelled (PostgreSQL SQLSTATE 57014) or that the rollback fence
refused (MongoDB error 121; SQLSTATE 25006 on a PostgreSQL target) is retried on the side the routing file names then: that is what an
application does to see no failed request. Exit 0 when nothing failed and nothing was lost.
The source's dialect is a `SourceApp`: PostgreSQL's here, MySQL's in demo_app_mysql.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pymongo
from routed_writes import PostgresRows, PostgresTable, SourceRows, update_statement, write_routed_to


class SourceApp(Protocol):
    """What the application needs of its source: its side of the writes on one connection, and
    the names its rows hold now."""

    def connect(self, url: str) -> contextlib.AbstractContextManager[Any]: ...

    def rows(self, conn: Any) -> SourceRows: ...

    def names(self, conn: Any, keys: Sequence[int]) -> dict[int, str]: ...


class PostgresApp:
    @contextlib.contextmanager
    def connect(self, url: str) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn

    def rows(self, conn: Any) -> SourceRows:
        return PostgresRows(conn, update_statement("customers", "full_name"))

    def names(self, conn: Any, keys: Sequence[int]) -> dict[int, str]:
        found = conn.execute("SELECT id, full_name FROM customers WHERE id = ANY(%s)", [list(keys)])
        return dict(found.fetchall())


@contextlib.contextmanager
def target_customers(url: str, database: str, keys: int) -> Iterator[tuple[Any, list[Any]]]:
    """The target's customers (a MongoDB collection, or a PostgreSQL target's table when `url` is
    a postgresql:// one) and the first `keys` of their ids."""
    if url.startswith(("postgresql:", "postgres:")):
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute("SELECT id FROM customers ORDER BY id LIMIT %s", [keys])
            yield PostgresTable(conn, "customers"), [row[0] for row in found]
        return
    collection = pymongo.MongoClient(url)[database]["customers"]
    yield collection, [d["_id"] for d in collection.find({}, {"_id": 1}).sort("_id", 1).limit(keys)]


def main(source: SourceApp | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--database", default="demo")
    parser.add_argument("--routing", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--wait-after", type=float, default=0.0, help="seconds to wait before the check")
    args = parser.parse_args()
    app = source or PostgresApp()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    with contextlib.ExitStack() as stack:
        customers, ids = stack.enter_context(target_customers(args.target, args.database, args.keys))
        conn = stack.enter_context(app.connect(args.source))
        done = write_routed_to(
            app.rows(conn), customers, "full_name", ids, args.routing, args.rate, stop, "demo app write {n}"
        )
        time.sleep(args.wait_after)
        rows = app.names(conn, list(done.last)) if done.last else {}
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
