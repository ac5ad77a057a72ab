"""An application of many column types writing to a MariaDB source or, once the switch file names
the target, to its PostgreSQL target (issue 16, "MariaDB -> PostgreSQL"): inserts (the key given
out by AUTO_INCREMENT on the source, by the identity on the target), updates of every column and
deletes, one statement at a time. Its own log (`expected`: key -> the row as MariaDB must hold it
in the end, None once deleted) is the expectation a test compares the source with after reverse
sync and rollback: built from the values it wrote, never from migrator's type table or mapping.

A statement the source's fence ended (errno 1317) is retried on the side the switch file names
then, as an application that sees no failed request does.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from psycopg.types.json import Jsonb

from tests.support.cutover import primary
from tests.support.mariadb import connect

UTC = datetime.UTC
INTERRUPTED = 1317

ITEMS = """CREATE TABLE items (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  flag TINYINT(1), u64 BIGINT UNSIGNED, amount DECIMAL(12,3), ratio DOUBLE, r FLOAT,
  name VARCHAR(40), code CHAR(4), dt DATETIME(6), ts TIMESTAMP(6) NULL, d DATE, t TIME(6),
  e ENUM('small','large'), s SET('a','b','c'), b BIT(5), bin BINARY(4), blb BLOB, doc JSON, y YEAR
)"""
COLUMNS = ("flag", "u64", "amount", "ratio", "r", "name", "code", "dt", "ts", "d", "t", "e", "s", "b")
COLUMNS += ("bin", "blb", "doc", "y")
# How the test reads the source back: SET as its text, BIT as its number, in a UTC session.
SOURCE_SELECT = (
    "SELECT id, flag, u64, amount, ratio, r, name, code, dt, ts, d, t, e, CAST(s AS CHAR), b + 0, bin, "
    "blb, doc, y FROM items ORDER BY id"
)
_SETS = ("", "a", "a,c", "b,c")


def values(n: int) -> dict[str, Any]:
    """The row the application writes for step `n`, as MariaDB reads it back."""
    time_value = datetime.timedelta(hours=n % 800, minutes=n % 60, microseconds=n)
    return {
        "flag": n % 2,
        "u64": 2**64 - 1 - n,
        "amount": (Decimal(n) * Decimal("1.125")).quantize(Decimal("0.001")),
        "ratio": n + 0.25,
        "r": n % 1000 + 0.5,
        "name": f"name {n} ✓",
        "code": f"c{n % 1000}",
        "dt": datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=n, microseconds=n % 999_999),
        "ts": datetime.datetime(2025, 6, 1) + datetime.timedelta(minutes=n, microseconds=7),
        "d": datetime.date(2024, 1, 1) + datetime.timedelta(days=n % 300),
        "t": -time_value if n % 2 else time_value,
        "e": ("small", "large")[n % 2],
        "s": _SETS[n % 4],
        "b": n % 32,
        "bin": n.to_bytes(4, "big"),
        "blb": bytes([n % 256]) * 3,
        "doc": {"n": n, "tags": ["x", n % 3], "f": 1.5, "nested": {"ok": n % 2 == 0}},
        "y": 1901 + n % 254,
    }


def _mysql_time(value: datetime.timedelta) -> str:
    sign = "-" if value < datetime.timedelta(0) else ""
    micros = abs(value) // datetime.timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}.{micro:06}"


def source_params(row: dict[str, Any]) -> list[Any]:
    out = dict(row)
    out["t"] = _mysql_time(row["t"])
    out["doc"] = json.dumps(row["doc"])
    return [out[c] for c in COLUMNS]


def target_params(row: dict[str, Any]) -> list[Any]:
    out = dict(row)
    out["flag"] = bool(row["flag"])
    out["ts"] = row["ts"].replace(tzinfo=UTC)
    out["s"] = [m for m in row["s"].split(",") if m]
    out["b"] = format(row["b"], "05b")
    out["doc"] = Jsonb(row["doc"])
    return [out[c] for c in COLUMNS]


def source_rows(url: str) -> dict[int, dict[str, Any]]:
    """The source's items as the test compares them (JSON parsed)."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(SOURCE_SELECT)
        found = {}
        for key, *rest in cur.fetchall():
            row = dict(zip(COLUMNS, rest, strict=True))
            row["doc"] = None if row["doc"] is None else json.loads(row["doc"])
            found[key] = row
        return found


class App:
    """Writes until stopped; `expected` is its log (see the module doc)."""

    def __init__(self, source_url: str, target_url: str, switch: Path, keys: list[int]) -> None:
        self.source_url, self.target_url, self.switch = source_url, target_url, switch
        self.keys = list(keys)  # the rows it may update or delete
        self.expected: dict[int, dict[str, Any] | None] = {}
        self.counts = {"source": 0, "target": 0, "retried": 0}
        self.inserted: dict[str, list[int]] = {"source": [], "target": []}  # keys given out, by side
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._body, name="mariadb-pg-app", daemon=True)

    def start(self) -> App:
        self._thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(60)

    def _body(self) -> None:
        try:
            with connect(self.source_url) as mysql, psycopg.connect(self.target_url, autocommit=True) as pg:
                with mysql.cursor() as cur:
                    cur.execute("SET time_zone = '+00:00'")
                n = 1000
                while not self.stop.is_set():
                    n += 1
                    self.step(mysql, pg, n)
                    time.sleep(0.005)
        except Exception as exc:  # noqa: BLE001 - shown by the test
            self.errors.append(repr(exc))

    def step(self, mysql: Any, pg: psycopg.Connection[Any], n: int) -> None:
        """One write: an insert, an update or a delete (by n), on the side the switch names."""
        while True:
            side = primary(self.switch)
            try:
                self._write(mysql if side == "source" else pg, side, n)
                break
            except pymysql.OperationalError as exc:
                if exc.args[0] != INTERRUPTED:
                    raise
                self.counts["retried"] += 1
        self.counts[side] += 1

    def _write(self, conn: Any, side: str, n: int) -> None:
        row = values(n)
        params = source_params(row) if side == "source" else target_params(row)
        kind = n % 3
        if kind == 0 or len(self.keys) < 5:
            marks = ", ".join(["%s"] * len(COLUMNS))
            statement = f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({marks})"
            key = _insert(conn, side, statement, params)
            self.keys.append(key)
            self.inserted[side].append(key)
            self.expected[key] = row
        elif kind == 1:
            key = self.keys[n % len(self.keys)]
            sets = ", ".join(f"{c} = %s" for c in COLUMNS)
            _execute(conn, side, f"UPDATE items SET {sets} WHERE id = %s", [*params, key])
            self.expected[key] = row
        else:
            key = self.keys.pop(n % len(self.keys))
            _execute(conn, side, "DELETE FROM items WHERE id = %s", [key])
            self.expected[key] = None


def _insert(conn: Any, side: str, statement: str, params: list[Any]) -> int:
    if side == "source":
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return int(cur.lastrowid)
    row = conn.execute(statement + " RETURNING id", params).fetchone()
    return int(row[0])


def _execute(conn: Any, side: str, statement: str, params: list[Any]) -> None:
    if side == "source":
        with conn.cursor() as cur:
            cur.execute(statement, params)
    else:
        conn.execute(statement, params)
