"""Adapter lookup by the plan's `adapter:` name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from migrator.adapters.base import (
    Positions,
    Prerequisite,
    SourceAdapter,
    SourceInfo,
    SourceVocabulary,
    TargetAdapter,
)
from migrator.adapters.memory import MemorySource, MemoryTarget
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.postgres import PostgresSource
from migrator.adapters.postgres_target import PostgresTarget
from migrator.connstr import MYSQL_SCHEMES, POSTGRES_SCHEMES
from migrator.errors import TerminalError

# `memory`: in-process adapters for tests (memory://NAME finds a registered MemoryDatabase).
SOURCES: dict[str, type[PostgresSource] | type[MysqlSource] | type[MemorySource]] = {
    "postgres": PostgresSource,
    "mysql": MysqlSource,
    "memory": MemorySource,
}
TARGETS: dict[str, type[MongoTarget] | type[PostgresTarget] | type[MemoryTarget]] = {
    "mongodb": MongoTarget,
    "postgres": PostgresTarget,
    "memory": MemoryTarget,
}

# A source URL's scheme -> the adapter that reads it (`migrator init` has a URL, not a plan).
SOURCE_SCHEMES: dict[str, str] = {
    **{scheme: "postgres" for scheme in POSTGRES_SCHEMES},
    **{scheme: "mysql" for scheme in MYSQL_SCHEMES},
}


def source_adapter_for_scheme(scheme: str) -> str | None:
    """The source adapter's name for a URL scheme, None where no source adapter reads it."""
    return SOURCE_SCHEMES.get(scheme)


def _source(adapter: str) -> type[PostgresSource] | type[MysqlSource] | type[MemorySource]:
    """The source adapter class named `adapter`: what needs no URL (positions, words, the
    runbook's prerequisites) is read from the class."""
    try:
        return SOURCES[adapter]
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None


def source_for(adapter: str, url: str, **options: Any) -> SourceAdapter:
    """`options`: the adapter's own keyword arguments (the plan's source.options)."""
    return _source(adapter)(url, **options)


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
    return _source(adapter).positions


def vocabulary_for(adapter: str) -> SourceVocabulary:
    """The words of the source adapter named `adapter` (adapters/vocabulary.py), without a URL."""
    return _source(adapter).vocabulary


def prerequisites_for(
    adapter: str, plan_name: str, tables: Sequence[str], info: SourceInfo | None
) -> list[Prerequisite]:
    """The runbook's prerequisites of the source adapter named `adapter`, without a URL."""
    return _source(adapter).prerequisites(plan_name, tables, info)
