"""Reverse sync's batching (phases/reverse.py) against a scripted change stream: a workload that
keeps rewriting the same few documents fills no batch and never lets the stream idle; its changes
are applied once the oldest has waited `batch_wait_s`, not all at once when the caught-up marker
arrives. The clock is the test's own (no wall-clock time is measured)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from migrator.adapters.base import Capabilities
from migrator.adapters.memory import MemorySource
from migrator.adapters.rows import DocumentRows, ReverseCheckpoint
from migrator.engine.events import Collector
from migrator.mapping.spec import resolve, tables_of
from migrator.phases import reverse as reverse_module
from migrator.phases.reverse import ReverseSync
from tests.support.memory import items_table, memory_migration

STEP_S = 0.25  # what one read of the scripted stream costs on the test's clock
REWRITES = 40  # changes before the marker, each to one of KEYS documents
KEYS = 4


@dataclass(frozen=True)
class Doc:
    collection: str
    document_id: Any

    @property
    def key(self) -> bytes:
        return f"{self.collection}:{self.document_id}".encode()


@dataclass
class Group:
    documents: list[Doc]
    events: int = 1
    echo: bool = False
    token: Mapping[str, Any] | None = None
    cluster_time: int | None = None


@dataclass(frozen=True)
class Step:
    idle: bool
    transactions: tuple[Group, ...] = ()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@dataclass
class Stream:
    """REWRITES single-document changes, then the marker, never idle before it."""

    clock: Clock
    read: int = 0
    marker_seen: int = 0
    in_transaction: bool = False
    position: Mapping[str, Any] | None = None
    confirmed: list[Mapping[str, Any]] = field(default_factory=list)

    def confirm(self, token: Mapping[str, Any]) -> None:
        self.confirmed.append(token)

    def next(self) -> Step:
        self.clock.now += STEP_S
        self.read += 1
        if self.read > REWRITES:
            self.marker_seen = 1 << 40
            return Step(
                idle=False, transactions=(Group([], token={"n": self.read}, cluster_time=self.read << 32),)
            )
        document = Doc("items", self.read % KEYS + 1)
        return Step(
            idle=False,
            transactions=(Group([document], token={"n": self.read}, cluster_time=self.read << 32),),
        )


@dataclass
class Changes:
    clock: Clock

    def position_now(self) -> Mapping[str, Any]:
        return {"n": 0}

    def write_marker(self) -> int:
        return 1

    @contextlib.contextmanager
    def follow(self, after: Mapping[str, Any]) -> Iterator[Stream]:
        yield Stream(self.clock)

    def current(self, documents: Sequence[Doc]) -> dict[bytes, Mapping[str, Any]]:
        return {d.key: {"_id": d.document_id, "name": "n", "qty": 1} for d in documents}

    def cluster_seconds(self, cluster_time: int) -> int:
        return cluster_time >> 32

    def cluster_iso(self, cluster_time: int | None) -> str | None:
        return None if cluster_time is None else str(cluster_time >> 32)


@dataclass
class Writer:
    batches: list[list[Any]] = field(default_factory=list)
    stored: ReverseCheckpoint | None = None

    def setup(self) -> None:
        pass

    def checkpoint(self) -> ReverseCheckpoint | None:
        return self.stored

    def forget(self) -> bool:
        return False

    def apply(self, documents: Sequence[DocumentRows], checkpoint: ReverseCheckpoint | None) -> int:
        if documents:
            self.batches.append([d.document_id for d in documents])
        if checkpoint is not None:
            self.stored = checkpoint
        return len(documents)

    def close(self) -> None:
        pass


class Target:
    capabilities = Capabilities(transactions=True, change_streams=True)

    def __init__(self, clock: Clock) -> None:
        self.name = "scripted"
        self.clock = clock

    def change_stream(self, plan_name: str, collections: Any, *, max_await_ms: int) -> Changes:
        return Changes(self.clock)


@contextlib.contextmanager
def scripted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_s: float
) -> Iterator[tuple[ReverseSync, Writer]]:
    """ReverseSync over the scripted stream (batch_documents 500: never filled), and its writer."""
    clock = Clock()
    monkeypatch.setattr(reverse_module.time, "monotonic", clock.monotonic)
    for mig in memory_migration(tmp_path):  # one: the generator unregisters its database after
        items_table(mig.db, KEYS)
        source = MemorySource(mig.url)
        info = source.inspect([t for c in mig.plan.collections for t in tables_of(c)])
        collections = resolve(mig.plan.collections, info).collections
        writer = Writer(stored=ReverseCheckpoint({"n": 0}))
        target: Any = Target(clock)
        yield (
            ReverseSync(
                "items",
                collections,
                source,
                target,
                Collector(),
                stop=threading.Event(),
                writer=writer,
                batch_documents=500,
                batch_wait_s=wait_s,
            ),
            writer,
        )


def test_a_batch_that_never_fills_is_applied_once_its_oldest_change_has_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scripted(tmp_path, monkeypatch, wait_s=1.0) as (reverse, writer):
        result = reverse.run("caught-up")
    assert result.caught_up
    # 40 reads of 0.25 s: a batch closes every 1 s of waiting, i.e. every 5 reads, long before
    # the marker; each holds the few documents rewritten meanwhile, each once.
    assert len(writer.batches) >= REWRITES // 5
    assert all(len(batch) == len(set(batch)) <= KEYS for batch in writer.batches)
    assert sum(len(batch) for batch in writer.batches) == result.documents
    assert writer.stored is not None and writer.stored.events == REWRITES + 1


def test_without_the_wait_everything_lands_at_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defect the wait fixes: the same stream with a wait longer than the run applies one batch."""
    with scripted(tmp_path, monkeypatch, wait_s=3600.0) as (reverse, writer):
        assert reverse.run("caught-up").caught_up
    assert [sorted(batch) for batch in writer.batches] == [list(range(1, KEYS + 1))]
