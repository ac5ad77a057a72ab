"""Actions, and the one place that decides whether an action is done or only recorded.

A phase describes what it would do as `Action`s (its `plan`, pure: from the plan and the
inspection results). An `Executor` then performs actions: a live one runs each action's
effect; a recording one (`migrator run --dry-run`) runs only actions that write nothing
(reads: inspection, sampling) and records every other one instead of running it. The
journal of both says what was done and what would have been (alembic's offline mode:
one method that either executes or records; DESIGN.md section 7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

T = TypeVar("T")

# What an action changes: a database, the state store, something outside migrator (a command
# or a file the plan names), or nothing at all (a read).
Writes = Literal["source", "target", "state", "external", "none"]
WRITES: tuple[str, ...] = get_args(Writes)
Mode = Literal["live", "recording"]


@dataclass(frozen=True)
class Action:
    """One step a phase would take: what --dry-run and the runbook show."""

    phase: str
    description: str
    writes: str  # one of WRITES

    def __post_init__(self) -> None:
        if self.writes not in WRITES:
            raise ValueError(f"action writes {self.writes!r}: expected one of {', '.join(WRITES)}")

    def to_dict(self) -> dict[str, str]:
        return {"phase": self.phase, "description": self.description, "writes": self.writes}


@dataclass(frozen=True)
class Step:
    """An executable action (pgroll's DBAction): what it is (`action`: phase, description, what it
    writes) together with what doing it means (`effect`). A phase builds its steps in one place,
    from the plan view and, when it runs, from itself: `run` performs them, `--dry-run` and the
    runbook list the same objects' actions, so what is said cannot drift from what is done
    (docs/architecture.md, "Executable actions").

    `id` names the step across the three (phase.step, e.g. "snapshot.create-slot"). A step built
    for listing only (no phase object to act on) has no effect."""

    id: str
    action: Action
    effect: Callable[[], Any] | None = None

    @classmethod
    def of(
        cls, phase: str, name: str, description: str, writes: str, effect: Callable[[], Any] | None = None
    ) -> Step:
        return cls(f"{phase}.{name}", Action(phase, description, writes), effect)


def actions(steps: list[Step]) -> list[Action]:
    """What the steps would do, in order: the list --dry-run and the runbook show."""
    return [s.action for s in steps]


@dataclass(frozen=True)
class Entry:
    """An action the executor was given, and whether its effect ran."""

    action: Action
    performed: bool
    step: str = ""  # the Step's id, when the action was given as a step

    def to_dict(self) -> dict[str, Any]:
        return {**self.action.to_dict(), "performed": self.performed}


@dataclass
class Executor:
    """`live` runs every action's effect; `recording` runs only those that write nothing."""

    mode: Mode = "live"
    journal: list[Entry] = field(default_factory=list)

    @classmethod
    def live(cls) -> Executor:
        return cls("live")

    @classmethod
    def recording(cls) -> Executor:
        return cls("recording")

    @property
    def recording_only(self) -> bool:
        return self.mode == "recording"

    def perform(self, action: Action, effect: Callable[[], T] | None = None, *, step: str = "") -> T | None:
        """Run `effect` for `action`, or only record the action: the single place where the
        choice is made. Returns the effect's result, or None when it did not run."""
        run = effect is not None and (self.mode == "live" or action.writes == "none")
        self.journal.append(Entry(action, performed=run, step=step))
        if not run:
            return None
        assert effect is not None
        return effect()

    def perform_steps(self, steps: list[Step]) -> list[Any]:
        """Perform `steps` in order (each as `perform` would); their results, None where a step
        only was recorded or has no effect."""
        return [self.perform(step.action, step.effect, step=step.id) for step in steps]

    def read(self, action: Action, effect: Callable[[], T]) -> T:
        """Perform a read: an action that writes nothing, whose result the caller needs in
        either mode. Refuses an action that declares a write."""
        if action.writes != "none":
            raise ValueError(f"not a read: {action.description!r} writes {action.writes}")
        result = self.perform(action, effect)
        return result  # type: ignore[return-value]  # a read always runs

    def recorded(self, phase: str | None = None) -> list[Action]:
        """Actions given but not performed (all of them, or one phase's), in order."""
        return [
            e.action for e in self.journal if not e.performed and (phase is None or e.action.phase == phase)
        ]

    def performed(self) -> list[Action]:
        return [e.action for e in self.journal if e.performed]

    def steps(self, phase: str | None = None) -> list[str]:
        """The ids of the steps given (all, or one phase's), in order, performed or not."""
        return [e.step for e in self.journal if e.step and (phase is None or e.action.phase == phase)]
