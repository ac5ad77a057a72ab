"""CDC phase: every source change after the snapshot, applied to the target in commit order.

Stream -> decode -> group by source transaction -> map to document writes -> apply in
batches of several transactions with the checkpoint -> acknowledge the durable position
(docs/architecture.md, "A change's path").

- Start: the checkpoint stored in the target beside the data (authoritative), else the
  slot's consistent point from the snapshot.
- A lost connection to either side: reconnect and resume from the durable checkpoint, a
  bounded streak of failures without progress.

This module is the orchestration. The source reads its own protocol into typed events and
checks its schema (`ctx.source.change_stream`, `ctx.source.schema_watch`: for PostgreSQL,
adapters/postgres/changes.py and schema_watch.py); phases/follow_loop.py reads one stream's
events, maps them, applies them through the apply thread and acknowledges what is durable; the
target's applier writes a batch with its checkpoint. What a column added while CDC follows
needs is in phases/backfill.py.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from migrator.adapters.base import CaptureStream, FollowsAddedColumns, SourceInfo, TableInfo
from migrator.engine import heap
from migrator.engine.context import PlanView, RunContext
from migrator.engine.events import ErrorRaised, Notice
from migrator.engine.executor import Action, Executor, Step, actions
from migrator.engine.retry import RetryStopped, retrying_streak
from migrator.errors import BatchTooLarge, MigratorError, SourceError, TerminalError, TransientError
from migrator.mapping.assemble import Assembler
from migrator.mapping.changes import ChangeMapper
from migrator.mapping.columns import columns_read
from migrator.mapping.lookup import MappedDocuments
from migrator.mapping.source_reads import SourceReads
from migrator.mapping.spec import Resolution, resolve
from migrator.phases.applied import wait_until_applied
from migrator.phases.backfill import BACKFILL_PREFIX, AddedColumns, Backfills
from migrator.phases.batch_size import BatchLimit
from migrator.phases.follow_loop import HEARTBEAT_PREFIX, PHASE, Following, unexpected
from migrator.phases.lag import LagTracker
from migrator.phases.mapped_columns import mapped_columns
from migrator.phases.oracle import DualWriteOracle
from migrator.phases.undecoded import undecoded_columns
from migrator.plan.names import cdc_checkpoint_id, publication_name, reverse_origin_name, slot_name_pattern
from migrator.state.labels import SnapshotLabel

__all__ = [
    "PHASE",
    "CdcPhase",
    "CdcResult",
    "ChangeObserver",
    "planned_actions",
    "steps",
    "wait_until_applied",
]

# Called for each applied row change: (table, old row, new row, 'insert' | 'update' | 'delete').
ChangeObserver = Callable[[str, Any, Any, str], None]
MAX_CONSECUTIVE_FAILURES = 8
SLOT_RELEASE_S = 60.0  # how long a reconnect waits for the server to let go of the slot

Until = Literal["caught-up", "stopped"]


@dataclass
class CdcResult:
    position: str
    transactions: int = 0
    changes: int = 0
    stopped: bool = False
    caught_up: bool = False
    dual_write: dict[str, Any] | None = None  # cdc.apply: false: the oracle's counts (phases/oracle.py)


class CdcPhase:
    name: ClassVar[str] = PHASE

    def __init__(
        self,
        ctx: RunContext,
        *,
        stop: threading.Event,
        until: Until = "stopped",
        executor: Executor | None = None,
    ) -> None:
        self.ctx = ctx
        self.executor = executor if executor is not None else Executor.live()
        self.settings = ctx.plan.phases.cdc
        # Writes per batch: phases.cdc.batch_changes, less while the target aborts batches
        # (docs/architecture.md, "Batches that adapt"); kept across reconnects.
        self.batch_limit = BatchLimit(self.settings.batch_changes, events=ctx.events)
        self.until = until
        self.stop_event = stop
        self.slot = ctx.run.slot
        self.publication = publication_name(ctx.plan.name)
        # Reverse sync (phases/reverse.py) writes the source under this replication origin;
        # its transactions are skipped (phases/follow_loop.py), so that they never echo back.
        self.reverse_origin = reverse_origin_name(ctx.plan.name)
        self.monitor = ctx.source.monitor()
        # The one measure of lag (phases/lag.py): progress, metrics, --until caught-up and the
        # throttler's max_lag rule read it.
        self.lag = LagTracker(bytes_between=ctx.source.positions.bytes_between)
        if ctx.throttle is not None:
            ctx.throttle.follow_lag(self.lag.seconds)
        # Mapped columns added since the snapshot: their documents are brought up to date at a
        # point of the stream after the ALTER (phases/backfill.py).
        self.added = AddedColumns()
        self.backfills = Backfills(self)
        self.mapper = self._build_mapper()
        # The source's checks that the mapped tables and the publication are still what the
        # mapping was built on; it also keeps the relations the stream is decoded with.
        self.schema = ctx.source.schema_watch(
            self.publication, ctx.source_info, self.mapped, self, self._recorded_schema
        )
        target = ctx.target
        info = target.inspect([])
        # Embedded content a change names only by link values (mapping/reads.py), read once the
        # source shows the batch's transactions (follow_loop.py applies under `reads.showing`).
        self.reads = SourceReads(ctx.source)
        self.applier = target.applier(
            cdc_checkpoint_id(ctx.plan.name),
            transactions=info.transactions,
            current=self._current_document,
            reads=self.reads,
        )
        # Called with (table, old row, new row, 'insert'|'update'|'delete') for every change put
        # in a batch: the cutover's record of documents touched since its verify.
        self.observers: list[ChangeObserver] = []
        # cdc.apply: false: nothing is written but the checkpoint; the oracle checks the
        # application's own writes instead (phases/oracle.py).
        self.oracle: DualWriteOracle | None = None
        if not self.settings.apply:
            self.oracle = DualWriteOracle(
                ctx.collections,
                ctx.source_info,
                MappedDocuments(ctx.collections, ctx.source, target),
                ctx.events,
                grace=ctx.plan.phases.verify.dual_write_grace,
                unchanged=ctx.source.unchanged,
            )

    def _current_document(self, collection: str, doc_id: Any) -> dict[str, Any] | None:
        """Document `doc_id` of `collection` as the source holds it now, read as the snapshot
        reads a chunk (None: the source has no such row). For the applier, when a change needs
        stored state that the target does not hold."""
        mapping = next(c for c in self.ctx.collections if c.name == collection)
        key = mapping.document.key
        table = self.ctx.source_info.tables[mapping.table]
        key_types = [str(column.type_name) for k in key if (column := table.column(k)) is not None]
        values = [doc_id] if len(key) == 1 else [doc_id[k] for k in key]
        assembler = Assembler(mapping)
        # Once the source shows the transactions of the batch being applied and those before it
        # no read has shown yet (follow_loop.py, mapping/source_reads.py).
        visible = self.reads.visible
        with self.ctx.source.rows_at_key(
            mapping.table, key, key_types, values, assembler.reads(), visible
        ) as streams:
            self.reads.shown(visible)
            documents = [document for _, document, _ in assembler.documents(streams)]
        return documents[0] if documents else None

    def _recorded_schema(self) -> Any:
        """The mapped tables' shape the snapshot recorded (None: a run begun before it was)."""
        slot = next(
            (
                c
                for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot")
                if c.label == SnapshotLabel.SLOT
            ),
            None,
        )
        return slot.detail.get("schema") if slot is not None else None

    # -- mapping ---------------------------------------------------------------------------------

    def _build_mapper(self) -> ChangeMapper:
        tables = self.ctx.source_info.tables
        identity = {name: info.identity_columns for name, info in tables.items()}
        self.mapped = mapped_columns(self.ctx.plan.collections, self.ctx.collections)
        if self.settings.apply:
            # Values the target takes as the source sends them are not decoded (docs/architecture.md,
            # "Undecoded change values"); the dual-write oracle (cdc.apply: false) compares values.
            undecoded = undecoded_columns(self.ctx.source, self.ctx.target, self.ctx.collections)
            self.mapped = dataclasses.replace(self.mapped, undecoded=undecoded)
        return ChangeMapper(self.ctx.collections, identity, self.ctx.source.unchanged)

    # The source's schema checks ask these (adapters/base.py SchemaHost).

    def notice(self, level: str, message: str) -> None:
        self.ctx.events.emit(Notice(level, message))

    def _with(self, table: str, info: TableInfo) -> tuple[SourceInfo, Resolution]:
        """The source as inspected with `table` as `info` says, and the mapping resolved on it."""
        tables = dict(self.ctx.source_info.tables)
        tables[table] = info
        source_info = type(self.ctx.source_info)(self.ctx.source_info.server, tables, ())
        return source_info, resolve(list(self.ctx.plan.collections), source_info, self.ctx.target.vocabulary)

    def table_changed(self, table: str, info: TableInfo) -> None:
        source_info, resolution = self._with(table, info)
        if not resolution.ok:
            problems = "; ".join(f.message for f in resolution.findings)
            raise TerminalError(
                f"the mapping no longer resolves after a schema change on {table}: {problems}"
            )
        self.ctx.source_info = source_info
        self.ctx.collections = resolution.collections
        self._add_target_columns(table, resolution)
        self.mapper = self._build_mapper()
        self.schema.remap(source_info, self.mapped)
        if self.oracle is not None:
            self.oracle.remap(resolution.collections, source_info)
        # Changed rows carry the added columns from here on; the documents of the others are
        # brought up to date when the stream is past the ALTER (phases/backfill.py).

    def _add_target_columns(self, table: str, resolution: Resolution) -> None:
        """A target of fixed columns (tables) gets the columns the mapping now takes, before a
        change carries them (docs/architecture.md, "A column added while CDC follows")."""
        target = self.ctx.target
        if not self.settings.apply or not isinstance(target, FollowsAddedColumns):
            return
        for statement in target.add_columns([c for c in resolution.collections if table in c.tables()]):
            self.notice("info", f"{table}: a column added on the source, added on the target: {statement}")

    def reads_with(self, table: str, info: TableInfo) -> dict[str, set[str]] | None:
        _, resolution = self._with(table, info)
        if not resolution.ok:
            return None
        read = columns_read(resolution.collections)
        return {t: read[t] for t in dict.fromkeys(t for c in resolution.collections for t in c.tables())}

    def column_added(self, table: str, column: str) -> None:
        self.backfills.mark(table, column)

    def _backfill(self, table: str, added: set[str], tick: Callable[[], None]) -> None:
        """Bring the documents of `table` up to date with columns `added` since the snapshot, at
        this point of the stream (phases/backfill.py)."""
        self.backfills.run(table, added, tick)

    # -- the loop --------------------------------------------------------------------------------

    def plan(self) -> list[Action]:
        return actions(steps(self.ctx))

    def start_position(self) -> tuple[int, str]:
        stored = self.applier.checkpoint()
        self.added.load(stored)
        slot = next(
            c
            for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot")
            if c.label == SnapshotLabel.SLOT
        )
        self.lag.resume(stored, snapshot_at=slot.created_at)
        if stored is not None:
            return int(stored["position"]), "target checkpoint"
        return self.ctx.source.positions.parse(slot.position), "snapshot position"

    def run(self) -> CdcResult:
        """Perform CDC's steps (the ones `plan` lists: docs/architecture.md, "Executable
        actions"): the second one's (apply) effect is the whole follow loop, which does the others."""
        try:
            result: CdcResult = self.executor.perform_steps(steps(self.ctx, self))[1]
            return result
        finally:
            if self.ctx.throttle is not None:
                self.ctx.throttle.release(PHASE)

    def max_lag(self) -> float:
        """cdc.max_lag, or `migrator throttle --max-lag` while it is set."""
        return self.ctx.throttle.max_lag if self.ctx.throttle is not None else self.settings.max_lag

    def _run(self) -> CdcResult:
        if self.oracle is None:
            return self._follow()
        self.oracle.start()
        try:
            result = self._follow()
        except BaseException:
            self.oracle.close(drain=False)
            raise
        result.dual_write = self.oracle.close(drain=True).to_dict()
        return result

    def _follow(self) -> CdcResult:
        text = self.ctx.source.positions.text
        checkpoint, origin = self.start_position()
        state = self.monitor.state(self.slot)
        if state is None:
            raise SourceError(
                f"{self.ctx.vocabulary.named_stream(self.slot)} no longer exists: changes after "
                f"{text(checkpoint)} are lost "
                "to this run and a new snapshot is needed",
                hint="run `migrator rollback` for this plan, then `migrator run` again",
            )
        try:
            self.schema.check_schema()  # DDL made while no run followed (docs/architecture.md, "Schema changes")
            self.schema.check_publication()
        finally:
            self.schema.close()
        snapshot_done = next(
            (
                c
                for c in self.ctx.store.checkpoints(self.ctx.run.id, "snapshot")
                if c.label == SnapshotLabel.DONE
            ),
            None,
        )
        parse = self.ctx.source.positions.parse
        consistent_after = (
            parse(snapshot_done.detail.get("consistent_after", snapshot_done.position))
            if snapshot_done
            else 0
        )
        indexes = self.applier.ensure_indexes(self.mapper.index_paths())
        if indexes:
            self.ctx.events.emit(Notice("info", f"indexes for embedded changes: {', '.join(indexes)}"))
        self.ctx.events.emit(Notice("info", f"replaying changes from {text(checkpoint)} ({origin})"))
        result = CdcResult(position=text(checkpoint))

        def attempt(previous: TransientError | None) -> CdcResult:
            nonlocal checkpoint
            if previous is not None:
                # A retry: reconnect and resume from the durable checkpoint. A batch the target
                # aborted first waits for the server to let go of the slot.
                if isinstance(previous, BatchTooLarge) and not self._slot_released():
                    raise RetryStopped
                self.schema.restart()  # a new stream announces its tables again
                self.added.marked.clear()  # a backfill marker not applied yet: emitted again
                # The target still away: the old checkpoint stands, the attempt fails and counts.
                with contextlib.suppress(TransientError):
                    checkpoint, _ = self.start_position()
            stream = self._open_stream(checkpoint)
            try:
                return self._loop(stream, checkpoint, consistent_after, result)
            except MigratorError:
                raise
            except Exception as exc:
                raise unexpected(exc, f"following changes after {result.position}") from exc
            finally:
                stream.close()
                self.monitor.close()
                self.schema.close()

        def announce(exc: TransientError, delay: float, failures: int) -> None:
            if isinstance(exc, BatchTooLarge):
                retry = f"applying batches of up to {self.batch_limit.limit:,} writes from the checkpoint"
            else:
                retry = f"retrying in {delay:.1f} s ({failures}/{MAX_CONSECUTIVE_FAILURES})"
            self.ctx.events.emit(ErrorRaised.of(PHASE, exc, retrying=True))
            self.ctx.events.emit(Notice("warn", f"{exc.message}; {retry}"))

        # Lost connection to either side: reconnect and resume from the durable checkpoint.
        # Bounded: a streak of failures without progress ends the run. A batch the target
        # aborted is no such failure: the limit has shrunk (settle()), which ends at a single
        # write (phases/batch_size.py); go on at once.
        try:
            return retrying_streak(
                attempt,
                stop=self.stop_event,
                limit=MAX_CONSECUTIVE_FAILURES,
                progress=lambda: result.position,
                announce=announce,
                fresh=(BatchTooLarge,),
            )
        except RetryStopped:
            result.stopped = True
            return result

    def _slot_released(self) -> bool:
        """Wait until the server has let go of the slot that the closed stream used (its walsender
        ends a moment after the connection): a stream opened at once would be refused. False when
        stopped meanwhile."""
        deadline = time.monotonic() + SLOT_RELEASE_S
        while time.monotonic() < deadline:
            state = self.monitor.state(self.slot)
            if state is None or not state["active"]:
                break
            if self.stop_event.wait(0.2):
                return False
        self.monitor.close()
        return True

    def _open_stream(self, checkpoint: int) -> CaptureStream:
        poll = self.settings.poll_changes if self.settings.mode == "poll" else None
        return self.ctx.source.change_stream(self.slot, self.publication, checkpoint, poll_changes=poll)

    def _loop(
        self,
        stream: CaptureStream,
        checkpoint: int,
        consistent_after: int,
        result: CdcResult,
    ) -> CdcResult:
        apply_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="migrator-cdc-apply")
        try:
            with heap.startup_frozen():  # the collector walks only what the loop makes (engine/heap.py)
                return Following(self, stream, checkpoint, consistent_after, result, apply_thread).run()
        finally:
            # On the way out after an error too: nothing is written any more once this returns,
            # before a retry reads the checkpoint again.
            apply_thread.shutdown(wait=True)


