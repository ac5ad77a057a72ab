"""The kill -9 tests of rollback after cutover (tests/integration/test_rollback_kill*.py, issue 17,
defect 14(c)): a migration cut over with reverse sync, `migrator rollback` killed at a moment
(`kill_rollback_and_retry`), retried, and both sides checked against what the application wrote
in the window (`Application`: deletes, updates, inserts made on whichever side the switch named,
before the rollback and between the kill and the retry), nothing resurrected. The expectation is
built from the writes themselves (a dict of customer names), not by migrator's mapping code."""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator import api
from migrator.operations.rollback_after_cutover import KILL_AT_ENV
from tests.support import cli_process
from tests.support.cutover import App, cutover_plan, primary, reverse_checkpoints
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import CUSTOMERS


class Application:
    """Deletes, renames and inserts customers on the side the switch names, and keeps what the
    source and the target must hold afterwards: customer id -> name."""

    def __init__(self, m: Migration, switch: Path) -> None:
        self.m, self.switch = m, switch
        self.expected: dict[int, str] = {i: f"customer {i}" for i in range(1, CUSTOMERS + 1)}
        self.customers = m.client[m.database]["customers"]

    def side(self) -> str:
        return primary(self.switch)

    def fenced(self) -> bool:
        # Read again when the collection is not listed: under load the test server's catalog
        # has listed nothing for it for over 10 s (after a killed rollback's collMod; seen on a
        # machine with a load average of 6); the collection itself is never dropped, and
        # app.check() compares its documents afterwards. A deadline, not a count of tries.
        deadline = time.monotonic() + 60
        database = self.m.client[self.m.database]
        while True:
            listed = list(database.list_collections(filter={"name": "customers"}))
            if listed:
                return bool((listed[0].get("options") or {}).get("validator"))
            if time.monotonic() > deadline:
                documents = database["customers"].estimated_document_count()
                raise AssertionError(
                    f"collection customers is not listed in {self.m.database} ({documents} documents in it)"
                )
            time.sleep(0.2)

    def writes(self, n: int, *, deletes_only: bool = False) -> None:
        """Delete customer n, rename n + 1, insert 1000 + n (n above test_cutover.KEYS, which App writes) (only the delete where the target's
        fence refuses documents written: a validator does not hold deletes)."""
        if self.side() == "source":
            self.m.sql(
                f"DELETE FROM lines WHERE order_id IN (SELECT id FROM orders WHERE customer_id = {n})",
                f"DELETE FROM orders WHERE customer_id = {n}",
                f"DELETE FROM customers WHERE id = {n}",
            )
        else:
            assert self.customers.delete_one({"_id": Int64(n)}).deleted_count == 1
        del self.expected[n]
        if deletes_only:
            return
        name = f"renamed {n + 1}"
        new = 1000 + n
        if self.side() == "source":
            self.m.sql(
                f"UPDATE customers SET name = '{name}' WHERE id = {n + 1}",
                f"INSERT INTO customers VALUES ({new}, 'inserted {new}', 1.00, '2024-01-01T00:00:00Z', '{{}}')",
            )
        else:
            self.customers.update_one({"_id": Int64(n + 1)}, {"$set": {"name": name}})
            self.customers.insert_one(
                {
                    "_id": Int64(new),
                    "name": f"inserted {new}",
                    "balance": Decimal128("1.00"),
                    "created": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
                    "tags": [],
                    "orders": [],
                }
            )
        self.expected[n + 1] = name
        self.expected[new] = f"inserted {new}"

    def check(self) -> None:
        on_source = {int(k): v for k, v in self.m.rows("SELECT id, name FROM customers")}
        assert on_source == self.expected
        on_target = {int(d["_id"]): d["name"] for d in self.customers.find({}, {"name": 1})}
        assert on_target == self.expected
        gone = [k for k in range(1, CUSTOMERS + 1) if k not in self.expected]
        orphans = self.m.rows("SELECT count(*) FROM orders WHERE customer_id = ANY(%s)", [gone])[0][0]
        assert orphans == 0, f"orders of deleted customers {gone} came back"


def kill_rollback_and_retry(
    mig: Migration,
    tmp_path: Path,
    moments: Sequence[str],
    between: bool,
) -> None:
    """Cut over, kill `migrator rollback` at each of `moments` in turn (`between`: the
    MIGRATOR_TEST_KILL_AT point of that name, between an action and its checkpoint; else once the
    rollback.step event of that name is out), each kill in the retry of the one before (so each
    retry resumes from what the kill before left), the application writing between them; then
    retry to the end and check the switch, the fence and both sides' data. `moments` in the order
    a rollback reaches them: one cutover serves them all."""
    name = f"rb-kill-{moments[0]}" + ("-on" if len(moments) > 1 else "")
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, name, switch, freeze="10s", reverse=True)
    run(mig, plan_file, "caught-up")
    api.cutover(plan_file, state=mig.state_path, env=mig.env)
    app = Application(mig, switch)
    app.writes(100)  # on the target, cut over
    # Renames customers 1..KEYS throughout, on the side the switch names: a write every 20 ms or so
    # keeps every step of the rollback under writes (the rate is not the point: each CDC change the
    # forward and reverse streams carry is work for the 2 cores the suite shares).
    writer = App(mig, switch, pause=0.02)
    env = {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    try:
        for window, moment in enumerate(moments):
            _kill_rollback(mig, app, plan_file, env, moment, between)
            # Between the kill and the retry, the application goes on where the switch says
            # (customers 200, 202, ...: a window's own).
            app.writes(200 + 2 * window, deletes_only=app.side() == "target" and app.fenced())
        retry = cli_process.start(["rollback", str(plan_file), "--yes"], env)
        code, out, err = cli_process.finish(retry)
    finally:
        writer.finish()
    assert code == 0, (out[-3000:], err[-3000:])
    assert switch.read_text() == "source\n"
    assert not app.fenced()
    assert writer.counts["failed"] == 0, writer.errors
    assert reverse_checkpoints(mig, name) == 0  # forgotten: a new cutover starts reverse sync afresh
    app.expected.update(writer.last)

    app.writes(250)  # on the source again: forward CDC carries them
    run(mig, plan_file, "caught-up")
    app.check()
    status = api.status(plan_file, state=mig.state_path, env=mig.env)
    assert status.cutover is not None and status.cutover.primary == "source"


def _kill_rollback(
    mig: Migration,
    app: Application,
    plan_file: Path,
    env: dict[str, str],
    moment: str,
    between: bool,
) -> None:
    """Start `migrator rollback` (a retry, after the first) and SIGKILL it at `moment`."""
    if between:
        process = cli_process.start(["rollback", str(plan_file), "--yes"], {**env, KILL_AT_ENV: moment})
        code, out, err = cli_process.finish(process)
        assert code == -signal.SIGKILL, (moment, code, out[-2000:], err[-2000:])
    else:
        process = cli_process.start(["rollback", str(plan_file), "--yes"], env)
        cli_process.signal_when(process, cli_process.step_is("rollback.step", moment), signal.SIGKILL)
        cli_process.finish(process, timeout=60)
        # What the crash left: the fence on and the switch on the target once the fence is
        # recorded; the switch on the source once the flip is.
        if moment == "fence":
            assert app.fenced() and app.side() == "target"
        elif moment == "flip":
            assert app.side() == "source"
    # The killed process may have left a target transaction open (forward CDC applies in
    # transactions), holding its documents: the retry ends it (killSessions) once it holds the
    # run, before it writes (docs/architecture.md, "Transactions a killed process left open").
