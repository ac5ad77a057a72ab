"""Prometheus metrics fed from a run's events, and the HTTP endpoint that serves them.

`RunMetrics` is an event sink: pass it to `api.run(..., sinks=[metrics])` and every event the
run emits updates the metrics; nothing in the engine knows about Prometheus. The snapshot, CDC,
phase and throttle figures are those of the fold `RunTotals` (engine/totals.py) that the
dashboard's `LiveState` shows too: counters are moved up to its totals, so a resumed snapshot's
counters start from what earlier runs copied, and the two never disagree. Each instance has
its own registry, so two runs in one process (or tests) never share counters.

Metric names (docs/operations.md lists them): counters end in `_total` as exposed; times are in seconds,
sizes in bytes (base units). No `_created` series: a counter's creation time is noise on a
dashboard. ops/ holds a Grafana dashboard and Prometheus alert rules built on these names.

- `migrator_rows_copied_total{collection}`, `migrator_documents_written_total{collection}`,
  `migrator_snapshot_chunks_done_total{collection}`, `migrator_documents_skipped_total{collection}`
- `migrator_snapshot_estimated_rows{collection}`: the source's estimate of the collection's
  top-level table rows (one document each), so `documents_written / estimated_rows` is "% copied"
- `migrator_changes_applied_total`, `migrator_transactions_applied_total`,
  `migrator_cdc_writes_total`
- `migrator_cdc_lag_seconds`, `migrator_cdc_lag_bytes`, `migrator_cdc_caught_up`,
  `migrator_retained_wal_bytes` (NaN until CDC first measures them; lag as phases/lag.py defines
  it), `migrator_cdc_apply_latency_seconds` (histogram: source commit to durable apply)
- `migrator_errors_total{kind, phase}`: kind is the error's class; retried errors count too
- `migrator_phase_failures_total{kind, phase}`: errors that stopped a phase (the run failed)
- `migrator_verify_documents{result}`: the last verify pass run in this process (checked, equal,
  mismatched, missing, extra, unsettled, repaired)
- `migrator_run_info{plan, run_id}`, `migrator_phase_running{phase}`
- `migrator_throttled` (1 while the run is throttled), `migrator_throttled_seconds_total` (time held
  by throttling, the current hold included as it goes)
- `migrator_write_freeze_seconds{direction}`: the last write freeze, `forward` (cutover) or `back`
  (rollback after cutover); it replaced `migrator_write_freeze_ms` (not in base units)
- `migrator_cdc_lag_budget_seconds`, `migrator_retained_wal_budget_bytes`,
  `migrator_write_freeze_budget_seconds`: the plan's `max_lag`, `max_retained_wal` and
  `max_write_freeze` (NaN until `set_budgets`), so alerts and dashboards compare with the plan
- `migrator_reverse_lag_seconds` (NaN until reverse sync first reports), `migrator_reverse_documents_total`,
  `migrator_reverse_rows_total`: reverse sync after cutover
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from migrator.engine.events import (
    BatchApplied,
    CdcProgress,
    ChunkFinished,
    DocumentSkipped,
    ErrorRaised,
    Event,
    PhaseFinished,
    PhaseStarted,
    ReverseBatchApplied,
    ReverseProgress,
    RowsCopied,
    RunFinished,
    RunStarted,
    TablePlanned,
    Throttled,
    ThrottleLifted,
    ThrottleProgress,
    VerifyFinished,
    WriteFreeze,
)
from migrator.engine.totals import RunTotals
from migrator.errors import TerminalError

VERIFY_RESULTS = ("checked", "equal", "mismatched", "missing", "extra", "unsettled", "repaired")
# prometheus_client's switch is process-wide; this process serves only migrator's registries.
disable_created_metrics()
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class RunMetrics:
    """An event sink that keeps Prometheus metrics of one run."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.run_info = Gauge(
            "migrator_run_info", "The run this process executes (value 1)", ["plan", "run_id"], registry=r
        )
        self.phase_running = Gauge(
            "migrator_phase_running", "1 while the phase runs in this process", ["phase"], registry=r
        )
        self.rows_copied = Counter(
            "migrator_rows_copied", "Source rows copied by the snapshot", ["collection"], registry=r
        )
        self.documents_written = Counter(
            "migrator_documents_written", "Documents written by the snapshot", ["collection"], registry=r
        )
        self.estimated_rows = Gauge(
            "migrator_snapshot_estimated_rows",
            "The source's estimate of the top-level table's rows (one document each): "
            "documents written over it is the share copied",
            ["collection"],
            registry=r,
        )
        self.chunks_done = Counter(
            "migrator_snapshot_chunks_done",
            "Snapshot chunks (key ranges) finished",
            ["collection"],
            registry=r,
        )
        self.documents_skipped = Counter(
            "migrator_documents_skipped",
            "Documents skipped by the snapshot (over 16 MB, on_oversize: skip)",
            ["collection"],
            registry=r,
        )
        self.changes_applied = Counter(
            "migrator_changes_applied", "Source row changes applied to the target by CDC", registry=r
        )
        self.transactions_applied = Counter(
            "migrator_transactions_applied", "Source transactions applied to the target by CDC", registry=r
        )
        self.cdc_writes = Counter("migrator_cdc_writes", "Target write operations applied by CDC", registry=r)
        self.lag_seconds = Gauge(
            "migrator_cdc_lag_seconds",
            "CDC lag: now minus the source commit time of the newest durably applied transaction, "
            "0 only while caught up (phases/lag.py)",
            registry=r,
        )
        self.caught_up = Gauge(
            "migrator_cdc_caught_up",
            "1 while CDC has applied everything the source committed, 0 while changes wait",
            registry=r,
        )
        self.lag_bytes = Gauge(
            "migrator_cdc_lag_bytes",
            "CDC lag: source change log (WAL, binlog) written after the applied position",
            registry=r,
        )
        self.retained_wal = Gauge(
            "migrator_retained_wal_bytes",
            "Change log (WAL, binlog) the run's slot holds back on the source",
            registry=r,
        )
        for gauge in (self.lag_seconds, self.lag_bytes, self.retained_wal, self.caught_up):
            gauge.set(math.nan)  # unknown until CDC measures it: not 0, which would read as "no lag"
        self.apply_latency = Histogram(
            "migrator_cdc_apply_latency_seconds",
            "From a source transaction's commit to its durable apply on the target",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "migrator_errors",
            "Errors by kind (error class) and phase, retried ones included",
            ["kind", "phase"],
            registry=r,
        )
        self.phase_failures = Counter(
            "migrator_phase_failures",
            "Errors that stopped a phase (the run failed), by kind and phase",
            ["kind", "phase"],
            registry=r,
        )
        self.verify_documents = Gauge(
            "migrator_verify_documents", "The last verify pass: documents by result", ["result"], registry=r
        )
        self.throttled = Gauge(
            "migrator_throttled",
            "1 while the run is throttled (paused, throttle file, load, lag)",
            registry=r,
        )
        self.throttled_seconds = Counter(
            "migrator_throttled_seconds", "Seconds the run's work was held by throttling", registry=r
        )
        self.write_freeze = Gauge(
            "migrator_write_freeze_seconds",
            "The last write freeze: forward (cutover) or back (rollback after cutover)",
            ["direction"],
            registry=r,
        )
        self.lag_budget = Gauge(
            "migrator_cdc_lag_budget_seconds", "The plan's phases.cdc.max_lag", registry=r
        )
        self.retained_wal_budget = Gauge(
            "migrator_retained_wal_budget_bytes",
            "The plan's phases.cdc.max_retained_wal: the run stops past it",
            registry=r,
        )
        self.freeze_budget = Gauge(
            "migrator_write_freeze_budget_seconds", "The plan's phases.cutover.max_write_freeze", registry=r
        )
        for budget in (self.lag_budget, self.retained_wal_budget, self.freeze_budget):
            budget.set(math.nan)  # unknown until set_budgets: 0 would read as "over budget"
        self.reverse_lag = Gauge(
            "migrator_reverse_lag_seconds", "Reverse sync lag (target change to source row)", registry=r
        )
        self.reverse_lag.set(math.nan)
        self.reverse_documents = Counter(
            "migrator_reverse_documents", "Documents reverse sync wrote back as rows", registry=r
        )
        self.reverse_rows = Counter(
            "migrator_reverse_rows", "Rows reverse sync inserted, updated or deleted", registry=r
        )
        self.totals = RunTotals()
        self._exposed: dict[tuple[Counter, tuple[str, ...]], float] = {}  # a counter's value so far
        self._lock = threading.Lock()
        self._handlers = self._handler_table()  # built once: emit runs per event

    def emit(self, event: Event) -> None:
        with self._lock:
            self._emit(event)

    def _emit(self, event: Event) -> None:
        self.totals.apply(event)
        # First match wins, in this order (as the isinstance chain it replaces).
        for kinds, handle in self._handlers:
            if isinstance(event, kinds):
                handle(event)
                return

    def _handler_table(self) -> tuple[tuple[type | tuple[type, ...], Callable[[Any], None]], ...]:
        return (
            ((RowsCopied, ChunkFinished, DocumentSkipped, TablePlanned), self._snapshot),
            (BatchApplied, self._batch_applied),
            (CdcProgress, lambda e: self._cdc()),
            ((Throttled, ThrottleProgress, ThrottleLifted), lambda e: self._throttle()),
            (ErrorRaised, self._error_raised),
            (WriteFreeze, lambda e: self.write_freeze.labels(e.direction).set(e.freeze_ms / 1000.0)),
            (ReverseBatchApplied, self._reverse_batch_applied),
            (ReverseProgress, lambda e: self.reverse_lag.set(e.lag_seconds)),
            (VerifyFinished, self._verify_finished),
            (RunStarted, lambda e: self.run_info.labels(e.plan, e.run_id).set(1)),
            ((PhaseStarted, PhaseFinished, RunFinished), lambda e: self._phases()),
        )

    def _count_to(self, counter: Counter, total: float, *labels: str) -> None:
        """Move a counter up to a total of the fold (a counter never goes down)."""
        key = (counter, labels)
        step = total - self._exposed.get(key, 0.0)
        if step > 0:
            (counter.labels(*labels) if labels else counter).inc(step)
            self._exposed[key] = total

    def _snapshot(self, event: RowsCopied | ChunkFinished | DocumentSkipped | TablePlanned) -> None:
        name = event.collection
        c = self.totals.collection(name)
        self._count_to(self.rows_copied, c.rows, name)
        self._count_to(self.documents_written, c.documents, name)
        self._count_to(self.chunks_done, c.chunks_done, name)
        self._count_to(self.documents_skipped, c.skipped, name)
        if isinstance(event, TablePlanned):
            self.estimated_rows.labels(name).set(c.estimated_rows)

    def _error_raised(self, event: ErrorRaised) -> None:
        self.errors.labels(event.error, event.phase).inc()
        if not event.retrying:
            self.phase_failures.labels(event.error, event.phase).inc()

    def _batch_applied(self, event: BatchApplied) -> None:
        self._cdc()
        for lag_ms in event.lag_ms:
            self.apply_latency.observe(max(0.0, lag_ms / 1000.0))

    def _cdc(self) -> None:
        cdc = self.totals.cdc
        self._count_to(self.changes_applied, cdc.changes)
        self._count_to(self.transactions_applied, cdc.transactions)
        self._count_to(self.cdc_writes, cdc.writes)
        if cdc.measured:
            self.lag_seconds.set(math.nan if cdc.lag_seconds is None else cdc.lag_seconds)
            self.lag_bytes.set(cdc.lag_bytes)
            self.caught_up.set(1 if cdc.caught_up else 0)
            self.retained_wal.set(cdc.retained_wal_bytes)

    def _throttle(self) -> None:
        throttle = self.totals.throttle
        self._count_to(self.throttled_seconds, throttle.total_seconds)
        self.throttled.set(1 if throttle.throttled else 0)

    def _reverse_batch_applied(self, event: ReverseBatchApplied) -> None:
        self.reverse_documents.inc(event.documents)
        self.reverse_rows.inc(event.rows)

    def _verify_finished(self, event: VerifyFinished) -> None:
        for result in VERIFY_RESULTS:
            value = event.report.get(result)
            if isinstance(value, int | float):
                self.verify_documents.labels(result).set(value)

    def _phases(self) -> None:
        phases = self.totals.phases
        for name in {"snapshot", "cdc", *phases}:  # snapshot and cdc always exposed
            self.phase_running.labels(name).set(
                1 if name in phases and phases[name].status == "running" else 0
            )

    def set_budgets(
        self, max_lag_seconds: float, max_retained_wal_bytes: float, max_write_freeze_seconds: float
    ) -> None:
        """The plan's limits, exposed beside the values they bound."""
        with self._lock:
            self.lag_budget.set(max_lag_seconds)
            self.retained_wal_budget.set(max_retained_wal_bytes)
            self.freeze_budget.set(max_write_freeze_seconds)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """A sample's current value by its exposed name (for tests and callers): e.g.
        `value("migrator_rows_copied_total", {"collection": "users"})`."""
        return self.registry.get_sample_value(name, labels or {})


class MetricsServer:
    """Serves a registry at http://ADDR:PORT/metrics (any path) on a daemon thread."""

    def __init__(self, metrics: RunMetrics, port: int, addr: str = "127.0.0.1") -> None:
        try:
            self._server, self._thread = start_http_server(port, addr=addr, registry=metrics.registry)
        except OSError as exc:
            raise TerminalError(
                f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}",
                hint="choose a free port with --metrics-port, or stop what listens there",
            ) from None
        self.addr = addr
        self.port: int = int(self._server.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
