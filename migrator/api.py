"""The library's entry points. The CLI calls these; so do tests and applications.

Each opens a Session (migrator/operations/session.py: the plan, its state store, event sinks and
both databases, opened once) and calls the command's code over it, as alembic's command.py does.
Nothing here prints or exits: results and errors are returned or raised, typed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrator.engine.events import EventSink
from migrator.operations.run import RunOutcome, Until, ready_preflight
from migrator.operations.session import Session
from migrator.phases.preflight import PreflightReport, run_preflight
from migrator.plan import Plan, load_plan, plan_json_schema
from migrator.plan.loader import required_variables
from migrator.state import STATE_ENV

# Each command imports what it runs when it runs, so that `migrator run` does not load the
# cutover, rollback, status or verify code (docs/architecture.md, "Start-up imports").
if TYPE_CHECKING:
    from migrator.engine.throttle import ControlsResult
    from migrator.operations.cutover import SwitchoverOutcome
    from migrator.operations.dry_run import DryRunReport
    from migrator.operations.finish import FinishResult
    from migrator.operations.finish import Step as FinishStep
    from migrator.operations.init import InitResult
    from migrator.operations.rollback import RollbackResult, RollbackTo, Step
    from migrator.operations.rollback_after_cutover import SwitchbackResult, SwitchbackStep
    from migrator.operations.status import StatusReport
    from migrator.phases.verify import VerifyReport


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Plan:
    """Load and validate a plan file; raises PlanError naming file, line and key."""
    return load_plan(Path(path), env=env)


def plan(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> PreflightReport:
    """Validate the plan, inspect both databases and run the preflight checks (read-only)."""
    with Session(path, env=env) as session:
        return run_preflight(session.plan, *session.connect())


def init(
    url: str,
    *,
    tables: Sequence[str] = (),
    target_url: str | None = None,
    database: str | None = None,
    plan_dir: str | os.PathLike[str] = ".",
) -> InitResult:
    """Inspect the source at `url` (read-only) and propose a plan: `result.text` is the plan file,
    with no password in it (migrator/operations/init.py)."""
    from migrator.operations.init import init as _init  # only `migrator init` needs it

    return _init(url, tables=tables, target_url=target_url, database=database, plan_dir=plan_dir)


def schema() -> dict[str, Any]:
    """JSON Schema of plan format v1."""
    return plan_json_schema()


def run(
    path: str | os.PathLike[str],
    *,
    until: Until = "stopped",
    state: str | os.PathLike[str] | None = None,
    sinks: Sequence[EventSink] = (),
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> RunOutcome:
    """Run (or resume) the plan's migration. `until`: 'snapshot' stops after the copy,
    'caught-up' once the target has caught up with the source, 'verified' once caught up and
    a verify pass of the live migration is done (`outcome.verify`), 'stopped' follows changes
    until `stop` is set. Setting `stop` finishes the work in flight, checkpoints it and
    returns. Events go to `sinks` and to the state store's event log."""
    with Session(path, env=env, state=state, sinks=sinks) as session:
        source, target = session.connect()
        # Preflight before the state file is opened: a plan refused leaves no state file and no
        # lock file behind where there were none (docs/architecture.md, "State store").
        report = ready_preflight(session.plan, source, target)
        return session.runner(stop=stop).run(until, preflight=report)


def dry_run(
    path: str | os.PathLike[str],
    *,
    sample_rows: int | None = None,
    env: Mapping[str, str] | None = None,
) -> DryRunReport:
    """What `run` would do, written nowhere (`migrator run --dry-run`): preflight, each phase's
    actions recorded by a recording executor, sample documents mapped from the first
    `sample_rows` source rows of each collection, key collisions among them, and an estimate of
    each phase's duration from the measured sample pace. Opens no state store and begins no run;
    creates nothing on the source and no collection. `sample_rows` None: SAMPLE_ROWS of
    migrator/operations/dry_run.py."""
    from migrator.operations.dry_run import SAMPLE_ROWS
    from migrator.operations.dry_run import dry_run as _dry_run

    rows = SAMPLE_ROWS if sample_rows is None else sample_rows
    with Session(path, env=env) as session:
        return _dry_run(session.plan, *session.connect(), sample_rows=rows)


