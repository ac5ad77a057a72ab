"""The steps of rollback after cutover, as --dry-run and the runbook list them, and the result
`migrator rollback` returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.engine.executor import Step

# The executor's phase for these steps (a rollback to start performs its own 'rollback' steps after).
PHASE = "switchback"


@dataclass(frozen=True)
class SwitchbackStep:
    """One step of the switch back, as the preview lists it and the switch back performs it
    (docs/architecture.md, "Executable actions"): `effect` is bound only when it runs."""

    name: str
    description: str
    side: str  # what it changes: 'source', 'target', 'switch', 'state' or 'none'
    effect: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def executable(self) -> Step:
        # The switch is a file, a command or a row or document on either side: outside the
        # databases migrator writes as such.
        writes = "external" if self.side == "switch" else self.side
        return Step.of(PHASE, self.name, self.description, writes, self.effect)


@dataclass
class SwitchbackResult:
    run_id: str
    steps: list[dict[str, str]] = field(default_factory=list)
    resumed: bool = False
    freeze_ms: float | None = None
    verify: dict[str, Any] | None = None  # the pass while writes went on (may show what was moving)
    recheck: dict[str, Any] | None = None  # under the fence, at rest: what decides
    abandoned: list[dict[str, Any]] = field(default_factory=list)  # attempts over the budget
    sequences: list[str] = field(default_factory=list)  # what the source's sequences were set to

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "resumed": self.resumed,
            "to": "before cutover",
            "freeze_ms": self.freeze_ms,
            "verify": self.verify,
            "recheck": self.recheck,
            "abandoned": self.abandoned,
            "sequences": self.sequences,
            "steps": self.steps,
        }


def steps_of(
    ctx_plan_name: str,
    settings: Any,
    collections: list[str],
    switch: str,
    max_lag: float,
    reverse_state: str,
    effects: Mapping[str, Callable[[], Any]] | None = None,
) -> list[SwitchbackStep]:
    """The steps in order: listed (the preview), and with `effects` (by step name) when the
    switch back performs them; a step without one is said, done inside another's effect.
    `reverse_state`: what reverse sync keeps on the source, in its words (SourceVocabulary)."""
    fence = (
        f"run the fence's pause command ({' '.join(settings.fence.pause or [])}, MIGRATOR_DIRECTION=back)"
        if settings.fence.kind == "command"
        else f"refuse writes on {', '.join(collections)} with a validator (error 121: applications retry)"
    )
    effects = effects or {}

    def bound(name: str) -> Callable[[], Any] | None:
        return effects.get(name)

    return [
        SwitchbackStep(
            "check",
            "check that no process follows the plan and that the run is cut over",
            "none",
            bound("check"),
        ),
        SwitchbackStep(
            "verify",
            "verify source against target through the mapping while writes go on",
            "none",
            bound("verify"),
        ),
        SwitchbackStep(
            "lag",
            f"reverse sync applies a fresh marker within cdc.max_lag {max_lag:g} s, and the drain and recheck "
            f"are predicted to fit max_write_freeze {settings.max_write_freeze:g} s (else no fence is taken)",
            "source",
            bound("lag"),
        ),
        SwitchbackStep("fence", fence, "target", bound("fence")),
        SwitchbackStep(
            "drain", "reverse sync applies every write made on the target", "source", bound("drain")
        ),
        SwitchbackStep(
            "recheck",
            "recheck at rest what changed during the pass; drain and recheck within max_write_freeze "
            f"{settings.max_write_freeze:g} s, else lift the fence and retry (up to {settings.retries} more)",
            "none",
            bound("recheck"),
        ),
        SwitchbackStep(
            "sequences",
            f"set the source's sequences (if it has any) {settings.sequence_margin} steps past the target's last "
            "values, never back",
            "source",
            bound("sequences"),
        ),
        SwitchbackStep(
            "flipping",
            "record that the switch is about to flip (a crash then finishes it)",
            "state",
            bound("flipping"),
        ),
        SwitchbackStep("flip", f"flip {switch} back to the source", "switch", bound("flip")),
        SwitchbackStep(
            "drain-again",
            "reverse sync applies what reached the target until the flip",
            "source",
            bound("drain-again"),
        ),
        SwitchbackStep("unfence", "lift the target fence", "target", bound("unfence")),
        SwitchbackStep("forget", f"remove {reverse_state}", "source", bound("forget")),
        SwitchbackStep(
            "hook",
            "run on_rollback" if settings.on_rollback else "no on_rollback hook",
            "none",
            bound("hook"),
        ),
        SwitchbackStep(
            "done",
            f"mark plan {ctx_plan_name}'s cutover rolled back (forward CDC goes on; rollback again removes "
            "the migration)",
            "state",
            bound("done"),
        ),
    ]