def planned_actions(view: PlanView) -> list[Action]:
    """What CDC would do, in order (pure: feeds --dry-run and the runbook)."""
    return actions(steps(view))


def steps(view: PlanView, phase: CdcPhase | None = None) -> list[Step]:
    """CDC's steps, in order: listed from the plan view (--dry-run, the runbook), and bound to
    `phase` when it runs them (docs/architecture.md, "Executable actions"). The second one's (apply,
    or the dual-write check) effect is the follow loop (phases/follow_loop.py), which streams, applies, acknowledges, mirrors,
    heartbeats, backfills and stops as the others say: they are aspects of that loop, said, with
    no effect of their own."""
    plan, settings = view.plan, view.plan.phases.cdc
    slot, publication = slot_name_pattern(plan.name), publication_name(plan.name)
    database = plan.target.database
    collections = ", ".join(f"{database}.{c.name}" for c in view.collections)
    words = view.vocabulary
    how = (
        words.read_how if settings.mode == "stream" else words.poll_how.format(changes=settings.poll_changes)
    )
    # The follow loop (read, apply, acknowledge, mirror, heartbeat, backfill, stop) is one effect: it
    # is attached to the step that writes the target, so an executor that only records writes never
    # runs it; the other steps say what the loop does.
    follow = phase._run if phase is not None else None
    listed = [
        Step.of(
            PHASE,
            "stream",
            f"stream {words.changes_of(publication)} from {words.named_stream(slot)} through {how}, starting "
            f"at the target's checkpoint, else at the {words.stream}'s consistent point",
            "none",
        ),
    ]
    if settings.apply:
        listed.append(
            Step.of(
                PHASE,
                "apply",
                f"apply each source transaction, in commit order, as document writes to {collections} in "
                f"batches of up to {settings.batch_changes:,} writes, each with its checkpoint "
                f"({database}._migrator, _id {cdc_checkpoint_id(plan.name)})",
                "target",
                follow,
            )
        )
    else:
        listed.append(
            Step.of(
                PHASE,
                "dual-write-check",
                f"dual-write verification (cdc.apply: false): write only the checkpoint ({database}._migrator) "
                f"and check each change against {collections} "
                f"{plan.phases.verify.dual_write_grace:g} s after its commit",
                "target",
                follow,
            )
        )
    listed += [
        Step.of(
            PHASE,
            "acknowledge",
            words.acknowledge.format(stream=slot),
            "source",
        ),
        Step.of(PHASE, "mirror", "mirror the applied position into the state store, now and then", "state"),
        Step.of(
            PHASE,
            "heartbeat",
            f"when idle, emit a heartbeat every {settings.heartbeat_interval:g} s "
            f"({words.marker}, prefix '{HEARTBEAT_PREFIX}') so the {words.stream} keeps advancing",
            "source",
        ),
        Step.of(
            PHASE,
            "backfill",
            "when a column the mapping takes is added to a mapped table (ALTER TABLE ... ADD COLUMN logs no row "
            "change): once the stream is past the ALTER (its first change, or a marker: "
            f"{words.marker}, prefix '{BACKFILL_PREFIX}'), rewrite the documents of every row of that table "
            "from the source as it is then",
            "target" if settings.apply else "none",
        ),
        Step.of(
            PHASE,
            "stop",
            f"stop if the {words.stream} retains over {settings.max_retained_wal:,} bytes of {words.change_log}; "
            "on TRUNCATE: "
            f"{settings.on_truncate}; keep following until stopped or cut over"
            + f" (--until caught-up: stop once the lag is under {settings.max_lag:g} s)",
            "none",
        ),
    ]
    return listed
