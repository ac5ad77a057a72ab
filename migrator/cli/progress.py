"""Renders engine events: rich progress bars on a terminal, plain lines elsewhere, JSON lines on request."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from migrator.engine.events import (
    BatchLimitChanged,
    CdcProgress,
    ChunkFinished,
    CutoverAbandoned,
    CutoverStep,
    DocumentSkipped,
    Event,
    FinishStepDone,
    Notice,
    PhaseFinished,
    PhaseStarted,
    RollbackStepDone,
    RowsCopied,
    RunFinished,
    RunStarted,
    SchemaObjectBuilt,
    SlotCreated,
    SnapshotOpened,
    TablePlanned,
    VerifyProgress,
)


class JsonLines:
    """Every event as one JSON object per line, for machines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), default=str)
        with self._lock:
            click.echo(line)


class PlainLines:
    """One line per meaningful event: for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.totals: dict[str, tuple[int, int]] = {}  # collection -> (chunks, done)
        self.started = time.monotonic()

    def emit(self, event: Event) -> None:
        line = _describe(event, self.totals)
        if line:
            self.console.print(line, markup=False, highlight=False)


class RichProgress:
    """Progress bars per collection: rows, rows/s, ETA."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("documents"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.first_seen: dict[str, tuple[float, int]] = {}
        self.totals: dict[str, tuple[int, int]] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def emit(self, event: Event) -> None:
        if isinstance(event, TablePlanned):
            # Counted in documents against the root table's estimated rows: rows would count
            # embedded ones too, and a customers bar then showed full from the first second.
            task = self.progress.add_task(
                event.collection,
                total=max(event.estimated_rows, event.docs_done, 1),
                completed=event.docs_done,
                rate="",
            )
            self.tasks[event.collection] = task
            self.first_seen[event.collection] = (time.monotonic(), event.docs_done)
            self.totals[event.collection] = (event.chunks, event.chunks_done)
        elif isinstance(event, RowsCopied) and event.collection in self.tasks:
            task = self.tasks[event.collection]
            self.progress.advance(task, event.docs)
            current = self.progress.tasks[task].completed
            total = self.progress.tasks[task].total or 0
            if current > total:
                self.progress.update(task, total=current)
            since, base = self.first_seen[event.collection]
            rate = (current - base) / max(time.monotonic() - since, 1e-6)
            self.progress.update(task, rate=f"{rate:,.0f} documents/s")
        elif isinstance(event, ChunkFinished):
            chunks, done = self.totals.get(event.collection, (0, 0))
            self.totals[event.collection] = (chunks, done + 1)
            if chunks and done + 1 == chunks and event.collection in self.tasks:
                task = self.tasks[event.collection]
                self.progress.update(task, total=self.progress.tasks[task].completed)
        else:
            line = _describe(event, None)
            if line:
                self.progress.console.print(line, markup=False, highlight=False)


def _describe(event: Event, totals: dict[str, tuple[int, int]] | None) -> str | None:
    # Each event type belongs to one group; a group gives None for the types it does not know.
    return (
        _describe_run(event)
        or _describe_snapshot(event, totals)
        or _describe_cdc(event)
        or _describe_steps(event)
    )


def _describe_run(event: Event) -> str | None:
    if isinstance(event, RunStarted):
        verb = "resuming" if event.resumed else "starting"
        where = f" (state file {event.state})" if event.state else ""
        return f"{verb} run {event.run_id} of plan {event.plan}{where}"
    if isinstance(event, PhaseStarted):
        return f"phase {event.phase}: {'resumed' if event.resumed else 'started'}"
    if isinstance(event, PhaseFinished):
        return f"phase {event.phase}: done in {event.seconds:.1f} s"
    if isinstance(event, RunFinished):
        if event.stopped_after == "interrupted":
            return f"run {event.run_id} stopped; `migrator run` resumes it"
        return f"run {event.run_id}: stopped ({event.stopped_after}) as asked; the run stays active"
    return None


