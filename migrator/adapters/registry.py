"""Adapter lookup by the plan's `adapter:` name."""

from __future__ import annotations

from typing import Any

from migrator.adapters.base import Positions, SourceAdapter, TargetAdapter
from migrator.adapters.memory import MemorySource, MemoryTarget
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.postgres import PostgresSource
from migrator.errors import TerminalError

# `memory`: in-process adapters for tests (memory://NAME finds a registered MemoryDatabase).
SOURCES: dict[str, type[PostgresSource] | type[MysqlSource] | type[MemorySource]] = {
    "postgres": PostgresSource,
    "mysql": MysqlSource,
    "memory": MemorySource,
}
TARGETS: dict[str, type[MongoTarget] | type[MemoryTarget]] = {"mongodb": MongoTarget, "memory": MemoryTarget}


def source_for(adapter: str, url: str, **options: Any) -> SourceAdapter:
    """`options`: the adapter's own keyword arguments (the plan's source.options)."""
    try:
        cls = SOURCES[adapter]
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None
    return cls(url, **options)


def target_for(adapter: str, url: str, database: str, **options: Any) -> TargetAdapter:
    """`options`: the adapter's own keyword arguments (a connection timeout, ...)."""
    try:
        return TARGETS[adapter](url, database, **options)
    except KeyError:
        raise TerminalError(
            f"no target adapter named '{adapter}' (known: {', '.join(sorted(TARGETS))})"
        ) from None


def positions_for(adapter: str) -> Positions:
    """The positions of the source adapter named `adapter` (their text form), without a URL."""
    try:
        return SOURCES[adapter].positions
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None
