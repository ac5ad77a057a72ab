"""The steps of rollback after cutover, as --dry-run and the runbook list them, and the result
`migrator rollback` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SwitchbackStep:
    name: str
    description: str
    side: str  # what it changes: 'source', 'target', 'switch', 'state' or 'none'


@dataclass
class SwitchbackResult:
    run_id: str
    steps: list[dict[str, str]] = field(default_factory=list)
    resumed: bool = False
    freeze_ms: float | None = None
    verify: dict[str, Any] | None = None  # the pass while writes went on (may show what was moving)
    recheck: dict[str, Any] | None = None  # under the fence, at rest: what decides
    abandoned: list[dict[str, Any]] = field(default_factory=list)  # attempts over the budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "resumed": self.resumed,
            "to": "before cutover",
            "freeze_ms": self.freeze_ms,
            "verify": self.verify,
            "recheck": self.recheck,
            "abandoned": self.abandoned,
            "steps": self.steps,
        }


def steps_of(
    ctx_plan_name: str, settings: Any, collections: list[str], switch: str, max_lag: float
) -> list[SwitchbackStep]:
    fence = (
        f"run the fence's pause command ({' '.join(settings.fence.pause or [])}, MIGRATOR_DIRECTION=back)"
        if settings.fence.kind == "command"
        else f"refuse writes on {', '.join(collections)} with a validator (error 121: applications retry)"
    )
    return [
        SwitchbackStep(
            "check", "check that no process follows the plan and that the run is cut over", "none"
        ),
        SwitchbackStep(
            "verify", "verify source against target through the mapping while writes go on", "none"
        ),
        SwitchbackStep(
            "lag",
            f"reverse sync applies a fresh marker within cdc.max_lag {max_lag:g} s, and the drain and recheck "
            f"are predicted to fit max_write_freeze {settings.max_write_freeze:g} s (else no fence is taken)",
            "source",
        ),
        SwitchbackStep("fence", fence, "target"),
        SwitchbackStep("drain", "reverse sync applies every write made on the target", "source"),
        SwitchbackStep(
            "recheck",
            "recheck at rest what changed during the pass; drain and recheck within max_write_freeze "
            f"{settings.max_write_freeze:g} s, else lift the fence and retry (up to {settings.retries} more)",
            "none",
        ),
        SwitchbackStep(
            "flipping", "record that the switch is about to flip (a crash then finishes it)", "state"
        ),
        SwitchbackStep("flip", f"flip {switch} back to the source", "switch"),
        SwitchbackStep(
            "drain-again", "reverse sync applies what reached the target until the flip", "source"
        ),
        SwitchbackStep("unfence", "lift the target fence", "target"),
        SwitchbackStep("forget", "remove reverse sync's checkpoint and replication origin", "source"),
        SwitchbackStep("hook", "run on_rollback" if settings.on_rollback else "no on_rollback hook", "none"),
        SwitchbackStep(
            "done",
            f"mark plan {ctx_plan_name}'s cutover rolled back (forward CDC goes on; rollback again removes "
            "the migration)",
            "state",
        ),
    ]
