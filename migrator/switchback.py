"""Rollback after cutover: the source becomes primary again, with nothing written on the
target since the cutover lost.

  check      no process follows the plan (the slot is free); the run is cut over; reverse
             sync was on (without it the source lacks the target's writes: refused)
  verify     a verify pass of source against target through the mapping while the target
             still takes writes (reverse sync follows meanwhile): what it does not find equal,
             and every document either direction changes from its start on, is recorded
  fence      target writes refused (a validator on the mapped collections, or the
             operator's command fence with MIGRATOR_DIRECTION=back)        -- the freeze starts
  drain      reverse sync applies everything written on the target before the fence; forward
             CDC applies a marker (a late write that reached the source)
  recheck    the recorded documents compared at rest: all equal, else the fence is lifted and
             the target stays primary
  flip       the switch names the source                              -- the point of no return
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
'switched' checkpoint). A crash before the flip lifts a fence it left (back to the
collections' own validators, saved with the first 'fence' checkpoint) and starts over; after
the flip, the recorded steps are not redone.

Forward CDC runs on a thread meanwhile: the verify step waits for it to apply its markers,
and it carries a late write that reached the source.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from migrator.adapters.mongodb.fence import ValidatorFence
from migrator.adapters.postgres.pgoutput import lsn_to_int
from migrator.adapters.postgres.replication import SlotMonitor
from migrator.background import CdcFollower, ReverseFollower, follow_cdc, touched_documents
from migrator.engine.context import RunContext
from migrator.engine.events import RollbackStepDone, WriteFreeze
from migrator.engine.switch import RoutingSwitch, run_command
from migrator.errors import TerminalError
from migrator.mapping.affected import Affected, DocumentId
from migrator.phases.cdc import wait_until_applied
from migrator.phases.cutover import (
    MARKER_PREFIX,
    ROLLBACK_PHASE,
    SWITCHBACK_DONE,
    SWITCHED,
    SWITCHED_BACK,
    CheckFailed,
    CommandFence,
    switched,
    switching_back,
)
from migrator.phases.cutover import PHASE as CUTOVER
from migrator.phases.reverse import ReverseSync
from migrator.phases.verify import Verifier, key_types_of
from migrator.runner import Runner

STREAM_START_TIMEOUT_S = 60.0
MARKER_TIMEOUT_S = 60.0
LABEL = "cutover:"  # prefix of this rollback's checkpoint labels (beside the pre-cutover ones)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "resumed": self.resumed,
            "to": "before cutover",
            "freeze_ms": self.freeze_ms,
            "verify": self.verify,
            "recheck": self.recheck,
            "steps": self.steps,
        }


def steps_of(ctx_plan_name: str, settings: Any, collections: list[str], switch: str) -> list[SwitchbackStep]:
    fence = (
        f"run the fence's pause command ({' '.join(settings.fence.pause or [])}, MIGRATOR_DIRECTION=back)"
        if settings.fence.kind == "command"
        else f"refuse writes on {', '.join(collections)} with a validator (error 121: applications retry)"
    )
    return [
        SwitchbackStep(
            "check", "check that no process follows the plan and that the run is cut over", "none"
        ),
        SwitchbackStep("fence", fence, "target"),
        SwitchbackStep("drain", "reverse sync applies every write made on the target", "source"),
        SwitchbackStep("verify", "verify source against target through the mapping", "none"),
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
            RoutingSwitch(
                plan.name, settings.switch, self.runner.source.endpoint, self.runner.target
            ).describe()
            if settings.switch is not None
            else "the switch"
        )
        return steps_of(plan.name, settings, [c.name for c in plan.collections], switch)

    def run(self) -> SwitchbackResult:
        runner = self.runner
        ctx, _, _ = runner.open(existing=True)
        plan, store, run = ctx.plan, ctx.store, ctx.run
        settings = plan.phases.cutover
        self._check(ctx)
        assert settings.switch is not None
        switch = RoutingSwitch(plan.name, settings.switch, ctx.source.endpoint, ctx.target)
        flips = [c.id for c in store.checkpoints(run.id, CUTOVER) if c.label == SWITCHED]
        generation = max(flips)
        recorded = {
            c.label.removeprefix(LABEL): c
            for c in store.checkpoints(run.id, ROLLBACK_PHASE)
            if c.id > generation and (c.label.startswith(LABEL) or c.label == SWITCHED_BACK)
        }
        result = SwitchbackResult(run.id, resumed=bool(recorded))

        def done(
            step: str, outcome: str, detail: dict[str, Any] | None = None, checkpoint: bool = True
        ) -> None:
            if checkpoint:
                label = SWITCHED_BACK if step == "flip" else LABEL + step
                assert step != "done" or label == SWITCHBACK_DONE
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
        first_fence = recorded.get("fence")
        before: dict[str, Any] = dict(first_fence.detail.get("before") or {}) if first_fence else {}
        started: float | None = None
        try:
            follower.start()
            follower.wait_streaming(ctx, STREAM_START_TIMEOUT_S)
            if SWITCHED_BACK not in recorded and "flip" not in recorded:
                if first_fence is not None:
                    # A rollback that crashed under the fence: writers go on while it starts over.
                    self._lift(fence, before)
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
                engaged = fence.engage()
                if isinstance(engaged, dict) and first_fence is None:
                    before = engaged
                started = time.monotonic()
                done("fence", fence.describe(), {"before": before})
                try:
                    done("drain", self._drain(reverse, follower))
                    self._forward_marker(ctx, follower)
                    with lock:
                        refs = [DocumentId(c, i) for c, i in verifier.differing] + written_back
                    refs += touched.take()
                    checked, differing = touched.check(refs)
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
                    done(
                        "recheck",
                        f"{checked.documents} document(s) changed or not equal during the pass: equal at rest "
                        f"({checked.seconds * 1000:.0f} ms)",
                    )
                    switch.flip("source")
                except BaseException:
                    self._lift(fence, before)  # the target stays primary: its writers must go on
                    raise
                done("flip", f"{switch.describe()} names the source")
            else:
                done("flip", "done before (resumed rollback)", checkpoint=False)
            if "drain-again" not in recorded:
                done("drain-again", self._drain(reverse, follower))
            if "unfence" not in recorded:
                self._lift(fence, before)
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
            if "forget" not in recorded:
                existed = reverse.writer.forget()
                done("forget", "removed" if existed else "none was stored")
            if "hook" not in recorded:
                if settings.on_rollback:
                    run_command(
                        settings.on_rollback, plan.name, "on_rollback", {"MIGRATOR_DIRECTION": "back"}
                    )
                done("hook", "on_rollback ran" if settings.on_rollback else "none configured")
            store.set_phase(run.id, CUTOVER, "rolled_back")
            store.set_phase(run.id, "rollback", "done")
            done("done", "the source is primary; the migration follows it again (before cutover)")
            return result
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
        monitor = SlotMonitor(ctx.source.endpoint)
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

    def _fence(self, ctx: RunContext) -> ValidatorFence | CommandFence:
        f = ctx.plan.phases.cutover.fence
        if f.kind == "command":
            return CommandFence(f.pause or [], f.resume or [], ctx.plan.name, direction="back")
        return ValidatorFence(ctx.target, [c.name for c in ctx.collections], ctx.plan.name)

    @staticmethod
    def _lift(fence: ValidatorFence | CommandFence, before: dict[str, Any]) -> None:
        if isinstance(fence, ValidatorFence):
            fence.lift(before)
        else:
            fence.engaged_at = fence.engaged_at or time.monotonic()  # a resumed rollback resumes writers
            fence.lift()

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

    @staticmethod
    def _forward_marker(ctx: RunContext, follower: CdcFollower) -> None:
        """Wait until forward CDC has applied a marker committed now (its observer then holds
        every document a late source write touched)."""
        monitor = SlotMonitor(ctx.source.endpoint)
        try:
            marker = lsn_to_int(monitor.heartbeat(MARKER_PREFIX, f"{ctx.run.id}:rollback"))
        finally:
            monitor.close()
        deadline = time.monotonic() + MARKER_TIMEOUT_S
        if not wait_until_applied(
            ctx.target, ctx.plan.name, marker, deadline, check=follower.raise_if_failed
        ):
            raise TerminalError(f"forward CDC did not apply a marker within {MARKER_TIMEOUT_S:.0f} s")