def verify(
    path: str | os.PathLike[str],
    *,
    mode: str | None = None,
    sample: float | None = None,
    repair: bool = False,
    state: str | os.PathLike[str] | None = None,
    sinks: Sequence[EventSink] = (),
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> VerifyReport:
    """Compare source and target through the plan's mapping (read-only unless `repair`).

    Safe while `migrator run` follows changes: a difference is reported only once the target
    has applied the source position it was seen at (see migrator/phases/verify.py). With nothing
    following, the target must be at rest at the source's position: otherwise CdcNotFollowing
    (CdcFailed, naming CDC's recorded error) is raised within seconds. Transient errors are
    retried for minutes, then raised. `report.verdict` is 'equal', 'different' or 'incomplete'
    (documents not pinned down). With an active run, the report is kept in the state store for
    `status` and the cutover gate. `mode`/`sample` override the plan's verify settings; `repair`
    re-copies what differs."""
    from migrator.operations.verify import verify as _verify
    from migrator.operations.verify import verify_settings

    with Session(path, env=env, state=state, sinks=sinks) as session:
        settings = verify_settings(session, mode=mode, sample=sample)
        return _verify(session, settings, repair=repair, stop=stop)


def status(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    history: bool = False,
    live: bool = True,
) -> StatusReport:
    """Where the plan's current run (its active run, else its latest) stands: phases, snapshot
    progress, CDC position, lag and the change log the slot retains, last checkpoint, recent errors, the last
    verify report; `history` adds the run's checkpoints. Read-only: it never creates a state
    file. `live` reads the target's checkpoint and the source's slot; a database that cannot be
    reached is reported as such (`report.source.reachable`), never raised, and what the state
    store knows is still reported. `report.run` is None when the plan has no run."""
    from migrator.operations.status import gather

    with Session(path, env=env, state=state) as session:
        explicit = state not in (None, "") or bool(os.environ.get(STATE_ENV))
        return gather(session.plan, session.state_path, history=history, live=live, explicit=explicit)


def rollback(
    path: str | os.PathLike[str],
    *,
    to: RollbackTo | None = None,
    force: bool = False,
    preview: bool = False,
    state: str | os.PathLike[str] | None = None,
    sinks: Sequence[EventSink] = (),
    env: Mapping[str, str] | None = None,
) -> RollbackResult | SwitchbackResult | list[Step | SwitchbackStep]:
    """Roll the plan's run back. `to`:
    - 'cutover' (the default for a run that has cut over): make the source primary again with
      nothing lost (migrator/operations/rollback_after_cutover.py: fence the target, drain
      reverse sync, verify, flip back, unfence); forward CDC goes on, as before `migrator cutover`;
    - 'start' (the default before cutover): back to before `migrator run`: the run's slot
      and capture objects on the source (SourceVocabulary names them), the target collections the run created and its checkpoints go, the run is marked rolled
      back (after cutover, the switch back comes first).
    `preview` returns the steps without doing anything. Resumable: a rollback cut short is
    finished by calling it again."""
    from migrator.operations.rollback import roll_back

    with Session(path, env=env, state=state, sinks=sinks) as session:
        return roll_back(session, to=to, force=force, preview=preview)


def finish(
    path: str | os.PathLike[str],
    *,
    preview: bool = False,
    state: str | os.PathLike[str] | None = None,
    sinks: Sequence[EventSink] = (),
    env: Mapping[str, str] | None = None,
) -> FinishResult | list[FinishStep]:
    """End a migration that has cut over, keeping the target (migrator/operations/finish.py):
    reverse sync stops for good, forward CDC's slot and capture objects and reverse sync's state
    go from the source, reverse sync's feed and forward CDC's origin from the target, the run's
    records from the target (its collections and their data stay), and the run is marked
    finished. Refused before cutover and while a process follows the plan. `preview` returns the
    steps without doing anything. Resumable: a finish cut short is completed by calling it
    again; a finished run is reported as such."""
    from migrator.operations.finish import finish as finish_run

    with Session(path, env=env, state=state, sinks=sinks) as session:
        return finish_run(session, preview=preview)


def cutover(
    path: str | os.PathLike[str],
    *,
    follow: bool = False,
    state: str | os.PathLike[str] | None = None,
    sinks: Sequence[EventSink] = (),
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> SwitchoverOutcome:
    """Cut the plan's run over to the target (see migrator/phases/cutover.py): gate, fence,
    marker, final check, flip, reverse sync, unfence; the freeze is measured. Runs CDC itself
    (stop a following `migrator run` first). `follow`: afterwards keep both directions flowing
    until `stop` is set; otherwise return once the writes the fence held reached the target."""
    from migrator.operations.cutover import Switchover

    with Session(path, env=env, state=state, sinks=sinks) as session:
        session.open_run()
        return Switchover(session.runner(command="migrator cutover", stop=stop)).run(follow=follow)


def runbook(
    path: str | os.PathLike[str],
    *,
    offline: bool = False,
    env: Mapping[str, str] | None = None,
) -> str:
    """The plan's runbook for operators, as Markdown (migrator/runbook/): summary, prerequisites
    with the values preflight found, each step's command, duration, signals, go / no-go and
    rollback, and on-call thresholds. Passwords are masked; the same inputs give the same text.

    By default preflight runs against both databases, read-only, as `plan` runs it. `offline`
    contacts no database: values only the databases know read "(checked at run time)", and a
    URL whose ${VAR} is unset is shown as written instead of failing."""
    from migrator.runbook import build_runbook

    if not offline:
        with Session(path, env=env) as session:
            report = run_preflight(session.plan, *session.connect())
        return build_runbook(session.plan, str(path), report)
    environ = dict(os.environ if env is None else env)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""  # load() reports the file's problem, located
    for name in required_variables(text):
        if not environ.get(name):
            environ[name] = "${" + name + "}"  # shown as written: the runbook needs no URL offline
    return build_runbook(load(path, environ), str(path), None)


def throttle(
    path: str | os.PathLike[str],
    *,
    pause: bool | None = None,
    chunk_rows: int | None = None,
    max_lag: float | None = None,
    reset: bool = False,
    state: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> ControlsResult:
    """Change the plan's active run while it runs (engine/throttle.py), through the state store
    only (no database is contacted): `pause` True holds the snapshot and CDC until resumed
    (False); `chunk_rows` sets the snapshot's copy step (or its chunk size, while the chunks are
    not planned yet); `max_lag` (seconds) overrides cdc.max_lag; `reset` drops every override
    first. A running `migrator run` applies it within phases.throttle.check_interval; one
    started later applies it from its start. The change is kept in the run's event log."""
    from migrator.engine.throttle import control_changes
    from migrator.operations.throttle import throttle as _throttle

    with Session(path, env=env, state=state) as session:
        changes = control_changes(pause=pause, chunk_rows=chunk_rows, max_lag=max_lag, reset=reset)
        return _throttle(session, changes)
