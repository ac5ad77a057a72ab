"""Cutover with an application writing through the switch: a plan whose cutover flips a switch
file, the application (`App`) that writes customer names to whichever side the switch names and
retries what the fences refuse, and what the source and the target's fence hold afterwards.
The plans read the shop schema (tests/support/shop.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pymongo.errors
from bson.int64 import Int64

from tests.support.docs import Migration

KEYS = 40
QUERY_CANCELED = "57014"
FENCED_BY_VALIDATOR = 121  # DocumentValidationFailure


def cutover_plan(
    m: Migration, name: str, switch: Path, extra: str = "", freeze: str = "2s", reverse: bool = False
) -> Path:
    cutover = (
        f"{{max_write_freeze: {freeze}, reverse_sync: {str(reverse).lower()}, retries: 1, retry_pause: 0.2s, "
        f"switch: {{kind: file, path: '{switch}'}}{extra}}}"
    )
    return m.plan(
        """
- name: customers
  from: customers
  key: id
  embed:
    - {as: orders, from: orders, on: {customer_id: id}, key: id,
       embed: [{as: lines, from: lines, on: {order_id: id}, key: [order_id, line_no], order_by: line_no}]}
- name: stock
  from: stock
  key: [warehouse, sku]
""",
        name=name,
        phases=f"cdc: {{heartbeat_interval: 1s}}\ncutover: {cutover}",
    )


class App:
    """Writes customer names, one at a time, to whichever side the switch names; a statement the
    fence's cancellation ends (SQLSTATE 57014) or a write the target's rollback fence refuses
    (error 121) is retried after reading the switch again."""

    def __init__(self, m: Migration, switch: Path, pause: float = 0.005) -> None:
        self.m, self.switch, self.pause = m, switch, pause
        self.stop = threading.Event()
        self.last: dict[int, str] = {}
        self.counts = {"source": 0, "target": 0, "retried": 0, "failed": 0}
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._body, daemon=True)
        self._thread.start()

    def primary(self) -> str:
        try:
            return self.switch.read_text().strip() or "source"
        except FileNotFoundError:
            return "source"

    def _body(self) -> None:
        customers = self.m.client[self.m.database]["customers"]
        with psycopg.connect(self.m.pg_url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                key, value = n % KEYS + 1, f"w{n}"
                started = time.monotonic()
                while True:
                    side = self.primary()
                    try:
                        if side == "source":
                            conn.execute("UPDATE customers SET name = %s WHERE id = %s", [value, key])
                        else:
                            customers.update_one({"_id": Int64(key)}, {"$set": {"name": value}})
                        break
                    except psycopg.Error as exc:
                        if exc.sqlstate == QUERY_CANCELED:
                            self.counts["retried"] += 1
                            continue
                        self.counts["failed"] += 1
                        self.errors.append(str(exc))
                        break
                    except pymongo.errors.WriteError as exc:
                        if exc.code == FENCED_BY_VALIDATOR:
                            self.counts["retried"] += 1
                            time.sleep(0.005)
                            continue
                        self.counts["failed"] += 1
                        self.errors.append(str(exc))
                        break
                    except Exception as exc:  # noqa: BLE001 - counted and reported by the test
                        self.counts["failed"] += 1
                        self.errors.append(repr(exc))
                        break
                self.latencies.append(time.monotonic() - started)
                self.counts[side] += 1
                self.last[key] = value
                time.sleep(
                    self.pause
                )  # 0.005: a steady ~150 writes/s, which CDC on the test server keeps up with

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(120)


def names_on_source(m: Migration) -> dict[int, str]:
    return {int(k): v for k, v in m.rows("SELECT id, name FROM customers WHERE id <= %s", [KEYS])}


def validators(m: Migration) -> dict[str, Any]:
    db = m.client[m.database]
    return {c["name"]: (c.get("options") or {}).get("validator") for c in db.list_collections()}
