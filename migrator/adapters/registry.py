"""Adapter lookup by the plan's `adapter:` name."""

from __future__ import annotations

from typing import Any, cast

from migrator.adapters.base import Positions, SourceAdapter
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres import PostgresSource
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.errors import TerminalError

SOURCES = {"postgres": PostgresSource}
TARGETS = {"mongodb": MongoTarget}

# What `source_for`/`target_for` return, for the callers that hold them (operations/session.py).
# They satisfy adapters/base.py's SourceAdapter/TargetAdapter; while code below the session still
# names the concrete classes (preflight, RunContext), these stay concrete (issue 13: the merge of
# the re-cut turns them into the protocols).
Source = PostgresSource
Target = MongoTarget


def source_for(adapter: str, url: str) -> PostgresSource:
    try:
        return SOURCES[adapter](url)
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None


def target_for(adapter: str, url: str, database: str, **options: Any) -> MongoTarget:
    """`options`: the adapter's own keyword arguments (a connection timeout, ...)."""
    try:
        return TARGETS[adapter](url, database, **options)
    except KeyError:
        raise TerminalError(
            f"no target adapter named '{adapter}' (known: {', '.join(sorted(TARGETS))})"
        ) from None


def source_of(source: Any) -> SourceAdapter:
    """`source` itself when it is a source adapter; a PostgreSQL endpoint (what CDC, follow and the
    dual-write library passed before the adapter protocols, docs/architecture.md "Layers") as
    the PostgreSQL source over it. Transitional: remove once every caller passes the source."""
    if isinstance(source, PgEndpoint):
        return PostgresSource.over(source)
    return cast(SourceAdapter, source)


def positions_for(adapter: str) -> Positions:
    """The positions of the source adapter named `adapter` (their text form), without a URL."""
    try:
        return SOURCES[adapter].positions
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None
