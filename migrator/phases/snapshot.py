"""Snapshot phase: a consistent, parallel, resumable copy of the mapped tables into documents.

Start: create the publication, then the slot with an exported snapshot; the coordinator
imports it and re-exports it for the copy workers (invariant 1: the copy reads exactly
what the slot's consistent point leaves for CDC).

Resume after a crash: finished chunks are kept; the slot and its position are kept. The
exported snapshot died with the crashed process, so unfinished chunks are re-read at a
newer consistent point T2 > T1 (the slot's point). That is still correct: CDC replays
every change after T1 with idempotent writes, so a row copied at T2 gets the changes
between T1 and T2 applied again, which converge to the row's latest state; a row deleted
before T2 is absent from the copy and its delete replays harmlessly. The target is
therefore consistent once CDC has passed T2, which the 'reread' checkpoint records.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from migrator.adapters.base import (
    PostCopyStatement,
    RawChunkReader,
    RowStreams,
    SnapshotSession,
    WriteResult,
)
from migrator.engine.context import PlanView, RunContext
from migrator.engine.events import (
    ChunkFinished,
    DocumentSkipped,
    ErrorRaised,
    RowsCopied,
    SlotCreated,
    SnapshotOpened,
    TablePlanned,
)
from migrator.engine.executor import Action, Executor, Step, actions
from migrator.engine.pipeline import WriteBehind
from migrator.engine.retry import bounded_attempts
from migrator.engine.workers import Workers
from migrator.errors import MigratorError, SourceError, TerminalError
from migrator.mapping.assemble import Assembler
from migrator.mapping.columns import columns_read
from migrator.mapping.spec import CollectionMapping
from migrator.phases.post_copy import EarlyBuilds, build
from migrator.phases.raw_copy import RawRoute, raw_route
from migrator.phases.undecoded import json_text_levels, undecoded_columns
from migrator.plan.names import publication_name, run_token, slot_name_pattern
from migrator.state.labels import SnapshotLabel
from migrator.state.store import ChunkRecord

PHASE = "snapshot"
# Flush a write batch at this many documents or bytes, whichever comes first: large
# enough for insert_many to amortise round trips, small enough to bound memory.
BATCH_DOCUMENTS = 1_000
BATCH_BYTES = 8 * 1024 * 1024
CHUNK_RETRIES = 3
# A table is split below chunk_rows to give every worker a share only down to this many rows.
MIN_SPLIT_ROWS = 1_000
# An undecoded chunk moves about ten times as fast as a document chunk of as many rows, so at the
# plan's default size (10,000 rows) its fixed cost (a statement on each side, a commit, two state
# checkpoints: about 40 ms on the benchmark's loaded machine) took half of its time: 310 chunks
# copied in 24 s of worker time, 32 chunks of ten times the rows in 12.5 s (docs/architecture.md,
# "Undecoded copy"). Only where the plan leaves `chunk_rows` unset.
UNDECODED_CHUNK_FACTOR = 10


@dataclass
class SnapshotResult:
    position: str  # CDC starts here (the slot's consistent point)
    consistent_after: str  # the target equals the source once CDC has passed this position
    chunks_copied: int = 0
    rows: int = 0
    documents: int = 0
    skipped: list[Any] = field(default_factory=list)
    stopped: bool = False


@dataclass(frozen=True)
class _Work:
    collection: CollectionMapping
    chunk: ChunkRecord


@dataclass
class _Copy:
    """What one run's steps hand on to the next (the slot's position, the snapshot open, the
    chunks planned), filled as the steps run."""

    resumed_from: str | None = None  # the slot's position, when an earlier attempt created it
    publication_existed: bool = False
    publication_created: bool = False
    coordinator: SnapshotSession | None = None
    position: str = ""  # CDC starts here
    read_position: str = ""  # where the copy reads (newer than `position` on a resume)
    reread: bool = False
    work: list[_Work] = field(default_factory=list)
    queued: list[_Work] = field(default_factory=list)
    result: SnapshotResult | None = None


class SnapshotPhase:
    name: ClassVar[str] = PHASE

    def __init__(
        self, ctx: RunContext, stop: threading.Event | None = None, executor: Executor | None = None
    ) -> None:
        self.ctx = ctx
        self.executor = executor if executor is not None else Executor.live()
        self.settings = ctx.plan.phases.snapshot
        self.slot = ctx.run.slot
        self.publication = publication_name(ctx.plan.name)
        self.publications = ctx.source.capture_setup()
        self._stop = stop if stop is not None else threading.Event()
        self._routes: dict[str, RawRoute | None] = {}
        # Per collection on the document path, the json/jsonb columns its target holds in a column
        # of the very same type: read and written as their text (phases/undecoded.py).
        self._json_text: dict[str, frozenset[str]] = {}
        self._created: frozenset[str] = frozenset()  # collections this run created (_created_here)

    # -- what it would do ----------------------------------------------------------------------

    def plan(self) -> list[Action]:
        return actions(steps(self.ctx))

    def rollback(self) -> list[Action]:
        # What undoing capture does on this source, as the adapter lists it (adapters/vocabulary.py).
        undo = self.ctx.vocabulary.teardown(self.slot, self.publication)
        return [
            *(Action(PHASE, text, "source") for text in undo),
            Action(PHASE, "drop the target collections this run created", "target"),
        ]

    def stop(self) -> None:
        """Ask the workers to finish their current chunk and stop (SIGINT/SIGTERM)."""
        self._stop.set()

    # -- run -----------------------------------------------------------------------------------

    def _tables(self) -> list[str]:
        return list(dict.fromkeys(t for c in self.ctx.collections for t in c.tables()))

    def run(self) -> SnapshotResult:
        """Perform the snapshot's steps (the ones `plan` lists: docs/architecture.md, "Executable
        actions") through the phase's executor."""
        copy = _Copy()
        try:
            self.executor.perform_steps(steps(self.ctx, self, copy))
        finally:
            if copy.coordinator is not None:
                copy.coordinator.close()
                if self.ctx.throttle is not None:
                    self.ctx.throttle.release(PHASE)
        assert copy.result is not None, "the copy steps ran"
        # Readers that read at positions of their own moved it while they copied.
        copy.result.consistent_after = self._consistent_after(copy.position)
        if not copy.result.stopped:
            self.ctx.store.add_checkpoint(
                self.ctx.run.id,
                PHASE,
                SnapshotLabel.DONE,
                copy.result.position,
                {"consistent_after": copy.result.consistent_after, "slot": self.slot},
            )
        return copy.result

    # -- the steps' effects, in order ------------------------------------------------------------

    def _resumed_from(self) -> str | None:
        """The slot's position when this run created it before (a resume), else None."""
        store, run = self.ctx.store, self.ctx.run
        start = next((c for c in store.checkpoints(run.id, PHASE) if c.label == SnapshotLabel.SLOT), None)
        return None if start is None else start.position

    def _record_before(self, copy: _Copy) -> None:
        copy.resumed_from = self._resumed_from()
        if copy.resumed_from is None:
            copy.publication_existed = self._record_target_and_source()

    def _create_publication(self, copy: _Copy) -> None:
        if copy.resumed_from is None:
            copy.publication_created = self._ensure_publication(copy.publication_existed)

    def _create_slot(self, copy: _Copy) -> None:
        if copy.resumed_from is None:
            copy.coordinator, copy.position = self._create_slot_and_export(copy.publication_created)
            copy.read_position, copy.reread = copy.position, False
            return
        position = copy.position = copy.resumed_from
        if not self.publications.slot_exists(self.slot):
            raise TerminalError(
                f"{self.ctx.vocabulary.named_stream(self.slot)} of run {self.ctx.run.id} no longer exists: "
                f"changes since {position} are lost to this run, and a new snapshot is needed",
                hint="run `migrator rollback` for this plan, then `migrator run` again",
            )
        copy.coordinator = self.ctx.source.snapshot_session(None)
        copy.read_position, copy.reread = copy.coordinator.position, True

    def _split(self, copy: _Copy) -> None:
        store, run = self.ctx.store, self.ctx.run
        assert copy.coordinator is not None, "the slot step opened the snapshot"
        if copy.reread:
            store.add_checkpoint(run.id, PHASE, SnapshotLabel.REREAD, copy.read_position, {"slot": self.slot})
        self.ctx.events.emit(SnapshotOpened(copy.read_position, copy.reread))
        if self.ctx.throttle is not None:
            self.ctx.throttle.poll(PHASE)  # reads the controls (--chunk-rows) before planning
        copy.work = self._plan_chunks(copy.coordinator)
        copy.result = SnapshotResult(
            position=copy.position, consistent_after=self._consistent_after(copy.position)
        )

    def _copy_collection(self, copy: _Copy, collection: CollectionMapping, last: bool) -> None:
        # The workers share the chunks of every collection (a table's chunks beside another's), so
        # each collection's step queues its chunks and the last one runs the workers over them all.
        copy.queued.extend(w for w in copy.work if w.collection.name == collection.name)
        if last:
            assert copy.coordinator is not None and copy.result is not None, "the split step ran"
            self._copy(copy.coordinator.exported, copy.queued, copy.result, copy.read_position)

    def _build_after_copy(self, copy: _Copy, statements: Sequence[PostCopyStatement]) -> None:
        assert copy.result is not None, "the copy steps ran"
        if not copy.result.stopped:  # a stopped copy builds nothing: its resume will
            build(self.ctx.target, statements, self.settings.parallel, self.ctx.events)

    def _consistent_after(self, position: str) -> str:
        rereads = [
            c.position
            for c in self.ctx.store.checkpoints(self.ctx.run.id, PHASE)
            if c.label == SnapshotLabel.REREAD
        ]
        return max([position, *rereads], key=self.ctx.source.positions.parse)

    def _record_target_and_source(self) -> bool:
        """Record the target's collections and whether the publication existed before this run;
        whether it existed (as recorded, also by a run that crashed before its slot)."""
        store, run = self.ctx.store, self.ctx.run
        before = self.ctx.target.existing_collections()
        store.add_checkpoint(
            run.id,
            PHASE,
            SnapshotLabel.TARGET_BEFORE,
            "",
            {"collections": {c.name: before.get(c.name) for c in self.ctx.collections}},
        )
        # Whether the publication existed before this run, recorded before anything is created
        # (preflight read the source's publications a moment ago): rollback drops it only if this
        # run created it, also when a crash came between creating it and recording the slot.
        recorded = next(
            (c for c in store.checkpoints(run.id, PHASE) if c.label == SnapshotLabel.SOURCE_BEFORE), None
        )
        if recorded is None:
            existed = self.publication in self.ctx.source_info.server.existing_publications
            store.add_checkpoint(
                run.id,
                PHASE,
                SnapshotLabel.SOURCE_BEFORE,
                "",
                {"publication": self.publication, "publication_existed": existed},
            )
        else:
            existed = bool(recorded.detail.get("publication_existed"))
        return existed

    def _ensure_publication(self, existed: bool) -> bool:
        """Create or align the publication; whether this run counts as its creator."""
        run = self.ctx.run
        # Only the columns the mapping reads leave the source, where PostgreSQL allows a column
        # list (docs/architecture.md, "Publication column lists"); a publication found is made to
        # publish exactly the mapped tables and columns.
        read = columns_read(self.ctx.collections)
        created_now = self.publications.ensure_publication(
            self.publication, {t: read[t] for t in self._tables()}
        )
        publication_created = created_now or not existed
        self.ctx.target.ownership(self.ctx.plan.name).note(
            run.id, {"publication_created": publication_created}
        )
        return publication_created

    def _create_slot_and_export(self, publication_created: bool) -> tuple[SnapshotSession, str]:
        store, run = self.ctx.store, self.ctx.run
        if self.publications.slot_exists(self.slot):
            if not self.slot.endswith("_" + run_token(run.id)):
                # A slot named after the plan alone (runs begun by an earlier version): nothing
                # proves that this run created it, so it is neither dropped nor used.
                words = self.ctx.vocabulary
                raise TerminalError(
                    f"{words.named_stream(self.slot)} exists, and run {run.id} cannot prove that it created it",
                    hint="if no other run of this plan uses it, drop it "
                    f"({words.drop_stream_hint(self.slot)}) and run again",
                )
            # Its name carries this run: left by a crash of this run between creating the slot and
            # recording it. No chunk was copied under it (chunks need the 'slot' checkpoint), so it
            # is safe to start over.
            self.publications.drop_slot(self.slot)
        exporter = self.ctx.source.export_snapshot(self.slot)
        try:
            coordinator = self.ctx.source.snapshot_session(exporter.start.snapshot_name)
        finally:
            # The coordinator holds the snapshot now; the replication connection may go.
            exporter.close()
        try:
            # The mapped tables' shape as the snapshot sees it: what CDC checks DDL against
            # (docs/architecture.md, "Schema changes").
            schema = self.ctx.source.table_shapes(self._tables(), coordinator.exported)
            store.add_checkpoint(
                run.id,
                PHASE,
                SnapshotLabel.SLOT,
                exporter.start.position,
                {
                    "slot": self.slot,
                    "publication": self.publication,
                    "publication_created": publication_created,
                    "snapshot": exporter.start.snapshot_name,
                    "schema": schema,
                },
            )
        except MigratorError:
            coordinator.close()
            raise
        self.ctx.events.emit(
            SlotCreated(
                self.slot,
                self.publication,
                exporter.start.position,
                publication_created,
                self.ctx.vocabulary.capture(self.publication),
                self.ctx.vocabulary.stream,
            )
        )
        return coordinator, exporter.start.position

    def _plan_chunks(self, coordinator: SnapshotSession) -> list[_Work]:
        store, run = self.ctx.store, self.ctx.run
        planned = next(
            (c for c in store.checkpoints(run.id, PHASE) if c.label == SnapshotLabel.PLANNED), None
        )
        counts: dict[str, int] = dict(planned.detail["chunks"]) if planned else {}
        if planned is None:
            for collection in self.ctx.collections:
                table = self.ctx.source_info.tables[collection.table]
                key_types = [_column_type(table, k) for k in collection.document.key]
                size = chunk_size(table.estimated_rows, self._chunk_rows(collection), self.settings.parallel)
                bounds = coordinator.key_boundaries(
                    collection.table, collection.document.key, key_types, size
                )
                edges: list[list[str] | None] = [None, *bounds, None]
                for i in range(len(edges) - 1):
                    store.record_chunk(
                        run.id, collection.name, i, lo=edges[i], hi=edges[i + 1], status="pending"
                    )
                counts[collection.name] = len(edges) - 1
            store.add_checkpoint(run.id, PHASE, SnapshotLabel.PLANNED, "", {"chunks": counts})
        work: list[_Work] = []
        for collection in self.ctx.collections:
            chunks = [
                c for c in store.chunks(run.id, collection.name) if c.chunk_id < counts[collection.name]
            ]
            done = [c for c in chunks if c.status == "done"]
            estimated = self.ctx.source_info.tables[collection.table].estimated_rows
            self.ctx.events.emit(
                TablePlanned(
                    collection.name,
                    collection.table,
                    estimated,
                    len(chunks),
                    len(done),
                    sum(c.rows_read for c in done),
                    sum(c.docs_written for c in done),
                )
            )
            work.extend(_Work(collection, c) for c in chunks if c.status != "done")
        return work

    def _chunk_rows(self, collection: CollectionMapping) -> int:
        """The chunk size a collection is planned with: `migrator throttle --chunk-rows` set before
        the chunks were planned cuts them (once planned and checkpointed for resume they stay, and
        it sets the copy step); else the plan's `chunk_rows`; where the plan leaves it unset, a
        collection copied undecoded takes UNDECODED_CHUNK_FACTOR times the default."""
        throttle = self.ctx.throttle
        chunk_rows = throttle.chunk_rows if throttle is not None else self.settings.chunk_rows
        if chunk_rows != self.settings.chunk_rows or "chunk_rows" in self.settings.model_fields_set:
            return chunk_rows
        name = collection.name
        if name not in self._routes:
            self._routes[name] = raw_route(self.ctx.source, self.ctx.target, collection)
        return chunk_rows * UNDECODED_CHUNK_FACTOR if self._routes[name] is not None else chunk_rows

    def _copy(self, snapshot_name: str, work: list[_Work], result: SnapshotResult, position: str) -> None:
        # Which collections move undecoded (raw_copy.py), decided once, before any chunk.
        for item in work:
            name = item.collection.name
            if name not in self._routes:
                self._routes[name] = raw_route(self.ctx.source, self.ctx.target, item.collection)
            if self._routes[name] is None and name not in self._json_text:
                taken = undecoded_columns(self.ctx.source, self.ctx.target, [item.collection])
                self._json_text[name] = taken.get(item.collection.table, frozenset())
        self._created = self._created_here()
        self._keys_before_documents(work)
        pending: queue.Queue[_Work] = queue.Queue()
        # The largest tables first (pgcopydb's order): their keys and indexes, the longest builds,
        # then run while the smaller tables copy (EarlyBuilds), not after the last chunk.
        tables = self.ctx.source_info.tables
        for item in sorted(work, key=lambda w: -tables[w.collection.table].estimated_rows):
            pending.put(item)
        lock = threading.Lock()
        workers = Workers("migrator-copy", min(self.settings.parallel, max(1, len(work))), self._stop)
        # A table's indexes start once its last chunk is copied (phases/post_copy.py).
        early = EarlyBuilds(
            self.ctx.target, self.ctx.post_copy.statements, self.settings.parallel, self.ctx.events
        )
        left = collections.Counter(item.collection.name for item in work)

        def worker() -> None:
            reader: RowStreams | None = None
            try:
                while not self._stop.is_set() and not workers.failed:
                    if self.ctx.throttle is not None:
                        self.ctx.throttle.wait(PHASE, self._stop)  # held between chunks
                        if self._stop.is_set():
                            break
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        return
                    reader = self._copy_with_retries(reader, snapshot_name, item, result, position, lock)
                    with lock:
                        left[item.collection.name] -= 1
                        copied = left[item.collection.name] == 0
                    if copied:
                        early.table_copied(item.collection.name)
            finally:
                if reader is not None:
                    reader.close()

        try:
            # Ctrl-C: the workers have finished the chunks in flight and checkpointed them
            # (engine/workers.py); the snapshot ends stopped, and the next run resumes it.
            with contextlib.suppress(KeyboardInterrupt):
                workers.run(worker)
        except BaseException:
            early.abandon()  # the copy's error is the run's
            raise
        result.stopped = self._stop.is_set() and not pending.empty()
        if self._stop.is_set():
            early.abandon()
        else:
            early.finish()

    def _created_here(self) -> frozenset[str]:
        """The collections that did not exist on the target before this run (every record-before
        checkpoint says so): only this run's chunks ever wrote them."""
        before = [
            c.detail.get("collections", {})
            for c in self.ctx.store.checkpoints(self.ctx.run.id, PHASE)
            if c.label == SnapshotLabel.TARGET_BEFORE
        ]
        if not before:
            return frozenset()
        names = {c.name for c in self.ctx.collections}
        return frozenset(n for n in names if all(b.get(n) is None for b in before))

    def _keys_before_documents(self, work: list[_Work]) -> None:
        """A target that builds primary keys after the copy builds them first for the collections
        that take the document path: their writes are upserts by key (docs/architecture.md, "After
        the copy")."""
        documents = {w.collection.name for w in work if self._routes.get(w.collection.name) is None}
        keys = [s for s in self.ctx.post_copy.statements if s.kind == "primary_key" and s.table in documents]
        build(self.ctx.target, keys, self.settings.parallel, self.ctx.events)

    def _copy_with_retries(
        self,
        reader: RowStreams | None,
        snapshot_name: str,
        item: _Work,
        result: SnapshotResult,
        position: str,
        lock: threading.Lock,
    ) -> RowStreams:
        attempts = item.chunk.attempts
        # A TransientError: the reader's connection (or the target's) failed: reconnect and redo
        # the chunk, which is idempotent. Bounded, so a dead server ends the run.
        retries = bounded_attempts(
            CHUNK_RETRIES,
            announce=lambda exc: self.ctx.events.emit(ErrorRaised.of(PHASE, exc, retrying=True)),
        )
        for attempt in retries:
            if reader is None:
                reader = self.ctx.source.snapshot_reader(snapshot_name)  # not retried: raised as it is
                self._note_read_position(reader, position, lock)
            attempts += 1
            with attempt:
                try:
                    self._copy_chunk(reader, item, attempts, result, position, lock)
                    return reader
                except BaseException:
                    # A new connection for the next attempt; and when there is none, the worker
                    # never gets this reader back to close: an open copy transaction would hold
                    # the snapshot (and the vacuum horizon) until garbage collection.
                    reader.close()
                    reader = None
                    raise
        raise AssertionError("unreachable: the last attempt's error is raised")

    def _note_read_position(self, reader: RowStreams, position: str, lock: threading.Lock) -> None:
        """A reader that cannot share the exported snapshot reads at a newer position of its own
        (docs/architecture.md, "MySQL and MariaDB sources"): recorded as a re-read's is, before it
        copies anything, so that the snapshot is consistent only once CDC has passed it."""
        at = reader.read_position
        parse = self.ctx.source.positions.parse
        if at is not None and parse(at) > parse(position):
            with lock:
                self.ctx.store.add_checkpoint(
                    self.ctx.run.id, PHASE, SnapshotLabel.REREAD, at, {"slot": self.slot, "reader": True}
                )

    def _copy_chunk(
        self,
        reader: RowStreams,
        item: _Work,
        attempt: int,
        result: SnapshotResult,
        position: str,
        lock: threading.Lock,
    ) -> None:
        store, run = self.ctx.store, self.ctx.run
        collection, chunk = item.collection, item.chunk
        started = time.monotonic()
        store.record_chunk(
            run.id,
            collection.name,
            chunk.chunk_id,
            lo=chunk.lo,
            hi=chunk.hi,
            status="running",
            attempts=attempt,
        )
        table = self.ctx.source_info.tables[collection.table]
        key_types = [_column_type(table, k) for k in collection.document.key]
        route = self._routes.get(collection.name)
        if route is not None and isinstance(reader, RawChunkReader):
            # Nothing to replace where no attempt at this chunk ever began in a table this run
            # created (docs/architecture.md, "After the copy"): `attempt` counts the earlier ones.
            known_empty = attempt == 1 and collection.name in self._created
            rows = _described(
                item,
                lambda: route.copy(
                    reader, collection, key_types, chunk.lo, chunk.hi, known_empty=known_empty
                ),
            )
            self.ctx.events.emit(RowsCopied(collection.name, rows, rows))
            done = _Done(rows, rows, 0, [], route.form)
            self._finish_chunk(item, attempt, done, started, result, position, lock)
            return
        assembler = Assembler(collection)
        levels = json_text_levels(assembler.reads(), self._json_text.get(collection.name, frozenset()))
        streams = reader.stream(
            levels, collection.table, collection.document.key, key_types, chunk.lo, chunk.hi
        )
        target = self.ctx.target
        writer = target.writer(collection.name)
        batch: list[tuple[Any, bytes]] = []
        batch_bytes = rows = 0
        counts = {"docs": 0, "replaced": 0, "rows_reported": 0, "docs_reported": 0}
        skipped: list[Any] = []
        pending_rows: list[int] = []

        def written(outcome: WriteResult) -> None:
            # Runs in the write-behind thread, in submission order.
            counts["docs"] += outcome.inserted + outcome.replaced
            counts["replaced"] += outcome.replaced
            batch_rows = pending_rows.pop(0)
            self.ctx.events.emit(RowsCopied(collection.name, batch_rows, outcome.inserted + outcome.replaced))

        behind: WriteBehind[list[tuple[Any, bytes]], WriteResult] = WriteBehind(writer.write, written)
        batch_start_rows = 0
        throttle = self.ctx.throttle
        step = 0  # root rows since the last throttle check (every throttle.chunk_rows, the copy step)
        try:
            for doc_id, document, used in assembler.documents(streams):
                rows += used
                step += 1
                if throttle is not None and step >= throttle.chunk_rows:
                    step = 0
                    if throttle.poll(PHASE).throttled:
                        if batch:  # what was read so far reaches the target before the hold
                            pending_rows.append(rows - used - batch_start_rows)
                            batch_start_rows = rows - used
                            behind.submit(batch)
                            batch, batch_bytes = [], 0
                        throttle.wait(PHASE, self._stop)
                raw = target.encode_document(document, collection.name)
                if len(raw) > target.max_document_bytes:
                    if self.settings.on_oversize == "stop":
                        raise TerminalError(
                            f"document {doc_id!r} of {collection.name} would be {len(raw):,} bytes, over MongoDB's "
                            f"16 MB limit ({used:,} source rows)",
                            hint="map the large child table to its own collection, or set "
                            "phases.snapshot.on_oversize: skip to skip and log such documents",
                        )
                    skipped.append(doc_id)
                    self.ctx.events.emit(DocumentSkipped(collection.name, doc_id, len(raw), "over 16 MB"))
                    continue
                batch.append((doc_id, raw))
                batch_bytes += len(raw)
                if len(batch) >= BATCH_DOCUMENTS or batch_bytes >= BATCH_BYTES:
                    pending_rows.append(rows - batch_start_rows)
                    batch_start_rows = rows
                    behind.submit(batch)
                    batch, batch_bytes = [], 0
            if batch:
                pending_rows.append(rows - batch_start_rows)
                behind.submit(batch)
        except SourceError as exc:
            raise _where(item, exc) from None
        finally:
            behind.close()
        done = _Done(rows, counts["docs"], counts["replaced"], skipped)
        self._finish_chunk(item, attempt, done, started, result, position, lock)

    def _finish_chunk(
        self,
        item: _Work,
        attempt: int,
        done: _Done,
        started: float,
        result: SnapshotResult,
        position: str,
        lock: threading.Lock,
    ) -> None:
        store, run = self.ctx.store, self.ctx.run
        collection, chunk = item.collection, item.chunk
        rows, docs = done.rows, done.docs
        # Checkpoint after data (invariant 3): the chunk counts as done only once its writes
        # were acknowledged.
        store.record_chunk(
            run.id,
            collection.name,
            chunk.chunk_id,
            lo=chunk.lo,
            hi=chunk.hi,
            status="done",
            rows_read=rows,
            docs_written=docs,
            attempts=attempt,
        )
        seconds = time.monotonic() - started
        self.ctx.events.emit(
            ChunkFinished(
                collection=collection.name,
                table=collection.table,
                chunk_id=chunk.chunk_id,
                lo=chunk.lo,
                hi=chunk.hi,
                position=position,
                rows_read=rows,
                docs_written=docs,
                replaced=done.replaced,
                attempt=attempt,
                seconds=round(seconds, 3),
                form=done.form,
            )
        )
        with lock:
            result.chunks_copied += 1
            result.rows += rows
            result.documents += docs
            result.skipped.extend(done.skipped)


