"""Forward and back against real servers: cutover with reverse sync, writes on the target after
it, `migrator run` following both directions, rollback after cutover (fence on the target,
drain, verify, flip back) with an application writing throughout, kill -9 during cutover (during
rollback: test_rollback_kill_steps.py and test_rollback_kill.py), and the pgroll cycle: run ->
cutover -> rollback -> rollback -> run again."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator import api
from migrator.engine.events import Collector, RollbackStepDone
from migrator.engine.metrics import RunMetrics
from migrator.engine.threads import BackgroundThread
from migrator.errors import TerminalError
from migrator.operations.rollback import RollbackResult
from migrator.operations.rollback_after_cutover import SwitchbackResult
from migrator.plan.names import publication_name
from tests.support import cli_process
from tests.support.cutover import (
    KEYS,
    ROLLBACK_STEPS,
    App,
    cutover_plan,
    names_on_source,
    reverse_checkpoints,
    validators,
)
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import SCHEMA


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def wait_for(check: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Following:
    """`api.cutover(follow=True)` or `api.run` on a thread, until stopped."""

    def __init__(self, body: Any) -> None:
        self.stop = threading.Event()
        self._thread = BackgroundThread[Any]("switchback-following", lambda: body(self.stop)).start()

    def finish(self, timeout: float = 60) -> Any:
        self.stop.set()
        self._thread.join(timeout)
        assert not self._thread.alive(), "did not stop"
        self._thread.raise_error()
        return self._thread.result


def test_forward_and_back_with_a_writing_application_loses_nothing(
    mig: Migration,
    tmp_path: Path,
) -> None:
    name = "sb-app"
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, name, switch, freeze="5s", reverse=True)
    run(mig, plan_file, "caught-up")
    app = App(mig, switch)
    customers = mig.client[mig.database]["customers"]
    try:
        # Counted writes, not seconds: a loaded machine makes fewer of them in a given time.
        wait_for(lambda: app.counts["source"] > 20, 300, "writes on the source")
        cutover = Following(
            lambda stop: api.cutover(plan_file, follow=True, state=mig.state_path, env=mig.env, stop=stop)
        )
        wait_for(lambda: switch.exists() and switch.read_text() == "target\n", 120, "the flip")
        # On the target now: the application's writes, and a change to an embedded order.
        customers.update_one({"_id": Int64(KEYS + 1)}, {"$set": {"orders.0.total": Decimal128("77.50")}})
        wait_for(lambda: app.counts["target"] > 50, 300, "writes on the target")
        outcome = cutover.finish()
        freeze_forward = outcome.report.freeze_ms
        status = api.status(plan_file, state=mig.state_path, env=mig.env)
        assert status.cutover is not None and status.cutover.primary == "target"
        assert status.cutover.last_freeze_ms["forward"] == freeze_forward
        assert status.cutover.reverse_events is not None and status.cutover.reverse_events > 0
        events = Collector()
        # Rolled back while the application keeps writing (its writes wait on the fence).
        before_rollback = app.counts["source"]
        result = api.rollback(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
        # It goes on writing, to the source again.
        wait_for(lambda: app.counts["source"] > before_rollback + 20, 300, "writes on the source again")
    finally:
        app.finish()
    assert isinstance(result, SwitchbackResult)
    assert switch.read_text() == "source\n"
    assert app.counts["failed"] == 0, app.errors
    assert app.counts["target"] > 50 and app.counts["source"] > 20, app.counts
    # The source holds every write, those made on the target after cutover included.
    assert {k: names_on_source(mig)[k] for k in app.last} == app.last
    total = mig.rows("SELECT total FROM orders WHERE customer_id = %s ORDER BY id LIMIT 1", [KEYS + 1])
    assert str(total[0][0]) == "77.50"
    steps = [e.step for e in events.of(RollbackStepDone)]
    # A loaded machine may abandon an attempt (lag or freeze over budget): it is retried, and
    # the attempt that succeeds runs the whole sequence from the lag gate on.
    assert steps[:2] == ["check", "verify"], steps
    last = max((i for i, step in enumerate(steps) if step == "abandoned"), default=1)
    assert len(result.abandoned) == steps.count("abandoned")
    assert steps[last + 1 :] == [*ROLLBACK_STEPS, "done"]
    # The pass ran while the application wrote on the target; what decided is the recheck at rest
    # of what the pass did not find equal and of everything changed since it began.
    assert result.verify is not None and result.recheck is not None
    assert result.recheck["differing"] == 0 and result.recheck["documents"] > 0
    assert result.freeze_ms is not None and result.freeze_ms > 0
    assert not validators(mig)["customers"]  # the fence is gone
    status = api.status(plan_file, state=mig.state_path, env=mig.env)
    assert status.cutover is not None and status.cutover.primary == "source"
    assert status.cutover.last_freeze_ms["back"] == result.freeze_ms
    assert reverse_checkpoints(mig, name) == 0
    print(
        f"forward freeze {freeze_forward:.0f} ms, back freeze {result.freeze_ms:.0f} ms, app max write "
        f"latency {max(app.latencies) * 1000:.0f} ms, {app.counts}"
    )

    # Forward CDC goes on: the source's later writes reach the target, which verifies equal.
    run(mig, plan_file, "caught-up")
    report = api.verify(plan_file, state=mig.state_path, env=mig.env)
    assert report.equal, report.to_dict()

    # The pgroll cycle: rolling back again removes the migration; a new run starts afresh.
    removed = api.rollback(plan_file, state=mig.state_path, env=mig.env)
    assert isinstance(removed, RollbackResult)
    assert not mig.rows("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [mig.slot(name)])
    assert not mig.rows("SELECT 1 FROM pg_publication WHERE pubname = %s", [publication_name(name)])
    assert sorted(c for c in mig.client[mig.database].list_collection_names() if c != "_migrator") == []
    run(mig, plan_file, "caught-up")
    assert customers.find_one({"_id": Int64(1)})["name"] == names_on_source(mig)[1]


def test_run_after_cutover_follows_both_directions(mig: Migration, tmp_path: Path) -> None:
    name = "sb-run"
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, name, switch, reverse=True)
    run(mig, plan_file, "caught-up")
    metrics = RunMetrics()
    api.cutover(plan_file, state=mig.state_path, env=mig.env, sinks=[metrics])
    freeze = metrics.value("migrator_write_freeze_seconds", {"direction": "forward"})
    assert freeze is not None and freeze > 0
    customers = mig.client[mig.database]["customers"]
    customers.update_one({"_id": Int64(3)}, {"$set": {"name": "written while nothing followed"}})
    following_metrics = RunMetrics()
    following = Following(
        lambda stop: api.run(
            plan_file,
            until="stopped",
            state=mig.state_path,
            env=mig.env,
            stop=stop,
            sinks=[following_metrics],
        )
    )
    try:
        wait_for(lambda: names_on_source(mig)[3] == "written while nothing followed", 60, "reverse sync")
        customers.update_one({"_id": Int64(4)}, {"$set": {"name": "on the target"}})
        mig.sql("UPDATE customers SET name = 'late on the source' WHERE id = 5")  # a late write
        wait_for(lambda: names_on_source(mig)[4] == "on the target", 60, "reverse sync")
        wait_for(
            lambda: customers.find_one({"_id": Int64(5)})["name"] == "late on the source", 60, "forward CDC"
        )
    finally:
        following.finish()
    # Neither direction echoed the other: one row version each.
    assert customers.find_one({"_id": Int64(4)})["name"] == "on the target"
    written_back = following_metrics.value("migrator_reverse_documents_total")
    assert written_back is not None and written_back >= 2


def test_rollback_refuses_after_a_one_way_cutover(mig: Migration, tmp_path: Path) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "sb-oneway", switch, reverse=False)
    run(mig, plan_file, "caught-up")
    api.cutover(plan_file, state=mig.state_path, env=mig.env)
    with pytest.raises(TerminalError, match="without reverse sync"):
        api.rollback(plan_file, state=mig.state_path, env=mig.env)
    assert switch.read_text() == "target\n"


def _kill_at(plan_file: Path, m: Migration, args: list[str], event: str, step: str) -> None:
    """`migrator ARGS PLAN --json`, SIGKILLed once it reports `step` done (and dead on return)."""
    env = {**m.env, "MIGRATOR_STATE": str(m.state_path)}
    process = cli_process.start([*args, str(plan_file)], env)
    cli_process.signal_when(process, cli_process.step_is(event, step), timeout=120)
    process.wait(30)


@pytest.mark.parametrize("moment", ["fence", "switched"])
def test_kill_9_during_cutover_then_resume(mig: Migration, tmp_path: Path, moment: str) -> None:
    name = f"sb-kill-co-{moment}"
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, name, switch, freeze="10s", reverse=True)
    run(mig, plan_file, "caught-up")
    _kill_at(plan_file, mig, ["cutover", "--exit"], "cutover.step", moment)
    if moment == "fence":
        assert not switch.exists()  # killed under the fence: the lock died with the process
        mig.sql("UPDATE customers SET name = 'after the kill' WHERE id = 2")  # writers are not held
    outcome = api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert switch.read_text() == "target\n"
    assert outcome.report.resumed == (moment == "switched")
    # Reverse sync works after the resumed cutover: a write on the target reaches the source.
    mig.client[mig.database]["customers"].update_one({"_id": Int64(6)}, {"$set": {"name": "back"}})
    result = api.rollback(plan_file, state=mig.state_path, env=mig.env)
    assert isinstance(result, SwitchbackResult)
    assert names_on_source(mig)[6] == "back"
    if moment == "fence":
        assert names_on_source(mig)[2] == "after the kill"


def test_reverse_sync_does_not_fire_the_applications_triggers(mig: Migration, tmp_path: Path) -> None:
    """The document written on the target already holds what the application's logic did (here:
    it set the balance itself, as the trigger would on the source); the trigger firing again on
    reverse sync's write would apply it twice, and source and target would differ for good
    (rollback's recheck would refuse the switch back on every retry)."""
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "sb-triggers", switch, reverse=True)
    mig.sql(
        "CREATE TABLE audit (customer_id bigint, op text)",
        "CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "NEW.balance := NEW.balance + 1; INSERT INTO audit VALUES (NEW.id, TG_OP); RETURN NEW; END $$",
        "CREATE TRIGGER bump BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION bump()",
    )
    run(mig, plan_file, "caught-up")
    api.cutover(plan_file, state=mig.state_path, env=mig.env)
    customers = mig.client[mig.database]["customers"]
    customers.update_one(
        {"_id": Int64(5)}, {"$set": {"name": "on the target", "balance": Decimal128("1.25")}}
    )
    result = api.rollback(plan_file, state=mig.state_path, env=mig.env)
    assert isinstance(result, SwitchbackResult)
    assert mig.rows("SELECT name, balance::text FROM customers WHERE id = 5") == [("on the target", "1.25")]
    assert mig.rows("SELECT count(*) FROM audit") == [(0,)]
    # The application's own writes on the source fire it as before.
    mig.sql("UPDATE customers SET name = 'on the source' WHERE id = 6")
    assert mig.rows("SELECT count(*) FROM audit") == [(1,)]