def _describe_snapshot(event: Event, totals: dict[str, tuple[int, int]] | None) -> str | None:
    if isinstance(event, SlotCreated):
        capture = ("created " if event.publication_created else "reusing existing ") + event.capture
        return f"{capture}; created {event.stream} {event.slot} at {event.position}"
    if isinstance(event, SnapshotOpened):
        if event.reread:
            return (
                f"the original snapshot is gone: unfinished chunks are read at {event.position}; "
                "the target is consistent once CDC passes it"
            )
        return f"copying the snapshot at {event.position}"
    if isinstance(event, TablePlanned):
        if totals is not None:
            totals[event.collection] = (event.chunks, event.chunks_done)
        left = event.chunks - event.chunks_done
        return (
            f"{event.collection} <- {event.table}: ~{event.estimated_rows:,} rows in {event.chunks} chunk(s), "
            f"{left} to copy"
        )
    if isinstance(event, ChunkFinished) and totals is not None:
        chunks, done = totals.get(event.collection, (0, 0))
        totals[event.collection] = (chunks, done + 1)
        rate = event.rows_read / event.seconds if event.seconds else 0.0
        how = f" (undecoded, {event.form})" if event.form else ""
        return (
            f"{event.collection}: chunk {done + 1}/{chunks} done: {event.rows_read:,} rows -> "
            f"{event.docs_written:,} documents in {event.seconds:.2f} s ({rate:,.0f} rows/s){how}"
        )
    if isinstance(event, SchemaObjectBuilt):
        what = event.object_kind.replace("_", " ")
        if not event.ran:
            return f"{event.table}: {what} {event.name} was built already"
        return f"{event.table}: built {what} {event.name} in {event.seconds:.2f} s"
    if isinstance(event, DocumentSkipped):
        return f"skipped document {event.key!r} of {event.collection}: {event.reason} ({event.bytes:,} bytes)"
    return None


def _describe_cdc(event: Event) -> str | None:
    if isinstance(event, Notice):
        return f"{event.level}: {event.message}"
    if isinstance(event, BatchLimitChanged):
        if event.limit < event.previous:
            return (
                f"warn: cdc batches of up to {event.limit:,} writes (were {event.previous:,}): {event.reason}"
            )
        return f"cdc batches of up to {event.limit:,} writes again (plan: {event.ceiling:,})"
    if isinstance(event, CdcProgress):
        seconds = "?" if event.lag_seconds is None else f"{event.lag_seconds:.1f}"
        state = "caught up" if event.caught_up else "behind"
        return (
            f"cdc at {event.position}: {event.changes:,} changes, lag {seconds} s / "
            f"{event.lag_bytes:,} bytes ({state}), {event.stream} retains {event.retained_wal_bytes:,} bytes of "
            f"{event.change_log}"
        )
    return None


def _describe_steps(event: Event) -> str | None:
    if isinstance(event, CutoverStep):
        return f"cutover {event.step}: {event.message}"
    if isinstance(event, RollbackStepDone):
        if event.description:
            return f"rollback: {event.description}: {event.outcome}"
        return f"rollback {event.step}: {event.outcome}"
    if isinstance(event, FinishStepDone):
        return f"finish: {event.description or event.step}: {event.outcome}"
    if isinstance(event, CutoverAbandoned):
        return f"cutover attempt {event.attempt} abandoned after {event.freeze_ms:.0f} ms: {event.reason}"
    return None


def summary(data: dict[str, Any]) -> str:
    lines = []
    snap = data.get("snapshot") or {}
    if snap:
        lines.append(
            f"snapshot: {snap['rows']:,} rows -> {snap['documents']:,} documents in {snap['chunks_copied']} "
            f"chunk(s) this time; CDC starts at {snap['position']}"
        )
    cdc = data.get("cdc") or {}
    if cdc:
        state = "caught up" if cdc["caught_up"] else "stopped"
        lines.append(
            f"cdc: {cdc['changes']:,} changes in {cdc['transactions']:,} transactions applied; {state} at "
            f"{cdc['position']}"
        )
    if data.get("interrupted"):
        lines.append("stopped on request; `migrator run` resumes from the last checkpoint")
    return "\n".join(lines) or "nothing to do"


class VerifyTicker:
    """Verify progress on stderr, so that stdout keeps only the report: a line every few
    seconds with the documents compared so far and the keys being rechecked."""

    def __init__(self, console: Console, every_s: float = 5.0) -> None:
        self.console = console
        self.every_s = every_s
        self.checked = self.equal = self.differing = self.ranges = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.console.print(f"{event.level}: {event.message}", markup=False)
        if not isinstance(event, VerifyProgress):
            return
        with self._lock:
            self.ranges += 1
            self.checked += event.checked
            self.equal += event.equal
            self.differing += event.differing
            now = time.monotonic()
            if now - self._last < self.every_s:
                return
            self._last = now
            self.console.print(
                f"verify: {self.ranges:,} ranges, {self.checked:,} documents compared, {self.equal:,} equal "
                f"at first look, {self.differing:,} rechecked (last range read at {event.position})",
                markup=False,
            )
