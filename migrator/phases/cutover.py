"""Cutover: the target becomes primary, with a short, measured write freeze on the source.

The protocol (every step shown as an event, the decisive ones checkpointed):

  gate     postpone file absent; snapshot done; CDC caught up (a fresh marker applied within
           `cdc.max_lag`); a verify pass of the live migration equal (or within
           `verify.tolerance`); the switch configured; the reverse path ready
  hook     on_before_cutover
  fence    source writes held (lock or command fence)          -- the freeze starts
  marker   pg_logical_emit_message, committed after the fence: once CDC has applied it, the
           target holds every source write made before the fence
  check    the documents touched since the gate's verify began are compared once more
  sequences  the target's sequences set past the source's last values (plus
           `sequence_margin`), where the target has sequences (a PostgreSQL target)
  flip     the switch names the target                          -- the point of no return
  reverse  reverse sync starts (target changes flow back to the source)
  cancel   statements waiting on the fence are cancelled (retryable): they go to the target
  unfence  the fence is lifted                                  -- the freeze ends, measured
  hook     on_after_cutover

If the fence cannot be taken within `fence.lock_timeout`, or the marker or the check do not
finish within `max_write_freeze`, the attempt is abandoned: the fence is lifted (no write was
refused, only delayed), and after `retry_pause` the next attempt starts, up to `retries`.

Writes caught by the fence at the flip are cancelled before the fence is lifted: their
statements fail with SQLSTATE 57014 (query_canceled), a retryable error, and the application
resends them to the new primary, which it learns from the switch. Letting them commit on the
old primary instead and carrying them over with forward CDC would race the application's next
write: a single-threaded client whose held write commits at the lift, and who then writes the
same document on the target, would see its newer write overwritten when CDC delivers the
older one a moment later. (Forward CDC does keep running after the flip, for a write that
reaches the source after the lift from a client that read the switch before the flip.)
Neither direction echoes the other: forward CDC skips transactions carrying the reverse sync's
replication origin, and reverse sync skips the target's transactions that forward CDC wrote (the
target's feed marks them: MongoDB transactions that carry CDC's checkpoint, PostgreSQL ones
committed under CDC's replication origin; see phases/reverse.py).

A crash after the flip leaves the switch naming the target: a resumed cutover finds that
(checkpoint 'switched', or the switch read back) and only restarts reverse sync.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from migrator.adapters.base import WriteFence
from migrator.engine.context import PlanView, RunContext
from migrator.engine.events import CutoverAbandoned, CutoverStep, Notice, WriteFreeze
from migrator.engine.executor import Action, Executor, Step, actions
from migrator.engine.switch import RoutingSwitch, run_command
from migrator.errors import ChecksFailed, FenceNotTaken, MigratorError, TerminalError
from migrator.mapping.spec import CollectionMapping
from migrator.phases.cdc import wait_until_applied
from migrator.phases.lag import marker_round_trip
from migrator.plan.names import cdc_checkpoint_id, reverse_origin_name
from migrator.state.labels import CutoverLabel, RollbackLabel
from migrator.state.store import StateStore

PHASE = "cutover"
MARKER_PREFIX = "migrator.cutover"
# The gate's first marker waits behind whatever backlog CDC replays first, as long as CDC applies
# something at least this often (a source transaction is applied whole: a very large one may take
# long, so this is generous); a step reports how far it is this often.
CATCH_UP_IDLE_S = 60.0
CATCH_UP_REPORT_S = 10.0

ROLLBACK_PHASE = "rollback"


def switched(store: StateStore, run_id: str) -> bool:
    """Whether the run's last flip to the target stands (no rollback flipped it back since)."""
    flips = [c.id for c in store.checkpoints(run_id, PHASE) if c.label == CutoverLabel.SWITCHED]
    if not flips:
        return False
    backs = [
        c.id for c in store.checkpoints(run_id, ROLLBACK_PHASE) if c.label == RollbackLabel.SWITCHED_BACK
    ]
    return not backs or max(backs) < max(flips)


def switching_back(store: StateStore, run_id: str) -> bool:
    """Whether a rollback after cutover flipped the switch back and has not finished (a crash)."""
    flips = [c.id for c in store.checkpoints(run_id, PHASE) if c.label == CutoverLabel.SWITCHED]
    if not flips:
        return False
    later = {c.label for c in store.checkpoints(run_id, ROLLBACK_PHASE) if c.id > max(flips)}
    return RollbackLabel.SWITCHED_BACK in later and RollbackLabel.SWITCHBACK_DONE not in later