@dataclass(frozen=True)
class _Done:
    """What a chunk's copy wrote."""

    rows: int
    docs: int
    replaced: int
    skipped: list[Any]
    form: str = ""  # the format it moved in undecoded, "" for documents


def _where(item: _Work, exc: SourceError) -> MigratorError:
    """`exc` saying which rows: a value the driver cannot represent (infinity or BC dates, years
    past 9999) comes back as a data exception without saying where."""
    collection, chunk = item.collection, item.chunk
    return SourceError(
        f"reading {collection.table} (collection {collection.name}) for keys after {chunk.lo} up to "
        f"{chunk.hi}: {exc.message}",
        hint=exc.hint
        or "dates and timestamps must lie within years 1 to 9999 and be finite; exclude the column "
        "or fix the rows",
    ).origin_of(exc)


def _described(item: _Work, copy: Callable[[], int]) -> int:
    try:
        return copy()
    except SourceError as exc:
        raise _where(item, exc) from None


def steps(view: PlanView, phase: SnapshotPhase | None = None, copy: _Copy | None = None) -> list[Step]:
    """The snapshot's steps, in order: listed from the plan view (--dry-run, the runbook), and
    with effects bound to `phase` when it runs them (docs/architecture.md, "Executable actions").
    On a resume the first three find the slot recorded and only check it."""
    plan, settings = view.plan, view.plan.phases.snapshot
    publication, slot = publication_name(plan.name), slot_name_pattern(plan.name)
    tables = ", ".join(dict.fromkeys(t for c in view.collections for t in c.tables()))
    words = view.vocabulary
    state = copy if copy is not None else _Copy()

    def bound(effect: Callable[[SnapshotPhase], object]) -> Callable[[], object] | None:
        if phase is None:
            return None  # listed only
        running = phase
        return lambda: effect(running)

    result = [
        Step.of(
            PHASE,
            "record-before",
            "record the run and which target collections exist before it",
            "state",
            bound(lambda p: p._record_before(state)),
        ),
    ]
    if view.target_schema:
        # Tables before the copy (docs/architecture.md, "Tables as collections"); IF NOT EXISTS:
        # a resumed run finds them made.
        result.append(
            Step.of(
                PHASE,
                "create-target-tables",
                "create the target tables where missing:\n" + ";\n".join(view.target_schema) + ";",
                "target",
                bound(lambda p: p.ctx.target.execute_schema(view.target_schema)),
            )
        )
    result += [
        Step.of(
            PHASE,
            "create-publication",
            words.create_capture.format(publication=publication, tables=tables),
            "source",
            bound(lambda p: p._create_publication(state)),
        ),
        Step.of(
            PHASE,
            "create-slot",
            words.create_stream.format(stream=slot),
            "source",
            bound(lambda p: p._create_slot(state)),
        ),
        Step.of(
            PHASE,
            "split",
            "split each table into key-range chunks, recorded in the state store",
            "state",
            bound(lambda p: p._split(state)),
        ),
    ]
    for i, c in enumerate(view.collections):
        info = view.source_info.tables
        rows = info[c.table].estimated_rows if c.table in info else 0
        embedded = [t for t in c.tables() if t != c.table]
        last = i == len(view.collections) - 1
        result.append(
            Step.of(
                PHASE,
                f"copy-{c.name}",
                f"copy {c.table} (~{rows:,} rows)"
                + (f" with {', '.join(embedded)} embedded" if embedded else "")
                + f" into {plan.target.database}.{c.name} in chunks of {settings.chunk_rows:,} "
                f"with {settings.parallel} worker(s); each chunk checkpointed once written",
                "target",
                bound(_copying(state, c, last)),
            )
        )
    after = view.post_copy.statements
    if after:
        # After every copy step: indexes built once over the copied rows (docs/architecture.md,
        # "After the copy"); each skipped where the target has it (a resumed run).
        result.append(
            Step.of(
                PHASE,
                "build-after-copy",
                f"build the target's indexes and constraints, {settings.parallel} at a time, foreign keys "
                "last:\n" + ";\n".join(s.sql for s in after) + ";",
                "target",
                bound(lambda p: p._build_after_copy(state, after)),
            )
        )
    return result


def _copying(copy: _Copy, collection: CollectionMapping, last: bool) -> Callable[[SnapshotPhase], object]:
    return lambda phase: phase._copy_collection(copy, collection, last)


def planned_actions(view: PlanView) -> list[Action]:
    """What the snapshot would do, in order (pure: feeds --dry-run and the runbook)."""
    return actions(steps(view))


def chunk_size(estimated_rows: int, chunk_rows: int, parallel: int) -> int:
    """Rows per chunk: at most `chunk_rows`, and small enough that a table gives every worker a
    chunk (a table of about `chunk_rows` rows was one chunk, and `parallel` did nothing), but not
    below MIN_SPLIT_ROWS, where a chunk's fixed cost outweighs sharing it (unless the plan asks for
    smaller chunks itself)."""
    if estimated_rows <= 0 or parallel <= 1:
        return chunk_rows
    shared = -(-estimated_rows // parallel)
    return min(chunk_rows, max(MIN_SPLIT_ROWS, shared))


def _column_type(table: Any, name: str) -> str:
    column = table.column(name)
    assert column is not None, f"{table.name}.{name} vanished after resolution"
    return str(column.type_name)
