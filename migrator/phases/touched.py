"""The documents changed since a point in time, and their last comparison before the flip.

Cutover verifies everything once while writes still flow (the gate), and under the fence only
what CDC touched since that pass began: a CDC observer turns each row change into references
to the documents it touches (mapping/affected.py). To keep the part done under the fence
small however busy the source is, the references are checked in rounds before the fence too
(converging like gh-ost's row copy): each round waits until CDC has applied everything up to
the round's start, compares, and carries a document that still differs into the next round;
the last round runs under the fence, where the source cannot move, so a difference there is
real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from migrator.mapping.affected import Affected, AffectedDocuments, DocumentId
from migrator.mapping.lookup import MappedDocuments
from migrator.mapping.spec import CollectionMapping


class OutOfTime(Exception):
    """The check did not finish by its deadline."""


@dataclass
class RoundResult:
    references: int
    documents: int
    differing: int
    seconds: float


class TouchedDocuments:
    """A CDC observer: references to the documents touched since `start()`."""

    def __init__(
        self,
        collections: Sequence[CollectionMapping],
        identity: dict[str, tuple[str, ...]],
        documents: MappedDocuments,
        unchanged: Any,
    ) -> None:
        self._affected = AffectedDocuments(list(collections), identity, unchanged)
        self._documents = documents
        self._refs: list[Affected] = []
        self._recording = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._refs = []
            self._recording = True

    def __call__(self, table: str, old: Any, new: Any, kind: str) -> None:
        if not self._recording:
            return
        if kind == "insert":
            refs = self._affected.insert(table, new)
        elif kind == "update":
            refs = self._affected.update(table, old, new)
        else:
            refs = self._affected.delete(table, old)
        with self._lock:
            self._refs.extend(refs)

    def pending(self) -> int:
        with self._lock:
            return len(self._refs)

    def take(self) -> list[Affected]:
        with self._lock:
            refs, self._refs = self._refs, []
        return refs

    def give_back(self, refs: Sequence[Affected]) -> None:
        with self._lock:
            self._refs.extend(refs)

    def check(
        self, refs: Sequence[Affected], deadline: float | None = None
    ) -> tuple[RoundResult, list[Affected]]:
        """Compare the documents `refs` name, source against target; returns the counts and
        references to the documents that differ."""
        started = time.monotonic()
        differing: list[Affected] = []
        documents = 0
        for collection, keys in self._documents.resolve(_unique(refs)).items():
            _check_time(deadline)
            look = self._documents.look(collection, keys)
            documents += len(look.ids)
            differing.extend(DocumentId(collection, look.ids[k]) for k in look.differing())
        _check_time(deadline)
        return RoundResult(len(refs), documents, len(differing), time.monotonic() - started), differing

    def converge(
        self,
        wait_applied: Callable[[], None],
        *,
        small: int,
        rounds: int,
        on_round: Callable[[RoundResult], None],
    ) -> None:
        """Check rounds before the fence, until at most `small` references are left for it."""
        for _ in range(rounds):
            if self.pending() <= small:
                return
            refs = self.take()
            wait_applied()  # everything touched so far is applied: a difference now is likely real
            result, differing = self.check(refs)
            self.give_back(differing)
            on_round(result)


def _unique(refs: Sequence[Affected]) -> list[Affected]:
    """Without repeats; a compound _id (a dict) is not hashable, so references go by repr."""
    seen: dict[str, Affected] = {}
    for ref in refs:
        seen.setdefault(repr(ref), ref)
    return list(seen.values())


def _check_time(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise OutOfTime("the check under the fence ran out of time")
