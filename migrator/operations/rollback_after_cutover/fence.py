"""The target's write fence for the switch back: a validator the target adapter sets, or the
operator's fence command with MIGRATOR_DIRECTION=back; both lifted back to the options recorded
before the first engagement (`before`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from migrator.adapters.base import TargetWriteFence
from migrator.engine.context import RunContext
from migrator.phases.cutover import CommandFence


def target_fence(ctx: RunContext) -> TargetWriteFence:
    f = ctx.plan.phases.cutover.fence
    if f.kind == "command":
        return BackCommandFence(f.pause or [], f.resume or [], ctx.plan.name)
    return ctx.target.write_fence([c.name for c in ctx.collections], ctx.plan.name)


def lift(fence: TargetWriteFence, before: dict[str, Any]) -> float | None:
    """Lift the fence; how long this process held it (None: engaged by an earlier one)."""
    return fence.lift(before)


class BackCommandFence(CommandFence):
    """The operator's fence command, pausing the target's writers (MIGRATOR_DIRECTION=back), as
    a TargetWriteFence: it records no options, and lifting it always runs the resume command
    (a resumed rollback resumes writers that an earlier process paused)."""

    def __init__(self, pause: list[str], resume: list[str], plan: str) -> None:
        super().__init__(pause, resume, plan, direction="back")

    def lift(self, before: Mapping[str, Mapping[str, Any]] | None = None) -> float | None:
        self.engaged_at = self.engaged_at or time.monotonic()
        return super().lift()

    def own_options(self) -> dict[str, Any]:
        return {}  # nothing to restore for a command fence