class Abandoned(Exception):
    """This attempt cannot finish within the freeze budget; the fence is lifted and it retries.
    Internal to the protocol: what leaves it is GateNotPassed, AttemptsAbandoned or CutoverStopped."""


class Stalled(Abandoned):
    """CDC applied nothing for the gate's whole budget while replaying the backlog before a marker."""


class GateNotPassed(ChecksFailed):
    """The gate before the first fence did not pass (CDC did not apply a fresh marker within
    its budget, or its lag is over max_lag): nothing was fenced or flipped, the source stays
    primary. `measured` holds what the gate measured (for --json and the event log)."""

    def __init__(self, message: str, *, measured: dict[str, Any], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.measured = measured


class AttemptsAbandoned(ChecksFailed):
    """Every attempt was abandoned within the freeze budget (each lifted its fence): the source
    stays primary. `attempts` lists each attempt's reason and freeze."""

    def __init__(self, message: str, *, attempts: list[dict[str, Any]], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts


class CutoverStopped(TerminalError):
    """A signal stopped the cutover before the switch flipped: any fence was lifted, the source
    stays primary, and `migrator cutover` starts over (recorded as checkpoint 'stopped')."""

    exit_code = 130


class CheckFailed(ChecksFailed):
    """The final check under the fence found documents that differ: the cutover stops."""


@dataclass
class FinalCheck:
    checked: int
    differing: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CutoverReport:
    resumed: bool = False
    attempts: int = 0
    freeze_ms: float | None = None  # of the attempt that flipped the switch
    abandoned: list[dict[str, Any]] = field(default_factory=list)
    marker: str | None = None
    check: dict[str, Any] | None = None
    waiting_writers: int = 0  # blocked on the fence when the switch flipped
    cancelled_writes: int = 0  # their statements cancelled (retryable) before the fence was lifted
    switch: str = ""
    sequences: list[str] = field(default_factory=list)  # what the target's sequences were set to

    def to_dict(self) -> dict[str, Any]:
        return {
            "resumed": self.resumed,
            "attempts": self.attempts,
            "freeze_ms": self.freeze_ms,
            "abandoned": self.abandoned,
            "marker": self.marker,
            "check": self.check,
            "waiting_writers": self.waiting_writers,
            "cancelled_writes": self.cancelled_writes,
            "switch": self.switch,
            "sequences": self.sequences,
        }


@dataclass
class _Attempt:
    """One attempt's fence and deadline, handed from step to step."""

    attempt: int
    report: CutoverReport
    fence: WriteFence | None = None
    deadline: float = 0.0  # monotonic: the write freeze ends here at the latest


class CutoverPhase:
    name: ClassVar[str] = PHASE

    def __init__(
        self,
        ctx: RunContext,
        *,
        gate_verify: Callable[[], dict[str, Any]],
        prepare: Callable[[], None],
        final_check: Callable[[float], FinalCheck],
        start_reverse: Callable[[], None],
        reverse_ready: Callable[[], None],
        stop: threading.Event | None = None,
        executor: Executor | None = None,
    ) -> None:
        """`gate_verify` runs a verify pass of the live migration and returns its report;
        `prepare` runs before each fence (checks what changed meanwhile, so that little is left
        for the fence); `final_check(deadline)` compares what changed since it began, finishing by the monotonic
        `deadline` or raising Abandoned; `start_reverse` starts reverse sync; `reverse_ready`
        raises when reverse sync could not start."""
        self.ctx = ctx
        self.settings = ctx.plan.phases.cutover
        self.cdc = ctx.plan.phases.cdc
        self.tolerance = ctx.plan.phases.verify.tolerance
        self._gate_verify = gate_verify
        self._prepare = prepare
        self._final_check = final_check
        self._start_reverse = start_reverse
        self._reverse_ready = reverse_ready
        self._stop = stop if stop is not None else threading.Event()
        self.executor = executor if executor is not None else Executor.live()
        if self.settings.switch is None:
            raise TerminalError(
                f"plan {ctx.plan.name} has no phases.cutover.switch: applications could not learn that the "
                "target is primary",
                hint="add phases.cutover.switch (kind file, command, postgres or mongodb)",
            )
        self.switch = RoutingSwitch(
            ctx.plan.name, self.settings.switch, ctx.source, ctx.target, run_id=ctx.run.id
        )
        self.monitor = ctx.source.monitor()
        self._tables = list(dict.fromkeys(t for c in ctx.collections for t in c.tables()))

    def plan(self) -> list[Action]:
        return actions(steps(self.ctx))

    def _do(self, name: str, attempt: _Attempt | None = None) -> None:
        """Perform the step `name` of the ones `plan` lists (docs/architecture.md, "Executable
        actions"): the protocol below decides when, and how often (once per attempt)."""
        step = next(s for s in steps(self.ctx, self, attempt) if s.id == f"{PHASE}.{name}")
        self.executor.perform(step.action, step.effect, step=step.id)

    # -- the protocol ----------------------------------------------------------------------------

    def run(self) -> CutoverReport:
        store, run = self.ctx.store, self.ctx.run
        report = CutoverReport(switch=self.switch.describe())
        try:
            if self._switched():
                report.resumed = True
                self._step("resume", "the switch already names the target: restarting reverse sync")
                self.switch.flip("target")  # idempotent; completes a flip the crash interrupted
                if not switched(store, run.id):  # the crash came before the flip was recorded
                    store.add_checkpoint(run.id, PHASE, CutoverLabel.SWITCHED, "", {"resumed": True})
                self._start_reverse()
                return report
            if self.settings.postpone_file:
                self._do("postpone")
            self._do("gate-lag")
            self._do("gate-verify")
            if self.settings.on_before_cutover:
                self._do("on-before")
            for attempt in range(1, self.settings.retries + 2):
                report.attempts = attempt
                try:
                    self._attempt(attempt, report)
                    break
                except Abandoned as why:
                    if self._stop.is_set():
                        raise self._stopped() from None
                    if attempt == self.settings.retries + 1:
                        reasons = "; ".join(
                            f"attempt {a['attempt']}: {a['reason']} (freeze {a['freeze_ms']:.0f} ms)"
                            for a in report.abandoned
                        )
                        raise AttemptsAbandoned(
                            f"cutover abandoned {attempt} time(s), the source stays primary: {reasons}",
                            attempts=list(report.abandoned),
                            hint="lower the write load or raise phases.cutover.max_write_freeze / retries, then "
                            "run `migrator cutover` again; the migration keeps following meanwhile "
                            "(`migrator run`)",
                        ) from None
                    self._step(
                        "retry",
                        f"attempt {attempt} abandoned ({why}); next in {self.settings.retry_pause:g} s",
                    )
                    if self._stop.wait(self.settings.retry_pause):
                        raise self._stopped() from None
            if self.settings.on_after_cutover:
                self._do("on-after")
            self._do("retries")  # said, not done: the attempts above retried as it says
            store.add_checkpoint(run.id, PHASE, CutoverLabel.DONE, report.marker or "", report.to_dict())
            return report
        finally:
            self.monitor.close()

    def _switched(self) -> bool:
        """Whether this run flipped the switch to the target: its checkpoint says so, or the
        switch names the target and this run as the one that flipped it (a crash between the
        flip and its checkpoint). A switch naming the target for another run is refused."""
        if switched(self.ctx.store, self.ctx.run.id):
            return True
        side = self.switch.primary()
        if side == "target":
            self.switch.refuse_foreign()
            return True
        if side is None and self._flip_interrupted():
            # A command switch cannot be read back. The final check had passed under the fence;
            # starting over would forget reverse sync's position (taken before the flip), and
            # with it what applications wrote on the target if the command did flip: completing
            # the flip loses nothing either way (a write the source took since is carried by
            # forward CDC, which keeps running after the flip).
            self.ctx.events.emit(
                Notice(
                    "warn",
                    f"a crash interrupted the flip of {self.switch.describe()} (checkpoint '{CutoverLabel.FLIPPING}'), "
                    "which cannot be read back: completing it",
                )
            )
            return True
        return False

    def _flip_interrupted(self) -> bool:
        """A 'flipping' checkpoint with neither the flip's nor its failure's after it."""
        found = self.ctx.store.checkpoints(self.ctx.run.id, PHASE)
        last = max((c.id for c in found if c.label == CutoverLabel.FLIPPING), default=None)
        if last is None:
            return False
        return not any(
            c.id > last and c.label in (CutoverLabel.SWITCHED, CutoverLabel.FLIP_FAILED, CutoverLabel.STOPPED)
            for c in found
        )

    def _wait_postponed(self) -> None:
        postpone = Path(self.settings.postpone_file) if self.settings.postpone_file else None
        announced = 0.0
        while postpone is not None and postpone.exists():
            if time.monotonic() - announced >= 10:
                self._step("postponed", f"waiting: postpone file {postpone} exists (remove it to go on)")
                announced = time.monotonic()
            if self._stop.wait(0.2):
                raise self._stopped()

    def _gate_lag(self) -> None:
        phases = {p.name: p.status for p in self.ctx.store.phases(self.ctx.run.id)}
        if phases.get("snapshot") != "done":
            raise TerminalError(
                "the snapshot is not done: `migrator run` must finish the copy before cutover"
            )
        budget = max(60.0, 10 * self.cdc.max_lag)
        began = time.monotonic()
        markers: list[float] = []  # seconds each marker took to be applied
        hint = (
            "nothing was fenced or flipped: the source stays primary. Check that CDC keeps up (`migrator "
            "status`: lag), lower the write load or raise phases.cdc.max_lag, then run `migrator cutover` again"
        )
        try:
            # The first marker waits for the backlog this process replays first (what changed
            # since the last `migrator run` stopped, however long that was): catching up, not the
            # lag the fence would wait for. It waits as long as CDC keeps applying, and gives up
            # only after CATCH_UP_IDLE_S seconds in which nothing was applied.
            seconds = marker_round_trip(
                self._marker, lambda marker: self._wait_backlog(marker, CATCH_UP_IDLE_S)
            )
            markers.append(round(seconds, 3))
            deadline = time.monotonic() + budget
            while seconds > self.cdc.max_lag and time.monotonic() < deadline:
                # Measured again once the backlog is applied, until the deadline.
                self._step("lag", f"a marker took {seconds:.2f} s while catching up; measuring again")
                seconds = self._catch_up(deadline)
                markers.append(round(seconds, 3))
        except Abandoned as why:
            if self._stop.is_set():
                raise self._stopped() from None
            waited = time.monotonic() - began
            what = (
                str(why) if isinstance(why, Stalled) else f"CDC did not apply a marker within {budget:.0f} s"
            )
            raise GateNotPassed(
                f"cutover gate not passed: {what} (waited {waited:.1f} s; phases.cdc.max_lag {self.cdc.max_lag:g} s"
                + (f"; earlier markers took {', '.join(f'{m:.2f}' for m in markers)} s" if markers else "")
                + ")",
                measured={"waited_s": round(waited, 3), "budget_s": budget, "markers_s": markers},
                hint=hint,
            ) from None
        if seconds > self.cdc.max_lag:
            raise GateNotPassed(
                f"cutover gate not passed: CDC lag {seconds:.2f} s is over phases.cdc.max_lag "
                f"({self.cdc.max_lag:g} s) after {time.monotonic() - began:.0f} s of catching up",
                measured={"lag_s": round(seconds, 3), "max_lag_s": self.cdc.max_lag, "markers_s": markers},
                hint=hint,
            )
        self._step(
            "lag", f"a fresh marker was applied in {seconds * 1000:.0f} ms (max_lag {self.cdc.max_lag:g} s)"
        )
        self._reverse_ready()
        self._step("reverse-ready", "reverse sync can start")

    def _gate_verify_pass(self) -> None:
        verify = self._gate_verify()
        if self._stop.is_set():
            raise self._stopped()  # the pass was cut short: its verdict says nothing
        score = float(verify.get("score", 0.0))
        if verify.get("verdict") != "equal" and score < 1.0 - self.tolerance:
            raise CheckFailed(
                f"verify before cutover: score {score:.6f} (mismatched {verify.get('mismatched')}, missing "
                f"{verify.get('missing')}, extra {verify.get('extra')}, unsettled {verify.get('unsettled')}) is "
                f"below 1 - verify.tolerance ({1.0 - self.tolerance:g})",
                hint="look at the report (`migrator verify --json`), fix or `--repair`, then cut over again",
            )
        self.ctx.store.add_checkpoint(
            self.ctx.run.id, PHASE, CutoverLabel.GATE, "", {"verify": _summary(verify)}
        )
        self._step("gate", f"verify score {score:.6f}: gate passed")

    def _marker(self) -> int:
        return self.ctx.source.positions.parse(
            self.monitor.heartbeat(MARKER_PREFIX, f"{self.ctx.run.id}:lag")
        )

    def _catch_up(self, deadline: float) -> float:
        """Seconds until a marker committed now is applied by CDC: the lag as it really is
        (phases/lag.py, the one measure of lag)."""
        return marker_round_trip(self._marker, lambda marker: self._wait_applied(marker, deadline))

    def _wait_applied(self, marker: int, deadline: float) -> None:
        if not wait_until_applied(self.ctx.target, self.ctx.plan.name, marker, deadline, stop=self._stop):
            if self._stop.is_set():
                raise Abandoned("stopped by a signal")
            raise Abandoned("CDC had not applied the marker within the budget")

    def _wait_backlog(self, marker: int, idle: float) -> None:
        wait_for_backlog(
            self.ctx.target,
            self.ctx.plan.name,
            marker,
            idle,
            stop=self._stop,
            report=lambda m: self._step("catching-up", m),
            show=self.ctx.source.positions.text,
            left=self._left,
        )

    def _left(self, applied: int, marker: int) -> str:
        """What CDC has still to replay up to the marker, in the source's words."""
        return self.ctx.vocabulary.to_go(self.ctx.source.positions.bytes_between(applied, marker))

    def _attempt(self, attempt: int, report: CutoverReport) -> None:
        a = _Attempt(attempt, report)
        try:
            self._do("fence", a)
            try:
                self._do("marker", a)
                self._do("check", a)
                self._do("sequences", a)
                self._do("flip", a)
            except Abandoned as exc:
                assert a.fence is not None
                held = a.fence.lift()
                freeze_ms = round((held or 0.0) * 1000, 1)
                report.abandoned.append({"attempt": attempt, "reason": str(exc), "freeze_ms": freeze_ms})
                self.ctx.events.emit(CutoverAbandoned(attempt, str(exc), freeze_ms))
                raise
            self._do("record-flip", a)
            try:
                if self.settings.reverse_sync:
                    self._do("reverse-sync", a)
                else:
                    self._start_reverse()
                self._do("cancel-writes", a)
            except MigratorError as exc:
                # Past the point of no return the target is primary either way: say so loudly,
                # lift the fence (writers must not wait on us), and let the caller retry reverse sync.
                self.ctx.events.emit(Notice("warn", f"reverse sync did not start: {exc.message}"))
                raise
            finally:
                self._do("lift-fence", a)
            self.ctx.store.add_checkpoint(
                self.ctx.run.id,
                PHASE,
                CutoverLabel.UNFENCED,
                report.marker or "",
                {"freeze_ms": report.freeze_ms},
            )
            self._step("unfenced", f"source writes released; write freeze {report.freeze_ms:.0f} ms")
            self.ctx.events.emit(WriteFreeze("forward", report.freeze_ms or 0.0))
        finally:
            if a.fence is not None:
                a.fence.lift()

    # -- an attempt's steps' effects, in order -----------------------------------------------------

    def _engage(self, a: _Attempt) -> None:
        attempt, report = a.attempt, a.report
        self._prepare()
        # Fence only a CDC that keeps up: what it lags behind now is what the freeze would wait for.
        budget = max(30.0, 10 * self.cdc.max_lag)
        try:
            lag = self._catch_up(deadline=time.monotonic() + budget)
        except Abandoned:
            lag = budget
        if lag > self.cdc.max_lag:
            reason = f"CDC lag {lag:.2f} s is over max_lag {self.cdc.max_lag:g} s before the fence"
            report.abandoned.append({"attempt": attempt, "reason": reason, "freeze_ms": 0.0})
            self.ctx.events.emit(CutoverAbandoned(attempt, reason, 0.0))
            raise Abandoned(reason)
        fence = a.fence = self._fence()
        try:
            started = fence.engage()
        except FenceNotTaken as exc:
            report.abandoned.append({"attempt": attempt, "reason": exc.message, "freeze_ms": 0.0})
            self.ctx.events.emit(CutoverAbandoned(attempt, exc.message, 0.0))
            raise Abandoned(exc.message) from None
        a.deadline = started + self.settings.max_write_freeze
        self._step("fence", f"attempt {attempt}: source writes held ({fence.describe()})")

    def _drain(self, a: _Attempt) -> None:
        marker_text = self.monitor.heartbeat(MARKER_PREFIX, f"{self.ctx.run.id}:fence:{a.attempt}")
        a.report.marker = marker_text
        self._wait_applied(self.ctx.source.positions.parse(marker_text), a.deadline)
        self._step("drained", f"CDC applied the marker at {marker_text}")

    def _check(self, a: _Attempt) -> None:
        check = self._final_check(a.deadline)
        a.report.check = {"checked": check.checked, "differing": check.differing, **check.detail}
        if check.differing:
            raise CheckFailed(
                f"final check under the fence: {check.differing} of {check.checked} documents differ",
                hint="the source stays primary; run `migrator verify` to see which, then cut over again",
            )
        self._step("checked", f"{check.checked} document(s) touched since the gate's verify are equal")
        if time.monotonic() >= a.deadline:
            raise Abandoned("the final check ended past max_write_freeze")

    def _sequences(self, a: _Attempt) -> None:
        """Under the fence, so no source insert takes a value after this read
        (docs/architecture.md, "Sequences at cutover")."""
        collections = self.ctx.collections
        by_source = self.ctx.source.sequence_values([c.table for c in collections])
        margin = self.ctx.plan.phases.cutover.sequence_margin
        done = self.ctx.target.set_sequences(target_sequences(collections, by_source), margin)
        a.report.sequences = done
        self._step("sequences", "; ".join(done) if done else "no sequence to set")

    def _flip(self, a: _Attempt) -> None:
        assert a.fence is not None
        a.report.waiting_writers = a.fence.waiting_writers()
        # Recorded before the flip, so that a resume knows a crash may have cut it short.
        self.ctx.store.add_checkpoint(
            self.ctx.run.id, PHASE, CutoverLabel.FLIPPING, a.report.marker or "", {"attempt": a.attempt}
        )
        try:
            self.switch.flip("target")
        except BaseException:
            self.ctx.store.add_checkpoint(
                self.ctx.run.id, PHASE, CutoverLabel.FLIP_FAILED, "", {"attempt": a.attempt}
            )
            raise

    def _record_flip(self, a: _Attempt) -> None:
        self.ctx.store.add_checkpoint(
            self.ctx.run.id, PHASE, CutoverLabel.SWITCHED, a.report.marker or "", {"attempt": a.attempt}
        )
        self._step("switched", f"{self.switch.describe()} names the target")

    def _cancel_waiting(self, a: _Attempt) -> None:
        assert a.fence is not None
        cancelled = a.fence.cancel_waiting()
        a.report.cancelled_writes = cancelled
        if cancelled:
            self._step(
                "cancelled", f"{cancelled} write(s) held by the fence cancelled: they retry on the target"
            )

    def _lift(self, a: _Attempt) -> None:
        assert a.fence is not None
        held = a.fence.lift()
        a.report.freeze_ms = round((held or 0.0) * 1000, 1)

    def _fence(self) -> WriteFence:
        f = self.settings.fence
        if f.kind == "command":
            return CommandFence(f.pause or [], f.resume or [], self.ctx.plan.name)
        return self.ctx.source.write_fence(
            self._tables,
            lock_timeout=f.lock_timeout,
            hold_limit=self.settings.max_write_freeze,
        )

    def _step(self, step: str, message: str) -> None:
        self.ctx.events.emit(CutoverStep(step, message))

    @staticmethod
    def _stopped() -> CutoverStopped:
        return CutoverStopped(
            "cutover stopped by a signal before the switch flipped: the source stays primary",
            hint="run `migrator cutover` again to start over (`migrator run` follows changes meanwhile)",
        )


def planned_actions(view: PlanView) -> list[Action]:
    """What `migrator cutover` would do, in order (pure: feeds --dry-run and the runbook)."""
    return actions(steps(view))


def steps(view: PlanView, phase: CutoverPhase | None = None, attempt: _Attempt | None = None) -> list[Step]:
    """Cutover's steps, in order: listed from the plan view (--dry-run, the runbook), and with
    effects bound to `phase` (and the `attempt` in progress) when it performs them
    (docs/architecture.md, "Executable actions"). The protocol in `CutoverPhase.run` performs
    them one by one: the fence's steps once per attempt, the hooks only when configured."""
    plan, settings = view.plan, view.plan.phases.cutover
    lag = plan.phases.cdc.max_lag
    listed: list[Step] = []

    def bound(effect: Callable[[CutoverPhase], object]) -> Callable[[], object] | None:
        if phase is None:
            return None  # listed only
        running = phase
        return lambda: effect(running)

    def in_attempt(effect: Callable[[CutoverPhase, _Attempt], object]) -> Callable[[], object] | None:
        if phase is None or attempt is None:
            return None
        running, current = phase, attempt
        return lambda: effect(running, current)

    if settings.switch is None:
        return [
            Step.of(
                PHASE,
                "refuse",
                "refuse: the plan has no phases.cutover.switch, so applications could not learn that the "
                "target is primary",
                "none",
            )
        ]
    if settings.postpone_file:
        listed.append(
            Step.of(
                PHASE,
                "postpone",
                f"wait while the postpone file {settings.postpone_file} exists",
                "none",
                bound(lambda p: p._wait_postponed()),
            )
        )
    listed += [
        Step.of(
            PHASE,
            "gate-lag",
            f"gate: the snapshot is done; CDC applies a fresh marker ({view.vocabulary.marker}, prefix "
            f"'{MARKER_PREFIX}') within max_lag {lag:g} s",
            "source",
            bound(lambda p: p._gate_lag()),
        ),
        Step.of(
            PHASE,
            "gate-verify",
            f"gate: a verify pass of the live migration is equal (tolerance {plan.phases.verify.tolerance:g}); "
            "recorded in the state store",
            "state",
            bound(lambda p: p._gate_verify_pass()),
        ),
    ]
    if settings.on_before_cutover:
        before = settings.on_before_cutover
        listed.append(
            Step.of(
                PHASE,
                "on-before",
                f"run on_before_cutover: {' '.join(before)}",
                "external",
                bound(lambda p: run_command(before, p.ctx.plan.name, "on_before_cutover")),
            )
        )
    fence = settings.fence
    if fence.kind == "command":
        fencing = f"fence: run {' '.join(fence.pause or [])} to pause the application's writers"
        listed.append(Step.of(PHASE, "fence", fencing, "external", in_attempt(CutoverPhase._engage)))
    else:
        tables = ", ".join(dict.fromkeys(t for c in view.collections for t in c.tables()))
        fencing = (
            f"fence: LOCK TABLE {tables} IN EXCLUSIVE MODE (waits at most {fence.lock_timeout:g} s); "
            "the write freeze starts"
        )
        listed.append(Step.of(PHASE, "fence", fencing, "source", in_attempt(CutoverPhase._engage)))
    listed += [
        Step.of(
            PHASE,
            "marker",
            "commit a marker after the fence and wait until CDC has applied it",
            "source",
            in_attempt(CutoverPhase._drain),
        ),
        Step.of(
            PHASE,
            "check",
            "compare once more the documents touched since the gate's verify began",
            "none",
            in_attempt(CutoverPhase._check),
        ),
        Step.of(
            PHASE,
            "sequences",
            f"set the target's sequences (if it has any) {settings.sequence_margin} steps past the source's "
            "last values",
            "target",
            in_attempt(CutoverPhase._sequences),
        ),
    ]
    switch = settings.switch
    flip = in_attempt(CutoverPhase._flip)
    if switch.kind == "file":
        listed.append(
            Step.of(
                PHASE, "flip", f"flip: write 'target' to the routing file {switch.path}", "external", flip
            )
        )
    elif switch.kind == "command":
        listed.append(Step.of(PHASE, "flip", f"flip: run {' '.join(switch.run or [])}", "external", flip))
    elif switch.kind == "postgres":
        listed.append(
            Step.of(
                PHASE,
                "flip",
                f"flip: upsert the routing row in table {switch.name} on the source",
                "source",
                flip,
            )
        )
    else:
        listed.append(
            Step.of(
                PHASE,
                "flip",
                f"flip: upsert the routing document in collection {switch.name} on the target",
                "target",
                flip,
            )
        )
    listed.append(
        Step.of(
            PHASE,
            "record-flip",
            "record the flip (checkpoint 'switched')",
            "state",
            in_attempt(CutoverPhase._record_flip),
        )
    )
    if settings.reverse_sync:
        listed.append(
            Step.of(
                PHASE,
                "reverse-sync",
                "start reverse sync: target changes flow back to the source "
                + view.vocabulary.reverse_tag.format(origin=reverse_origin_name(plan.name)),
                "source",
                bound(lambda p: p._start_reverse()),
            )
        )
    listed.append(
        Step.of(
            PHASE,
            "cancel-writes",
            "cancel the writes waiting on the fence (retryable: they go to the target)",
            "source",
            in_attempt(CutoverPhase._cancel_waiting),
        )
    )
    lift = in_attempt(CutoverPhase._lift)
    if fence.kind == "command":
        listed.append(
            Step.of(
                PHASE, "lift-fence", f"lift the fence: run {' '.join(fence.resume or [])}", "external", lift
            )
        )
    else:
        listed.append(
            Step.of(
                PHASE,
                "lift-fence",
                "lift the fence (release the locks): the write freeze ends",
                "source",
                lift,
            )
        )
    if settings.on_after_cutover:
        after = settings.on_after_cutover
        listed.append(
            Step.of(
                PHASE,
                "on-after",
                f"run on_after_cutover: {' '.join(after)}",
                "external",
                bound(lambda p: run_command(after, p.ctx.plan.name, "on_after_cutover")),
            )
        )
    listed.append(
        Step.of(
            PHASE,
            "retries",
            f"an attempt that cannot finish within max_write_freeze {settings.max_write_freeze:g} s lifts the "
            f"fence and is retried after {settings.retry_pause:g} s, up to {settings.retries} more time(s)",
            "none",
        )
    )
    return listed


class CommandFence:
    """The operator's own way to pause writers (a feature flag, a load balancer drain)."""

    def __init__(self, pause: list[str], resume: list[str], plan: str, direction: str = "forward") -> None:
        self._pause, self._resume, self._plan = pause, resume, plan
        # forward: writers of the source are paused (cutover); back: those of the target (rollback)
        self._env = {"MIGRATOR_DIRECTION": direction}
        self.engaged_at: float | None = None

    def describe(self) -> str:
        return f"command {' '.join(self._pause)}"

    def engage(self) -> float:
        run_command(self._pause, self._plan, "fence.pause", self._env)
        self.engaged_at = time.monotonic()
        return self.engaged_at

    def waiting_writers(self) -> int:
        return 0  # not observable from here

    def cancel_waiting(self) -> int:
        return 0  # the operator's pause command holds writers in the application, not here

    def lift(self) -> float | None:
        if self.engaged_at is None:
            return None
        held = time.monotonic() - self.engaged_at
        self.engaged_at = None
        run_command(self._resume, self._plan, "fence.resume", self._env)
        return held


def target_sequences(
    collections: list[CollectionMapping], by_source: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """The source's sequence values (source table -> column) as the target names them (target
    table -> the column's field); a column the mapping leaves out has nothing to set."""
    out: dict[str, dict[str, int]] = {}
    for c in collections:
        doc = c.document
        names = {k: k for k in doc.key} | {f.column.name: f.name for f in doc.fields}
        for column, value in by_source.get(doc.table, {}).items():
            if column in names:
                out.setdefault(c.name, {})[names[column]] = value
    return out


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "verdict",
        "score",
        "checked",
        "equal",
        "mismatched",
        "missing",
        "extra",
        "unsettled",
        "verified_positions",
    )
    return {k: report.get(k) for k in keys}


def wait_for_backlog(
    target: Any,
    plan_name: str,
    marker: int,
    idle: float,
    *,
    stop: threading.Event,
    report: Callable[[str], None],
    every: float = CATCH_UP_REPORT_S,
    show: Callable[[int], str] = str,
    left: Callable[[int, int], str] = lambda applied, marker: f"{marker - applied:,} to go",
) -> None:
    """Wait until CDC applied `marker`, as long as it applies something at least every `idle`
    seconds (else Stalled); `report` says how far it is every `every` seconds, positions shown
    by `show` (the source's Positions.text), what is left by `left(applied, marker)` (in the
    source's words: SourceVocabulary.to_go)."""
    checkpoint = cdc_checkpoint_id(plan_name)
    applied = target.applied_position(checkpoint) or 0
    moved = reported = time.monotonic()
    while not wait_until_applied(target, plan_name, marker, time.monotonic() + min(1.0, idle), stop=stop):
        if stop.is_set():
            raise Abandoned("stopped by a signal")
        now = time.monotonic()
        position = target.applied_position(checkpoint) or 0
        if applied < position < marker:  # (at or past the marker, the next wait returns)
            applied, moved = position, now
        elif now - moved >= idle:
            raise Stalled(f"CDC applied nothing for {idle:g} s while catching up to a marker")
        if now - reported >= every:
            report(
                f"CDC replays the backlog: applied up to {show(applied)}, the marker is at "
                f"{show(marker)} ({left(applied, marker)})"
            )
            reported = now
