"""plan's target checks speak the target's words (migrator/adapters/vocabulary.py,
TargetVocabulary): run over the memory adapters, whose target lacks a change feed, with the words
of each real target put on it. The expected texts are written out here, not taken from the
adapters; the check names stay the same for every target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from migrator.adapters.memory import MemorySource, MemoryTarget
from migrator.adapters.mongodb import MongoTarget
from migrator.adapters.postgres_target import PostgresTarget
from migrator.adapters.vocabulary import TargetVocabulary
from migrator.findings import Severity
from migrator.phases.preflight import run_preflight
from tests.support.memory import MemoryMigration, items_table, memory_migration


@pytest.fixture
def mig(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path)


class _LikePostgres(MemoryTarget):
    vocabulary: ClassVar[TargetVocabulary] = PostgresTarget.vocabulary


class _LikeMongo(MemoryTarget):
    vocabulary: ClassVar[TargetVocabulary] = MongoTarget.vocabulary


def _said(mig: MemoryMigration, target: type[MemoryTarget]) -> tuple[Severity, str, str | None]:
    items_table(mig.db, 3)
    report = run_preflight(mig.plan, MemorySource(mig.url), target(mig.url, mig.plan.target.database))
    (found,) = [f for f in report.findings if f.check == "target.change_streams"]
    return found.severity, found.message, found.fix


def test_a_postgresql_target_without_logical_wal_gets_the_postgresql_fix(mig: MemoryMigration) -> None:
    severity, message, hint = _said(mig, _LikePostgres)
    assert severity is Severity.WARN
    assert message == (
        "no logical decoding on the target (wal_level = logical): reverse sync after cutover, "
        "hence rollback after cutover, is impossible"
    )
    assert hint == (
        "set wal_level = logical on the target server and restart it "
        "(ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)"
    )
    assert "MongoDB" not in message + hint and "change stream" not in message + hint


def test_a_mongodb_target_keeps_its_words(mig: MemoryMigration) -> None:
    assert _said(mig, _LikeMongo) == (
        Severity.WARN,
        "no change streams: reverse sync after cutover, hence rollback after cutover, is impossible",
        "run MongoDB as a replica set (a single-node one will do)",
    )
    assert (
        MongoTarget.vocabulary.transactions_fix == "run MongoDB as a replica set (a single-node one will do)"
    )


def test_the_memory_target_speaks_its_own_words(mig: MemoryMigration) -> None:
    assert _said(mig, MemoryTarget) == (
        Severity.WARN,
        "no memory change feed: reverse sync after cutover, hence rollback after cutover, is impossible",
        "use a memory target with a change feed",
    )
