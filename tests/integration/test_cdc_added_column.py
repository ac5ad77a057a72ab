"""A column added to mapped tables while CDC follows, against real servers (docs/architecture.md,
"A column added while CDC follows"): PostgreSQL logs no row change for ADD COLUMN, yet every
document ends with the field, as the source holds it, while the application keeps writing.

Expectations come from plain SQL (tests/support/expected.py), never from migrator's mapping.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from migrator.errors import TerminalError
from migrator.phases.cdc import CdcPhase
from tests.support import expected
from tests.support.docs import Migration, typed
from tests.support.expected import Coll, Embed
from tests.support.runs import follow, run, transactions, wait_for

pytestmark = pytest.mark.usefixtures("stop_followers")

SCHEMA = (
    "CREATE TABLE customers (id integer PRIMARY KEY, name text)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers, total integer)",
    "CREATE TABLE regions (id integer PRIMARY KEY, label text)",
    "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 60) g",
    "INSERT INTO orders SELECT g, 1 + g % 60, g FROM generate_series(1, 180) g",
    "INSERT INTO regions SELECT g, 'r' || g FROM generate_series(1, 5) g",
)
COLLECTIONS = (
    Coll(
        "customers",
        "public.customers",
        ("id",),
        embeds=(Embed("orders", "public.orders", {"customer_id": "id"}, order_by=("id",)),),
    ),
    Coll("regions", "public.regions", ("id",)),
)


def set_up(mig: Migration, name: str) -> Path:
    mig.sql(*SCHEMA)
    return mig.plan(json.dumps([c.plan_entry() for c in COLLECTIONS]), name=name)


def differences(mig: Migration) -> list[str]:
    with expected.connect(mig.pg_url) as conn:
        wanted = {c.name: expected.documents(conn, c) for c in COLLECTIONS}
    out = []
    for name, docs in wanted.items():
        got = {repr(d["_id"]): typed(d) for d in mig.documents(name)}
        want = {repr(d["_id"]): typed(d) for d in docs}
        out += [f"{name} {k}: missing" for k in want.keys() - got.keys()]
        out += [f"{name} {k}: extra" for k in got.keys() - want.keys()]
        out += [
            f"{name} {k}: got {got[k]} want {want[k]}" for k in want.keys() & got.keys() if got[k] != want[k]
        ]
    return sorted(out)


def converges(mig: Migration, timeout: float = 120) -> None:
    """The target equals the documents built from SQL (polled: CDC applies asynchronously)."""
    last: list[str] = []

    def same() -> bool:
        nonlocal last
        last = differences(mig)
        return not last

    try:
        wait_for(same, "the target to equal the source", timeout, every=0.5)
    except BaseException:
        print("\n".join(last[:20]))
        raise


class Writer(threading.Thread):
    """The application: updates, deletes and inserts on customers and orders, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.writes = 0

    def run(self) -> None:
        rng = random.Random(17)
        next_order, next_customer = 1000, 1000
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.halt.is_set():
                    c = rng.randint(1, 60)
                    choice = rng.random()
                    if choice < 0.3:
                        conn.execute("UPDATE customers SET name = name || '+' WHERE id = %s", [c])
                    elif choice < 0.5:
                        conn.execute(
                            "UPDATE orders SET total = total + 1 WHERE id = %s", [rng.randint(1, 180)]
                        )
                    elif choice < 0.65:
                        conn.execute("DELETE FROM orders WHERE id = %s", [rng.randint(1, 180)])
                    elif choice < 0.85:
                        next_order += 1
                        conn.execute(
                            "INSERT INTO orders (id, customer_id, total) VALUES (%s, %s, 7)", [next_order, c]
                        )
                    else:
                        next_customer += 1
                        conn.execute("INSERT INTO customers (id, name) VALUES (%s, 'new')", [next_customer])
                    self.writes += 1
                    self.halt.wait(0.01)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc


def test_columns_added_to_a_root_and_an_embedded_table_reach_every_document(mig: Migration) -> None:
    """ADD COLUMN with a DEFAULT on the root table and on the embedded child table while writes go
    on around it; and on a table no row change touches afterwards (the schema check's marker)."""
    name = "added-following"
    plan = set_up(mig, name)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    writer = Writer(mig.pg_url)
    writer.start()
    try:
        wait_for(lambda: writer.writes >= 30, "the application to write", 60)
        mig.sql("ALTER TABLE customers ADD COLUMN tier text DEFAULT 'basic'")
        wait_for(lambda: writer.writes >= 60, "the application to write", 60)
        mig.sql("ALTER TABLE orders ADD COLUMN status text DEFAULT 'new'")
        # No row of regions changes again; a volatile default rewrites the table (not decoded either).
        mig.sql(
            "ALTER TABLE regions ADD COLUMN code text DEFAULT 'rc', ADD COLUMN seed text DEFAULT md5(random()::text)"
        )
        wait_for(lambda: writer.writes >= 90, "the application to write", 60)
    finally:
        writer.halt.set()
        writer.join(30)
    assert writer.error is None, writer.error
    converges(mig)
    notices = [n for n in follower.notices() if "brought up to date" in n]
    for column in ("customers", "orders", "regions"):
        assert any(f"public.{column}" in n for n in notices), follower.notices()
    follower.finish()
    assert all(d.get("code") == "rc" and len(d.get("seed") or "") == 32 for d in mig.documents("regions"))


def test_a_run_stopped_before_the_backfill_backfills_on_resume(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run ends right where it would bring the documents up to date (after the Relation
    message that carries the column, with everything before it applied and checkpointed): the
    next run does it, though no row of the table changes again; and once recorded beside the
    checkpoint, a later run does not do it again."""
    name = "added-resumed"
    plan = set_up(mig, name)
    run(mig, plan, "snapshot")

    def stopped_here(self: CdcPhase, table: str, added: set[str], tick: Callable[[], None]) -> None:
        raise TerminalError(f"test: stopped before bringing {table} up to date")

    with monkeypatch.context() as patched:
        patched.setattr(CdcPhase, "_backfill", stopped_here)
        follower = follow(mig, plan, name)
        transactions(
            mig,
            [
                "ALTER TABLE customers ADD COLUMN tier text DEFAULT 'gold'",
                "UPDATE customers SET name = 'x' WHERE id = 2",
            ],
        )
        wait_for(lambda: not follower.alive, "the run to stop at the backfill", 60)
        with pytest.raises(TerminalError, match="test: stopped before"):
            follower.join()
    documents = {d["_id"]: d for d in mig.documents("customers")}
    assert documents[2].get("tier") == "gold" and "tier" not in documents[3]
    resumed = run(mig, plan)
    assert not differences(mig)
    assert any("brought up to date" in n for n in resumed.notices()), resumed.notices()
    again = run(mig, plan)
    assert not any("brought up to date" in n for n in again.notices()), again.notices()
    assert not differences(mig)
