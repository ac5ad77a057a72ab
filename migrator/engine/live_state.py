"""What a running command has done so far, kept from its events for the live dashboard.

`LiveState` is an event sink like `RunMetrics` (engine/metrics.py): pass it among a run's sinks
and `progress()` returns one JSON-ready object, the dashboard's API (`GET /api/v1/progress`,
docs/dashboard.md lists every field). Nothing in the engine knows it exists; it reads events
only. The totals it shows (snapshot, CDC changes and lag, phases, throttling) come from the
fold `RunTotals` (engine/totals.py) that `RunMetrics` uses too, so the two agree. It and keeps a bounded history: one sample a second at most (`HISTORY` of them), the last
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
    CutoverAbandoned,
    CutoverStep,
    DocumentSkipped,
    ErrorRaised,
    Event,
    FinishStepDone,
    Notice,
    ReverseProgress,
    RollbackStepDone,
    RowsCopied,
    RunFinished,
    RunStarted,
    VerifyFinished,
    VerifyProgress,
    WriteFreeze,
)
from migrator.engine.totals import CdcTotals, CollectionTotals, PhaseTotals, RunTotals

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


def _collection_dict(name: str, c: CollectionTotals) -> dict[str, Any]:
    return {
        "collection": name,
        "table": c.table,
        "estimated_rows": c.estimated_rows,
        "documents": c.documents,
        "rows": c.rows,
        "percent": _percent(c.documents, c.estimated_rows),
        "chunks": c.chunks,
        "chunks_done": c.chunks_done,
        "skipped": c.skipped,
    }


def _cdc_dict(cdc: CdcTotals) -> dict[str, Any]:
    return {
        "position": cdc.position,
        "transactions": cdc.transactions,
        "changes": cdc.changes,
        "lag_seconds": cdc.lag_seconds,
        "lag_bytes": cdc.lag_bytes,
        "retained_wal_bytes": cdc.retained_wal_bytes,
        "caught_up": cdc.caught_up,
        "stream": cdc.stream,
        "change_log": cdc.change_log,
        "ts": iso(cdc.at),
    }


def _phase_dict(p: PhaseTotals) -> dict[str, Any]:
    return {
        "status": p.status,
        "resumed": p.resumed,
        "started": None if p.started_at is None else iso(p.started_at),
        "seconds": None if p.seconds is None else round(p.seconds, 3),
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
        self._totals = RunTotals()
        self._reverse: dict[str, Any] | None = None
        self._verify = _Verify()
        self._cutover: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._abandoned: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._rollback: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._finish: deque[dict[str, Any]] = deque(maxlen=STEPS)
        self._freeze: dict[str, float] = {}
        self._messages: deque[dict[str, Any]] = deque(maxlen=MESSAGES)
        self._history: deque[dict[str, float | None]] = deque(maxlen=HISTORY)
        self._copied = 0  # documents copied by this process: the documents throughput
        self._handlers = self._handler_table()

    # -- feeding --------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        with self._lock:
            self._totals.apply(event)
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
            (DocumentSkipped, self._document_skipped),
            (ReverseProgress, self._reverse_progress),
            (VerifyProgress, self._verify_progress),
            (VerifyFinished, self._verify_finished),
            (
                CutoverStep,
                lambda e: self._cutover.append({"ts": iso(e.at), "step": e.step, "message": e.message}),
            ),
            (CutoverAbandoned, self._cutover_abandoned),
            (RollbackStepDone, self._rollback_step),
            (FinishStepDone, self._finish_step),
            (WriteFreeze, lambda e: self._freeze.__setitem__(e.direction, round(e.freeze_ms, 1))),
            (ErrorRaised, self._error_raised),
            (Notice, self._notice),
            (RunStarted, self._run_started),
            (RunFinished, self._run_finished),
        )

    def _rows_copied(self, e: RowsCopied) -> None:
        self._copied += e.docs

    def _document_skipped(self, e: DocumentSkipped) -> None:
        self._message("warning", e.kind, "snapshot", f"{e.collection}: document {e.key} skipped: {e.reason}")

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

    def _finish_step(self, e: FinishStepDone) -> None:
        self._finish.append(
            {"ts": iso(e.at), "step": e.step, "outcome": e.outcome, "description": e.description}
        )

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

    def _run_started(self, e: RunStarted) -> None:
        self._run.plan, self._run.run_id, self._run.resumed = e.plan, e.run_id, e.resumed

    def _run_finished(self, e: RunFinished) -> None:
        self._run.status = "stopped"  # this process is done; the run itself stays resumable
        self._run.stopped_after = e.stopped_after  # the fold marked its running phases stopped

    def _run_phase(self) -> str | None:
        return self._totals.running_phase()

    # -- history --------------------------------------------------------------------------------

    def _sample(self, now: float) -> None:
        last = self._history[-1] if self._history else None
        if last is not None and now - float(last["t"] or 0) < SAMPLE_EVERY:
            return
        cdc = self._totals.cdc
        self._history.append(
            {
                "t": now,
                "lag_seconds": cdc.lag_seconds if cdc.measured else None,
                "lag_bytes": cdc.lag_bytes if cdc.measured else None,
                "retained_wal_bytes": cdc.retained_wal_bytes if cdc.measured else None,
                "documents": float(self._copied),
                "changes": float(cdc.changes),
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
                "cdc": _cdc_dict(self._totals.cdc) if self._totals.cdc.measured else None,
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
                "finish": {"steps": list(self._finish)},
                "reverse": None if self._reverse is None else dict(self._reverse),
                "throttle": self._throttle_dict(),
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
            "phases": {name: _phase_dict(p) for name, p in self._totals.phases.items()},
        }

    def _throttle_dict(self) -> dict[str, Any]:
        t = self._totals.throttle
        return {
            "throttled": t.throttled,
            "reasons": list(t.reasons),
            "total_seconds": round(t.total_seconds, 1),
        }

    def _snapshot_dict(self) -> dict[str, Any]:
        totals = self._totals
        collections = [_collection_dict(name, c) for name, c in totals.collections.items()]
        documents, estimate = totals.documents, totals.estimated_rows
        return {
            "collections": collections,
            "documents": documents,
            "rows": totals.rows,
            "estimated_rows": estimate,
            "percent": _percent(documents, estimate),
        }


def _last(values: list[float | None]) -> float | None:
    return values[-1] if values else None
