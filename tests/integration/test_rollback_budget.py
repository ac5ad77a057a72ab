"""Rollback after cutover is bounded like cutover (issue 17, defect 13: a rollback froze target
writes for 24.6 s): before each fence, reverse sync must apply a fresh marker within
`cdc.max_lag` (else no fence is taken); under the fence, the drain and the recheck must finish
within `cutover.max_write_freeze` (else the fence is lifted and the attempt retried, up to
`retries`); each attempt's reason and freeze are reported. Against real servers, with the
source made slow on purpose (a delay in reverse sync's writes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from bson.int64 import Int64

from migrator import api
from migrator.adapters.mongodb.fence import ValidatorFence
from migrator.adapters.postgres.reverse_writer import ReverseWriter
from migrator.operations.rollback_after_cutover import SwitchbackResult
from migrator.operations.rollback_after_cutover import attempts as switchback_attempts
from migrator.phases.cutover import AttemptsAbandoned
from tests.support.cutover import cutover_plan, names_on_source, validators
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import SCHEMA


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


class SlowSource:
    """Each of reverse sync's source transactions takes `seconds` longer, always or only while
    the target's fence is on; counts the fences taken."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, seconds: float, only_fenced: bool) -> None:
        self.fenced = False
        self.fences = 0
        apply, engage, lift = ReverseWriter.apply, ValidatorFence.engage, ValidatorFence.lift

        def slow_apply(writer: ReverseWriter, *args: Any, **kwargs: Any) -> int:
            if self.fenced or not only_fenced:
                time.sleep(seconds)
            return apply(writer, *args, **kwargs)

        def counted_engage(fence: ValidatorFence) -> Any:
            self.fences += 1
            self.fenced = True
            return engage(fence)

        def counted_lift(fence: ValidatorFence, before: Any) -> Any:
            self.fenced = False
            return lift(fence, before)

        monkeypatch.setattr(ReverseWriter, "apply", slow_apply)
        monkeypatch.setattr(ValidatorFence, "engage", counted_engage)
        monkeypatch.setattr(ValidatorFence, "lift", counted_lift)


def cut_over(m: Migration, tmp_path: Path, name: str, cdc: str = "") -> tuple[Path, Path]:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(m, name, switch, freeze="2s", reverse=True, cdc=cdc)
    run(m, plan_file, "caught-up")
    api.cutover(plan_file, state=m.state_path, env=m.env)
    m.client[m.database]["customers"].update_one({"_id": Int64(9)}, {"$set": {"name": "on the target"}})
    return plan_file, switch


def test_a_freeze_over_the_budget_is_abandoned_and_the_fence_lifted(
    mig: Migration,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan_file, switch = cut_over(mig, tmp_path, "rb-budget")
    slow = SlowSource(monkeypatch, 3.0, only_fenced=True)
    with pytest.raises(AttemptsAbandoned) as raised:
        api.rollback(plan_file, state=mig.state_path, env=mig.env)
    attempts = raised.value.attempts
    assert [a["attempt"] for a in attempts] == [1, 2]  # retries: 1
    assert all("max_write_freeze" in a["reason"] and a["freeze_ms"] > 0 for a in attempts), attempts
    assert slow.fences == 2
    assert switch.read_text() == "target\n"  # the target stays primary ...
    assert not validators(mig)["customers"]  # ... and takes writes again
    status = api.status(plan_file, state=mig.state_path, env=mig.env)
    assert any(e.phase == "rollback" and e.error == "AttemptsAbandoned" for e in status.errors)

    monkeypatch.undo()  # the source is fast again: the next rollback goes through
    result = api.rollback(plan_file, state=mig.state_path, env=mig.env)
    assert isinstance(result, SwitchbackResult)
    assert switch.read_text() == "source\n"
    assert names_on_source(mig)[9] == "on the target"
    assert result.freeze_ms is not None and result.freeze_ms > 0


def test_no_fence_while_reverse_sync_lags(
    mig: Migration,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # max_lag 1 s (default 5 s), so that a reverse transaction need take only 1.5 s to be over it.
    plan_file, switch = cut_over(mig, tmp_path, "rb-lag", cdc=", max_lag: 1s")
    slow = SlowSource(monkeypatch, 1.5, only_fenced=False)  # over max_lag
    # One catch-up round per attempt: a lag that never shrinks would otherwise be measured again
    # for the whole round budget (30 s here) before each attempt is abandoned.
    monkeypatch.setattr(switchback_attempts, "CONVERGE_ROUNDS", 1)
    with pytest.raises(AttemptsAbandoned) as raised:
        api.rollback(plan_file, state=mig.state_path, env=mig.env)
    attempts = raised.value.attempts
    assert len(attempts) == 2
    assert all("reverse sync lag" in a["reason"] and a["freeze_ms"] == 0 for a in attempts), attempts
    assert slow.fences == 0  # no write was held
    assert switch.read_text() == "target\n"
