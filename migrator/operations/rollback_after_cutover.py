"""Rollback after cutover: the source becomes primary again, with nothing written on the
target since the cutover lost.

  check      no process follows the plan (the slot is free); the run is cut over; reverse
             sync was on (without it the source lacks the target's writes: refused)
  verify     a verify pass of source against target through the mapping while the target
             still takes writes (reverse sync follows meanwhile): what it does not find equal,
             and every document either direction changes from its start on, is recorded
  -- each attempt, as cutover's (phases/cutover.py), up to 1 + cutover.retries --
  lag        outside the fence, in rounds: what was recorded is rechecked, then reverse sync
             catches up with a marker written on the target now (recording what changed
             meanwhile), until few are left and the catch-up took at most `cdc.max_lag`; then
             forward CDC applies one committed on the source now, within `cdc.max_lag` too
             (else the attempt is abandoned before any fence)
  fence      target writes refused (a validator on the mapped collections, or the
             operator's command fence with MIGRATOR_DIRECTION=back)        -- the freeze starts;
             the collections' own options are recorded first ('fencing')
  drain      reverse sync applies everything written on the target before the fence (forward
             CDC's marker came before the fence: a late source write is carried after the flip)
  recheck    the recorded documents compared at rest: all equal, else the fence is lifted and
             the target stays primary (CheckFailed)
  budget     drain and recheck must end within `cutover.max_write_freeze` of the fence: else
             the fence is lifted (writes were only delayed), the attempt is recorded as
             abandoned, and the next one starts after `retry_pause` (AttemptsAbandoned at last)
  flipping   recorded just before the flip
  flip       the switch names the source                              -- the point of no return
  -- then --
  drain      reverse sync once more: a delete the validator let through, a write in flight
  unfence    the fence is lifted                                       -- the freeze ends, measured
  forget     reverse sync's checkpoint and replication origin leave the source
  hook       on_rollback
  done       the cutover phase is marked rolled back: forward CDC goes on, the migration is
             where it was before `migrator cutover` (which may run again; a second
             `migrator rollback` removes the migration entirely)

Why the recheck is enough: a document the pass found equal, that neither direction changed
since the pass began, is still equal; every other one is rechecked once nothing moves. So the
freeze lasts the drain and the recheck of what changed, not a whole verify pass (as cutover's
freeze lasts the check of what changed since its gate's pass).

Each step is recorded as a 'rollback' checkpoint of the current cutover (those after its
'switched' checkpoint). A crash before 'flipping' lifts a fence it left (back to the options
recorded with 'fencing') and starts over. A crash after 'flipping' and before the flip's own
checkpoint flips (again): the recheck had passed under a fence that outlives the process, and
starting over would lift it while the switch may already name the source (both sides writable).
After the flip, the recorded steps are not redone. MIGRATOR_TEST_KILL_AT makes the process kill
itself between an action and its checkpoint, for the kill -9 tests only (`_test_kill_point`).

Forward CDC runs on a thread meanwhile: the verify step waits for it to apply its markers,
and it carries a late write that reached the source.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.adapters.base import TargetWriteFence
from migrator.engine.context import RunContext
from migrator.engine.events import ErrorRaised, RollbackStepDone, WriteFreeze
from migrator.engine.switch import RoutingSwitch, run_command
from migrator.errors import MigratorError, TerminalError
from migrator.mapping.affected import Affected, DocumentId
from migrator.operations.follow import CdcFollower, ReverseFollower, follow_cdc, touched_documents
from migrator.operations.run import Runner
from migrator.phases.cdc import wait_until_applied
from migrator.phases.cutover import (
    MARKER_PREFIX,
    ROLLBACK_PHASE,
    AttemptsAbandoned,
    CheckFailed,
    CommandFence,
    switched,
    switching_back,
)
from migrator.phases.cutover import PHASE as CUTOVER
from migrator.phases.reverse import ReverseSync
from migrator.phases.touched import OutOfTime, TouchedDocuments
from migrator.phases.verify import Verifier, key_types_of
from migrator.state.labels import SWITCHBACK_PREFIX, CutoverLabel, RollbackLabel, switchback_step

STREAM_START_TIMEOUT_S = 60.0
KILL_AT_ENV = "MIGRATOR_TEST_KILL_AT"  # read by _test_kill_point only
# Before each fence, recheck in rounds until at most this many documents are left for the
# recheck under it (each costs a source and a target read there), as cutover does.
LEFT_FOR_THE_FENCE = 200
CONVERGE_ROUNDS = 10


@dataclass(frozen=True)
class SwitchbackStep:
    name: str
    description: str
    side: str  # what it changes: 'source', 'target', 'switch', 'state' or 'none'


@dataclass
class SwitchbackResult:
    run_id: str
    steps: list[dict[str, str]] = field(default_factory=list)
    resumed: bool = False
    freeze_ms: float | None = None
    verify: dict[str, Any] | None = None  # the pass while writes went on (may show what was moving)
    recheck: dict[str, Any] | None = None  # under the fence, at rest: what decides
    abandoned: list[dict[str, Any]] = field(default_factory=list)  # attempts over the budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "resumed": self.resumed,
            "to": "before cutover",
            "freeze_ms": self.freeze_ms,
            "verify": self.verify,
            "recheck": self.recheck,
            "abandoned": self.abandoned,
            "steps": self.steps,
        }


def steps_of(
    ctx_plan_name: str, settings: Any, collections: list[str], switch: str, max_lag: float
) -> list[SwitchbackStep]:
    fence = (
        f"run the fence's pause command ({' '.join(settings.fence.pause or [])}, MIGRATOR_DIRECTION=back)"
        if settings.fence.kind == "command"
        else f"refuse writes on {', '.join(collections)} with a validator (error 121: applications retry)"
    )
    return [
        SwitchbackStep(
            "check", "check that no process follows the plan and that the run is cut over", "none"
        ),
        SwitchbackStep(
            "verify", "verify source against target through the mapping while writes go on", "none"
        ),
        SwitchbackStep(
            "lag",
            f"reverse sync applies a fresh marker within cdc.max_lag {max_lag:g} s (else no fence is taken)",
            "source",
        ),
        SwitchbackStep("fence", fence, "target"),
        SwitchbackStep("drain", "reverse sync applies every write made on the target", "source"),
        SwitchbackStep(
            "recheck",
            "recheck at rest what changed during the pass; drain and recheck within max_write_freeze "
            f"{settings.max_write_freeze:g} s, else lift the fence and retry (up to {settings.retries} more)",
            "none",
        ),
        SwitchbackStep(
            "flipping", "record that the switch is about to flip (a crash then finishes it)", "state"
        ),
        SwitchbackStep("flip", f"flip {switch} back to the source", "switch"),
        SwitchbackStep(
            "drain-again", "reverse sync applies what reached the target until the flip", "source"
        ),
        SwitchbackStep("unfence", "lift the target fence", "target"),
        SwitchbackStep("forget", "remove reverse sync's checkpoint and replication origin", "source"),
        SwitchbackStep("hook", "run on_rollback" if settings.on_rollback else "no on_rollback hook", "none"),
        SwitchbackStep(
            "done",
            f"mark plan {ctx_plan_name}'s cutover rolled back (forward CDC goes on; rollback again removes "
            "the migration)",
            "state",
        ),
    ]


class Switchback:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def steps(self) -> list[SwitchbackStep]:
        plan = self.runner.plan
        settings = plan.phases.cutover
        switch = (
            RoutingSwitch(plan.name, settings.switch, self.runner.source, self.runner.target).describe()
            if settings.switch is not None
            else "the switch"
        )
        return steps_of(
            plan.name, settings, [c.name for c in plan.collections], switch, plan.phases.cdc.max_lag
        )

    def run(self) -> SwitchbackResult:
        runner = self.runner
        ctx, _, _ = runner.open(existing=True)
        plan, store, run = ctx.plan, ctx.store, ctx.run
        settings = plan.phases.cutover
        self._check(ctx)
        assert settings.switch is not None
        switch = RoutingSwitch(plan.name, settings.switch, ctx.source, ctx.target, run_id=run.id)
        if switch.primary() == "target" and switch.owner() not in (None, run.id):
            switch.refuse_foreign()  # another run's flip: flipping it back would route its applications
        flips = [c.id for c in store.checkpoints(run.id, CUTOVER) if c.label == CutoverLabel.SWITCHED]
        generation = max(flips)
        recorded = {
            c.label: c
            for c in store.checkpoints(run.id, ROLLBACK_PHASE)
            if c.id > generation
            and (c.label.startswith(SWITCHBACK_PREFIX) or c.label == RollbackLabel.SWITCHED_BACK)
        }
        result = SwitchbackResult(run.id, resumed=bool(recorded))

        def done(
            step: str, outcome: str, detail: dict[str, Any] | None = None, checkpoint: bool = True
        ) -> None:
            if checkpoint:
                label = RollbackLabel.SWITCHED_BACK if step == "flip" else switchback_step(step)
                assert step != "done" or label == RollbackLabel.SWITCHBACK_DONE
                store.add_checkpoint(
                    run.id, ROLLBACK_PHASE, label, "", {"outcome": outcome, **(detail or {})}
                )
            result.steps.append({"name": step, "outcome": outcome})
            ctx.events.emit(RollbackStepDone(step, outcome))

        done("check", "ok", checkpoint=False)
        store.set_phase(run.id, "rollback", "running")
        # Documents written back by reverse sync from the verify pass on: rechecked at rest.
        written_back: list[Affected] = []
        lock = threading.Lock()
        recording = threading.Event()

        def record(collection: str, document_id: Any) -> None:
            if recording.is_set():
                with lock:
                    written_back.append(DocumentId(collection, document_id))

        live_stop = threading.Event()
        live = ReverseSync.from_context(ctx, stop=live_stop, on_applied=record)
        reverse = ReverseSync.from_context(ctx, stop=threading.Event(), on_applied=record)
        touched, documents = touched_documents(ctx)
        follower = follow_cdc(ctx, runner._run_phase, touched)
        live_follower = ReverseFollower(live, live_stop)
        fence = self._fence(ctx)
        first_fence = next(
            (
                c
                for c in store.checkpoints(run.id, ROLLBACK_PHASE)
                if c.id > generation
                and c.label in (RollbackLabel.SWITCHBACK_FENCING, RollbackLabel.SWITCHBACK_FENCE)
            ),
            None,
        )
        before: dict[str, Any] = dict(first_fence.detail.get("before") or {}) if first_fence else {}
        started: float | None = None
        try:
            follower.start()
            follower.wait_streaming(ctx, STREAM_START_TIMEOUT_S)
            flipping = recorded.get(RollbackLabel.SWITCHBACK_FLIPPING)
            lifted = recorded.get(RollbackLabel.SWITCHBACK_FENCE_LIFTED)
            if RollbackLabel.SWITCHED_BACK in recorded:
                done("flip", "done before (resumed rollback)", checkpoint=False)
            elif flipping is not None and (lifted is None or lifted.id < flipping.id):
                # A crash between 'flipping' and the flip's own checkpoint: the recheck at rest had
                # passed under a fence that is still on (a validator, or the operator's pause,
                # outlives the process), so flipping (again: idempotent) finishes that attempt.
                # Starting over instead would lift the fence while the switch may already name
                # the source: both sides writable, and a delete the source took resurrected by
                # a state reverse sync read from the target.
                switch.flip("source")
                _test_kill_point("flipped")
                done("flip", f"{switch.describe()} names the source (the flip a crash interrupted)")
            else:
                if first_fence is not None:
                    # A rollback that crashed under the fence: writers go on while it starts over.
                    self._lift(fence, before)
                    done("fence-lifted", "a fence left by an interrupted rollback was lifted")
                live_follower.start()
                recording.set()
                touched.start()
                verifier = self._verifier(ctx)
                report = verifier.run().to_dict()
                follower.raise_if_failed()
                live_follower.stop()
                live_follower.raise_if_failed()
                live.close()  # its session holds the replication origin the drain writes under
                result.verify = report
                done(
                    "verify",
                    f"verdict {report['verdict']} while writes went on; {len(verifier.differing)} document(s) "
                    "not equal yet are rechecked under the fence",
                )

                def recorded_refs() -> list[Affected]:
                    with lock:
                        refs, written_back[:] = list(written_back), []
                    return refs + touched.take()

                attempts = _Attempts(
                    ctx,
                    fence,
                    reverse,
                    follower,
                    touched,
                    switch,
                    done,
                    recorded_refs,
                    first_fence is None,
                    before,
                )
                started = attempts.run([DocumentId(c, i) for c, i in verifier.differing], result)
                before = attempts.before
            if RollbackLabel.SWITCHBACK_DRAIN_AGAIN not in recorded:
                done("drain-again", self._drain(reverse, follower))
            if RollbackLabel.SWITCHBACK_UNFENCE not in recorded:
                self._lift(fence, before)
                _test_kill_point("unfenced")
                held = None if started is None else time.monotonic() - started
                result.freeze_ms = None if held is None else round(held * 1000, 1)
                done(
                    "unfence",
                    "target writes released"
                    + (
                        "" if result.freeze_ms is None else f"; target write freeze {result.freeze_ms:.0f} ms"
                    ),
                    {"freeze_ms": result.freeze_ms},
                )
                if result.freeze_ms is not None:
                    ctx.events.emit(WriteFreeze("back", result.freeze_ms))
            if RollbackLabel.SWITCHBACK_FORGET not in recorded:
                existed = reverse.writer.forget()
                _test_kill_point("forgotten")
                done("forget", "removed" if existed else "none was stored")
            if RollbackLabel.SWITCHBACK_HOOK not in recorded:
                if settings.on_rollback:
                    run_command(
                        settings.on_rollback, plan.name, "on_rollback", {"MIGRATOR_DIRECTION": "back"}
                    )
                done("hook", "on_rollback ran" if settings.on_rollback else "none configured")
            store.set_phase(run.id, CUTOVER, "rolled_back")
            store.set_phase(run.id, "rollback", "done")
            done("done", "the source is primary; the migration follows it again (before cutover)")
            return result
        except BaseException as exc:
            # `migrator status` shows why, and never a rollback 'running' once the process is
            # gone; reporting must not hide the error itself.
            with contextlib.suppress(MigratorError):
                ctx.events.emit(ErrorRaised.of(ROLLBACK_PHASE, exc, retrying=False))
                store.set_phase(run.id, ROLLBACK_PHASE, "failed")
            raise
        finally:
            live_follower.stop()
            live.close()
            reverse.close()
            follower.stop()
            documents.close()

    # -- steps -----------------------------------------------------------------------------------

    def _check(self, ctx: RunContext) -> None:
        plan = ctx.plan
        if not switched(ctx.store, ctx.run.id) and not switching_back(ctx.store, ctx.run.id):
            raise TerminalError(f"run {ctx.run.id} of plan {plan.name} has not cut over")
        if not plan.phases.cutover.reverse_sync:
            raise TerminalError(
                f"plan {plan.name} cut over without reverse sync (phases.cutover.reverse_sync: false): the "
                "source lacks what was written on the target since, so switching back would lose it",
                hint="bring the source up to date from the target by other means first",
            )
        if plan.phases.cutover.switch is None:
            raise TerminalError(f"plan {plan.name} has no phases.cutover.switch to flip back")
        monitor = ctx.source.monitor()
        try:
            state = monitor.state(ctx.run.slot)
        finally:
            monitor.close()
        if state is not None and state["active"]:
            raise TerminalError(
                f"a process of plan {plan.name} is following changes (slot {ctx.run.slot} is in use)",
                hint="stop `migrator run` or `migrator cutover` (SIGTERM: they checkpoint and exit), then roll "
                "back: rollback follows both directions itself",
            )

    def _fence(self, ctx: RunContext) -> TargetWriteFence:
        f = ctx.plan.phases.cutover.fence
        if f.kind == "command":
            return BackCommandFence(f.pause or [], f.resume or [], ctx.plan.name)
        return ctx.target.write_fence([c.name for c in ctx.collections], ctx.plan.name)

    @staticmethod
    def _lift(fence: TargetWriteFence, before: dict[str, Any]) -> float | None:
        """Lift the fence; how long this process held it (None: engaged by an earlier one)."""
        return fence.lift(before)

    @staticmethod
    def _drain(reverse: ReverseSync, follower: CdcFollower) -> str:
        result = reverse.run("caught-up")
        follower.raise_if_failed()
        if not result.caught_up:
            raise TerminalError("reverse sync stopped before it caught up")
        return f"{result.documents} document(s) written back ({result.rows} row change(s))"

    @staticmethod
    def _verifier(ctx: RunContext) -> Verifier:
        key_types = key_types_of(ctx.collections, ctx.source_info)
        return Verifier(ctx.plan, ctx.collections, ctx.source, ctx.target, key_types, ctx.events)


def _test_kill_point(point: str) -> None:
    """A crash exactly here, between an action and its checkpoint, for the kill -9 tests
    (tests/integration/test_rollback_kill.py): the process kills itself when MIGRATOR_TEST_KILL_AT
    names `point`. Nothing else reads that variable."""
    if os.environ.get(KILL_AT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _forward_marker(ctx: RunContext, follower: CdcFollower, deadline: float) -> bool:
    """Whether forward CDC applied a marker committed now by the monotonic `deadline` (its
    observer then holds every document a late source write touched)."""
    monitor = ctx.source.monitor()
    try:
        marker = ctx.source.positions.parse(monitor.heartbeat(MARKER_PREFIX, f"{ctx.run.id}:rollback"))
    finally:
        monitor.close()
    return wait_until_applied(ctx.target, ctx.plan.name, marker, deadline, check=follower.raise_if_failed)


class _Attempts:
    """Fence, drain, recheck and flip back within the freeze budget, as cutover does
    (phases/cutover.py): before each fence, reverse sync must apply a marker written on the
    target within `cdc.max_lag` (what it lags behind then is what the freeze would wait for),
    and what was recorded is rechecked once outside the fence, so that little is left for it;
    under the fence, the drain, forward CDC's marker and the recheck must finish within
    `cutover.max_write_freeze` of the fence, else the fence is lifted (the target stays primary,
    its writes were only delayed) and, after `retry_pause`, the next attempt starts, up to
    `retries` more. Returns when the switch names the source, with the fence still on."""

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

    def run(self, pending: list[Affected], result: SwitchbackResult) -> float:
        """The monotonic time the fence that stands was engaged."""
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._attempt(attempt, pending, result)
            except _Abandoned as why:
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
        # fence would wait for, the lag gate.
        budget = max(30.0, 10 * self.max_lag)
        refs = pending + self.recorded_refs()
        lag = 0.0
        rounds_end = time.monotonic() + budget
        for _ in range(CONVERGE_ROUNDS):
            _, refs = self._touched_check(refs, None)
            began = time.monotonic()
            caught = self.reverse.run("caught-up", deadline=began + budget)
            self.follower.raise_if_failed()
            lag = time.monotonic() - began if caught.caught_up else budget
            new = self.recorded_refs()
            refs += new
            if (lag <= self.max_lag and len(new) <= LEFT_FOR_THE_FENCE) or time.monotonic() >= rounds_end:
                break
        if lag > self.max_lag:
            raise _Abandoned(
                f"reverse sync lag {lag:.2f} s is over phases.cdc.max_lag {self.max_lag:g} s before the fence",
                refs,
            )
        began = time.monotonic()
        applied = _forward_marker(self.ctx, self.follower, began + budget)
        forward = time.monotonic() - began
        refs += self.recorded_refs()
        if not applied or forward > self.max_lag:
            raise _Abandoned(
                f"forward CDC lag {forward:.2f} s is over phases.cdc.max_lag {self.max_lag:g} s before the fence",
                refs,
            )
        self.done(
            "lag",
            f"attempt {attempt}: reverse sync applied a fresh marker in {lag * 1000:.0f} ms, forward CDC in "
            f"{forward * 1000:.0f} ms (max_lag {self.max_lag:g} s); {len(refs)} document(s) for the recheck "
            "under the fence",
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
        _test_kill_point("fence-engaged")
        self.done("fence", self.fence.describe(), {"before": self.before, "attempt": attempt})
        try:
            drained = self.reverse.run("caught-up", deadline=deadline)
            self.follower.raise_if_failed()
            if not drained.caught_up:
                raise _Abandoned("reverse sync did not drain within max_write_freeze", refs)
            self.done("drain", f"{drained.documents} document(s) written back ({drained.rows} row change(s))")
            # No forward marker under the fence: its wait would mostly be forward CDC decoding (and
            # skipping) the drain's own writes. A late source write is rare here (the switch names
            # the target) and is carried by forward CDC, which keeps running after the flip, as at
            # cutover; one it applied by now is recorded and rechecked.
            refs += self.recorded_refs()
            try:
                checked, differing = self._touched_check(refs, deadline)
            except OutOfTime:
                raise _Abandoned(
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
                    "target at rest",
                    hint="the target stays primary and its fence is lifted; `migrator verify --json` "
                    "shows what differs",
                )
            self.done(
                "recheck",
                f"{checked.documents} document(s) changed or not equal during the pass: equal at rest "
                f"({checked.seconds * 1000:.0f} ms)",
            )
            if time.monotonic() >= deadline:
                raise _Abandoned("the recheck ended past max_write_freeze", [])
            # Recorded before the flip: a crash from here on resumes by flipping (see run()).
            self.done("flipping", f"flipping {self.switch.describe()} back to the source")
            self.switch.flip("source")
        except _Abandoned as why:
            held = Switchback._lift(self.fence, self.before)
            why.freeze_ms = round((held or 0.0) * 1000, 1)
            self.done("fence-lifted", f"attempt {attempt} abandoned: {why.reason}", checkpoint=True)
            raise
        except BaseException:
            Switchback._lift(self.fence, self.before)  # the target stays primary: its writers must go on
            with contextlib.suppress(MigratorError):
                self.done("fence-lifted", f"attempt {attempt} failed: the target stays primary")
            raise
        _test_kill_point("flipped")
        self.done("flip", f"{self.switch.describe()} names the source")
        return engaged_at

    def _touched_check(self, refs: list[Affected], deadline: float | None) -> tuple[Any, list[Affected]]:
        return self.touched.check(refs, deadline)


class BackCommandFence(CommandFence):
    """The operator's fence command, pausing the target's writers (MIGRATOR_DIRECTION=back), as
    a TargetWriteFence: it records no options, and lifting it always runs the resume command
    (a resumed rollback resumes writers that an earlier process paused)."""

    def __init__(self, pause: list[str], resume: list[str], plan: str) -> None:
        super().__init__(pause, resume, plan, direction="back")

    def lift(self, before: Mapping[str, Mapping[str, Any]] | None = None) -> float | None:
        self.engaged_at = self.engaged_at or time.monotonic()
        return super().lift()

    def own_options(self) -> dict[str, Any]:
        return {}  # nothing to restore for a command fence


class _Abandoned(Exception):
    """An attempt of the switch back that does not fit its budget (internal to _Attempts)."""

    def __init__(self, reason: str, pending: list[Affected], freeze_ms: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.pending, self.freeze_ms = reason, pending, freeze_ms
