"""A phase test's run as the owner of its target: the claim `migrator run` records before any phase
runs (docs/architecture.md, "One owner"), for tests that run phases directly."""

from __future__ import annotations

from typing import Any


def claim(target: Any, plan_name: str, run: Any) -> None:
    """Record `run` (the state store's) as the owner of `target` for `plan_name`."""
    target.ownership(plan_name).claim(
        run_id=run.id,
        started_at="2026-01-01T00:00:00Z",
        host="test",
        state="test",
        slot=run.slot,
        publication="p",
    )
