"""Verify phase: source and target compared through the plan's mapping, while changes flow.

Per key range, the source rows are read in one REPEATABLE READ transaction, assembled into
the documents the mapping promises and encoded as BSON; the target's documents with the
same _ids are read raw; equal bytes (or equal canonical forms) settle a document.

A live source and a lagging target disagree for a moment on every key being written, so a
difference is never reported from one look. Each differing key goes through rechecks: read
the source (position P), wait until the target has applied everything up to P, read the
target, read the source again. A round *confirms* the difference only when the target was
read after applying P and the source did not change between its two reads, so the target
had every change that produced the source's state; two confirming rounds make a mismatch.
A key that becomes equal is equal; a key the rounds never pin down (hot, or the target is
behind and CDC is not running) is reported as unsettled, with the reason, never as equal.

"Applied up to P": a marker transaction is committed after P (pg_logical_emit_message),
and the target's CDC checkpoint (in `_migrator`, written with the data) must reach it; when
no stream is running, peeking at the slot (never consuming) shows whether any change up to
P is still unapplied. Without a slot nothing replicates, and the current states are compared.

Documents the source does not have are found by a second pass over the target's _ids.

Where source and target both hash key ranges in the server alike (adapters that offer it), a
range whose hashes are equal is settled without reading a row (verify_checksums.py).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from migrator.adapters.base import (
    CollectionReader,
    KeyOrder,
    KeyReader,
    RangeDigest,
    SourceAdapter,
    SourceInfo,
    TargetAdapter,
)
from migrator.engine.context import PlanView
from migrator.engine.events import EventBus, Notice, VerifyFinished, VerifyProgress
from migrator.engine.executor import Action, Executor, Step, actions
from migrator.engine.retry import DEFAULT_BUDGET_S, retrying
from migrator.engine.workers import Workers
from migrator.mapping import compare
from migrator.mapping.assemble import Assembler
from migrator.mapping.lookup import json_id
from migrator.mapping.spec import CollectionMapping
from migrator.phases.following import MARKER_PREFIX, Following
from migrator.phases.undecoded import json_text_levels, undecoded_columns
from migrator.phases.verify_checksums import HashedTable, RangeHashes, agreed_tables, hashed_table
from migrator.plan.models import Plan, VerifySettings
from migrator.timestamps import now_text

PHASE = "verify"
# Mismatches kept with their explanation in a report (all are counted, and repaired).
MAX_EXPLAINED = 1_000
SAMPLE_SEED = 7
# How long a read or write that fails transiently (a lost connection, a statement or socket
# timeout) is retried before the pass gives up "could not complete" (engine/retry.py).
RETRY_BUDGET_S = DEFAULT_BUDGET_S
T = TypeVar("T")


@dataclass(frozen=True)
class Mismatch:
    collection: str
    id: Any  # the _id, as extended JSON
    kind: str  # 'mismatched' | 'missing' (in target) | 'extra' (in target) | 'unsettled'
    position: str  # the source position the last look read
    diffs: tuple[compare.FieldDiff, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "id": self.id,
            "kind": self.kind,
            "position": self.position,
            "diffs": [d.to_dict() for d in self.diffs],
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass
class Counts:
    checked: int = 0
    equal: int = 0
    mismatched: int = 0
    missing: int = 0
    extra: int = 0
    unsettled: int = 0
    repaired: int = 0

    def add(self, other: Counts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class VerifyReport:
    plan: str
    mode: str
    sample: float | None
    started_at: str
    seconds: float = 0.0
    collections: dict[str, Counts] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    positions: tuple[str, str] | None = None  # first and last source position a range was read at
    applied_position: str | None = None  # the target's CDC checkpoint when the pass ended
    ranges: int = 0
    hashed: int = 0  # ranges settled by equal server-side checksums (verify_checksums.py)

    @property
    def totals(self) -> Counts:
        total = Counts()
        for counts in self.collections.values():
            total.add(counts)
        return total

    @property
    def score(self) -> float:
        total = self.totals
        return 1.0 if total.checked == 0 else total.equal / total.checked

    @property
    def equal(self) -> bool:
        total = self.totals
        return total.mismatched + total.missing + total.extra + total.unsettled == 0

    @property
    def verdict(self) -> str:
        """'different' when a difference was confirmed; else 'incomplete' when some documents
        could not be pinned down (CDC behind, keys changing all the time: not differences);
        else 'equal'."""
        total = self.totals
        if total.mismatched + total.missing + total.extra:
            return "different"
        return "incomplete" if total.unsettled else "equal"

    @property
    def incomplete(self) -> str | None:
        """Why the pass could not settle every document, when it could not."""
        unsettled = self.totals.unsettled
        if not unsettled:
            return None
        reasons = sorted({m.reason for m in self.mismatches if m.kind == "unsettled" and m.reason})
        return f"{unsettled} document(s) could not be pinned down: " + "; ".join(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "mode": self.mode,
            "sample": self.sample,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "verdict": self.verdict,
            "incomplete": self.incomplete,
            "score": round(self.score, 6),
            **self.totals.to_dict(),
            "ranges": self.ranges,
            "hashed_ranges": self.hashed,
            "verified_positions": None
            if self.positions is None
            else {"first": self.positions[0], "last": self.positions[1]},
            "applied_position": self.applied_position,
            "collections": {name: c.to_dict() for name, c in self.collections.items()},
            "mismatches": [m.to_dict() for m in self.mismatches],
        }


@dataclass(frozen=True)
class _Range:
    collection: CollectionMapping
    lo: list[str] | None
    hi: list[str] | None


@dataclass
class _Look:
    """One recheck round's view of a key."""

    position: str
    expected: bytes | None
    actual: bytes | None


