"""Adapter lookup by the plan's `adapter:` name."""

from __future__ import annotations

from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres import PostgresSource
from migrator.errors import TerminalError

SOURCES = {"postgres": PostgresSource}
TARGETS = {"mongodb": MongoTarget}


def source_for(adapter: str, url: str) -> PostgresSource:
    try:
        return SOURCES[adapter](url)
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None


def target_for(adapter: str, url: str, database: str) -> MongoTarget:
    try:
        return TARGETS[adapter](url, database)
    except KeyError:
        raise TerminalError(
            f"no target adapter named '{adapter}' (known: {', '.join(sorted(TARGETS))})"
        ) from None
