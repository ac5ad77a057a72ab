"""What a phase gets to work with. Deliberately small: no god object."""

from __future__ import annotations

from dataclasses import dataclass

from migrator.adapters.base import SourceInfo
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres import PostgresSource
from migrator.engine.events import EventBus
from migrator.mapping.spec import CollectionMapping
from migrator.plan.models import Plan
from migrator.state.store import RunRecord, StateStore


@dataclass
class RunContext:
    plan: Plan
    run: RunRecord
    store: StateStore
    events: EventBus
    source: PostgresSource
    target: MongoTarget
    source_info: SourceInfo
    collections: list[CollectionMapping]
