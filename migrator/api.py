"""The library's entry points. The CLI calls these; so do tests and applications.

Nothing here prints or exits: results and errors are returned or raised, typed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from migrator.adapters.registry import source_for, target_for
from migrator.engine.events import EventBus, EventSink
from migrator.errors import PreflightFailed
from migrator.phases.preflight import PreflightReport, run_preflight
from migrator.phases.verify import Verifier, VerifyReport
from migrator.plan import Plan, load_plan, plan_json_schema
from migrator.rollback import Rollback, RollbackResult, Step
from migrator.runner import Runner, RunOutcome, StoreSink, Until
from migrator.state import SQLiteStateStore, resolve_state_path
from migrator.status import StatusReport, gather
from migrator.switchover import Switchover, SwitchoverOutcome


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Plan:
    """Load and validate a plan file; raises PlanError naming file, line and key."""
    return load_plan(Path(path), env=env)


def plan(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> PreflightReport:
    """Validate the plan, inspect both databases and run the preflight checks (read-only)."""
    loaded = load(path, env)
    source = source_for(loaded.source.adapter, loaded.source.url.get_secret_value())
    target = target_for(loaded.target.adapter, loaded.target.url.get_secret_value(), loaded.target.database)
    with source, target:
        return run_preflight(loaded, source, target)


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
    'caught-up' once the target has caught up with the source, 'stopped' follows changes
    until `stop` is set. Setting `stop` finishes the work in flight, checkpoints it and
    returns. Events go to `sinks` and to the state store's event log."""
    loaded = load(path, env)
    store_path = resolve_state_path(state, loaded.name)
    source = source_for(loaded.source.adapter, loaded.source.url.get_secret_value())
    target = target_for(loaded.target.adapter, loaded.target.url.get_secret_value(), loaded.target.database)
    with SQLiteStateStore(store_path) as store, source, target:
        runner = Runner(loaded, store, EventBus(*sinks), source, target)
        if stop is not None:
            runner.stop_event = stop
        return runner.run(until)


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
    has applied the source position it was seen at (see migrator/phases/verify.py). With an
    active run, the report is kept in the state store for `status` and the cutover gate.
    `mode`/`sample` override the plan's verify settings; `repair` re-copies what differs."""
    loaded = load(path, env)
    settings = loaded.phases.verify
    overrides: dict[str, Any] = {}
    if mode is not None:
        overrides["mode"] = mode
    if sample is not None:
        overrides["sample"] = sample
        overrides.setdefault("mode", "sample")
    if overrides:
        settings = type(settings).model_validate({**settings.model_dump(), **overrides})
    source = source_for(loaded.source.adapter, loaded.source.url.get_secret_value())
    target = target_for(loaded.target.adapter, loaded.target.url.get_secret_value(), loaded.target.database)
    with SQLiteStateStore(resolve_state_path(state, loaded.name)) as store, source, target:
        report = run_preflight(loaded, source, target, scan_data=False)
        if report.source is None or not report.collections:
            raise PreflightFailed([f"{f.check} {f.subject}: {f.message}" for f in report.failures])
        events = EventBus(*sinks)
        run = store.active_run(loaded.name)
        if run is not None:
            events.add(StoreSink(store, run.id))
        key_types = {
            c.name: [
                str(column.type_name)
                for k in c.document.key
                if (column := report.source.tables[c.table].column(k)) is not None
            ]
            for c in report.collections
        }
        verifier = Verifier(
            loaded, report.collections, source, target, key_types, events, settings=settings, stop=stop
        )
        return verifier.run(repair=repair)


def status(
    path: str | os.PathLike[str],
    *,
    state: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    history: bool = False,
    live: bool = True,
) -> StatusReport:
    """Where the plan's current run (its active run, else its latest) stands: phases, snapshot
    progress, CDC position, lag and retained WAL, last checkpoint, recent errors, the last
    verify report; `history` adds the run's checkpoints. Read-only: it never creates a state
    file. `live` reads the target's checkpoint and the source's slot; a database that cannot be
    reached is reported as such (`report.source.reachable`), never raised, and what the state
    store knows is still reported. `report.run` is None when the plan has no run."""
    loaded = load(path, env)
    return gather(loaded, resolve_state_path(state, loaded.name), history=history, live=live)


def rollback(
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    preview: bool = False,
    state: str | os.PathLike[str] | None = None,
    sinks: Sequence[EventSink] = (),
    env: Mapping[str, str] | None = None,
) -> RollbackResult | list[Step]:
    """Roll the plan's run back to before `migrator run` (before cutover): slot, publication,
    the target collections the run created and its checkpoints go; the run is marked rolled
    back. `preview` returns the steps without doing anything. Resumable: a rollback cut short
    is finished by calling it again."""
    loaded = load(path, env)
    source = source_for(loaded.source.adapter, loaded.source.url.get_secret_value())
    target = target_for(loaded.target.adapter, loaded.target.url.get_secret_value(), loaded.target.database)
    with SQLiteStateStore(resolve_state_path(state, loaded.name)) as store, source, target:
        events = EventBus(*sinks)
        undo = Rollback(loaded, store, events, source, target)
        if preview:
            return undo.steps(force=force)
        events.add(StoreSink(store, undo.run_record.id))
        return undo.run(force=force)


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
    loaded = load(path, env)
    source = source_for(loaded.source.adapter, loaded.source.url.get_secret_value())
    target = target_for(loaded.target.adapter, loaded.target.url.get_secret_value(), loaded.target.database)
    with SQLiteStateStore(resolve_state_path(state, loaded.name)) as store, source, target:
        runner = Runner(loaded, store, EventBus(*sinks), source, target)
        if stop is not None:
            runner.stop_event = stop
        return Switchover(runner).run(follow=follow)
