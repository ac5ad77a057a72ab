"""An application writing through the routing file to either source adapter or to MongoDB, for
the conformance suite's cutover and rollback (tests/integration/conformance/test_conformance_cutover.py).

It renames customers one at a time, on the side the switch file names at that moment
(scripts/lib/routed_writes.py's application, for any `SourceDb`): customers 1..keys on the source,
keys+1..2*keys on the target, so that the writes made on the target are still the last of their
rows after the source is primary again (the test can tell that reverse sync brought them back); a statement the source's fence
ended (`Cancelled`: SQLSTATE 57014, errno 1317) or a write the target's fence refused (error 121; a PostgreSQL target's: SQLSTATE 25006)
is retried on the side the file names then, as an application that sees no failed request does.
`last` is what each key was last set to, wherever: after a rollback the source must hold it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pymongo.errors

from tests.support.cutover import primary
from tests.support.sources import Cancelled, SourceDb, SourceWriter

FENCED = 121  # DocumentValidationFailure: the target's fence during a rollback
READ_ONLY = "25006"  # a PostgreSQL target's fence during a rollback (docs/architecture.md)


class App:
    def __init__(
        self, source: SourceDb, customers: Any, switch: Path, keys: int, pause: float = 0.01
    ) -> None:
        self.source, self.customers, self.switch = source, customers, switch
        self.keys, self.pause = keys, pause
        self.stop = threading.Event()
        self.counts = {"source": 0, "target": 0, "retried": 0, "failed": 0}
        self.errors: list[str] = []
        self.last: dict[int, str] = {}
        self._thread = threading.Thread(target=self._body, name="routed-app", daemon=True)

    def start(self) -> App:
        self._thread.start()
        return self

    def _body(self) -> None:
        try:
            with self.source.writer() as writer:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    self._write(writer, n % self.keys + 1, f"w{n}")
                    time.sleep(self.pause)
        except Exception as exc:  # noqa: BLE001 - a lost connection: counted, shown by the test
            self.counts["failed"] += 1
            self.errors.append(repr(exc))

    def _write(self, writer: SourceWriter, n: int, value: str) -> None:
        while True:
            side = primary(self.switch)
            key = n if side == "source" else n + self.keys
            try:
                if side == "source":
                    writer.update("customers", "name", key, value)
                else:
                    self.customers.update_one({"_id": key}, {"$set": {"name": value}})
                break
            except Cancelled:
                self.counts["retried"] += 1
            except pymongo.errors.WriteError as exc:
                if exc.code != FENCED:
                    raise
                self.counts["retried"] += 1
                time.sleep(0.002)
            except psycopg.Error as exc:  # a PostgreSQL target (tests/support/pg_target.py)
                if exc.sqlstate != READ_ONLY:
                    raise
                self.counts["retried"] += 1
                time.sleep(0.002)
        self.counts[side] += 1
        self.last[key] = value

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(120)
