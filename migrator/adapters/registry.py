"""Adapter lookup by the plan's `adapter:` name."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from migrator.adapters.base import (
    Positions,
    Prerequisite,
    SourceAdapter,
    SourceInfo,
    SourceVocabulary,
    TargetAdapter,
    TargetVocabulary,
)
from migrator.connstr import MYSQL_SCHEMES, POSTGRES_SCHEMES
from migrator.errors import TerminalError

if TYPE_CHECKING:
    from migrator.adapters.memory import MemorySource, MemoryTarget
    from migrator.adapters.mongodb import MongoTarget
    from migrator.adapters.mysql import MysqlSource
    from migrator.adapters.postgres import PostgresSource
    from migrator.adapters.postgres_target import PostgresTarget

    SourceClass = type[PostgresSource] | type[MysqlSource] | type[MemorySource]
    TargetClass = type[MongoTarget] | type[PostgresTarget] | type[MemoryTarget]

# Adapters by "module:class": an adapter's module (and its driver) is imported when a plan uses
# it, so a process start loads no driver (docs/architecture.md, "Start-up imports").
# `memory`: in-process adapters for tests (memory://NAME finds a registered MemoryDatabase).
SOURCES: dict[str, str] = {
    "postgres": "migrator.adapters.postgres:PostgresSource",
    "mysql": "migrator.adapters.mysql:MysqlSource",
    "memory": "migrator.adapters.memory:MemorySource",
}
TARGETS: dict[str, str] = {
    "mongodb": "migrator.adapters.mongodb:MongoTarget",
    "postgres": "migrator.adapters.postgres_target:PostgresTarget",
    "memory": "migrator.adapters.memory:MemoryTarget",
}


def _load(where: str) -> Any:
    """The class at "module:class", its module imported now."""
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


# A source URL's scheme -> the adapter that reads it (`migrator init` has a URL, not a plan).
SOURCE_SCHEMES: dict[str, str] = {
    **{scheme: "postgres" for scheme in POSTGRES_SCHEMES},
    **{scheme: "mysql" for scheme in MYSQL_SCHEMES},
}


def source_adapter_for_scheme(scheme: str) -> str | None:
    """The source adapter's name for a URL scheme, None where no source adapter reads it."""
    return SOURCE_SCHEMES.get(scheme)


def _source(adapter: str) -> SourceClass:
    """The source adapter class named `adapter`: what needs no URL (positions, words, the
    runbook's prerequisites) is read from the class."""
    try:
        where = SOURCES[adapter]
    except KeyError:
        raise TerminalError(
            f"no source adapter named '{adapter}' (known: {', '.join(sorted(SOURCES))})"
        ) from None
    return cast("SourceClass", _load(where))


def source_for(adapter: str, url: str, **options: Any) -> SourceAdapter:
    """`options`: the adapter's own keyword arguments (the plan's source.options)."""
    return _source(adapter)(url, **options)


def _target(adapter: str) -> TargetClass:
    """The target adapter class named `adapter`: its words are read from the class."""
    try:
        where = TARGETS[adapter]
    except KeyError:
        raise TerminalError(
            f"no target adapter named '{adapter}' (known: {', '.join(sorted(TARGETS))})"
        ) from None
    return cast("TargetClass", _load(where))


def target_for(adapter: str, url: str, database: str, **options: Any) -> TargetAdapter:
    """`options`: the adapter's own keyword arguments (a connection timeout, ...)."""
    return _target(adapter)(url, database, **options)


def positions_for(adapter: str) -> Positions:
    """The positions of the source adapter named `adapter` (their text form), without a URL."""
    return _source(adapter).positions


def vocabulary_for(adapter: str) -> SourceVocabulary:
    """The words of the source adapter named `adapter` (adapters/vocabulary.py), without a URL."""
    return _source(adapter).vocabulary


def target_vocabulary_for(adapter: str) -> TargetVocabulary:
    """The words of the target adapter named `adapter` (adapters/vocabulary.py), without a URL."""
    return _target(adapter).vocabulary


def prerequisites_for(
    adapter: str, plan_name: str, tables: Sequence[str], info: SourceInfo | None
) -> list[Prerequisite]:
    """The runbook's prerequisites of the source adapter named `adapter`, without a URL."""
    return _source(adapter).prerequisites(plan_name, tables, info)
