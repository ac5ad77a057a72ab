"""The switch back's freeze is predicted before its fence (operations/rollback_after_cutover/
recheck_rate.py and attempts.py): the rounds outside the fence measure the recheck's pace; the
fence is engaged only when the drain and the recheck of what is pending are predicted to fit
`cutover.max_write_freeze`, the rounds go on while what is left falls, and an attempt that cannot
fit is abandoned before any fence. Driven on a fake clock: the target's application writes at a
steady rate, each recheck and catch-up takes the time its size says."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from migrator.mapping.affected import Affected, DocumentId
from migrator.operations.rollback_after_cutover import attempts as attempts_module
from migrator.operations.rollback_after_cutover.attempts import Attempts
from migrator.operations.rollback_after_cutover.recheck_rate import FIT_SHARE, RecheckRate, forecast
from migrator.operations.rollback_after_cutover.steps import SwitchbackResult
from migrator.phases.cutover import AttemptsAbandoned
from migrator.phases.touched import OutOfTime, RoundResult

# -- the prediction ------------------------------------------------------------------------------


def test_nothing_is_predicted_before_a_pace_is_measured() -> None:
    rate = RecheckRate()
    rate.record(0, 0, 0.01)  # a round with nothing to compare measures nothing
    assert not rate.measured and rate.predict(100) is None
    plan = forecast(rate, 150, 0.2, 2.0)
    assert plan.fits(200) and not plan.fits(100)  # the fixed bound decides, unmeasured
    assert plan.fits(None)  # at the gate: the budget under the fence decides


def test_the_pace_is_that_of_every_round_together() -> None:
    rate = RecheckRate()
    rate.record(600, 600, 2.4)  # 250 documents/s
    rate.record(200, 400, 1.6)  # references naming two documents each
    assert rate.documents_per_second() == pytest.approx(250.0)
    assert rate.predict(100) == pytest.approx(100 * 4.0 / 800)  # seconds per reference


def test_the_drain_counts_and_only_a_share_of_the_budget_is_planned() -> None:
    rate = RecheckRate()
    rate.record(500, 500, 2.0)  # 4 ms a document
    fits = forecast(rate, 200, 0.5, 2.0)  # 0.8 s + 0.5 s
    assert fits.freeze == pytest.approx(1.3) and fits.fits(None)
    over = forecast(rate, 300, 0.5, 2.0)  # 1.2 s + 0.5 s: under 2 s, over its planned share
    assert over.freeze == pytest.approx(1.7) and over.freeze > FIT_SHARE * 2.0 and not over.fits(None)
    text = over.describe()
    assert "300 document(s)" in text and "250 documents/s" in text and "max_write_freeze 2 s" in text


# -- the attempts, on a fake clock -----------------------------------------------------------------


@dataclass
class World:
    """The switch back's surroundings: an application writing `writes` documents/s on the target
    (each recorded once reverse sync writes it back), a recheck at `pace` documents/s, reverse
    sync's catch-up taking `lag` s, forward CDC's marker `forward` s."""

    writes: float
    pace: float
    lag: float
    forward: float = 0.1
    now: float = 1000.0
    recorded_at: float = 1000.0
    next_id: int = 0
    checks: list[int] = field(default_factory=list)  # references per recheck, fenced or not
    fences: int = 0
    fenced_at: float | None = None
    held: list[float] = field(default_factory=list)
    flipped: bool = False
    steps: list[tuple[str, str]] = field(default_factory=list)

    # the clock
    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    # what reverse sync and forward CDC recorded since the last call
    def recorded_refs(self) -> list[Affected]:
        count = int(self.writes * (self.now - self.recorded_at)) if self.fenced_at is None else 0
        if self.fenced_at is not None:  # no write under the fence, but those before it
            count = int(self.writes * max(0.0, self.fenced_at - self.recorded_at))
        self.recorded_at = self.now
        refs: list[Affected] = [DocumentId("customers", self.next_id + i) for i in range(count)]
        self.next_id += count
        return refs

    # TouchedDocuments
    def check(
        self, refs: list[Affected], deadline: float | None = None
    ) -> tuple[RoundResult, list[Affected]]:
        self.checks.append(len(refs))
        seconds = len(refs) / self.pace
        if deadline is not None and self.now + seconds >= deadline:
            self.now = deadline
            raise OutOfTime("the check under the fence ran out of time")
        self.now += seconds
        return RoundResult(len(refs), len(refs), 0, seconds), []

    # ReverseSync
    def run(self, until: str, deadline: float | None = None) -> Any:
        self.now += self.lag
        return SimpleNamespace(caught_up=True, documents=0, rows=0)

    # the fence
    def engage(self) -> None:
        self.fences += 1
        self.fenced_at = self.now

    def lift(self, before: Any) -> float | None:
        assert self.fenced_at is not None
        self.held.append(self.now - self.fenced_at)
        self.fenced_at = None
        return self.held[-1]

    def own_options(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return "the fence"

    # the switch
    def flip(self, side: str) -> None:
        self.flipped = side == "source"

    def done(self, step: str, outcome: str, detail: Any = None, checkpoint: bool = True) -> None:
        self.steps.append((step, outcome))


def attempts(world: World, monkeypatch: pytest.MonkeyPatch, freeze: float = 2.0) -> Attempts:
    monkeypatch.setattr(attempts_module, "time", world)
    monkeypatch.setattr(attempts_module, "set_source_sequences", lambda ctx: [])
    monkeypatch.setattr(
        attempts_module, "forward_marker", lambda ctx, follower, deadline: world.sleep(world.forward) or True
    )
    cutover = SimpleNamespace(max_write_freeze=freeze, retries=1, retry_pause=5.0)
    ctx = SimpleNamespace(
        plan=SimpleNamespace(phases=SimpleNamespace(cutover=cutover, cdc=SimpleNamespace(max_lag=5.0))),
        store=SimpleNamespace(add_checkpoint=lambda *args, **kwargs: None),
        run=SimpleNamespace(id="run"),
    )
    follower = SimpleNamespace(raise_if_failed=lambda: None)
    return Attempts(
        cast(Any, ctx),
        cast(Any, world),
        cast(Any, world),
        cast(Any, follower),
        cast(Any, world),
        cast(Any, world),
        world.done,
        world.recorded_refs,
        True,
        {},
    )


def pending(count: int) -> list[Affected]:
    return [DocumentId("customers", -1 - i) for i in range(count)]


def test_rounds_go_on_while_what_is_left_falls_then_one_fence_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(writes=100, pace=250, lag=0.3)
    result = SwitchbackResult("run")
    attempts(world, monkeypatch).run(pending(2000), result)
    assert world.flipped and world.fences == 1 and not result.abandoned
    outside = world.checks[:-1]
    assert len(outside) >= 3 and outside == sorted(outside, reverse=True), world.checks
    assert world.held[-1:] == [] and world.fenced_at is not None  # the fence stands at the flip
    lag = next(outcome for step, outcome in world.steps if step == "lag")
    assert "documents/s" in lag and "max_write_freeze 2 s" in lag


def test_no_fence_when_the_recheck_cannot_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes come nearly as fast as they are rechecked: what is left stops falling well above
    what fits, so each attempt is abandoned before its fence (the application is never held)."""
    world = World(writes=100, pace=120, lag=0.5)
    with pytest.raises(AttemptsAbandoned) as raised:
        attempts(world, monkeypatch).run(pending(600), SwitchbackResult("run"))
    assert world.fences == 0 and not world.flipped
    tried = raised.value.attempts
    assert [a["attempt"] for a in tried] == [1, 2]
    assert all(a["freeze_ms"] == 0 for a in tried), tried
    assert all("documents/s" in a["reason"] and "max_write_freeze" in a["reason"] for a in tried), tried


def test_a_fence_that_overruns_after_all_is_still_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prediction decides only whether to fence; the budget under the fence still holds:
    the machine gets busy just as the first fence is engaged, that attempt overruns and lifts it,
    the next one fits."""
    world = World(writes=100, pace=250, lag=0.3)
    engage, lift = world.engage, world.lift

    def busy_under_the_first_fence() -> None:
        engage()
        world.pace = 20 if world.fences == 1 else 250

    def lifted(before: Any) -> float | None:
        world.pace = 250
        return lift(before)

    world.engage = busy_under_the_first_fence  # type: ignore[method-assign]
    world.lift = lifted  # type: ignore[method-assign]
    result = SwitchbackResult("run")
    attempts(world, monkeypatch).run(pending(100), result)
    assert world.fences == 2 and world.flipped
    (overran,) = result.abandoned
    assert "did not fit max_write_freeze" in overran["reason"] and overran["freeze_ms"] > 0, overran
