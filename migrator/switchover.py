"""`migrator cutover`: the cutover protocol, with CDC following in the same process.

The process that cuts over must see its own marker come back through the stream, so it runs
CDC itself (on a thread, with an observer recording the documents each change touches) and
refuses to start while a `migrator run` holds the slot. After the flip, forward CDC keeps
running (it carries writes the fence held to the target) and reverse sync carries the
target's changes back; with `follow`, both run until stopped, otherwise forward CDC drains
once more and the call returns (tests, scripts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from migrator.adapters.postgres.pgoutput import UNCHANGED, lsn_to_int
from migrator.adapters.postgres.replication import SlotMonitor
from migrator.engine.context import RunContext
from migrator.engine.events import CutoverStep
from migrator.errors import MigratorError, TerminalError
from migrator.mapping.lookup import MappedDocuments
from migrator.phases.cdc import CdcPhase
from migrator.phases.cutover import Abandoned, CutoverPhase, CutoverReport, FinalCheck
from migrator.phases.touched import OutOfTime, RoundResult, TouchedDocuments
from migrator.phases.verify import Verifier
from migrator.plan.names import cdc_checkpoint_id, slot_name
from migrator.runner import Runner

STREAM_START_TIMEOUT_S = 60.0
# Before each fence, check what changed in rounds until at most this many references are left
# for the check under the fence (each costs a source and a target read there).
LEFT_FOR_THE_FENCE = 500
CONVERGE_ROUNDS = 10


class ReverseSync(Protocol):
    def ready(self) -> None: ...  # raises when it could not start
    def start(self) -> None: ...  # returns once the change stream is open
    def stop(self) -> None: ...


@dataclass
class SwitchoverOutcome:
    run_id: str
    report: CutoverReport

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.report.to_dict()}


class Switchover:
    def __init__(
        self,
        runner: Runner,
        reverse: Callable[[RunContext], ReverseSync] | None = None,
    ) -> None:
        self.runner = runner
        self._reverse_factory = reverse
        self._reverse: ReverseSync | None = None

    def run(self, *, follow: bool) -> SwitchoverOutcome:
        runner = self.runner
        ctx, _, _ = runner.open(existing=True)
        plan = ctx.plan
        monitor = SlotMonitor(ctx.source.endpoint)
        try:
            state = monitor.state(slot_name(plan.name))
        finally:
            monitor.close()
        if state is None:
            raise TerminalError(
                f"replication slot {slot_name(plan.name)} does not exist: nothing to cut over"
            )
        if state["active"]:
            raise TerminalError(
                f"a `migrator run` of plan {plan.name} is following changes (slot {slot_name(plan.name)} is in use)",
                hint="stop it (SIGTERM: it checkpoints and exits), then run `migrator cutover`: it follows "
                "changes itself during and after the cutover",
            )
        settings = plan.phases.cutover
        if settings.reverse_sync and self._reverse_factory is None:
            raise TerminalError(
                "reverse sync is not available in this build: set phases.cutover.reverse_sync: false for a "
                "one-way cutover (no rollback after it)"
            )
        self._reverse = (
            self._reverse_factory(ctx)
            if settings.reverse_sync and self._reverse_factory is not None
            else None
        )

        cdc_stop = threading.Event()
        cdc = CdcPhase(ctx, stop=cdc_stop, until="stopped")
        identity = {name: info.identity_columns for name, info in ctx.source_info.tables.items()}
        documents = MappedDocuments(ctx.collections, ctx.source.endpoint, ctx.target)
        touched = TouchedDocuments(ctx.collections, identity, documents, UNCHANGED)
        cdc.observers.append(touched)
        follower = _Follower(runner, cdc, cdc_stop)
        protocol_stop = threading.Event()
        watcher = threading.Thread(
            target=follower.watch, args=(runner.stop_event, protocol_stop), daemon=True
        )
        follower.start()
        watcher.start()
        monitor = SlotMonitor(ctx.source.endpoint)
        try:
            follower.wait_streaming(ctx, STREAM_START_TIMEOUT_S)
            key_types = {
                c.name: [
                    str(col.type_name)
                    for k in c.document.key
                    if (col := ctx.source_info.tables[c.table].column(k))
                ]
                for c in ctx.collections
            }

            def gate_verify() -> dict[str, Any]:
                touched.start()  # from here on, changed documents are rechecked before the flip
                verifier = Verifier(
                    plan, ctx.collections, ctx.source, ctx.target, key_types, ctx.events, stop=protocol_stop
                )
                return verifier.run().to_dict()

            def wait_applied() -> None:
                marker = lsn_to_int(monitor.heartbeat("migrator.cutover", f"{ctx.run.id}:round"))
                deadline = time.monotonic() + max(30.0, 10 * plan.phases.cdc.max_lag)
                while (ctx.target.applied_position(cdc_checkpoint_id(plan.name)) or 0) < marker:
                    if time.monotonic() > deadline or protocol_stop.is_set():
                        raise TerminalError(
                            "CDC did not apply a marker within 30 s while preparing the cutover"
                        )
                    time.sleep(0.02)

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
                if self._reverse is not None:
                    self._reverse.ready()

            def start_reverse() -> None:
                if self._reverse is not None:
                    self._reverse.start()

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
                report = phase.run()
            except MigratorError:
                follower.raise_if_failed()
                raise
            runner.store.set_phase(ctx.run.id, "cutover", "done")
            if follow:
                while not runner.stop_event.wait(0.5):
                    follower.raise_if_failed()
            else:
                wait_applied()  # writes the fence held, carried to the target
            return SwitchoverOutcome(ctx.run.id, report)
        finally:
            protocol_stop.set()
            if self._reverse is not None:
                self._reverse.stop()
            follower.stop()
            monitor.close()
            documents.close()


class _Follower:
    """Forward CDC on a thread; its failure stops the protocol and is re-raised."""

    def __init__(self, runner: Runner, cdc: CdcPhase, stop: threading.Event) -> None:
        self._runner = runner
        self._cdc = cdc
        self._stop = stop
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._body, name="migrator-cdc", daemon=True)

    def _body(self) -> None:
        try:
            self._runner._run_phase("cdc", self._cdc.run, True, keep_running=True)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the cutover's thread
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def watch(self, outer_stop: threading.Event, protocol_stop: threading.Event) -> None:
        while self._thread.is_alive() and not protocol_stop.is_set():
            if outer_stop.is_set():
                protocol_stop.set()
                return
            time.sleep(0.1)
        protocol_stop.set()

    def wait_streaming(self, ctx: RunContext, timeout: float) -> None:
        monitor = SlotMonitor(ctx.source.endpoint)
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.raise_if_failed()
                state = monitor.state(slot_name(ctx.plan.name))
                if state is not None and state["active"]:
                    return
                if time.monotonic() > deadline:
                    raise TerminalError(f"CDC did not start streaming within {timeout:.0f} s")
                time.sleep(0.05)
        finally:
            monitor.close()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        if not self._thread.is_alive() and not self._stop.is_set():
            raise TerminalError("CDC stopped during the cutover")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
