"""`migrator cutover`: the cutover protocol, with CDC following in the same process.

The process that cuts over must see its own marker come back through the stream, so it runs
CDC itself (on a thread, with an observer recording the documents each change touches) and
refuses to start while a `migrator run` holds the slot. After the flip, forward CDC keeps
running (it carries writes the fence held to the target) and reverse sync carries the
target's changes back; with `follow`, both run until stopped, otherwise forward CDC drains
once more and the call returns (tests, scripts).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from migrator.engine.events import CutoverStep, ErrorRaised, Notice
from migrator.engine.threads import BackgroundThread
from migrator.errors import MigratorError, TerminalError, UsageError
from migrator.operations.follow import CdcFollower, ReverseFollower, follow_cdc, touched_documents
from migrator.operations.run import Runner
from migrator.phases.cdc import wait_until_applied
from migrator.phases.cutover import (
    MARKER_PREFIX,
    PHASE,
    Abandoned,
    CutoverPhase,
    CutoverReport,
    CutoverStopped,
    FinalCheck,
    switched,
)
from migrator.phases.reverse import ReverseSync
from migrator.phases.touched import OutOfTime, RoundResult
from migrator.phases.verify import Verifier, key_types_of
from migrator.state.labels import CutoverLabel

STREAM_START_TIMEOUT_S = 60.0
# Before each fence, check what changed in rounds until at most this many references are left
# for the check under the fence (each costs a source and a target read there).
LEFT_FOR_THE_FENCE = 500
CONVERGE_ROUNDS = 10


@dataclass
class SwitchoverOutcome:
    run_id: str
    report: CutoverReport

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.report.to_dict()}


class Switchover:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def run(self, *, follow: bool) -> SwitchoverOutcome:
        runner = self.runner
        if runner.plan.phases.cutover.switch is None:
            # Refused before anything starts (CDC, the state store's run): the plan must change,
            # exit 2 as for an invalid plan (docs/json.md).
            raise UsageError(
                f"plan {runner.plan.name} has no phases.cutover.switch: applications could not learn "
                "that the target is primary",
                hint="add phases.cutover.switch to the plan (kind file, command, postgres or mongodb; "
                "e.g. `phases: {cutover: {switch: {kind: file, path: ./routing}}}`), see docs/cutover.md",
            )
        ctx, _, _ = runner.open(existing=True)
        plan = ctx.plan
        monitor = ctx.source.monitor()
        try:
            state = monitor.state(ctx.run.slot)
        finally:
            monitor.close()
        stream = ctx.source.vocabulary.named_stream(ctx.run.slot)
        if state is None:
            raise TerminalError(f"{stream} does not exist: nothing to cut over")
        if state["active"]:
            raise TerminalError(
                f"a `migrator run` of plan {plan.name} is following changes ({stream} is in use)",
                hint="stop it (SIGTERM: it checkpoints and exits), then run `migrator cutover`: it follows "
                "changes itself during and after the cutover",
            )
        settings = plan.phases.cutover
        reverse_stop = threading.Event()
        reverse = ReverseSync.from_context(ctx, stop=reverse_stop) if settings.reverse_sync else None
        reverse_follower: ReverseFollower | None = None

        touched, documents = touched_documents(ctx)
        follower = follow_cdc(ctx, runner._run_phase, touched)
        protocol_stop = threading.Event()
        watcher = BackgroundThread(
            "migrator-cutover-watch", lambda: _watch(follower, runner.stop_event, protocol_stop)
        )
        follower.start()
        watcher.start()
        monitor = ctx.source.monitor()
        try:
            follower.wait_streaming(ctx, STREAM_START_TIMEOUT_S)
            key_types = key_types_of(ctx.collections, ctx.source_info)

            def gate_verify() -> dict[str, Any]:
                touched.start()  # from here on, changed documents are rechecked before the flip
                verifier = Verifier(
                    plan,
                    ctx.collections,
                    ctx.source,
                    ctx.target,
                    key_types,
                    ctx.events,
                    stop=protocol_stop,
                    cdc_alive=follower.raise_if_failed,
                )
                return verifier.run().to_dict()

            def wait_applied() -> None:
                marker = ctx.source.positions.parse(monitor.heartbeat(MARKER_PREFIX, f"{ctx.run.id}:round"))
                budget = max(30.0, 10 * plan.phases.cdc.max_lag)
                deadline = time.monotonic() + budget
                if not wait_until_applied(ctx.target, plan.name, marker, deadline, stop=protocol_stop):
                    if protocol_stop.is_set():
                        raise Abandoned("stopped by a signal")  # the protocol says 'stopped'
                    raise TerminalError(
                        f"CDC did not apply a marker within {budget:.0f} s while preparing the cutover"
                    )

            def on_round(result: RoundResult) -> None:
                ctx.events.emit(
                    CutoverStep(
                        "converge",
                        f"rechecked {result.documents} changed document(s) in {result.seconds * 1000:.0f} ms; "
                        f"{result.differing} carried to the next round",
                    )
                )

            def prepare() -> None:
                touched.converge(
                    wait_applied, small=LEFT_FOR_THE_FENCE, rounds=CONVERGE_ROUNDS, on_round=on_round
                )

            def final_check(deadline: float) -> FinalCheck:
                refs = touched.take()
                try:
                    result, differing = touched.check(refs, deadline)
                except OutOfTime:
                    touched.give_back(refs)
                    raise Abandoned(
                        f"checking {len(refs)} changed document(s) did not fit the freeze"
                    ) from None
                touched.give_back(differing)
                return FinalCheck(result.documents, result.differing, {"references": result.references})

            def reverse_ready() -> None:
                # Reverse sync starts from the target's position now, before the switch can flip:
                # every write made on the target after the flip is then carried back. (A position
                # left by an earlier cutover that was rolled back, or abandoned, is not reused.)
                if reverse is not None:
                    reverse.writer.forget()
                    reverse.prepare()

            def start_reverse() -> None:
                nonlocal reverse_follower
                if reverse is not None and reverse_follower is None:
                    reverse_follower = ReverseFollower(reverse, reverse_stop)
                    reverse_follower.start()

            phase = CutoverPhase(
                ctx,
                gate_verify=gate_verify,
                prepare=prepare,
                final_check=final_check,
                start_reverse=start_reverse,
                reverse_ready=reverse_ready,
                stop=protocol_stop,
            )
            runner.store.set_phase(ctx.run.id, "cutover", "running")
            try:
                try:
                    report = phase.run()
                except MigratorError:
                    follower.raise_if_failed()  # CDC's own error explains a gate that timed out
                    raise
            except BaseException as exc:
                _record_end(runner, ctx.run.id, exc)
                raise
            runner.store.set_phase(ctx.run.id, "cutover", "done")
            if follow:
                while not runner.stop_event.wait(0.5):
                    follower.raise_if_failed()
                    if reverse_follower is not None:
                        reverse_follower.raise_if_failed()
            else:
                wait_applied()  # a write that reached the source after the flip, carried over
            if reverse_follower is not None:
                reverse_follower.finish()
            return SwitchoverOutcome(ctx.run.id, report)
        finally:
            protocol_stop.set()
            reverse_stop.set()
            if reverse_follower is not None:
                reverse_follower.stop()
            if reverse is not None:
                reverse.close()
            follower.stop()
            monitor.close()
            documents.close()


def _record_end(runner: Runner, run_id: str, exc: BaseException) -> None:
    """Record why the cutover ended without finishing, so that `migrator status` never shows it
    'running' after the process is gone: a signal before the flip is checkpoint 'stopped' (the
    phase back to 'pending': nothing changed), anything else the phase 'failed' with its error
    in the event log. Recording must not hide the error itself (the state store may be what
    failed)."""
    store = runner.store
    with contextlib.suppress(MigratorError):
        if isinstance(exc, CutoverStopped | KeyboardInterrupt) and not switched(store, run_id):
            store.add_checkpoint(run_id, PHASE, CutoverLabel.STOPPED, "", {"reason": "a signal"})
            store.set_phase(run_id, PHASE, "pending")
            runner.events.emit(
                Notice(
                    "warn", "cutover stopped by a signal before the switch flipped: the source stays primary"
                )
            )
            return
        runner.events.emit(ErrorRaised.of(PHASE, exc, retrying=False))
        store.set_phase(run_id, PHASE, "failed")


def _watch(follower: CdcFollower, outer_stop: threading.Event, protocol_stop: threading.Event) -> None:
    """Stop the protocol on a signal, or when CDC ends (its error is raised by the protocol)."""
    while follower.alive() and not protocol_stop.is_set():
        if outer_stop.is_set():
            protocol_stop.set()
            return
        time.sleep(0.1)
    protocol_stop.set()
