"""What a running command has done so far, kept from its events for the live dashboard.

`LiveState` is an event sink like `RunMetrics` (engine/metrics.py): pass it among a run's sinks
and `progress()` returns one JSON-ready object, the dashboard's API (`GET /api/v1/progress`,
docs/dashboard.md lists every field). Nothing in the engine knows it exists; it reads events
only, and keeps a bounded history: one sample a second at most (`HISTORY` of them), the last
`MESSAGES` errors and warnings, the last `STEPS` cutover and rollback steps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from migrator.engine.events import (
    CdcProgress,
    ChunkFinished,
    CutoverAbandoned,
    CutoverStep,
    DocumentSkipped,
    ErrorRaised,
    Event,
    Notice,
    PhaseFinished,
    PhaseStarted,
    ReverseProgress,
    RollbackStepDone,
    RowsCopied,
    RunFinished,
    RunStarted,
    TablePlanned,
    Throttled,
    ThrottleLifted,
    ThrottleProgress,
    VerifyFinished,
    VerifyProgress,
    WriteFreeze,
)

API_VERSION = 1
HISTORY = 600  # samples kept: ten minutes at one a second
MESSAGES = 50
STEPS = 50
SAMPLE_EVERY = 1.0  # seconds between two history samples
RATE_WINDOW = 10.0  # seconds of history a throughput is measured over
SERIES = ("lag_seconds", "lag_bytes", "retained_wal_bytes", "documents_per_second", "changes_per_second")


def iso(at: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds and a Z (the log lines' `ts`)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Collection:
    table: str
    estimated_rows: int = 0
    chunks: int = 0
    chunks_done: int = 0
    rows: int = 0
    documents: int = 0
    skipped: int = 0

    def to_dict(self, name: str) -> dict[str, Any]:
        return {
            "collection": name,
            "table": self.table,
            "estimated_rows": self.estimated_rows,
            "documents": self.documents,
            "rows": self.rows,
            "percent": _percent(self.documents, self.estimated_rows),
            "chunks": self.chunks,
            "chunks_done": self.chunks_done,
            "skipped": self.skipped,
        }


def _percent(done: int, estimate: int) -> float | None:
    """Share of the estimate done, 0-100 (capped: an estimate is only an estimate); None without one."""
    return None if estimate <= 0 else round(min(100.0, 100.0 * done / estimate), 1)


@dataclass
class _Verify:
    running: bool = False
    checked: int = 0
    equal: int = 0
    differing: int = 0
    report: dict[str, Any] | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "checked": self.checked,
            "equal": self.equal,
            "differing": self.differing,
            "report": self.report,
            "ts": None if self.finished_at is None else iso(self.finished_at),
        }


@dataclass
class _Run:
    plan: str | None = None
    run_id: str | None = None
    resumed: bool = False
    status: str = "starting"
    stopped_after: str | None = None
    started_at: float = field(default_factory=time.time)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, float | None] = field(
        default_factory=lambda: {
            "max_lag_seconds": None,
            "max_retained_wal_bytes": None,
            "max_write_freeze_seconds": None,
        }
    )


class LiveState:
    """An event sink that keeps one run's progress for the dashboard; safe across threads."""

    def __init__(self, command: str = "run", clock: Callable[[], float] = time.time) -> None:
        self.command = command
        self._clock = clock
        self._lock = threading.Lock()
        self._run = _Run(started_at=clock())
        self._collections: dict[str, _Collection] = {}
        self._cdc: dict[str, Any] | None = None
        self._reverse: dict[str, Any] | None = None
        self._verify = _Verify()
        self._cutover: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._abandoned: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._rollback: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._freeze: dict[str, float] = {}
        self._throttle: dict[str, Any] = {"throttled": False, "reasons": [], "total_seconds": 0.0}
        self._messages: deque[dict[str, Any]] = deque(maxlen=MESSAGES)
        self._history: deque[dict[str, float | None]] = deque(maxlen=HISTORY)
        self._counted = {"documents": 0, "changes": 0}  # totals behind the throughput samples
        self._handlers = self._handler_table()

    # -- feeding --------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        with self._lock:
            for kinds, handle in self._handlers:
                if isinstance(event, kinds):
                    handle(event)
                    break
            if self._run.status == "starting":
                self._run.status = "running"
            self._sample(self._clock())

    def set_budgets(self, max_lag_seconds: float, max_retained_wal_bytes: float, max_freeze: float) -> None:
        """The plan's limits, shown beside the values they bound (as RunMetrics.set_budgets)."""
        with self._lock:
            self._run.budgets = {
                "max_lag_seconds": max_lag_seconds,
                "max_retained_wal_bytes": max_retained_wal_bytes,
                "max_write_freeze_seconds": max_freeze,
            }

    def failed(self, error: str, message: str) -> None:
        """The command ended with an error (the CLI saw it): the run's status says so."""
        with self._lock:
            self._run.status = "failed"
            self._message("error", "failed", None, message, error=error)

    def _handler_table(self) -> tuple[tuple[type | tuple[type, ...], Callable[[Any], None]], ...]:
        return (
            (RowsCopied, self._rows_copied),
            (ChunkFinished, self._chunk_finished),
            (TablePlanned, self._table_planned),
            (DocumentSkipped, self._document_skipped),
            (CdcProgress, self._cdc_progress),
            (ReverseProgress, self._reverse_progress),
            (VerifyProgress, self._verify_progress),
            (VerifyFinished, self._verify_finished),
            (
                CutoverStep,
                lambda e: self._cutover.append({"ts": iso(e.at), "step": e.step, "message": e.message}),
            ),
            (CutoverAbandoned, self._cutover_abandoned),
            (RollbackStepDone, self._rollback_step),
            (WriteFreeze, lambda e: self._freeze.__setitem__(e.direction, round(e.freeze_ms, 1))),
            ((ThrottleProgress, Throttled), self._throttled),
            (ThrottleLifted, self._throttle_lifted),
            (ErrorRaised, self._error_raised),
            (Notice, self._notice),
            (PhaseStarted, self._phase_started),
            (PhaseFinished, self._phase_finished),
            (RunStarted, self._run_started),
            (RunFinished, self._run_finished),
        )

    def _table(self, collection: str, table: str) -> _Collection:
        return self._collections.setdefault(collection, _Collection(table))

    def _rows_copied(self, e: RowsCopied) -> None:
        entry = self._collections.setdefault(e.collection, _Collection(""))
        entry.rows += e.rows
        entry.documents += e.docs
        self._counted["documents"] += e.docs

    def _chunk_finished(self, e: ChunkFinished) -> None:
        self._table(e.collection, e.table).chunks_done += 1

    def _table_planned(self, e: TablePlanned) -> None:
        entry = self._table(e.collection, e.table)
        entry.table = e.table
        entry.estimated_rows = e.estimated_rows
        entry.chunks = e.chunks
        # A resumed snapshot starts from what earlier runs copied.
        entry.chunks_done = max(entry.chunks_done, e.chunks_done)
        entry.rows = max(entry.rows, e.rows_done)
        entry.documents = max(entry.documents, e.docs_done)

    def _document_skipped(self, e: DocumentSkipped) -> None:
        self._collections.setdefault(e.collection, _Collection("")).skipped += 1
        self._message("warning", e.kind, "snapshot", f"{e.collection}: document {e.key} skipped: {e.reason}")

    def _cdc_progress(self, e: CdcProgress) -> None:
        self._cdc = {
            "position": e.position,
            "transactions": e.transactions,
            "changes": e.changes,
            "lag_seconds": e.lag_seconds,
            "lag_bytes": e.lag_bytes,
            "retained_wal_bytes": e.retained_wal_bytes,
            "caught_up": e.caught_up,
            "stream": e.stream,
            "change_log": e.change_log,
            "ts": iso(e.at),
        }
        self._counted["changes"] = max(self._counted["changes"], e.changes)

    def _reverse_progress(self, e: ReverseProgress) -> None:
        self._reverse = {
            "cluster_time": e.cluster_time,
            "events": e.events,
            "documents": e.documents,
            "skipped_transactions": e.skipped_transactions,
            "lag_seconds": e.lag_seconds,
            "ts": iso(e.at),
        }

    def _verify_progress(self, e: VerifyProgress) -> None:
        if not self._verify.running:
            self._verify = _Verify(
                running=True, report=self._verify.report, finished_at=self._verify.finished_at
            )
        self._verify.checked += e.checked
        self._verify.equal += e.equal
        self._verify.differing += e.differing

    def _verify_finished(self, e: VerifyFinished) -> None:
        self._verify.running = False
        self._verify.report = e.report
        self._verify.finished_at = e.at

    def _cutover_abandoned(self, e: CutoverAbandoned) -> None:
        self._abandoned.append(
            {"ts": iso(e.at), "attempt": e.attempt, "reason": e.reason, "freeze_ms": round(e.freeze_ms, 1)}
        )
        self._message("warning", e.kind, "cutover", f"attempt {e.attempt} abandoned: {e.reason}")

    def _rollback_step(self, e: RollbackStepDone) -> None:
        self._rollback.append(
            {"ts": iso(e.at), "step": e.step, "outcome": e.outcome, "description": e.description}
        )

    def _throttled(self, e: ThrottleProgress | Throttled) -> None:
        self._throttle["throttled"] = True
        self._throttle["reasons"] = list(e.reasons)
        if isinstance(e, ThrottleProgress):
            self._throttle["total_seconds"] = round(e.total_seconds, 1)

    def _throttle_lifted(self, e: ThrottleLifted) -> None:
        self._throttle = {"throttled": False, "reasons": [], "total_seconds": round(e.total_seconds, 1)}

    def _error_raised(self, e: ErrorRaised) -> None:
        self._message(
            "warning" if e.retrying else "error",
            e.error,
            e.phase,
            e.message,
            hint=e.hint,
            code=e.code,
            retrying=e.retrying,
            at=e.at,
        )

    def _notice(self, e: Notice) -> None:
        if e.level != "info":
            self._message("warning", e.kind, self._run_phase(), e.message, at=e.at)

    def _message(self, level: str, kind: str, phase: str | None, message: str, **extra: Any) -> None:
        at = extra.pop("at", None) or self._clock()
        self._messages.append(
            {"ts": iso(at), "level": level, "kind": kind, "phase": phase, "message": message, **extra}
        )

    def _phase_started(self, e: PhaseStarted) -> None:
        self._run.phases[e.phase] = {
            "status": "running",
            "resumed": e.resumed,
            "started": iso(e.at),
            "seconds": None,
        }

    def _phase_finished(self, e: PhaseFinished) -> None:
        phase = self._run.phases.setdefault(e.phase, {"resumed": False, "started": None})
        phase.update(status="done", seconds=round(e.seconds, 3))

    def _run_started(self, e: RunStarted) -> None:
        self._run.plan, self._run.run_id, self._run.resumed = e.plan, e.run_id, e.resumed

    def _run_finished(self, e: RunFinished) -> None:
        self._run.status = "stopped"  # this process is done; the run itself stays resumable
        self._run.stopped_after = e.stopped_after
        for phase in self._run.phases.values():
            if phase.get("status") == "running":
                phase["status"] = "stopped"

    def _run_phase(self) -> str | None:
        running = [name for name, p in self._run.phases.items() if p.get("status") == "running"]
        return running[-1] if running else None

    # -- history --------------------------------------------------------------------------------

    def _sample(self, now: float) -> None:
        last = self._history[-1] if self._history else None
        if last is not None and now - float(last["t"] or 0) < SAMPLE_EVERY:
            return
        cdc = self._cdc or {}
        self._history.append(
            {
                "t": now,
                "lag_seconds": cdc.get("lag_seconds"),
                "lag_bytes": cdc.get("lag_bytes"),
                "retained_wal_bytes": cdc.get("retained_wal_bytes"),
                "documents": float(self._counted["documents"]),
                "changes": float(self._counted["changes"]),
            }
        )

    def _rate(self, total: str, now_index: int) -> float | None:
        """Per second over the RATE_WINDOW before history sample `now_index`."""
        now = self._history[now_index]
        t_now = float(now["t"] or 0)
        for back in range(now_index - 1, -1, -1):
            earlier = self._history[back]
            span = t_now - float(earlier["t"] or 0)
            if span >= RATE_WINDOW or back == 0:
                if span <= 0:
                    return None
                return round((float(now[total] or 0) - float(earlier[total] or 0)) / span, 1)
        return None

    def _series(self) -> dict[str, list[float | None]]:
        """The history as columns (the charts' shape): `t` epoch seconds, then one list per series."""
        columns: dict[str, list[float | None]] = {"t": [], **{name: [] for name in SERIES}}
        for index, sample in enumerate(self._history):
            columns["t"].append(round(float(sample["t"] or 0), 3))
            for name in ("lag_seconds", "lag_bytes", "retained_wal_bytes"):
                columns[name].append(sample[name])
            columns["documents_per_second"].append(self._rate("documents", index))
            columns["changes_per_second"].append(self._rate("changes", index))
        return columns

    # -- reading --------------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        """The API object (docs/dashboard.md): a copy, safe to serialise while events arrive."""
        with self._lock:
            now = self._clock()
            self._sample(now)
            history = self._series()
            return {
                "api_version": API_VERSION,
                "ts": iso(now),
                "command": self.command,
                "run": self._run_dict(now),
                "snapshot": self._snapshot_dict(),
                "cdc": None if self._cdc is None else dict(self._cdc),
                "throughput": {
                    "documents_per_second": _last(history["documents_per_second"]),
                    "changes_per_second": _last(history["changes_per_second"]),
                },
                "budgets": dict(self._run.budgets),
                "verify": self._verify.to_dict(),
                "cutover": {
                    "steps": list(self._cutover),
                    "abandoned": list(self._abandoned),
                    "freeze_ms": self._freeze.get("forward"),
                },
                "rollback": {"steps": list(self._rollback), "freeze_ms": self._freeze.get("back")},
                "reverse": None if self._reverse is None else dict(self._reverse),
                "throttle": {**self._throttle, "reasons": list(self._throttle["reasons"])},
                "messages": list(self._messages),
                "history": history,
            }

    def _run_dict(self, now: float) -> dict[str, Any]:
        run = self._run
        return {
            "plan": run.plan,
            "run_id": run.run_id,
            "resumed": run.resumed,
            "status": run.status,
            "phase": self._run_phase(),
            "stopped_after": run.stopped_after,
            "started": iso(run.started_at),
            "uptime_seconds": round(now - run.started_at, 1),
            "phases": {name: dict(p) for name, p in run.phases.items()},
        }

    def _snapshot_dict(self) -> dict[str, Any]:
        collections = [c.to_dict(name) for name, c in self._collections.items()]
        documents = sum(c.documents for c in self._collections.values())
        estimate = sum(c.estimated_rows for c in self._collections.values())
        return {
            "collections": collections,
            "documents": documents,
            "rows": sum(c.rows for c in self._collections.values()),
            "estimated_rows": estimate,
            "percent": _percent(documents, estimate),
        }


def _last(values: list[float | None]) -> float | None:
    return values[-1] if values else None
