"""The switch back itself (see the package's doc for its steps): the checks, the verify pass
while writes go on, the attempts (attempts.py) up to the flip, then the steps after it; each
step recorded as a 'rollback' checkpoint of the current cutover, so that a crash resumes where
it stopped."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from migrator.engine.context import RunContext
from migrator.engine.events import ErrorRaised, RollbackStepDone, WriteFreeze
from migrator.engine.executor import Executor
from migrator.engine.switch import RoutingSwitch, run_command
from migrator.errors import MigratorError, TerminalError
from migrator.mapping.affected import Affected, DocumentId
from migrator.operations.follow import ReverseFollower, follow_cdc, touched_documents
from migrator.operations.rollback_after_cutover.attempts import Attempts
from migrator.operations.rollback_after_cutover.crash import kill_point
from migrator.operations.rollback_after_cutover.drain import drain
from migrator.operations.rollback_after_cutover.fence import lift, target_fence
from migrator.operations.rollback_after_cutover.steps import SwitchbackResult, SwitchbackStep, steps_of
from migrator.operations.run import Runner
from migrator.phases.cutover import PHASE as CUTOVER
from migrator.phases.cutover import ROLLBACK_PHASE, switched, switching_back
from migrator.phases.reverse import ReverseSync
from migrator.phases.verify import Verifier, key_types_of
from migrator.state.labels import SWITCHBACK_PREFIX, CutoverLabel, RollbackLabel, switchback_step
from migrator.state.store import CheckpointRecord

STREAM_START_TIMEOUT_S = 60.0


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
            plan.name,
            settings,
            [c.name for c in plan.collections],
            switch,
            plan.phases.cdc.max_lag,
            self.runner.source.vocabulary.reverse_state,
        )

    def run(self) -> SwitchbackResult:
        runner = self.runner
        ctx, _, _ = runner.open(existing=True)
        _check(ctx)
        return _SwitchingBack(runner, ctx).run()


class _SwitchingBack:
    """One switch back: what it recorded before (a resumed rollback), the syncs that follow both
    directions meanwhile, and the steps in order."""

    def __init__(self, runner: Runner, ctx: RunContext) -> None:
        plan, store, run = ctx.plan, ctx.store, ctx.run
        self.runner, self.ctx = runner, ctx
        self.settings = settings = plan.phases.cutover
        assert settings.switch is not None
        self.switch = switch = RoutingSwitch(
            plan.name, settings.switch, ctx.source, ctx.target, run_id=run.id
        )
        if switch.primary() == "target" and switch.owner() not in (None, run.id):
            switch.refuse_foreign()  # another run's flip: flipping it back would route its applications
        flips = [c.id for c in store.checkpoints(run.id, CUTOVER) if c.label == CutoverLabel.SWITCHED]
        self.generation = max(flips)
        self.recorded = {
            c.label: c
            for c in store.checkpoints(run.id, ROLLBACK_PHASE)
            if c.id > self.generation
            and (c.label.startswith(SWITCHBACK_PREFIX) or c.label == RollbackLabel.SWITCHED_BACK)
        }
        self.result = SwitchbackResult(run.id, resumed=bool(self.recorded))
        # Documents written back by reverse sync from the verify pass on: rechecked at rest.
        self.written_back: list[Affected] = []
        self.lock = threading.Lock()
        self.recording = threading.Event()
        self.first_fence = self._first_fence()
        self.before: dict[str, Any] = (
            dict(self.first_fence.detail.get("before") or {}) if self.first_fence else {}
        )
        self.started: float | None = None
        self.verifier: Verifier | None = None
        self.executor = Executor.live()

    def _first_fence(self) -> CheckpointRecord | None:
        ctx = self.ctx
        return next(
            (
                c
                for c in ctx.store.checkpoints(ctx.run.id, ROLLBACK_PHASE)
                if c.id > self.generation
                and c.label in (RollbackLabel.SWITCHBACK_FENCING, RollbackLabel.SWITCHBACK_FENCE)
            ),
            None,
        )

    def done(
        self, step: str, outcome: str, detail: dict[str, Any] | None = None, checkpoint: bool = True
    ) -> None:
        if checkpoint:
            label = RollbackLabel.SWITCHED_BACK if step == "flip" else switchback_step(step)
            assert step != "done" or label == RollbackLabel.SWITCHBACK_DONE
            self.ctx.store.add_checkpoint(
                self.ctx.run.id, ROLLBACK_PHASE, label, "", {"outcome": outcome, **(detail or {})}
            )
        self.result.steps.append({"name": step, "outcome": outcome})
        self.ctx.events.emit(RollbackStepDone(step, outcome))

    def record(self, collection: str, document_id: Any) -> None:
        if self.recording.is_set():
            with self.lock:
                self.written_back.append(DocumentId(collection, document_id))

    def recorded_refs(self) -> list[Affected]:
        with self.lock:
            refs, self.written_back[:] = list(self.written_back), []
        return refs + self.touched.take()

    def steps(self) -> list[SwitchbackStep]:
        """The steps `Switchback.steps` lists, with their effects (docs/architecture.md,
        "Executable actions"). The attempts (attempts.py) take the fence, drain, recheck and flip
        inside the 'lag' step's effect; 'flip' itself finishes a flip a crash interrupted."""
        plan, settings = self.ctx.plan, self.settings
        effects: dict[str, Callable[[], Any]] = {
            "check": lambda: self.done("check", "ok", checkpoint=False),
            "verify": self._verify,
            "lag": self._attempts,
            "flip": self._resumed_flip,
            "drain-again": self._drain_again,
            "unfence": self._unfence,
            "forget": self._forget,
            "hook": self._hook,
            "done": self._done,
        }
        return steps_of(
            plan.name,
            settings,
            [c.name for c in plan.collections],
            self.switch.describe(),
            plan.phases.cdc.max_lag,
            self.ctx.source.vocabulary.reverse_state,
            effects,
        )

    def run(self) -> SwitchbackResult:
        ctx, store, run = self.ctx, self.ctx.store, self.ctx.run
        check, *rest = [s.executable() for s in self.steps()]
        self.executor.perform_steps([check])
        store.set_phase(run.id, "rollback", "running")
        self.live_stop = threading.Event()
        self.live = ReverseSync.from_context(ctx, stop=self.live_stop, on_applied=self.record)
        self.reverse = ReverseSync.from_context(ctx, stop=threading.Event(), on_applied=self.record)
        self.touched, documents = touched_documents(ctx)
        self.follower = follow_cdc(ctx, self.runner._run_phase, self.touched)
        self.live_follower = ReverseFollower(self.live, self.live_stop)
        self.fence = target_fence(ctx)
        try:
            self.follower.start()
            self.follower.wait_streaming(ctx, STREAM_START_TIMEOUT_S)
            self.executor.perform_steps(rest)
            return self.result
        except BaseException as exc:
            # `migrator status` shows why, and never a rollback 'running' once the process is
            # gone; reporting must not hide the error itself.
            with contextlib.suppress(MigratorError):
                ctx.events.emit(ErrorRaised.of(ROLLBACK_PHASE, exc, retrying=False))
                store.set_phase(run.id, ROLLBACK_PHASE, "failed")
            raise
        finally:
            self.live_follower.stop()
            self.live.close()
            self.reverse.close()
            self.follower.stop()
            documents.close()

    # -- the steps' effects, in order -------------------------------------------------------------

    def _flip_state(self) -> str | None:
        """'done' when a rollback before this one flipped back, 'interrupted' when a crash came
        between 'flipping' and the flip's checkpoint, None when the flip is still to come."""
        recorded = self.recorded
        flipping = recorded.get(RollbackLabel.SWITCHBACK_FLIPPING)
        lifted = recorded.get(RollbackLabel.SWITCHBACK_FENCE_LIFTED)
        if RollbackLabel.SWITCHED_BACK in recorded:
            return "done"
        if flipping is not None and (lifted is None or lifted.id < flipping.id):
            return "interrupted"
        return None

    def _resumed_flip(self) -> None:
        state = self._flip_state()
        if state == "done":
            self.done("flip", "done before (resumed rollback)", checkpoint=False)
        elif state == "interrupted":
            # A crash between 'flipping' and the flip's own checkpoint: the recheck at rest had
            # passed under a fence that is still on (a validator, or the operator's pause,
            # outlives the process), so flipping (again: idempotent) finishes that attempt.
            # Starting over instead would lift the fence while the switch may already name
            # the source: both sides writable, and a delete the source took resurrected by
            # a state reverse sync read from the target.
            self.switch.flip("source")
            kill_point("flipped")
            self.done("flip", f"{self.switch.describe()} names the source (the flip a crash interrupted)")
        # else: the attempts ('lag') flipped

    def _verify(self) -> None:
        if self._flip_state() is not None:
            return  # flipped before: nothing to verify
        if self.first_fence is not None:
            # A rollback that crashed under the fence: writers go on while it starts over.
            lift(self.fence, self.before)
            self.done("fence-lifted", "a fence left by an interrupted rollback was lifted")
        self.live_follower.start()
        self.recording.set()
        self.touched.start()
        verifier = self.verifier = _verifier(self.ctx)
        report = verifier.run().to_dict()
        self.follower.raise_if_failed()
        self.live_follower.stop()
        self.live_follower.raise_if_failed()
        self.live.close()  # its session holds the replication origin the drain writes under
        self.result.verify = report
        self.done(
            "verify",
            f"verdict {report['verdict']} while writes went on; {len(verifier.differing)} document(s) "
            "not equal yet are rechecked under the fence",
        )

    def _attempts(self) -> None:
        if self._flip_state() is not None:
            return
        assert self.verifier is not None, "the verify step ran"
        attempts = Attempts(
            self.ctx,
            self.fence,
            self.reverse,
            self.follower,
            self.touched,
            self.switch,
            self.done,
            self.recorded_refs,
            self.first_fence is None,
            self.before,
        )
        self.started = attempts.run([DocumentId(c, i) for c, i in self.verifier.differing], self.result)
        self.before = attempts.before

    def _drain_again(self) -> None:
        if RollbackLabel.SWITCHBACK_DRAIN_AGAIN not in self.recorded:
            self.done("drain-again", drain(self.reverse, self.follower))

    def _unfence(self) -> None:
        result = self.result
        if RollbackLabel.SWITCHBACK_UNFENCE not in self.recorded:
            lift(self.fence, self.before)
            kill_point("unfenced")
            held = None if self.started is None else time.monotonic() - self.started
            result.freeze_ms = None if held is None else round(held * 1000, 1)
            self.done(
                "unfence",
                "target writes released"
                + ("" if result.freeze_ms is None else f"; target write freeze {result.freeze_ms:.0f} ms"),
                {"freeze_ms": result.freeze_ms},
            )
            if result.freeze_ms is not None:
                self.ctx.events.emit(WriteFreeze("back", result.freeze_ms))

    def _forget(self) -> None:
        if RollbackLabel.SWITCHBACK_FORGET not in self.recorded:
            existed = self.reverse.writer.forget()
            kill_point("forgotten")
            self.done("forget", "removed" if existed else "none was stored")

    def _hook(self) -> None:
        settings, plan = self.settings, self.ctx.plan
        if RollbackLabel.SWITCHBACK_HOOK not in self.recorded:
            if settings.on_rollback:
                run_command(settings.on_rollback, plan.name, "on_rollback", {"MIGRATOR_DIRECTION": "back"})
            self.done("hook", "on_rollback ran" if settings.on_rollback else "none configured")

    def _done(self) -> None:
        store, run = self.ctx.store, self.ctx.run
        store.set_phase(run.id, CUTOVER, "rolled_back")
        store.set_phase(run.id, "rollback", "done")
        self.done("done", "the source is primary; the migration follows it again (before cutover)")


def _check(ctx: RunContext) -> None:
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
            f"a process of plan {plan.name} is following changes "
            f"({ctx.source.vocabulary.named_stream(ctx.run.slot)} is in use)",
            hint="stop `migrator run` or `migrator cutover` (SIGTERM: they checkpoint and exit), then roll "
            "back: rollback follows both directions itself",
        )


def _verifier(ctx: RunContext) -> Verifier:
    key_types = key_types_of(ctx.collections, ctx.source_info)
    return Verifier(ctx.plan, ctx.collections, ctx.source, ctx.target, key_types, ctx.events)
