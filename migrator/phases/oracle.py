"""Dual-write oracle: with `phases.cdc.apply: false` the change stream checks the application's
own writes to the target instead of making them.

The CDC loop follows and checkpoints the stream as usual but writes no data; for every committed
source transaction it hands the oracle the documents the transaction touched
(`mapping.affected`: a root row its _id, old and new on a key change; an embedded row the
document of its parent, both parents when it moved). A worker thread checks them off the loop's
critical path, `verify.dual_write_grace` after the source commit:

1. first look: read the documents from the source through the mapping (as verify does), read
   the target's raw, compare. Equal: the application's write arrived.
2. a differing document is not reported from one look: the source may already hold a later
   change whose own grace has not passed. Once every change the first look saw has had its
   grace (the first read's time plus the grace), look again. The source changed meanwhile: that
   later change is checked on its own, this check is *superseded*. Otherwise the target has had
   the grace for everything that produced the source's state and still differs: a *divergence*,
   emitted as a durable `dualwrite.divergence` event with compare.explain's field differences.

The queue between the loop and the worker is bounded (in document checks); when it is full the
loop never waits: the checks are *skipped*, counted and announced with a Notice. Checks in
flight when the run stops are finished first (for about twice the grace), then counted as
skipped. Not checked either (and said so): TRUNCATE, which touches every document.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from migrator.adapters.base import SourceInfo
from migrator.engine.events import DualWriteDivergence, DualWriteProgress, DualWriteSummary, EventBus, Notice
from migrator.engine.threads import BackgroundThread
from migrator.errors import MigratorError
from migrator.mapping import compare
from migrator.mapping.affected import Affected, AffectedDocuments, Row, dedupe
from migrator.mapping.lookup import Keys, Look, MappedDocuments, difference, json_id
from migrator.mapping.spec import CollectionMapping

# Document checks waiting at most (each a reference: an _id, a parent row or an element key).
CAPACITY = 100_000
# References resolved and compared together.
BATCH = 1_000
PROGRESS_INTERVAL_S = 2.0
NOTICE_INTERVAL_S = 10.0
ATTEMPTS = 3  # per batch, for lost connections; then its checks are skipped (and said so)


@dataclass
class OracleCounts:
    transactions: int = 0
    checked: int = 0  # settled: equal + diverged
    equal: int = 0
    diverged: int = 0
    superseded: int = 0
    skipped: int = 0

    @property
    def rate(self) -> float:
        return 0.0 if self.checked == 0 else self.diverged / self.checked

    def to_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions,
            "checked": self.checked,
            "equal": self.equal,
            "diverged": self.diverged,
            "superseded": self.superseded,
            "skipped": self.skipped,
            "rate": round(self.rate, 6),
        }


@dataclass
class _Transaction:
    due: float  # wall clock: the source commit plus the grace
    position: str
    refs: list[Affected]


@dataclass
class _Recheck:
    due: float
    collection: str
    doc_id: Any
    expected: bytes | None  # what the first look read from the source
    position: str  # the commit whose check this is


@dataclass
class _Batch:
    transactions: list[_Transaction] = field(default_factory=list)
    rechecks: list[_Recheck] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(len(t.refs) for t in self.transactions) + len(self.rechecks)


def _identity(source_info: SourceInfo) -> dict[str, tuple[str, ...]]:
    return {name: info.identity_columns for name, info in source_info.tables.items()}


class DualWriteOracle:
    """Fed by the CDC loop (change, commit), checked by a worker thread."""

    def __init__(
        self,
        collections: list[CollectionMapping],
        source_info: SourceInfo,
        documents: MappedDocuments,
        events: EventBus,
        *,
        grace: float,
        unchanged: Any,
        capacity: int = CAPACITY,
    ) -> None:
        self._unchanged = unchanged
        self._affected = AffectedDocuments(collections, _identity(source_info), unchanged)
        self._documents = documents
        self._events = events
        self._grace = grace
        self._capacity = capacity
        self.counts = OracleCounts()
        self._current: list[Affected] = []
        self._overflow = 0  # references of the current transaction beyond the capacity
        self._queue: deque[_Transaction] = deque()
        self._queued = 0  # references in _queue
        self._rechecks: deque[_Recheck] = deque()  # in due order: each is due a grace after its look
        self._cond = threading.Condition()
        self._closing = False
        self._abort = False
        self._thread: BackgroundThread[None] | None = None
        self._last_skip_notice = 0.0
        self._last_divergence_notice = 0.0
        self._unannounced_divergences = 0
        self._last_divergence: tuple[str, Any, str, str] = ("", None, "", "")
        self._last_progress = 0.0

    # -- the CDC loop's side (never blocks on the worker) ---------------------------------------

    def remap(self, collections: list[CollectionMapping], source_info: SourceInfo) -> None:
        """The mapping changed mid-stream (a column added on the source)."""
        self._affected = AffectedDocuments(collections, _identity(source_info), self._unchanged)
        self._documents.remap(collections)

    def change(self, table: str, old: Row | None, new: Row | None, kind: str) -> None:
        """One row change of the transaction being read: kind 'insert', 'update' or 'delete'."""
        if self._overflow:
            self._overflow += 1
            return
        if kind == "insert":
            assert new is not None
            refs = self._affected.insert(table, new)
        elif kind == "update":
            assert new is not None
            refs = self._affected.update(table, old, new)
        else:
            assert old is not None
            refs = self._affected.delete(table, old)
        self._current.extend(refs)
        if len(self._current) > self._capacity:
            # A transaction larger than the whole queue: it cannot be checked; say so at commit.
            self._overflow = len(self._current)
            self._current = []

    def truncated(self, table: str) -> None:
        with self._cond:
            self.counts.skipped += 1
        self._events.emit(
            Notice(
                "warn",
                f"dual-write oracle: TRUNCATE of {table} is not checked (it touches every document); "
                "run `migrator verify` to compare the collections",
            )
        )

    def commit(self, position: str, commit_time: float) -> None:
        """The transaction just read committed at `commit_time` (the source's clock, epoch s)."""
        if self._thread is not None:
            self._thread.raise_error()  # the worker failed (a bug): CDC stops with its error
        refs, self._current = dedupe(self._current), []
        overflow, self._overflow = self._overflow, 0
        skipped = 0
        with self._cond:
            self.counts.transactions += 1
            if overflow:
                skipped = overflow
            elif refs and self._queued + len(refs) > self._capacity:
                skipped = len(refs)
            elif refs:
                self._queue.append(_Transaction(commit_time + self._grace, position, refs))
                self._queued += len(refs)
                self._cond.notify()
            self.counts.skipped += skipped
        if skipped:
            self._skipped_notice(position, skipped, overflow > 0)

    def _skipped_notice(self, position: str, count: int, too_large: bool) -> None:
        now = time.monotonic()
        if now - self._last_skip_notice < NOTICE_INTERVAL_S and not too_large:
            return
        self._last_skip_notice = now
        why = (
            f"the transaction ending at {position} touches more than {self._capacity:,} documents"
            if too_large
            else f"the check queue is full ({self._capacity:,} checks waiting: the target or the source "
            "answers too slowly for the change rate)"
        )
        self._events.emit(
            Notice(
                "warn",
                f"dual-write oracle: {count:,} check(s) skipped because {why}; "
                f"{self.counts.skipped:,} skipped so far",
            )
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = BackgroundThread("migrator-dualwrite-oracle", self._work).start()

    def close(self, *, drain: bool = True, timeout: float | None = None) -> OracleCounts:
        """Stop the worker. `drain`: finish the checks already queued first (they fall due
        within about twice the grace); what is left is counted as skipped."""
        with self._cond:
            self._closing = True
            self._abort = self._abort or not drain
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else 2 * self._grace + 30.0)
            if self._thread.alive():
                with self._cond:
                    self._abort = True
                    self._cond.notify_all()
                self._thread.join(30.0)
        with self._cond:
            left = self._queued + len(self._rechecks)
            self.counts.skipped += left
            self._queue.clear()
            self._rechecks.clear()
            self._queued = 0
        if left:
            self._events.emit(
                Notice("warn", f"dual-write oracle: {left:,} check(s) not done when CDC stopped")
            )
        self._documents.close()
        self._emit_progress(DualWriteSummary)
        if self._thread is not None and drain:
            self._thread.raise_error()
        return self.counts

    # -- the worker -------------------------------------------------------------------------------

    def _next_batch(self) -> _Batch | None:
        """The checks that are due (up to BATCH), waiting until some are; None to stop."""
        with self._cond:
            while True:
                if self._abort:
                    return None
                now = time.time()
                batch = _Batch()
                while self._rechecks and self._rechecks[0].due <= now and batch.size < BATCH:
                    batch.rechecks.append(self._rechecks.popleft())
                while self._queue and self._queue[0].due <= now and batch.size < BATCH:
                    item = self._queue.popleft()
                    self._queued -= len(item.refs)
                    batch.transactions.append(item)
                if batch.size:
                    return batch
                dues = [q[0].due for q in (self._queue, self._rechecks) if q]
                if not dues and self._closing:
                    return None
                wait = PROGRESS_INTERVAL_S if not dues else min(dues) - now
                self._cond.wait(max(0.01, min(wait, PROGRESS_INTERVAL_S)))
                if time.monotonic() - self._last_progress >= PROGRESS_INTERVAL_S:
                    return _Batch()  # nothing due: report progress all the same

    def _work(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                if batch.size:
                    self._attempt(batch)
                if time.monotonic() - self._last_progress >= PROGRESS_INTERVAL_S:
                    self._emit_progress(DualWriteProgress)
                    self._announce_divergences(force=False)
        finally:  # an error (a bug) is handed to the CDC loop by BackgroundThread: it stops with it
            self._announce_divergences(force=True)

    def _attempt(self, batch: _Batch) -> None:
        """Read what the batch needs (retried as a whole: reading changes nothing), then settle
        it (no I/O, so nothing is counted twice)."""
        for attempt in range(ATTEMPTS):
            try:
                rechecks = self._recheck_looks(batch.rechecks)
                first = self._first_looks(batch.transactions)
                break
            except MigratorError as exc:
                # A lost connection (or a refusal): the batch is read again, a few times; then
                # its checks are skipped, and said so. The oracle never stops CDC.
                if attempt == ATTEMPTS - 1 or self._abort:
                    with self._cond:
                        self.counts.skipped += batch.size
                    self._events.emit(
                        Notice(
                            "warn",
                            f"dual-write oracle: {batch.size:,} check(s) skipped after an error: {exc.message}",
                        )
                    )
                    return
                with self._cond:
                    self._cond.wait(0.5 * 2**attempt)
        for recheck, look in rechecks:
            self._settle(recheck, look)
        for collection, looked_at, look, positions in first:
            self._first_settle(collection, looked_at, look, positions, batch)

    def _recheck_looks(self, rechecks: list[_Recheck]) -> list[tuple[_Recheck, Look]]:
        """Second looks: the grace has passed for everything the first look saw."""
        by_collection: dict[str, list[_Recheck]] = {}
        for recheck in rechecks:
            by_collection.setdefault(recheck.collection, []).append(recheck)
        out: list[tuple[_Recheck, Look]] = []
        for collection, group in by_collection.items():
            look = self._documents.look(
                collection, Keys(ids={compare.id_key(r.doc_id): r.doc_id for r in group})
            )
            out.extend((recheck, look) for recheck in group)
        return out

    def _first_looks(self, transactions: list[_Transaction]) -> list[tuple[str, float, Look, dict[Any, str]]]:
        """First looks at the documents the due transactions touched, per collection, with the
        commit position that touched each (by id_key, or by key text)."""
        if not transactions:
            return []
        positions: dict[str, dict[Any, str]] = {}
        resolved: dict[str, Keys] = {}
        refs = [(t, ref) for t in transactions for ref in t.refs]
        for (transaction, _), (ref, keys) in zip(
            refs, self._documents.resolve_each([ref for _, ref in refs]), strict=True
        ):
            resolved.setdefault(ref.collection, Keys()).add(keys)
            at = positions.setdefault(ref.collection, {})
            for k in keys.ids:
                at[k] = transaction.position
            for texts in keys.texts:
                at[texts] = transaction.position
        out = []
        for collection, keys in resolved.items():
            if keys:
                looked_at = time.time()
                out.append(
                    (collection, looked_at, self._documents.look(collection, keys), positions[collection])
                )
        return out

    def _first_settle(
        self, collection: str, looked_at: float, look: Look, positions: dict[Any, str], batch: _Batch
    ) -> None:
        equal = 0
        rechecks = []
        for k, doc_id in look.ids.items():
            if look.equal(k):
                equal += 1
                continue
            position = (
                positions.get(k)
                or positions.get(self._documents.key_texts(collection, doc_id))
                or batch.transactions[-1].position
            )
            rechecks.append(
                _Recheck(looked_at + self._grace, collection, doc_id, look.expected.get(k), position)
            )
        with self._cond:
            self.counts.checked += equal
            self.counts.equal += equal
            self._rechecks.extend(rechecks)

    def _settle(self, recheck: _Recheck, look: Look) -> None:
        collection = recheck.collection
        k = compare.id_key(recheck.doc_id)
        expected = look.expected.get(k)
        if not _same(recheck.expected, expected):
            with self._cond:
                self.counts.superseded += 1
            return
        if look.equal(k):
            with self._cond:
                self.counts.checked += 1
                self.counts.equal += 1
            return
        kind, diffs = difference(expected, look.actual.get(k))
        with self._cond:
            self.counts.checked += 1
            self.counts.diverged += 1
            self._unannounced_divergences += 1
        self._events.emit(
            DualWriteDivergence(
                collection=collection,
                id=json_id(recheck.doc_id),
                difference=kind,
                diffs=[d.to_dict() for d in diffs],
                position=recheck.position,
            )
        )
        self._last_divergence = (collection, json_id(recheck.doc_id), kind, recheck.position)

    def _announce_divergences(self, *, force: bool) -> None:
        """A Notice now and then, so that people watching `migrator run` see divergences too
        (each one is in the event log as `dualwrite.divergence`)."""
        now = time.monotonic()
        if not self._unannounced_divergences:
            return
        if not force and now - self._last_divergence_notice < NOTICE_INTERVAL_S:
            return
        self._last_divergence_notice = now
        collection, doc_id, kind, position = self._last_divergence
        count, self._unannounced_divergences = self._unannounced_divergences, 0
        self._events.emit(
            Notice(
                "warn",
                f"dual-write oracle: {count:,} divergence(s) (latest: {collection} _id {doc_id} {kind}, source "
                f"commit {position}); {self.counts.diverged:,} of {self.counts.checked:,} checked so far",
            )
        )

    def _emit_progress(self, kind: type[DualWriteProgress]) -> None:
        self._last_progress = time.monotonic()
        with self._cond:
            c = self.counts
            pending = self._queued + len(self._rechecks)
            event = kind(
                transactions=c.transactions,
                checked=c.checked,
                equal=c.equal,
                diverged=c.diverged,
                superseded=c.superseded,
                skipped=c.skipped,
                pending=pending,
                rate=round(c.rate, 6),
            )
        self._events.emit(event)


def _same(a: bytes | None, b: bytes | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return compare.equal(a, b)