@dataclass
class _Rechecks:
    """What the recheck rounds of a set of keys have found so far."""

    pending: dict[bytes, Any]  # id_key -> _id of the keys not yet equal nor confirmed twice
    confirmations: Counter[bytes] = field(default_factory=Counter)
    last: dict[bytes, _Look] = field(default_factory=dict)  # the last confirming look per key
    settled_all: bool = True  # CDC applied every round's position in time
    moving: bool = False  # a key changed under the last round (or the target lagged)
    lagged: str = ""  # the last position CDC did not apply within settle_timeout
    position: str = ""  # where the last round read the source


def _same(target: TargetAdapter, expected: bytes | None, actual: bytes | None) -> bool:
    """Both absent, or both present and equal as documents (as the target compares them)."""
    if expected is None or actual is None:
        return expected is None and actual is None
    return target.same_document(expected, actual)


class _Collection:
    """What reading one collection on both sides needs, built once."""

    def __init__(
        self,
        mapping: CollectionMapping,
        key_types: list[str],
        target: CollectionReader,
        key_text: Callable[[Any, str | None], str],
        order: KeyOrder | None,
        json_text: frozenset[str] = frozenset(),
    ) -> None:
        """`json_text`: source columns whose values the target holds in a column of the very same
        type (phases/undecoded.py); the json and jsonb ones among them are read and compared as their
        exact text (LevelRead.json_text, docs/verification.md)."""
        self.mapping = mapping
        self.key_text = key_text
        self.assembler = Assembler(mapping)
        self.key = mapping.document.key
        self.key_types = key_types
        self.target = target
        # Read the target by _id range where the source says its key orders as the target's
        # (one index scan, and extras inside the range show up at once); otherwise by the
        # source's _ids.
        self.order = order if len(self.key) == 1 else None
        self.levels = json_text_levels(self.assembler.reads(), json_text)

    def texts(self, doc_id: Any) -> list[str]:
        if len(self.key) == 1:
            return [self.key_text(doc_id, self.key_types[0])]
        return [self.key_text(doc_id[k], t) for k, t in zip(self.key, self.key_types, strict=True)]


