"""`migrator finish`: end a migration that has cut over, keeping the target (docs/cutover.md,
"Finishing").

After cutover the target is primary, and reverse sync keeps the source a fallback so that
`migrator rollback` stays possible. That costs for as long as it lasts: forward CDC's slot
retains the source's change log (invariant 7, "the slot is a liability"), reverse sync keeps a
checkpoint and a replication origin on the source, and a PostgreSQL target keeps reverse sync's
slot (retaining its WAL) and forward CDC's replication origin (one of the server's
max_replication_slots origin states: adapters/postgres/origin_states.py). Finish removes exactly
those, through the adapters' protocol methods, in this order:

  1. check: the switch names the target (a cutover that finished), no process works on the plan
     (its lease in the state file), forward CDC's slot is not in use, and the target's ownership
     record names this run (or none: a finish cut short after releasing it);
  2. stop reverse sync: recorded only (it runs in `migrator cutover` or `migrator run`, which
     the check found stopped); from here on rollback is refused (operations/finished.py);
  3. drop forward CDC's slot on the source, then its capture objects if the run created them
     (the publication; a MySQL source's markers table), as rollback does;
  4. remove reverse sync's checkpoint and origin on the source (and its table, when empty);
  5. drop reverse sync's feed and forward CDC's origin on the target (nothing on MongoDB);
  6. release the target: the run's records and its ownership record go (the state collection or
     table too, when the run created it and it is empty); every collection and its data stay;
  7. mark the run finished: status 'succeeded', phase 'finish' done.

Each step is recorded as a 'finish' checkpoint once done, so that a finish cut short is completed
by running it again (a recorded step is not redone; each one tolerates what it removes being
gone). A run that finished is found again and reported, not refused. Nothing is dropped that
the run cannot prove it created (docs/architecture.md, "One owner").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from migrator.adapters.base import SourceAdapter, SourceVocabulary, TargetAdapter, TargetVocabulary
from migrator.adapters.registry import target_vocabulary_for
from migrator.engine.events import EventBus, FinishStepDone
from migrator.engine.executor import Executor
from migrator.engine.executor import Step as ExecutorStep
from migrator.errors import ChecksFailed, NoActiveRun, TerminalError
from migrator.operations import rollback
from migrator.operations.abandoned import end_abandoned
from migrator.operations.finished import PHASE, finished_run
from migrator.operations.rollback import drop_publication, publication_created, publication_step
from migrator.operations.rollback_after_cutover.crash import kill_point
from migrator.operations.run import StoreSink
from migrator.operations.session import Session
from migrator.phases.cutover import PHASE as CUTOVER_PHASE
from migrator.phases.cutover import switched, switching_back
from migrator.plan.models import Plan
from migrator.plan.names import (
    cdc_checkpoint_id,
    publication_name,
    reverse_marker_id,
    reverse_origin_name,
    slot_name_pattern,
)
from migrator.state.labels import CutoverLabel, FinishLabel
from migrator.state.store import RunRecord, StateStore

COMMAND = "migrator finish"


@dataclass(frozen=True)
class Step(rollback.Step):
    """One step of finish, as the preview lists it and `Finish.run` performs it
    (docs/architecture.md, "Executable actions"): `effect` is bound only when a finish runs."""

    phase: ClassVar[str] = PHASE


@dataclass
class FinishResult:
    run_id: str
    steps: list[dict[str, str]] = field(default_factory=list)  # name, outcome
    resumed: bool = False
    # The run had been finished before: nothing was done.
    already: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "finished": True,
            "already_finished": self.already,
            "resumed": self.resumed,
            "steps": self.steps,
        }


def listed_steps(
    plan: Plan,
    words: SourceVocabulary,
    target_words: TargetVocabulary,
    slot: str,
    created: bool | None,
    run_id: str = "<run>",
) -> list[Step]:
    """Finish's steps without effects: what the preview, `run --dry-run` and the runbook show."""
    publication = publication_name(plan.name)
    names = [
        (
            "check",
            "check that the switch names the target (cut over), that no migrator process follows the plan "
            "(its lease, its slot) and that the target's ownership record names the run",
            "none",
        ),
        (
            FinishLabel.REVERSE,
            "stop reverse sync for good (it runs in `migrator cutover` / `migrator run`, stopped first): "
            "from here on `migrator rollback` is refused",
            "state",
        ),
        (FinishLabel.SLOT, words.teardown(slot, publication)[0], "source"),
        (FinishLabel.PUBLICATION, publication_step(words, slot, publication, created), "source"),
        (
            FinishLabel.SOURCE_REVERSE,
            f"remove {words.reverse_state} from the source (and the checkpoint table, when no plan's "
            "checkpoint is left in it)",
            "source",
        ),
        (FinishLabel.TARGET_FEED, target_words.finish_feed, "target"),
        (
            FinishLabel.RELEASE,
            f"delete the run's records and its ownership record from {target_words.records} (and that, if the "
            f"run created it and nothing else is left in it); every {target_words.collection} and its "
            f"{target_words.document}s are kept",
            "target",
        ),
        (FinishLabel.DONE, f"mark run {run_id} finished (status 'succeeded')", "state"),
    ]
    return [Step(name, text, side) for name, text, side in names]


