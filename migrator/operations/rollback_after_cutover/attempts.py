"""The switch back's gate and freeze budget: attempts of fence, drain, recheck and flip, each
abandoned (the fence lifted, the target still primary) when it does not fit, as cutover's are
(phases/cutover.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from migrator.adapters.base import TargetWriteFence
from migrator.engine.context import RunContext
from migrator.engine.switch import RoutingSwitch
from migrator.errors import MigratorError
from migrator.mapping.affected import Affected, DocumentId
from migrator.operations.follow import CdcFollower
from migrator.operations.rollback_after_cutover.crash import kill_point
from migrator.operations.rollback_after_cutover.drain import forward_marker
from migrator.operations.rollback_after_cutover.fence import lift
from migrator.operations.rollback_after_cutover.recheck_rate import Forecast, RecheckRate, forecast
from migrator.operations.rollback_after_cutover.sequences import set_source_sequences
from migrator.operations.rollback_after_cutover.steps import SwitchbackResult
from migrator.phases.cutover import ROLLBACK_PHASE, AttemptsAbandoned, CheckFailed
from migrator.phases.reverse import ReverseSync
from migrator.phases.touched import OutOfTime, TouchedDocuments
from migrator.state.labels import RollbackLabel

# Before each fence, recheck in rounds until the drain and the recheck of what is left are
# predicted to fit max_write_freeze at the pace the rounds measured (recheck_rate.py), or the
# count left stops falling. Before any pace is measured, at most this many documents may be
# left for the recheck under the fence (each costs a source and a target read there).
LEFT_FOR_THE_FENCE = 200
CONVERGE_ROUNDS = 10


class Attempts:
    """Fence, drain, recheck and flip back within the freeze budget, as cutover does
    (phases/cutover.py): before each fence, reverse sync must apply a marker written on the
    target within `cdc.max_lag` (what it lags behind then is what the freeze would wait for),
    and what was recorded is rechecked once outside the fence, so that little is left for it;
    under the fence, the drain, forward CDC's marker and the recheck must finish within
    `cutover.max_write_freeze` of the fence, else the fence is lifted (the target stays primary,
    its writes were only delayed) and, after `retry_pause`, the next attempt starts, up to
    `retries` more. No fence is engaged when the drain and the recheck are predicted not to fit
    (recheck_rate.py: the pace of the rechecks outside it): that attempt is abandoned before
    it. Returns when the switch names the source, with the fence still on."""

    def __init__(
        self,
        ctx: RunContext,
        fence: TargetWriteFence,
        reverse: ReverseSync,
        follower: CdcFollower,
        touched: TouchedDocuments,
        switch: RoutingSwitch,
        done: Callable[..., None],
        recorded_refs: Callable[[], list[Affected]],
        keep_before: bool,
        before: dict[str, Any],
    ) -> None:
        self.ctx, self.fence, self.reverse, self.follower = ctx, fence, reverse, follower
        self.touched = touched
        self.switch, self.done, self.recorded_refs = switch, done, recorded_refs
        self.settings = ctx.plan.phases.cutover
        self.max_lag = ctx.plan.phases.cdc.max_lag
        self._keep_before = keep_before  # the first engagement's options are the ones to restore
        self.before = before
        self.abandoned: list[dict[str, Any]] = []
        self.rate = RecheckRate()  # of every recheck so far, outside and under the fence

    def run(self, pending: list[Affected], result: SwitchbackResult) -> float:
        """The monotonic time the fence that stands was engaged."""
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(attempt, pending, result)
            except Abandoned as why:
                pending = why.pending
                self.abandoned.append({"attempt": attempt, "reason": why.reason, "freeze_ms": why.freeze_ms})
                result.abandoned = list(self.abandoned)
                self.done(
                    "abandoned",
                    f"attempt {attempt}: {why.reason}; "
                    + (
                        "the fence was lifted after " + f"{why.freeze_ms:.0f} ms"
                        if why.freeze_ms
                        else "no fence"
                    )
                    + ("" if attempt == attempts else f"; next in {self.settings.retry_pause:g} s"),
                    {"attempt": attempt, "reason": why.reason, "freeze_ms": why.freeze_ms},
                )
                if attempt == attempts:
                    reasons = "; ".join(
                        f"attempt {a['attempt']}: {a['reason']} (freeze {a['freeze_ms']:.0f} ms)"
                        for a in self.abandoned
                    )
                    raise AttemptsAbandoned(
                        f"rollback abandoned {attempt} time(s), the target stays primary: {reasons}",
                        attempts=list(self.abandoned),
                        hint="lower the write load on the target or raise phases.cutover.max_write_freeze / "
                        "retries (or phases.cdc.max_lag), then run `migrator rollback` again",
                    ) from None
                time.sleep(self.settings.retry_pause)
        raise AssertionError("unreachable")

    def _attempt(self, attempt: int, pending: list[Affected], result: SwitchbackResult) -> float:
        # Outside the fence, in rounds (as cutover's prepare): recheck what was recorded (what
        # is equal now is rechecked under the fence only if it changes again: reverse sync and
        # forward CDC record every document they touch), then let reverse sync catch up with a
        # marker written on the target now, which records what changed meanwhile; until little
        # is left and the catch-up took at most max_lag. The first catch-ups replay what piled
        # up while reverse sync did not run (the pass, a round): the last one is the lag the
        # fence would wait for, the lag gate. The rounds end once the drain (that lag) and the
        # recheck of what is left are predicted to fit the freeze, or once what is left stops
        # falling (more rounds would not make it fit).
        budget = max(30.0, 10 * self.max_lag)
        refs = pending + self.recorded_refs()
        lag = 0.0
        left: int | None = None  # what the round before left for the fence
        rounds_end = time.monotonic() + budget
        for _ in range(CONVERGE_ROUNDS):
            _, refs = self._touched_check(refs, None)
            began = time.monotonic()
            caught = self.reverse.run("caught-up", deadline=began + budget)
            self.follower.raise_if_failed()
            lag = time.monotonic() - began if caught.caught_up else budget
            refs += self.recorded_refs()
            if lag <= self.max_lag and (
                self._forecast(refs, lag).fits(LEFT_FOR_THE_FENCE) or (left is not None and len(refs) >= left)
            ):
                break
            left = len(refs)
            if time.monotonic() >= rounds_end:
                break
        if lag > self.max_lag:
            raise Abandoned(
                f"reverse sync lag {lag:.2f} s is over phases.cdc.max_lag {self.max_lag:g} s before the fence",
                refs,
            )
        began = time.monotonic()
        applied = forward_marker(self.ctx, self.follower, began + budget)
        forward = time.monotonic() - began
        refs += self.recorded_refs()
        if not applied or forward > self.max_lag:
            raise Abandoned(
                f"forward CDC lag {forward:.2f} s is over phases.cdc.max_lag {self.max_lag:g} s before the fence",
                refs,
            )
        plan = self._forecast(refs, lag)
        if not plan.fits(None):
            # The fence would be held only to be lifted past the budget: the target's writers
            # are not delayed for nothing; the next attempt converges again first.
            raise Abandoned(f"predicted freeze over budget: {plan.describe()}", refs)
        self.done(
            "lag",
            f"attempt {attempt}: reverse sync applied a fresh marker in {lag * 1000:.0f} ms, forward CDC in "
            f"{forward * 1000:.0f} ms (max_lag {self.max_lag:g} s); under the fence: {plan.describe()}",
            checkpoint=False,
        )
        if self._keep_before:
            # The collections' own validation options, recorded before the fence replaces them:
            # a crash under the fence (even before its own checkpoint) is lifted back to these.
            self.before = self.fence.own_options()
            self._keep_before = False
        self.ctx.store.add_checkpoint(
            self.ctx.run.id,
            ROLLBACK_PHASE,
            RollbackLabel.SWITCHBACK_FENCING,
            "",
            {"before": self.before, "attempt": attempt},
        )
        self.fence.engage()
        engaged_at = time.monotonic()
        deadline = engaged_at + self.settings.max_write_freeze
        kill_point("fence-engaged")
        self.done("fence", self.fence.describe(), {"before": self.before, "attempt": attempt})
        try:
            drained = self.reverse.run("caught-up", deadline=deadline)
            self.follower.raise_if_failed()
            if not drained.caught_up:
                raise Abandoned("reverse sync did not drain within max_write_freeze", refs)
            self.done("drain", f"{drained.documents} document(s) written back ({drained.rows} row change(s))")
            # No forward marker under the fence: its wait would mostly be forward CDC decoding (and
            # skipping) the drain's own writes. A late source write is rare here (the switch names
            # the target) and is carried by forward CDC, which keeps running after the flip, as at
            # cutover; one it applied by now is recorded and rechecked.
            refs += self.recorded_refs()
            self._recheck(refs, deadline, result)
            # Under the fence and after the drain, the target's sequences give out nothing more
            # (docs/architecture.md, "Sequences at rollback after cutover").
            sequences = set_source_sequences(self.ctx)
            result.sequences = sequences
            kill_point("sequences-set")
            self.done("sequences", "; ".join(sequences) if sequences else "no sequence to set")
            if time.monotonic() >= deadline:
                raise Abandoned("the recheck and the sequences ended past max_write_freeze", [])
            # Recorded before the flip: a crash from here on resumes by flipping (see run()).
            self.done("flipping", f"flipping {self.switch.describe()} back to the source")
            self.switch.flip("source")
        except Abandoned as why:
            held = lift(self.fence, self.before)
            why.freeze_ms = round((held or 0.0) * 1000, 1)
            self.done("fence-lifted", f"attempt {attempt} abandoned: {why.reason}", checkpoint=True)
            raise
        except BaseException:
            lift(self.fence, self.before)  # the target stays primary: its writers must go on
            with contextlib.suppress(MigratorError):
                self.done("fence-lifted", f"attempt {attempt} failed: the target stays primary")
            raise
        kill_point("flipped")
        self.done("flip", f"{self.switch.describe()} names the source")
        return engaged_at

    def _recheck(self, refs: list[Affected], deadline: float, result: SwitchbackResult) -> None:
        """Under the fence, after the drain: every recorded document equal at rest."""
        try:
            checked, differing = self._touched_check(refs, deadline)
        except OutOfTime:
            raise Abandoned(
                f"rechecking {len(refs)} document(s) did not fit max_write_freeze", refs
            ) from None
        result.recheck = {
            "references": checked.references,
            "documents": checked.documents,
            "differing": checked.differing,
            "ms": round(checked.seconds * 1000, 1),
        }
        if differing:
            raise CheckFailed(
                f"{checked.differing} of {checked.documents} document(s) differ between source and "
                f"target at rest ({_named(differing)})",
                hint="the target stays primary and its fence is lifted; `migrator verify --json` "
                "shows what differs",
            )
        self.done(
            "recheck",
            f"{checked.documents} document(s) changed or not equal during the pass: equal at rest "
            f"({checked.seconds * 1000:.0f} ms)",
        )

    def _touched_check(self, refs: list[Affected], deadline: float | None) -> tuple[Any, list[Affected]]:
        checked, differing = self.touched.check(refs, deadline)
        self.rate.record(checked.references, checked.documents, checked.seconds)
        return checked, differing

    def _forecast(self, refs: list[Affected], drain: float) -> Forecast:
        return forecast(self.rate, len(refs), drain, self.settings.max_write_freeze)


def _named(refs: list[Affected], most: int = 5) -> str:
    """The first documents of `refs` as an operator looks them up (`migrator verify --json` has the rest)."""
    names = [f"{r.collection} {r.id!r}" if isinstance(r, DocumentId) else r.collection for r in refs[:most]]
    return ", ".join(names) + (f" and {len(refs) - most} more" if len(refs) > most else "")


class Abandoned(Exception):
    """An attempt of the switch back that does not fit its budget (internal to Attempts)."""

    def __init__(self, reason: str, pending: list[Affected], freeze_ms: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.pending, self.freeze_ms = reason, pending, freeze_ms
