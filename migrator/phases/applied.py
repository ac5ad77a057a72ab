"""Waiting for CDC to have applied a source position: what cutover, rollback and the checks
before the fence wait on (docs/architecture.md, "A change's path": the checkpoint is written
with the data)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from migrator.plan.names import cdc_checkpoint_id


def wait_until_applied(
    target: Any,
    plan_name: str,
    marker: int,
    deadline: float,
    *,
    stop: threading.Event | None = None,
    check: Callable[[], None] | None = None,
    poll_s: float = 0.01,
) -> bool:
    """Whether CDC's checkpoint on the target reached `marker` (a source position, such as a
    marker's from pg_logical_emit_message) by the monotonic `deadline`: False on timeout or
    when `stop` is set. `check` runs at each poll (to raise what stopped the CDC being waited
    for). What cutover, rollback and the checks before the fence wait on."""
    checkpoint = cdc_checkpoint_id(plan_name)
    while (target.applied_position(checkpoint) or 0) < marker:
        if check is not None:
            check()
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            return False
        time.sleep(poll_s)
    return True
