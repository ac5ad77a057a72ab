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
from bson.int64 import Int64

from tests.support.docs import Migration
from tests.support.scripts_lib import load

routed_writes = load("routed_writes")

KEYS = 40
# The steps of a rollback after cutover from its lag gate on, in order: each emits a rollback.step
# event once done and recorded (after "check" and "verify"; "done" ends a rollback).
ROLLBACK_STEPS = (
    "lag",
    "fence",
    "drain",
    "recheck",
    "sequences",
    "flipping",
    "flip",
    "drain-again",
    "unfence",
    "forget",
    "hook",
)


def cutover_plan(
    m: Migration,
    name: str,
    switch: Path,
    extra: str = "",
    freeze: str = "2s",
    reverse: bool = False,
    cdc: str = "",
) -> Path:
    """`cdc`: more of phases.cdc, e.g. ", max_lag: 1s"."""
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
        phases=f"cdc: {{heartbeat_interval: 1s{cdc}}}\ncutover: {cutover}",
    )


class App:
    """Writes customer names, one at a time, to whichever side the switch names; a statement the
    fence's cancellation ends (SQLSTATE 57014) or a write the target's rollback fence refuses
    (error 121) is retried after reading the switch again (scripts/lib/routed_writes.py, the
    demo's and the cutover benchmark's application, makes each write)."""

    def __init__(self, m: Migration, switch: Path, pause: float = 0.005) -> None:
        self.m, self.switch, self.pause = m, switch, pause
        self.stop = threading.Event()
        self.writes = routed_writes.Writes()
        # The written values, counts, latencies and errors, live while the application runs.
        self.last: dict[int, str] = self.writes.last
        self.counts: dict[str, int] = self.writes.counts
        self.latencies: list[float] = self.writes.latencies
        self.errors: list[str] = self.writes.errors
        self._thread = threading.Thread(target=self._body, daemon=True)
        self._thread.start()

    def primary(self) -> str:
        return primary(self.switch)

    def _body(self) -> None:
        customers = self.m.client[self.m.database]["customers"]
        with psycopg.connect(self.m.pg_url, autocommit=True) as conn:
            source = routed_writes.PostgresRows(conn, routed_writes.update_statement("customers", "name"))
            n = 0
            while not self.stop.is_set():
                n += 1
                key, value = n % KEYS + 1, f"w{n}"
                routed_writes.write_to(
                    source, customers, "name", Int64(key), value, self.switch, self.writes, 0.005
                )
                time.sleep(
                    self.pause
                )  # 0.005: a steady ~150 writes/s, which CDC on the test server keeps up with

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(120)


def primary(switch: Path) -> str:
    """The side the switch file names: "source" while it is absent or empty."""
    return str(routed_writes.primary(switch))


def names_on_source(m: Migration) -> dict[int, str]:
    return {int(k): v for k, v in m.rows("SELECT id, name FROM customers WHERE id <= %s", [KEYS])}


def validators(m: Migration) -> dict[str, Any]:
    db = m.client[m.database]
    return {c["name"]: (c.get("options") or {}).get("validator") for c in db.list_collections()}


def reverse_checkpoints(m: Migration, plan: str) -> int:
    """Reverse sync's checkpoints of `plan` on the source (0 once a rollback forgot them)."""
    found = m.rows("SELECT to_regclass('migrator.reverse_checkpoint') IS NOT NULL")[0][0]
    if not found:
        return 0
    return int(m.rows("SELECT count(*) FROM migrator.reverse_checkpoint WHERE plan = %s", [plan])[0][0])