class _SourceReader:
    """A worker's source connection, opened on first use and dropped after an error, so that a
    retry reads on a fresh one."""

    def __init__(self, source: SourceAdapter) -> None:
        self._source = source
        self._reader: KeyReader | None = None

    def get(self) -> KeyReader:
        if self._reader is None:
            self._reader = self._source.range_reader()
        return self._reader

    def reset(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


@dataclass
class _Pass:
    """One pass's report, the mismatches it confirmed per collection, and whether it repairs."""

    report: VerifyReport
    confirmed: dict[str, list[tuple[Any, str]]]
    repair: bool


class Verifier:
    """Runs verify passes for a plan against a live source and target."""

    name: ClassVar[str] = PHASE

    def __init__(
        self,
        plan: Plan,
        collections: Sequence[CollectionMapping],
        source: SourceAdapter,
        target: TargetAdapter,
        key_types: dict[str, list[str]],
        events: EventBus,
        *,
        settings: VerifySettings | None = None,
        stop: threading.Event | None = None,
        cdc_failure: str | None = None,
        cdc_alive: Callable[[], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        """`cdc_failure`: the error that stopped CDC, as the state store recorded it
        (following.recorded_cdc_failure); `cdc_alive`: where CDC runs in this process, raises
        what stopped it."""
        self.plan = plan
        self.settings = settings or plan.phases.verify
        self.source = source
        self.target = target
        self.events = events
        self._stop = stop if stop is not None else threading.Event()
        self.executor = executor if executor is not None else Executor.live()
        self.following = Following(
            plan.name,
            source,
            target,
            events,
            settle_timeout=self.settings.settle_timeout,
            stop=self._stop,
            failure=cdc_failure,
            cdc_alive=cdc_alive,
            retry_budget=RETRY_BUDGET_S,
        )
        same_type = undecoded_columns(source, target, collections)
        self._collections = {
            c.name: _Collection(
                c,
                key_types[c.name],
                target.reader(c.name),
                source.key_text,
                source.key_order(key_types[c.name][0]),
                same_type.get(c.table, frozenset()),
            )
            for c in collections
        }
        self._hashed: dict[str, HashedTable] = {}  # collections hashed on both sides (verify_checksums.py)
        self._lock = threading.Lock()
        # Every document the last pass did not find equal (any kind, unsettled too), by
        # collection and _id as stored: what a caller checks again once nothing moves.
        self.differing: list[tuple[str, Any]] = []

    # -- a pass ----------------------------------------------------------------------------------

    def run(self, *, repair: bool = False) -> VerifyReport:
        sample = self.settings.sample if self.settings.mode == "sample" else None
        self.differing = []
        report = VerifyReport(
            plan=self.plan.name,
            mode=self.settings.mode,
            sample=sample,
            started_at=now_text(),
        )
        started = time.monotonic()
        confirmed: dict[str, list[tuple[Any, str]]] = {}
        try:
            for name in self._collections:
                report.collections[name] = Counts()
                confirmed[name] = []
            # The steps `plan` lists (docs/architecture.md, "Executable actions").
            self.executor.perform_steps(
                steps(
                    self.plan,
                    list(self.collections),
                    self.source.vocabulary.marker,
                    self,
                    _Pass(report, confirmed, repair),
                )
            )
            applied = self.following.applied()
            report.applied_position = None if applied is None else self.source.positions.text(applied)
        finally:
            self.following.close()
        report.seconds = time.monotonic() - started
        report.mismatches.sort(key=lambda m: (m.collection, m.kind, str(m.id)))
        self.events.emit(VerifyFinished(_summary(report)))
        return report

    @property
    def collections(self) -> list[CollectionMapping]:
        return [c.mapping for c in self._collections.values()]

    # -- a pass's steps' effects, in order --------------------------------------------------------

    def _compare(self, p: _Pass) -> None:
        self.following.check()
        if self.settings.mode == "full":
            self._hashed = self._retry("asking source and target how they hash rows", self._agree_on_hashes)
        ranges = self._retry("splitting the source into key ranges", self._plan_ranges)
        self._compare_ranges(ranges, p.report, p.confirmed)

    def _look_for_extras(self, p: _Pass) -> None:
        self._each_collection(lambda name, coll: self._find_extras(coll, p.report, p.confirmed[name]))

    def _repair_all(self, p: _Pass) -> None:
        if p.repair:
            self._each_collection(
                lambda name, coll: self._retry(
                    f"repairing {name}", lambda: self._repair(coll, p.report, p.confirmed[name])
                )
            )

    def _agree_on_hashes(self) -> dict[str, HashedTable]:
        candidates = [
            table
            for coll in self._collections.values()
            if (table := hashed_table(coll.mapping, coll.key_types)) is not None
        ]
        agreed, differing = agreed_tables(self.source, self.target, candidates)
        for reason in differing:
            self.events.emit(Notice("info", reason))
        return agreed

    def _plan_ranges(self) -> list[_Range]:
        coordinator = self.source.snapshot_session(None)
        try:
            ranges: list[_Range] = []
            for coll in self._collections.values():
                bounds = coordinator.key_boundaries(
                    coll.mapping.table, coll.key, coll.key_types, self.settings.chunk_rows
                )
                edges: list[list[str] | None] = [None, *bounds, None]
                ranges.extend(_Range(coll.mapping, edges[i], edges[i + 1]) for i in range(len(edges) - 1))
            return ranges
        finally:
            coordinator.close()

    def _retry(self, what: str, call: Callable[[], T], before_retry: Callable[[], None] | None = None) -> T:
        return retrying(
            call,
            what=what,
            events=self.events,
            stop=self._stop,
            budget=RETRY_BUDGET_S,
            before_retry=before_retry,
        )

    def _each_collection(self, body: Callable[[str, _Collection], None]) -> None:
        """`body` for every collection, `parallel` collections at a time (most of a collection's
        time is spent waiting for rechecks); the first error is raised once all have ended."""
        workers = max(1, min(self.settings.parallel, len(self._collections)))
        with ThreadPoolExecutor(workers, thread_name_prefix="migrator-verify") as pool:
            futures = [pool.submit(body, name, coll) for name, coll in self._collections.items()]
        for future in futures:
            future.result()

    def _compare_ranges(
        self, ranges: list[_Range], report: VerifyReport, confirmed: dict[str, list[tuple[Any, str]]]
    ) -> None:
        pending: queue.Queue[_Range] = queue.Queue()
        for item in ranges:
            pending.put(item)
        workers = Workers("migrator-verify", min(self.settings.parallel, max(1, len(ranges))), self._stop)

        def worker() -> None:
            source = _SourceReader(self.source)
            hashes = RangeHashes(self.source, self.target, self._hashed)

            def reset() -> None:
                source.reset()
                hashes.reset()

            def one(item: _Range) -> None:
                hashed = hashes.settle(item.collection.name, item.lo, item.hi, self.following.wait)
                if hashed is not None:
                    self._record_hashed(item, hashed, report)
                else:
                    self._compare_range(source.get(), item, report, confirmed)

            try:
                while not self._stop.is_set() and not workers.failed:
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        return
                    # A lost connection or a timeout: the range is read again from scratch on a
                    # new connection (nothing is recorded before the range is done).
                    self._retry(
                        f"comparing a range of {item.collection.name}",
                        lambda item=item: one(item),  # type: ignore[misc]
                        reset,
                    )
            finally:
                reset()

        workers.run(worker)

    def _compare_range(
        self,
        reader: KeyReader,
        item: _Range,
        report: VerifyReport,
        confirmed: dict[str, list[tuple[Any, str]]],
    ) -> None:
        coll = self._collections[item.collection.name]
        sampled = self.settings.mode == "sample"
        position = reader.begin()
        try:
            levels, table = coll.levels, coll.mapping.table
            if sampled:
                streams = reader.stream_sample(
                    levels,
                    table,
                    coll.key,
                    coll.key_types,
                    item.lo,
                    item.hi,
                    self.settings.sample,
                    SAMPLE_SEED,
                )
            else:
                streams = reader.stream(levels, table, coll.key, coll.key_types, item.lo, item.hi)
            expected = {
                compare.id_key(doc_id): (
                    compare.stored_id(doc_id),
                    self.target.encode_document(document, coll.mapping.name),
                )
                for doc_id, document, _ in coll.assembler.documents(streams)
            }
        finally:
            reader.end()
        if coll.order is not None and not sampled:
            fetched = coll.target.fetch_range(
                coll.order, None if item.lo is None else item.lo[0], None if item.hi is None else item.hi[0]
            )
        else:
            fetched = coll.target.fetch([v[0] for v in expected.values()])
        actual = {compare.id_key(i): (i, raw) for i, raw in fetched}
        counts = Counts(checked=len(expected))
        differing = []
        for k, (doc_id, raw) in expected.items():
            got = actual.get(k)
            if got is not None and self.target.same_document(raw, got[1]):
                counts.equal += 1
            else:
                differing.append(doc_id)
        extra = [doc_id for k, (doc_id, _) in actual.items() if k not in expected]
        self.events.emit(
            VerifyProgress(
                coll.mapping.name, position, counts.checked, counts.equal, len(differing) + len(extra)
            )
        )
        found = self._settle(reader, coll, differing, counts, counted=True) if differing else []
        if extra:
            found += self._settle(reader, coll, extra, counts, counted=False)
        with self._lock:
            self._count_range(report, coll.mapping.name, counts, position)
            self._record(report, found)
            confirmed[coll.mapping.name].extend(
                (doc_id, m.kind) for doc_id, m in found if m.kind != "unsettled"
            )

    def _record_hashed(self, item: _Range, digest: RangeDigest, report: VerifyReport) -> None:
        """A range whose rows hash alike on both sides: every row of it checked and equal."""
        name = item.collection.name
        position = digest.position or ""
        self.events.emit(VerifyProgress(name, position, digest.rows, digest.rows, 0))
        with self._lock:
            self._count_range(report, name, Counts(checked=digest.rows, equal=digest.rows), position)
            report.hashed += 1

    def _count_range(self, report: VerifyReport, name: str, counts: Counts, position: str) -> None:
        """A compared range's counts and source position, into the report (under the lock)."""
        report.collections[name].add(counts)
        report.ranges += 1
        if position:
            first, last = report.positions or (position, position)
            parse = self.source.positions.parse
            report.positions = (min(first, position, key=parse), max(last, position, key=parse))

    def _find_extras(self, coll: _Collection, report: VerifyReport, confirmed: list[tuple[Any, str]]) -> None:
        sample = None
        outside = None
        if self.settings.mode == "sample":
            sample = max(1, round(coll.target.count() * self.settings.sample))
        elif coll.order is not None:
            outside = coll.order  # the range pass saw every other document
        source = _SourceReader(self.source)
        done: list[Any] = []  # the last _id of the batches done: a retry resumes after it
        sampled = 0

        def look() -> None:
            nonlocal sampled
            left = None if sample is None else sample - sampled
            if left is not None and left <= 0:
                return
            for batch in coll.target.ids(
                sample=left, outside=outside, after=done[-1] if done and left is None else None
            ):
                if self._stop.is_set():
                    return
                reader = source.get()
                absent = reader.missing_keys(
                    coll.mapping.table, coll.key, coll.key_types, [coll.texts(i) for i in batch]
                )
                counts = Counts()
                found = self._settle(reader, coll, [batch[i] for i in absent], counts, counted=False)
                with self._lock:
                    report.collections[coll.mapping.name].add(counts)
                    self._record(report, found)
                    confirmed.extend((doc_id, m.kind) for doc_id, m in found if m.kind != "unsettled")
                done.append(batch[-1])
                sampled += len(batch)

        try:
            self._retry(
                f"looking for documents of {coll.mapping.name} the source does not have", look, source.reset
            )
        finally:
            source.reset()

    def _record(self, report: VerifyReport, found: list[tuple[Any, Mismatch]]) -> None:
        self.differing.extend((m.collection, doc_id) for doc_id, m in found)
        room = MAX_EXPLAINED - len(report.mismatches)
        report.mismatches.extend(m for _, m in found[: max(0, room)])

    # -- rechecks --------------------------------------------------------------------------------

    def _settle(
        self, reader: KeyReader, coll: _Collection, ids: list[Any], counts: Counts, *, counted: bool
    ) -> list[tuple[Any, Mismatch]]:
        """Recheck differing keys until each is equal, confirmed different, or out of rounds.
        `counted`: the keys were already counted as checked (from the source side); keys from
        the target side count only once confirmed extra."""
        state = _Rechecks(pending={compare.id_key(i): i for i in ids})
        for round_ in range(self.settings.rechecks):
            if not state.pending or self._stop.is_set():
                break
            if round_ and state.moving:
                # A key changed under the last round (or the target lagged): give it a moment.
                time.sleep(min(1.0, 0.1 * 2**round_))
            self._recheck(reader, coll, state, counts, counted=counted)
        found: list[tuple[Any, Mismatch]] = []
        for k, look in state.last.items():
            if k in state.pending:
                continue
            doc_id = _ids_of(ids, k)
            mismatch = self._mismatch(coll, doc_id, look)
            if not counted:
                counts.checked += 1
            setattr(counts, mismatch.kind, getattr(counts, mismatch.kind) + 1)
            found.append((doc_id, mismatch))
        for doc_id in state.pending.values():
            if not counted:
                continue  # a target document that might be extra, never pinned down: not counted
            counts.unsettled += 1
            reason = self._unsettled_reason(state)
            found.append(
                (
                    doc_id,
                    Mismatch(coll.mapping.name, json_id(doc_id), "unsettled", state.position, reason=reason),
                )
            )
        return found

    def _recheck(
        self, reader: KeyReader, coll: _Collection, state: _Rechecks, counts: Counts, *, counted: bool
    ) -> None:
        """One round: read the source (position P), wait for the target to apply P, read the
        target, read the source again; a key equal now is settled, a key the round pinned down
        (applied, and the source unchanged) gains a confirmation."""
        state.moving = False
        first_position, first = self._read_source(reader, coll, list(state.pending.values()))
        settled = self.following.wait(first_position)
        state.settled_all = state.settled_all and settled
        if not settled:
            state.lagged = first_position
        state.position = first_position
        actual = {compare.id_key(i): raw for i, raw in coll.target.fetch(list(state.pending.values()))}
        _, second = self._read_source(reader, coll, list(state.pending.values()))
        for k in list(state.pending):
            expected, got, again = first.get(k), actual.get(k), second.get(k)
            if _same(self.target, expected, got):
                if counted:
                    counts.equal += 1
                del state.pending[k]
                continue
            if settled and _same(self.target, expected, again):
                state.confirmations[k] += 1
                state.last[k] = _Look(first_position, expected, got)
                if state.confirmations[k] >= 2:
                    del state.pending[k]
            else:
                state.moving = True

    def _unsettled_reason(self, state: _Rechecks) -> str:
        if self._stop.is_set():
            return "verify was stopped before this document was pinned down"
        if not state.settled_all:
            return (
                f"CDC did not apply the source's position {state.lagged} within settle_timeout "
                f"({self.settings.settle_timeout:g} s): the target is behind"
            )
        return "the source changed this document during every recheck"

    def _mismatch(self, coll: _Collection, doc_id: Any, look: _Look) -> Mismatch:
        name = coll.mapping.name
        if look.actual is None:
            return Mismatch(name, json_id(doc_id), "missing", look.position)
        if look.expected is None:
            return Mismatch(name, json_id(doc_id), "extra", look.position)
        decode = self.target.decode_document
        expected, actual = decode(look.expected), decode(look.actual)
        alike = self._alike_fields(name, expected, actual)
        diffs = [
            d
            for d in compare.explain(expected, actual)
            if not any(d.path == f or d.path.startswith(f + ".") for f in alike)
        ]
        return Mismatch(name, json_id(doc_id), "mismatched", look.position, tuple(diffs))

    def _alike_fields(self, collection: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
        """Top-level fields the target calls the same although their values differ type for type
        (a PostgreSQL target's normal form for another engine's values): not named as differences."""
        encode = self.target.encode_document
        return [
            field
            for field, value in expected.items()
            # Python's == is no guide: it finds the float 2.5 equal to a target's Decimal 2.5,
            # which the explanation (deepdiff) still names.
            if field in actual
            and self.target.same_document(
                encode({field: value}, collection), encode({field: actual[field]}, collection)
            )
        ]

    def _read_source(
        self, reader: KeyReader, coll: _Collection, ids: list[Any]
    ) -> tuple[str, dict[bytes, bytes]]:
        """The documents the source holds now for these _ids, and the position read at."""
        keys = [coll.texts(i) for i in ids]
        position = reader.begin()
        try:
            streams = reader.stream_keys(coll.levels, coll.mapping.table, coll.key, coll.key_types, keys)
            documents = {
                compare.id_key(doc_id): self.target.encode_document(document, coll.mapping.name)
                for doc_id, document, _ in coll.assembler.documents(streams)
            }
        finally:
            reader.end()
        return position, documents

    # -- repair ----------------------------------------------------------------------------------

    def _repair(self, coll: _Collection, report: VerifyReport, confirmed: list[tuple[Any, str]]) -> None:
        """Copy the source's current document over each confirmed mismatch (or delete an extra
        one), then recheck those keys. A change CDC applied between the source read and the
        repair write would be overwritten: the recheck finds that, and the next round repairs
        it again from a newer read."""
        if not confirmed:
            return
        name = coll.mapping.name
        counts = report.collections[name]
        kinds = {compare.id_key(doc_id): kind for doc_id, kind in confirmed}
        remaining = self._repair_rounds(coll, [doc_id for doc_id, _ in confirmed])
        left = {compare.id_key(doc_id) for doc_id in remaining}
        repaired = [k for k in kinds if k not in left]
        with self._lock:
            for k in repaired:
                setattr(counts, kinds[k], getattr(counts, kinds[k]) - 1)
            counts.repaired += len(repaired)
            counts.equal += len(repaired)
        if remaining:
            self.events.emit(
                Notice("warn", f"{name}: {len(remaining)} document(s) still differ after repair")
            )
        fixed = {_json_key(json_id(doc_id)) for doc_id, _ in confirmed if compare.id_key(doc_id) not in left}
        with self._lock:
            report.mismatches = [
                m for m in report.mismatches if not (m.collection == name and _json_key(m.id) in fixed)
            ]

    def _repair_rounds(self, coll: _Collection, remaining: list[Any]) -> list[Any]:
        """Up to three rounds of copy-then-recheck; the _ids that still differ after them."""
        reader = self.source.range_reader()
        try:
            for _ in range(3):
                _, current = self._read_source(reader, coll, remaining)
                for doc_id in remaining:
                    raw = current.get(compare.id_key(doc_id))
                    if raw is None:
                        coll.target.delete(doc_id)
                    else:
                        coll.target.replace(doc_id, raw)
                found = self._settle(reader, coll, remaining, Counts(), counted=True)
                still = {compare.id_key(doc_id) for doc_id, m in found if m.kind != "unsettled"}
                remaining = [doc_id for doc_id in remaining if compare.id_key(doc_id) in still]
                if not remaining:
                    break
        finally:
            reader.close()
        return remaining


def key_types_of(collections: Sequence[CollectionMapping], source_info: SourceInfo) -> dict[str, list[str]]:
    """Each collection's key column types, as the Verifier takes them."""
    return {
        c.name: [
            str(column.type_name)
            for k in c.document.key
            if (column := source_info.tables[c.table].column(k)) is not None
        ]
        for c in collections
    }


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _ids_of(ids: list[Any], key: bytes) -> Any:
    return next(i for i in ids if compare.id_key(i) == key)


def _summary(report: VerifyReport) -> dict[str, Any]:
    """The report as the state store keeps it: counts and the first explained mismatches."""
    data = report.to_dict()
    data["mismatches"] = data["mismatches"][:100]
    return data


def planned_actions(view: PlanView) -> list[Action]:
    """What a verify pass (`migrator verify`, and cutover's gate) would do, in order (pure: feeds
    --dry-run and the runbook). Read-only but for its markers and the report, unless --repair."""
    return actions(steps(view.plan, view.collections, view.vocabulary.marker))


def steps(
    plan: Plan,
    collections: Sequence[CollectionMapping],
    marker: str,
    verifier: Verifier | None = None,
    one: _Pass | None = None,
) -> list[Step]:
    """A verify pass's steps, in order: listed from the plan (--dry-run, the runbook), and with
    effects bound to `verifier` and the pass `one` when it runs them (docs/architecture.md,
    "Executable actions"); `marker` says how the source writes a marker (SourceVocabulary). Two are
    said, not done here: each differing key is rechecked where the
    compare and the look for extra documents find it, and the caller keeps the report."""
    settings = plan.phases.verify
    share = (
        f"a deterministic {settings.sample:.0%} sample of the keys"
        if settings.mode == "sample"
        else "every key"
    )

    def bound(effect: Callable[[Verifier, _Pass], object]) -> Callable[[], object] | None:
        if verifier is None or one is None:
            return None  # listed only
        running, current = verifier, one
        return lambda: effect(running, current)

    return [
        Step.of(
            PHASE,
            "compare",
            f"compare {', '.join(c.name for c in collections)} ({share}): key ranges of "
            f"{settings.chunk_rows:,} root rows, {settings.parallel} at a time; source rows read in a REPEATABLE "
            "READ transaction and mapped, target documents read by _id; where both sides hash key ranges "
            "alike (server-side checksums), a range whose hashes are equal is settled without reading rows",
            "source",  # its rechecks emit markers on the source (the step below)
            bound(Verifier._compare),
        ),
        Step.of(
            PHASE,
            "recheck",
            f"recheck each differing key up to {settings.rechecks} rounds, waiting up to "
            f"{settings.settle_timeout:g} s for CDC to apply a marker ({marker}, prefix "
            f"'{MARKER_PREFIX}')",
            "source",
        ),
        Step.of(
            PHASE,
            "extras",
            "look for target documents the source does not have (a pass over target _ids)",
            "none",
            bound(Verifier._look_for_extras),
        ),
        Step.of(PHASE, "keep-report", "keep the report in the state store while a run is active", "state"),
        Step.of(
            PHASE,
            "repair",
            "only with --repair: re-copy the differing documents from the source",
            "target",
            bound(Verifier._repair_all),
        ),
    ]
