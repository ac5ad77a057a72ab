"""Rollback of a run that has not cut over: back to the state before `migrator run`.

Steps, in reverse phase order (CDC, then snapshot), each idempotent and each recorded as a
'rollback' checkpoint when done, so that a rollback interrupted by a crash is finished by
running it again (a recorded step is not redone):

  1. check: no other process works on the run (the state file's lease), no `migrator run` holds
     the slot (stop it first), and the target's ownership record names this run;
  2. remove CDC's checkpoint document from the target's `_migrator` collection;
  3. drop the run's slot (the source stops retaining its change log for it);
  4. drop the publication if the run created it (one it found is kept, as is one another run of
     the plan streams through);
  (the source adapter's vocabulary names both steps as users know them: adapters/vocabulary.py)
  5. target collections: drop those the run created; one that existed empty is emptied again
     and loses the indexes migrator added; one that held documents before is kept (the run's
     documents cannot be told from the earlier ones), or dropped with force;
  6. release the target: the run's remaining `_migrator` records and its ownership record go,
     and `_migrator` itself when the run created it and it is empty; last, so that no other run
     can claim the target while this one still removes what it created;
  7. mark the run rolled back.

After that, nothing of the run is left on either side, and `migrator run` starts afresh.
Nothing is dropped that the run cannot prove it created (docs/architecture.md, "One owner").
A run that has cut over is refused here: migrator/operations/rollback_after_cutover.py first
makes the source primary again (`roll_back`, the command `migrator rollback`, at the end of this
module, runs it before this one).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from migrator.adapters.base import SourceAdapter, SourceVocabulary, TargetAdapter
from migrator.engine.events import EventBus, Notice, RollbackStepDone
from migrator.engine.executor import Executor
from migrator.engine.executor import Step as ExecutorStep
from migrator.errors import NoActiveRun, TerminalError
from migrator.operations.abandoned import end_abandoned
from migrator.operations.finished import finished_run, finishing, refuse_finished, refuse_finishing
from migrator.operations.rollback_after_cutover import Switchback, SwitchbackResult, SwitchbackStep
from migrator.operations.run import StoreSink
from migrator.operations.session import Session
from migrator.phases.cutover import switched, switching_back
from migrator.plan.models import Plan
from migrator.plan.names import (
    cdc_checkpoint_id,
    is_slot_of,
    publication_name,
    reverse_marker_id,
    reverse_origin_name,
)
from migrator.state.labels import RollbackLabel, SnapshotLabel, rollback_collection
from migrator.state.store import RunRecord, StateStore

PHASE = "rollback"
SLOT_RELEASE_S = 5.0


@dataclass(frozen=True)
class Step:
    """One step of the rollback, as the preview lists it and `Rollback.run` performs it
    (docs/architecture.md, "Executable actions"): `effect` is bound only when a rollback runs."""

    name: str
    description: str
    side: str  # what it changes: 'source', 'target', 'state' or 'none'
    effect: Callable[[], Any] | None = field(default=None, compare=False, repr=False)
    phase: ClassVar[str] = PHASE  # the state store's phase of its checkpoints (finish's Step: 'finish')

    def executable(self) -> ExecutorStep:
        return ExecutorStep.of(self.phase, self.name, self.description, self.side, self.effect)


@dataclass
class _Undoing:
    """One rollback in progress: the steps a crashed rollback recorded, and what it returns."""

    done: set[str]
    result: RollbackResult


@dataclass
class RollbackResult:
    run_id: str
    steps: list[dict[str, str]] = field(default_factory=list)  # name, outcome
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "resumed": self.resumed, "steps": self.steps}


class NothingToRollBack(NoActiveRun):
    """No active or failed run exists for the plan."""


class Rollback:
    def __init__(
        self, plan: Plan, store: StateStore, events: EventBus, source: SourceAdapter, target: TargetAdapter
    ) -> None:
        self.plan = plan
        self.store = store
        self.events = events
        self.source = source
        self.target = target
        self.publication = publication_name(plan.name)
        self.run_record = self._find_run()
        self.slot = self.run_record.slot
        self.words = source.vocabulary
        self._said: dict[str, str] = {}
        self.executor = Executor.live()

    def _find_run(self) -> RunRecord:
        candidates = [r for r in self.store.runs(self.plan.name) if r.status in ("active", "failed")]
        if candidates and finishing(self.store, candidates[-1].id):
            raise refuse_finishing(candidates[-1], "migrator rollback")
        ended = finished_run(self.store, self.plan.name)
        if ended is not None:
            raise refuse_finished(ended, "migrator rollback")
        if not candidates:
            where = getattr(self.store, "path", "this state file")
            owner = self.target.ownership(self.plan.name).read()
            hint = (
                f"the target's ownership record names {owner.describe()}: "
                f"`migrator rollback PLAN --state {owner.state}`"
                if owner is not None
                else "`migrator status` lists the plan's runs"
            )
            raise NothingToRollBack(
                f"plan {self.plan.name} has no active or failed run to roll back in {where}", hint=hint
            )
        return candidates[-1]

    # -- what it would do ------------------------------------------------------------------------

    def steps(self, *, force: bool = False, undoing: _Undoing | None = None) -> list[Step]:
        """The steps in order: listed (the preview), and with effects bound to `undoing` when
        `run` performs them."""
        database = self.plan.target.database

        def bound(name: str, effect: Callable[[], str]) -> Callable[[], Any] | None:
            if undoing is None:
                return None  # listed only
            current = undoing
            return lambda: self._perform(name, effect, current)

        steps = [
            Step(
                "check",
                "check that no `migrator run` is following and no pre-existing data is at risk",
                "none",
                bound("check", lambda: self._check(force)),
            ),
            Step(
                RollbackLabel.CDC_CHECKPOINT,
                f"delete CDC's checkpoint document from {database}._migrator",
                "target",
                bound(RollbackLabel.CDC_CHECKPOINT, self._drop_cdc_checkpoint),
            ),
            Step(
                RollbackLabel.SLOT,
                self.words.teardown(self.slot, self.publication)[0],
                "source",
                bound(RollbackLabel.SLOT, self._drop_slot),
            ),
            Step(
                RollbackLabel.PUBLICATION,
                self._publication_step(),
                "source",
                bound(RollbackLabel.PUBLICATION, self._drop_publication),
            ),
            Step(
                RollbackLabel.REVERSE,
                f"remove {self.words.reverse_state} (if any)",
                "source",
                bound(RollbackLabel.REVERSE, self._forget_reverse),
            ),
        ]
        before = self._collections_before()
        for c in self.plan.collections:
            held = before.get(c.name)
            if held is None:
                text = f"drop collection {database}.{c.name} (created by the run)"
            elif held == 0:
                text = f"empty collection {database}.{c.name} (it existed, empty, before the run)"
            elif force:
                text = f"drop collection {database}.{c.name} (--force: it held {held:,} documents before the run)"
            else:
                text = f"keep collection {database}.{c.name}: it held {held:,} documents before the run"
            name = rollback_collection(c.name)
            effect = functools.partial(self._collection, c.name, before.get(c.name), force)
            steps.append(Step(name, text, "target", bound(name, effect)))
        steps.append(
            Step(
                RollbackLabel.RELEASE,
                f"delete the run's records and its ownership record from {database}._migrator (and the "
                "collection, if the run created it and nothing else is left in it)",
                "target",
                bound(RollbackLabel.RELEASE, self._release),
            )
        )
        finish = None if undoing is None else functools.partial(self._finish, undoing)
        steps.append(Step("finish", f"mark run {self.run_record.id} rolled back", "state", finish))
        self._said = {s.name: s.description for s in steps}  # for the events of the steps done
        return steps

    def _publication_created(self) -> bool | None:
        return publication_created(self.store, self.run_record.id)

    def _publication_step(self) -> str:
        return publication_step(self.words, self.slot, self.publication, self._publication_created())

    def _collections_before(self) -> dict[str, int | None]:
        before = next(
            (
                c
                for c in self.store.checkpoints(self.run_record.id, "snapshot")
                if c.label == SnapshotLabel.TARGET_BEFORE
            ),
            None,
        )
        if before is None:
            # The run never reached the copy: it created nothing on the target.
            return {c.name: -1 for c in self.plan.collections}
        return dict(before.detail["collections"])

    # -- doing it --------------------------------------------------------------------------------

    def run(self, *, force: bool = False) -> RollbackResult:
        run_id = self.run_record.id
        done = {c.label for c in self.store.checkpoints(run_id, PHASE)}
        undoing = _Undoing(done, RollbackResult(run_id, resumed=bool(done)))
        # The steps the preview lists, performed (docs/architecture.md, "Executable actions").
        self.executor.perform_steps([s.executable() for s in self.steps(force=force, undoing=undoing)])
        return undoing.result

    def _perform(self, name: str, effect: Callable[[], str], undoing: _Undoing) -> str:
        """A step, unless a crashed rollback recorded it done; recorded once done (the check is
        always made, never recorded)."""
        if name in undoing.done and name != "check":
            outcome = "done before (resumed rollback)"
        else:
            outcome = effect()
            if name != "check":
                self.store.add_checkpoint(self.run_record.id, PHASE, name, "", {"outcome": outcome})
        undoing.result.steps.append({"name": name, "outcome": outcome})
        self.events.emit(RollbackStepDone(name, outcome, self._said.get(name, "")))
        return outcome

    def _finish(self, undoing: _Undoing) -> str:
        run_id = self.run_record.id
        for phase in self.store.phases(run_id):
            if phase.status != "rolled_back":
                self.store.set_phase(run_id, phase.name, "rolled_back")
        self.store.finish_run(run_id, "rolled_back")
        undoing.result.steps.append({"name": "finish", "outcome": f"run {run_id} rolled back"})
        self.events.emit(RollbackStepDone("finish", f"run {run_id} rolled back"))
        return f"run {run_id} rolled back"

    def _check(self, force: bool) -> str:
        # No other process works on this run through this state file (refused at once, naming it).
        self.store.hold(self.plan.name, "migrator rollback")
        owner = self.target.ownership(self.plan.name).read()
        if owner is not None and owner.run_id != self.run_record.id:
            # The target's data belongs to another run: removing "this run's" collections and
            # checkpoint would destroy that run's work.
            raise self.target.refusal(owner, this_run=self.run_record.id)
        # A transaction a killed process of the run left open would hold what rollback removes.
        end_abandoned(self.target, self.plan.name, self.run_record.id, self.events)
        monitor = self.source.monitor()
        try:
            state = monitor.state(self.slot)
            # A process that has just stopped (a switch back, in the same call) frees the slot
            # a moment after it returns.
            deadline = time.monotonic() + SLOT_RELEASE_S
            while state is not None and state["active"] and time.monotonic() < deadline:
                time.sleep(0.1)
                state = monitor.state(self.slot)
        finally:
            monitor.close()
        if switched(self.store, self.run_record.id) or switching_back(self.store, self.run_record.id):
            raise TerminalError(
                f"run {self.run_record.id} of plan {self.plan.name} has cut over: the target is primary",
                hint="`migrator rollback` switches back first (or `--to start` does both)",
            )
        if state is not None and state["active"]:
            raise TerminalError(
                f"{self.words.named_stream(self.slot)} is in use: a `migrator run` of plan {self.plan.name} is "
                "still following changes",
                hint="stop it (Ctrl-C or SIGTERM; it checkpoints and exits), then run `migrator rollback` again",
            )
        at_risk = {
            name: held
            for name, held in self._collections_before().items()
            if held is not None and held > 0 and not force
        }
        if at_risk:
            # Nothing has been changed yet: refuse before the first step, not half way.
            listed = ", ".join(f"{name} ({held:,} documents)" for name, held in sorted(at_risk.items()))
            self.events.emit(Notice("warn", f"collections that held data before the run are kept: {listed}"))
        return "ok"

    def _forget_reverse(self) -> str:
        writer = self.source.reverse_writer(self.plan.name, reverse_origin_name(self.plan.name))
        try:
            return "removed" if writer.forget() else "none was stored"
        finally:
            writer.close()

    def _drop_cdc_checkpoint(self) -> str:
        removed = self.target.delete_state(cdc_checkpoint_id(self.plan.name))
        return "deleted" if removed else "none was written"

    def _drop_slot(self) -> str:
        dropped = self.source.capture_setup().drop_slot(self.slot)
        return "dropped" if dropped else "did not exist"

    def _drop_publication(self) -> str:
        return drop_publication(self.source, self.plan.name, self.slot, self._publication_created())

    def _release(self) -> str:
        records = [cdc_checkpoint_id(self.plan.name), reverse_marker_id(self.plan.name)]
        return self.target.ownership(self.plan.name).release(self.run_record.id, records)

    def _collection(self, name: str, held: int | None, force: bool) -> str:
        if held == -1:
            return "untouched: the run never copied"
        if held is None:
            self.target.drop_collection(name)
            return "dropped"
        if held == 0:
            removed = self.target.empty_collection(name)
            return f"emptied ({removed:,} documents, migrator's indexes dropped)"
        if force:
            self.target.drop_collection(name)
            return "dropped (--force)"
        return f"kept: it held {held:,} documents before the run"


def publication_created(store: StateStore, run_id: str) -> bool | None:
    """Whether run `run_id` created the publication: None when it did not record it (runs begun
    by an earlier version), False too when the run never reached the point of creating it."""
    checkpoints = store.checkpoints(run_id, "snapshot")
    for c in checkpoints:
        if c.label == SnapshotLabel.SOURCE_BEFORE:
            return not c.detail.get("publication_existed", True)
    for c in checkpoints:
        if c.label == SnapshotLabel.SLOT and "publication_created" in c.detail:
            return bool(c.detail["publication_created"])
    if not any(c.label == SnapshotLabel.TARGET_BEFORE for c in checkpoints):
        return False  # it never reached the snapshot's start: it created nothing
    return None


def publication_step(words: SourceVocabulary, slot: str, publication: str, created: bool | None) -> str:
    """The step that drops the capture objects, as the preview lists it (rollback, finish)."""
    drop = words.teardown(slot, publication)[1]
    if created:
        return f"{drop} (created by the run)"
    kept = "keep " + words.capture(publication)
    if created is None:
        return f"{kept}: the run did not record whether it created it"
    return f"{kept}: the run did not create it"


def drop_publication(source: SourceAdapter, plan_name: str, slot: str, created: bool | None) -> str:
    """Drop the plan's capture objects if the run (whose slot is `slot`) created them and no other
    run of the plan streams through them; what was done (rollback, finish)."""
    words, publication = source.vocabulary, publication_name(plan_name)
    if created is None:
        return (
            f"kept: the run (begun by an earlier migrator) did not record whether it created it; if nothing "
            f"else uses it: {words.drop_capture_hint(publication)}"
        )
    if not created:
        return "kept: the run did not create it"
    slots = source.inspect([]).server.existing_slots
    others = [s for s in slots if s != slot and is_slot_of(plan_name, s)]
    if others:
        return (
            f"kept: another run of plan {plan_name} streams through it ({words.stream} {', '.join(others)})"
        )
    source.capture_setup().drop_publication(publication)
    return "dropped"


RollbackTo = Literal["cutover", "start"]


def roll_back(
    session: Session, *, to: RollbackTo | None, force: bool, preview: bool
) -> RollbackResult | SwitchbackResult | list[Step | SwitchbackStep]:
    """`migrator rollback` (api.rollback documents `to`): after cutover, the switch back
    (operations/rollback_after_cutover.py) first, then, to 'start', this module's Rollback.
    `preview` returns the steps and does nothing."""
    store, source, target = session.open_run()
    plan, events = session.plan, session.events
    undo = Rollback(plan, store, events, source, target)
    run_id = undo.run_record.id
    cut_over = switched(store, run_id) or switching_back(store, run_id)
    chosen = to or ("cutover" if cut_over else "start")
    if chosen == "cutover" and not cut_over:
        raise TerminalError(
            f"run {undo.run_record.id} of plan {plan.name} has not cut over: there is no cutover to undo",
            hint="`migrator rollback` (or --to start) rolls the whole migration back",
        )
    back = Switchback(session.runner(command="migrator rollback")) if cut_over else None
    if preview:
        steps: list[Step | SwitchbackStep] = list(back.steps()) if back is not None else []
        if chosen == "start":
            steps += undo.steps(force=force)
        return steps
    if back is not None:
        switched_back = back.run()  # the runner adds the store's event sink
        if chosen == "cutover":
            return switched_back
    else:
        events.add(StoreSink(store, undo.run_record.id))
        switched_back = None
    result = undo.run(force=force)
    if switched_back is not None:
        result.steps[:0] = [{**s, "name": f"cutover:{s['name']}"} for s in switched_back.steps]
    return result
