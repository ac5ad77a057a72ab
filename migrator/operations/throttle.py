"""`migrator throttle`: change the plan's active run while it runs, through its state store
only (no database is contacted); engine/throttle.py holds the controls and applies them."""

from __future__ import annotations

from typing import Any

from migrator.engine.events import ControlsChanged, EventBus
from migrator.engine.throttle import ControlsResult
from migrator.errors import NoActiveRun
from migrator.operations.run import StoreSink
from migrator.operations.session import Session


def throttle(session: Session, changes: dict[str, Any]) -> ControlsResult:
    """Write `changes` (engine.throttle.control_changes) to the active run's controls and keep
    them in its event log; NoActiveRun when the plan has no active run."""
    no_run = NoActiveRun(
        f"plan {session.plan.name} has no active run to throttle",
        hint="`migrator run` starts one (and --state or MIGRATOR_STATE name its state file)",
    )
    if not session.state_path.exists():
        raise no_run
    store = session.open_store()
    run = store.active_run(session.plan.name)
    if run is None:
        raise no_run
    controls = {c.name: c.value for c in store.set_controls(run.id, changes)}
    EventBus(StoreSink(store, run.id)).emit(ControlsChanged(changes, controls))
    return ControlsResult(run.id, changes, controls)
