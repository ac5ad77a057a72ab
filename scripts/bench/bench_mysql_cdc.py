"""MySQL/MariaDB CDC benchmark: decoding the binlog against mariadb-binlog on the same binlog.

    .venv/bin/python scripts/bench/bench_mysql_cdc.py [--rows N] [--batch N] [--out FILE]

A throwaway MariaDB (scripts/lib/mariadb_server.py) gets a table of mixed types; N rows are
inserted, then a quarter of them updated and a quarter deleted, in transactions of --batch rows.
The binlog between the positions before and after is then read:

- by `mariadb-binlog --read-from-remote-server` (the server's own client, C) into /dev/null,
  once as it prints by default (row events as base64 BINLOG statements, not decoded) and once
  with --verbose (every row decoded into pseudo-SQL): its CPU seconds from the children's rusage;
- by migrator's change stream (adapters/mysql: mysql-replication decoding, the contract's
  values, Change events) until the last transaction's TransactionCommitted: this process's CPU
  seconds (both threads).

Reported: changes/s and CPU seconds of each, and the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
sys.path.insert(0, str(ROOT))
import mariadb_server  # noqa: E402
import pymysql  # noqa: E402

from migrator.adapters.base import (  # noqa: E402
    Change,
    MappedColumns,
    SourceInfo,
    SourceServerInfo,
    TransactionCommitted,
)
from migrator.adapters.mysql import MysqlSource  # noqa: E402
from migrator.adapters.mysql.positions import unpack  # noqa: E402

DDL = """CREATE TABLE bench.orders (
    id BIGINT PRIMARY KEY, customer INT NOT NULL, status ENUM('new','paid','shipped') NOT NULL,
    amount DECIMAL(12,2) NOT NULL, weight FLOAT, note VARCHAR(200), created DATETIME(3) NOT NULL,
    updated TIMESTAMP(6) NULL, payload TEXT
) ENGINE=InnoDB"""


def _load(conn: Any, rows: int, batch: int) -> int:
    """Write the workload; the number of transactions."""
    transactions = 0
    with conn.cursor() as cur:
        for start in range(0, rows, batch):
            values = [
                (
                    n,
                    n % 1000,
                    "new",
                    f"{n % 10000}.25",
                    n / 7,
                    f"note {n}",
                    "2024-01-02 03:04:05.678",
                    "x" * 100,
                )
                for n in range(start, min(rows, start + batch))
            ]
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO bench.orders (id, customer, status, amount, weight, note, created, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                values,
            )
            cur.execute("COMMIT")
            transactions += 1
        for start in range(0, rows // 4, batch):
            cur.execute(
                "UPDATE bench.orders SET status = 'paid', updated = NOW(6) WHERE id >= %s AND id < %s",
                [start, start + batch],
            )
            transactions += 1
        for start in range(rows - rows // 4, rows, batch):
            cur.execute("DELETE FROM bench.orders WHERE id >= %s AND id < %s", [start, start + batch])
            transactions += 1
    return transactions


def _position(conn: Any) -> tuple[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return str(row[0]), int(row[1])


def _mariadb_binlog(port: int, file: str, start: int, stop: int, verbose: bool) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    command = [
        "mariadb-binlog",
        "--no-defaults",
        "--read-from-remote-server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--user=root",
        f"--start-position={start}",
        f"--stop-position={stop}",
        *(["--verbose"] if verbose else []),
        file,
    ]
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": cpu}


class _Host:
    def notice(self, level: str, message: str) -> None: ...
    def table_changed(self, table: str, info: Any) -> None: ...
    def reads_with(self, table: str, info: Any) -> None: ...
    def column_added(self, table: str, column: str) -> None: ...


def _migrator(url: str, start: int, transactions: int) -> dict[str, float]:
    source = MysqlSource(url)
    server = SourceServerInfo("bench", "", 0, {}, 0, 0, "root", True, True, True, (), ())
    info = SourceInfo(server, {"bench.orders": None})  # type: ignore[dict-item]
    mapped = MappedColumns(read={"bench.orders": set()}, mapped={}, locating={}, open_shapes={})
    schema = source.schema_watch("bench", info, mapped, _Host(), lambda: None)
    cpu, wall = time.process_time(), time.perf_counter()
    stream = source.change_stream("bench", "bench", start)
    changes = committed = 0
    try:
        for event in schema.reader(stream, applied=lambda: 0, skip_origin="").events(wait_s=5.0):
            if type(event) is Change:
                changes += 1
            elif isinstance(event, TransactionCommitted):
                committed += 1
                if committed == transactions:
                    break
    finally:
        stream.close()
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "changes": changes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mysql-") as base:
        server = mariadb_server.start_mariadb(Path(base) / "server")
        try:
            conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE bench")
                cur.execute(DDL)
            file, start = _position(conn)
            transactions = _load(conn, args.rows, args.batch)
            end_file, stop = _position(conn)
            assert end_file == file, "the workload spans binlog files: use fewer --rows"
            url = server.url_for("bench")
            packed_start = MysqlSource.positions.parse(f"{file.rsplit('.', 1)[1]}:{start}")
            assert unpack(packed_start) == (int(file.rsplit(".", 1)[1]), start)
            results = {
                "binlog_bytes": stop - start,
                "transactions": transactions,
                "mariadb_binlog": _mariadb_binlog(server.port, file, start, stop, verbose=False),
                "mariadb_binlog_verbose": _mariadb_binlog(server.port, file, start, stop, verbose=True),
                "migrator": _migrator(url, packed_start, transactions),
            }
        finally:
            server.stop()
    changes = results["migrator"]["changes"]
    for name in ("mariadb_binlog", "mariadb_binlog_verbose", "migrator"):
        side = results[name]
        side["changes_per_s"] = changes / side["seconds"]
        side["changes_per_cpu_s"] = changes / max(side["cpu_seconds"], 1e-9)
        print(
            f"{name:24s} {side['seconds']:7.2f} s  {side['cpu_seconds']:7.2f} CPU s  "
            f"{side['changes_per_s']:10,.0f} changes/s  {side['changes_per_cpu_s']:10,.0f} changes/CPU s"
        )
    ratio = results["migrator"]["cpu_seconds"] / max(results["mariadb_binlog_verbose"]["cpu_seconds"], 1e-9)
    results["cpu_ratio_vs_verbose"] = ratio
    print(
        f"{changes:,} changes, {results['binlog_bytes']:,} bytes of binlog; migrator CPU / mariadb-binlog -v CPU = {ratio:.1f}"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