def planned_steps(plan: Plan, words: SourceVocabulary) -> list[ExecutorStep]:
    """Finish's steps for a plan without a run (`run --dry-run`)."""
    target_words = target_vocabulary_for(plan.target.adapter)
    return [
        s.executable() for s in listed_steps(plan, words, target_words, slot_name_pattern(plan.name), True)
    ]


@dataclass
class _Finishing:
    """One finish in progress: the steps an earlier, cut-short finish recorded, and the result."""

    done: set[str]
    result: FinishResult


class Finish:
    def __init__(
        self, plan: Plan, store: StateStore, events: EventBus, source: SourceAdapter, target: TargetAdapter
    ) -> None:
        self.plan = plan
        self.store = store
        self.events = events
        self.source = source
        self.target = target
        self.finished = finished_run(store, plan.name)
        self.run_record = self.finished or self._active_run()
        self.slot = self.run_record.slot
        self.created = publication_created(store, self.run_record.id)
        self._said: dict[str, str] = {}
        self.executor = Executor.live()

    def _active_run(self) -> RunRecord:
        active = self.store.active_run(self.plan.name)
        if active is None:
            where = getattr(self.store, "path", "this state file")
            raise NoActiveRun(
                f"plan {self.plan.name} has no run to finish in {where}",
                hint="`migrator status` lists the plan's runs; finish ends a migration that has cut over",
            )
        return active

    def steps(self, finishing: _Finishing | None = None) -> list[Step]:
        """The steps in order: listed (the preview), or with effects bound to `finishing`."""
        listed = listed_steps(
            self.plan,
            self.source.vocabulary,
            self.target.vocabulary,
            self.slot,
            self.created,
            self.run_record.id,
        )
        self._said = {s.name: s.description for s in listed}
        if finishing is None:
            return listed
        effects: dict[str, Callable[[], str]] = {
            "check": self._check,
            FinishLabel.REVERSE: self._stop_reverse,
            FinishLabel.SLOT: self._drop_slot,
            FinishLabel.PUBLICATION: lambda: drop_publication(
                self.source, self.plan.name, self.slot, self.created
            ),
            FinishLabel.SOURCE_REVERSE: self._forget_reverse,
            FinishLabel.TARGET_FEED: self._drop_target_feed,
            FinishLabel.RELEASE: self._release,
            FinishLabel.DONE: self._mark_finished,
        }
        return [
            Step(
                s.name,
                s.description,
                s.side,
                functools.partial(self._perform, s.name, effects[s.name], finishing),
            )
            for s in listed
        ]

    # -- doing it --------------------------------------------------------------------------------

    def run(self) -> FinishResult:
        run_id = self.run_record.id
        if self.finished is not None:
            outcome = f"run {run_id} was finished before ({self.finished.ended_at}): nothing left to do"
            self.events.emit(FinishStepDone(FinishLabel.DONE, outcome))
            return FinishResult(run_id, [{"name": FinishLabel.DONE, "outcome": outcome}], already=True)
        done = {c.label for c in self.store.checkpoints(run_id, PHASE)}
        finishing = _Finishing(done, FinishResult(run_id, resumed=bool(done)))
        # The steps the preview lists, performed (docs/architecture.md, "Executable actions").
        self.executor.perform_steps([s.executable() for s in self.steps(finishing)])
        return finishing.result

    def _perform(self, name: str, effect: Callable[[], str], finishing: _Finishing) -> str:
        """A step, unless a finish cut short recorded it done; recorded once done (the check is
        always made, never recorded). MIGRATOR_TEST_KILL_AT=finish:NAME kills the process between
        the step's action and its checkpoint (the kill -9 tests only)."""
        # 'done' is always made: a crash between its checkpoint and the run's status left it half done.
        if name in finishing.done and name not in ("check", FinishLabel.DONE):
            outcome = "done before (resumed finish)"
        else:
            outcome = effect()
            if name not in ("check", FinishLabel.DONE):  # 'done' records itself (_mark_finished)
                kill_point(f"{PHASE}:{name}")
                self.store.add_checkpoint(self.run_record.id, PHASE, name, "", {"outcome": outcome})
        finishing.result.steps.append({"name": name, "outcome": outcome})
        self.events.emit(FinishStepDone(name, outcome, self._said.get(name, "")))
        return outcome

    def _check(self) -> str:
        run_id, plan = self.run_record.id, self.plan.name
        # No other process works on this plan through this state file (refused at once, naming it).
        self.store.hold(plan, COMMAND)
        self.check_cut_over()
        owner = self.target.ownership(plan).read()
        if owner is not None and owner.run_id != run_id:
            raise self.target.refusal(owner, this_run=run_id)
        # A transaction a killed process of the run left open would hold what finish removes.
        end_abandoned(self.target, plan, run_id, self.events)
        monitor = self.source.monitor()
        try:
            state = monitor.state(self.slot)
        finally:
            monitor.close()
        if state is not None and state["active"]:
            words = self.source.vocabulary
            raise TerminalError(
                f"{words.named_stream(self.slot)} is in use: a migrator process of plan {plan} still follows changes",
                hint="stop it (SIGTERM: it checkpoints and exits), then run `migrator finish` again",
            )
        return "ok"

    def check_cut_over(self) -> None:
        """Refuse (ChecksFailed) unless the run's cutover finished and the switch names the target;
        read from the state store only (the preview asks it too, before asking the operator)."""
        run_id, plan = self.run_record.id, self.plan.name
        if switching_back(self.store, run_id) or not switched(self.store, run_id):
            raise ChecksFailed(
                f"run {run_id} of plan {plan} has not cut over (the switch names the source): finish keeps the "
                "target, which is not primary",
                hint="cut over first (`migrator cutover`); to end the migration keeping the source instead, "
                "`migrator rollback --to start`",
            )
        if not self._cutover_done():
            raise ChecksFailed(
                f"the cutover of run {run_id} of plan {plan} flipped the switch but did not finish",
                hint="run `migrator cutover PLAN --exit` again: it resumes after the flip; then `migrator finish`",
            )

    def _cutover_done(self) -> bool:
        checkpoints = self.store.checkpoints(self.run_record.id, CUTOVER_PHASE)
        flips = [c.id for c in checkpoints if c.label == CutoverLabel.SWITCHED]
        return any(c.label == CutoverLabel.DONE and c.id > max(flips) for c in checkpoints)

    def _drop_slot(self) -> str:
        return "dropped" if self.source.capture_setup().drop_slot(self.slot) else "did not exist"

    def _forget_reverse(self) -> str:
        writer = self.source.reverse_writer(self.plan.name, reverse_origin_name(self.plan.name))
        try:
            return "removed" if writer.forget(drop_empty=True) else "none was stored"
        finally:
            writer.close()

    def _drop_target_feed(self) -> str:
        dropped = self.target.drop_reverse_feed(self.plan.name)
        return "dropped " + ", ".join(dropped) if dropped else "nothing to drop"

    def _release(self) -> str:
        records = [cdc_checkpoint_id(self.plan.name), reverse_marker_id(self.plan.name)]
        return self.target.ownership(self.plan.name).release(self.run_record.id, records)

    def _stop_reverse(self) -> str:
        self.store.set_phase(self.run_record.id, PHASE, "running")
        return "reverse sync stopped for good (no process was running it)"

    def _mark_finished(self) -> str:
        """The 'done' checkpoint before the run's status: a crash between the two leaves an active
        run that `finished_run` does not know yet, whose next finish comes here again."""
        run_id = self.run_record.id
        outcome = f"run {run_id} finished: the target is primary for good"
        for phase in self.store.phases(run_id):
            if phase.status == "running" and phase.name != PHASE:
                self.store.set_phase(run_id, phase.name, "done")  # forward CDC ends here
        self.store.set_phase(run_id, PHASE, "done")
        if not any(c.label == FinishLabel.DONE for c in self.store.checkpoints(run_id, PHASE)):
            self.store.add_checkpoint(run_id, PHASE, FinishLabel.DONE, "", {"outcome": outcome})
        kill_point(f"{PHASE}:{FinishLabel.DONE}")
        self.store.finish_run(run_id, "succeeded")
        return outcome


def finish(session: Session, *, preview: bool) -> FinishResult | list[Step]:
    """`migrator finish` (api.finish): `preview` returns the steps and does nothing."""
    store, source, target = session.open_run()
    done = Finish(session.plan, store, session.events, source, target)
    if preview:
        if done.finished is not None:
            return []
        done.check_cut_over()  # refused before the operator is asked
        return done.steps()
    if done.finished is None:
        session.events.add(StoreSink(store, done.run_record.id))
    return done.run()
