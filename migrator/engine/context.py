"""What a phase gets to work with. Deliberately small: no god object."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from migrator.adapters.base import PostCopy, SourceAdapter, SourceInfo, SourceVocabulary, TargetAdapter
from migrator.engine.events import EventBus
from migrator.engine.throttle import Throttler
from migrator.mapping.post_copy import planned
from migrator.mapping.spec import CollectionMapping
from migrator.plan.models import Plan
from migrator.state.store import RunRecord, StateStore


@dataclass
class RunContext:
    plan: Plan
    run: RunRecord
    store: StateStore
    events: EventBus
    source: SourceAdapter
    target: TargetAdapter
    source_info: SourceInfo
    collections: list[CollectionMapping]
    # Live throttling (engine/throttle.py): set by the runner for `migrator run`; None: never held.
    throttle: Throttler | None = None

    @property
    def vocabulary(self) -> SourceVocabulary:
        return self.source.vocabulary

    @property
    def target_schema(self) -> list[str]:
        """The DDL the target runs before the copy (docs/architecture.md, "Tables as collections")."""
        return self.target.table_statements(self.collections)

    @cached_property
    def post_copy(self) -> PostCopy:
        """The indexes and constraints the target builds after the copy, read from the source
        once (docs/architecture.md, "After the copy")."""
        return planned(self.source, self.target, self.collections)


class PlanView(Protocol):
    """What a phase's `plan` (pure: no connection, no write) reads: the plan, the source as
    inspected, and the resolved mappings. A RunContext is one; so is a PlanInputs."""

    @property
    def plan(self) -> Plan: ...

    @property
    def source_info(self) -> SourceInfo: ...

    @property
    def collections(self) -> list[CollectionMapping]: ...

    @property
    def vocabulary(self) -> SourceVocabulary:
        """The source's words for its change capture (adapters/vocabulary.py)."""
        ...

    @property
    def target_schema(self) -> list[str]: ...

    @property
    def post_copy(self) -> PostCopy:
        """What the target builds after the copy (docs/architecture.md, "After the copy")."""
        ...


@dataclass(frozen=True)
class PlanInputs:
    """A PlanView without a run: for --dry-run and the runbook, which never begin one."""

    plan: Plan
    source_info: SourceInfo
    collections: list[CollectionMapping]
    vocabulary: SourceVocabulary
    target_schema: list[str] = field(default_factory=list)
    post_copy: PostCopy = field(default_factory=PostCopy)
