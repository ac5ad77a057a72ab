"""One run's totals folded from its events: what the dashboard and the metrics both report.

`LiveState` (engine/live_state.py, the dashboard's API) and `RunMetrics` (engine/metrics.py,
Prometheus) are event sinks that show the same figures: documents written against the estimate,
chunks done, CDC changes and lag, which phase runs, throttling. Each folds events through one
`RunTotals`, so the two cannot disagree (docs/architecture.md, Layout: engine). The rules:

- A resumed snapshot starts from what earlier runs copied: `TablePlanned` carries those totals
  and the figures never go below them.
- CDC totals count each `BatchApplied` and catch up with `CdcProgress`'s running totals (a
  transaction larger than a batch is applied in parts that no `BatchApplied` reports); a total
  never goes down.
- Lag is the last `CdcProgress`'s reading (None: not measured yet).
- A phase runs from `PhaseStarted` to `PhaseFinished` (done) or `RunFinished` (stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrator.engine.events import (
    BatchApplied,
    CdcProgress,
    ChunkFinished,
    DocumentSkipped,
    Event,
    PhaseFinished,
    PhaseStarted,
    RowsCopied,
    RunFinished,
    TablePlanned,
    Throttled,
    ThrottleLifted,
    ThrottleProgress,
)


@dataclass
class CollectionTotals:
    """One collection's snapshot so far."""

    table: str = ""
    estimated_rows: int = 0
    chunks: int = 0
    chunks_done: int = 0
    rows: int = 0
    documents: int = 0
    skipped: int = 0


@dataclass
class CdcTotals:
    """Changes applied so far and the last lag reading (`measured` False: no CdcProgress yet)."""

    changes: int = 0
    transactions: int = 0
    writes: int = 0
    measured: bool = False
    position: str = ""
    lag_seconds: float | None = None
    lag_bytes: int = 0
    retained_wal_bytes: int = 0
    caught_up: bool = False
    stream: str = "slot"
    change_log: str = "change log"
    at: float = 0.0


@dataclass
class PhaseTotals:
    """running, done or stopped (the process ended while it ran)."""

    status: str = "running"
    resumed: bool = False
    started_at: float | None = None
    seconds: float | None = None


@dataclass
class ThrottleTotals:
    throttled: bool = False
    reasons: list[str] = field(default_factory=list)
    total_seconds: float = 0.0


class RunTotals:
    """The fold: `apply` every event, read the attributes. Not locked: its sink holds the lock."""

    def __init__(self) -> None:
        self.collections: dict[str, CollectionTotals] = {}
        self.cdc = CdcTotals()
        self.phases: dict[str, PhaseTotals] = {}
        self.throttle = ThrottleTotals()
        self._handlers: tuple[tuple[type | tuple[type, ...], Callable[[Any], None]], ...] = (
            (RowsCopied, self._rows_copied),
            (ChunkFinished, self._chunk_finished),
            (TablePlanned, self._table_planned),
            (DocumentSkipped, self._document_skipped),
            (BatchApplied, self._batch_applied),
            (CdcProgress, self._cdc_progress),
            ((Throttled, ThrottleProgress, ThrottleLifted), self._throttle),
            (PhaseStarted, self._phase_started),
            (PhaseFinished, self._phase_finished),
            (RunFinished, self._run_finished),
        )

    def apply(self, event: Event) -> bool:
        """Fold one event in; False: it changes no total."""
        for kinds, handle in self._handlers:
            if isinstance(event, kinds):
                handle(event)
                return True
        return False

    def collection(self, name: str, table: str = "") -> CollectionTotals:
        entry = self.collections.setdefault(name, CollectionTotals(table))
        if table and not entry.table:
            entry.table = table
        return entry

    @property
    def documents(self) -> int:
        return sum(c.documents for c in self.collections.values())

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.collections.values())

    @property
    def estimated_rows(self) -> int:
        return sum(c.estimated_rows for c in self.collections.values())

    def running_phase(self) -> str | None:
        """The phase started last of those still running."""
        running = [name for name, p in self.phases.items() if p.status == "running"]
        return running[-1] if running else None

    # -- the rules ------------------------------------------------------------------------------

    def _rows_copied(self, e: RowsCopied) -> None:
        entry = self.collection(e.collection)
        entry.rows += e.rows
        entry.documents += e.docs

    def _chunk_finished(self, e: ChunkFinished) -> None:
        self.collection(e.collection, e.table).chunks_done += 1

    def _table_planned(self, e: TablePlanned) -> None:
        entry = self.collection(e.collection, e.table)
        entry.table = e.table
        entry.estimated_rows = e.estimated_rows
        entry.chunks = e.chunks
        # A resumed snapshot starts from what earlier runs copied.
        entry.chunks_done = max(entry.chunks_done, e.chunks_done)
        entry.rows = max(entry.rows, e.rows_done)
        entry.documents = max(entry.documents, e.docs_done)

    def _document_skipped(self, e: DocumentSkipped) -> None:
        self.collection(e.collection).skipped += 1

    def _batch_applied(self, e: BatchApplied) -> None:
        self.cdc.changes += e.changes
        self.cdc.transactions += e.transactions
        self.cdc.writes += e.writes

    def _cdc_progress(self, e: CdcProgress) -> None:
        cdc = self.cdc
        cdc.changes = max(cdc.changes, e.changes)
        cdc.transactions = max(cdc.transactions, e.transactions)
        cdc.measured = True
        cdc.position, cdc.lag_seconds, cdc.lag_bytes = e.position, e.lag_seconds, e.lag_bytes
        cdc.retained_wal_bytes, cdc.caught_up = e.retained_wal_bytes, e.caught_up
        cdc.stream, cdc.change_log, cdc.at = e.stream, e.change_log, e.at

    def _throttle(self, e: Throttled | ThrottleProgress | ThrottleLifted) -> None:
        t = self.throttle
        if isinstance(e, ThrottleLifted):
            t.throttled, t.reasons = False, []
        else:
            t.throttled, t.reasons = True, list(e.reasons)
        if not isinstance(e, Throttled):
            t.total_seconds = max(t.total_seconds, e.total_seconds)

    def _phase_started(self, e: PhaseStarted) -> None:
        self.phases[e.phase] = PhaseTotals("running", e.resumed, e.at)

    def _phase_finished(self, e: PhaseFinished) -> None:
        phase = self.phases.setdefault(e.phase, PhaseTotals())
        phase.status, phase.seconds = "done", e.seconds

    def _run_finished(self, e: RunFinished) -> None:
        for phase in self.phases.values():
            if phase.status == "running":
                phase.status = "stopped"  # this process is done; the run itself stays resumable
