"""Whether a plan's migration has ended with `migrator finish` (operations/finish.py), or a finish
is under way: what `run`, `cutover` and `rollback` ask before they touch a run
(docs/cutover.md, "Finishing").

A finished run is status 'succeeded' with the 'done' checkpoint of phase 'finish'. A finish cut
short leaves the run active with some of the phase's checkpoints: from its first one (reverse
sync stopped) on, the source no longer follows the target, so a rollback (which needs reverse
sync) and a resumed `migrator run` (whose slot may be gone) are refused until `migrator finish`
is run again.
"""

from __future__ import annotations

from migrator.errors import ChecksFailed
from migrator.state.labels import FinishLabel
from migrator.state.store import RunRecord, StateStore

PHASE = "finish"


def finishing(store: StateStore, run_id: str) -> bool:
    """Whether a finish of run `run_id` has begun (some step of it is recorded)."""
    return bool(store.checkpoints(run_id, PHASE))


def finished_run(store: StateStore, plan_name: str) -> RunRecord | None:
    """The plan's latest run when `migrator finish` ended it, else None."""
    runs = store.runs(plan_name)
    if not runs or runs[-1].status != "succeeded":
        return None
    last = runs[-1]
    done = any(c.label == FinishLabel.DONE for c in store.checkpoints(last.id, PHASE))
    return last if done else None


def refuse_finishing(run: RunRecord, command: str) -> ChecksFailed:
    """The refusal of `command` on a run whose finish was cut short."""
    return ChecksFailed(
        f"`migrator finish` of run {run.id} of plan {run.plan_name} began and was cut short: reverse sync "
        f"is stopped and what the migration kept on the source is being removed, so `{command}` cannot work "
        "on it",
        hint="run `migrator finish PLAN --yes` again: it completes where it stopped",
    )


def refuse_finished(run: RunRecord, command: str) -> ChecksFailed:
    """The refusal of `command` once run `run` has been finished."""
    if command == "migrator rollback":
        return ChecksFailed(
            f"run {run.id} of plan {run.plan_name} was finished ({run.ended_at}): reverse sync stopped then, "
            "so the source no longer holds the target's writes since, and there is nothing to roll back to",
            hint="the target is primary for good; to move back, plan a new migration from the target to the source",
        )
    return ChecksFailed(
        f"run {run.id} of plan {run.plan_name} was finished ({run.ended_at}): the target is primary and holds "
        "the data; a new run would copy the source over the target's newer data",
        hint="to migrate again from the source on purpose, give the new run a state file of its own "
        "(--state NEW_FILE or MIGRATOR_STATE); `migrator status` shows the finished run",
    )
