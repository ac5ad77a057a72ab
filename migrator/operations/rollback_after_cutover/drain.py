"""Draining both directions during the switch back: reverse sync until it has applied every
write made on the target before now, and forward CDC until it has applied a marker committed
on the source now."""

from __future__ import annotations

from migrator.engine.context import RunContext
from migrator.errors import TerminalError
from migrator.operations.follow import CdcFollower
from migrator.phases.cdc import wait_until_applied
from migrator.phases.cutover import MARKER_PREFIX
from migrator.phases.reverse import ReverseSync


def drain(reverse: ReverseSync, follower: CdcFollower) -> str:
    result = reverse.run("caught-up")
    follower.raise_if_failed()
    if not result.caught_up:
        raise TerminalError("reverse sync stopped before it caught up")
    return f"{result.documents} document(s) written back ({result.rows} row change(s))"


def forward_marker(ctx: RunContext, follower: CdcFollower, deadline: float) -> bool:
    """Whether forward CDC applied a marker committed now by the monotonic `deadline` (its
    observer then holds every document a late source write touched)."""
    monitor = ctx.source.monitor()
    try:
        marker = ctx.source.positions.parse(monitor.heartbeat(MARKER_PREFIX, f"{ctx.run.id}:rollback"))
    finally:
        monitor.close()
    return wait_until_applied(ctx.target, ctx.plan.name, marker, deadline, check=follower.raise_if_failed)
