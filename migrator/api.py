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
from migrator.phases.preflight import PreflightReport, run_preflight
from migrator.plan import Plan, load_plan, plan_json_schema
from migrator.runner import Runner, RunOutcome, Until
from migrator.state import SQLiteStateStore, resolve_state_path


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
