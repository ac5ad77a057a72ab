"""The dashboard (LiveState) and Prometheus (RunMetrics) fold the same events alike (engine/totals.py).

One event sequence goes to both sinks; every figure both show is read from each and compared
with the figure worked out by hand from the events below."""

from __future__ import annotations

import math
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
    RunStarted,
    TablePlanned,
    Throttled,
    ThrottleLifted,
    ThrottleProgress,
)
from migrator.engine.live_state import LiveState
from migrator.engine.metrics import RunMetrics

T0 = 1_800_000_000.0


def _events() -> list[Event]:
    chunk = {"lo": None, "hi": None, "position": "0/1", "replaced": 0, "attempt": 1, "seconds": 0.1}
    return [
        RunStarted("run-1", "shop", resumed=True, at=T0),
        PhaseStarted("snapshot", resumed=True, at=T0),
        # Resumed: earlier runs copied 6 of 10 chunks, 900 rows, 600 documents.
        TablePlanned("customers", "public.customers", 1000, 10, 6, 900, 600, at=T0),
        TablePlanned("orders", "public.orders", 50, 1, 0, 0, 0, at=T0),
        RowsCopied("customers", 30, 20, at=T0),
        ChunkFinished("customers", "public.customers", 7, rows_read=30, docs_written=20, **chunk, at=T0),
        RowsCopied("orders", 40, 40, at=T0),
        DocumentSkipped("orders", 7, 17_000_000, "over 16 MB", at=T0),
        ChunkFinished("orders", "public.orders", 0, rows_read=40, docs_written=40, **chunk, at=T0),
        PhaseFinished("snapshot", 2.5, at=T0 + 3),
        PhaseStarted("cdc", resumed=False, at=T0 + 3),
        BatchApplied("0/2", 2, 7, 9, [120.0], at=T0 + 4),
        # Progress totals behind the batches already counted: they count nothing twice.
        CdcProgress("0/2", 1, 5, 4096, 1.5, 1 << 20, False, "slot", "WAL", at=T0 + 5),
        BatchApplied("0/3", 1, 3, 3, [10.0], at=T0 + 6),
        # A transaction larger than a batch: its parts reach the totals only through progress.
        CdcProgress("0/4", 6, 25, 512, 0.25, 2 << 20, False, "slot", "WAL", at=T0 + 7),
        Throttled("cdc", ["paused"], T0 + 8, at=T0 + 8),
        ThrottleProgress("cdc", ["paused"], 1.0, 4.0, at=T0 + 9),
        ThrottleLifted("cdc", 2.0, 5.0, at=T0 + 10),
        RunFinished("run-1", "active", "caught-up", at=T0 + 11),
    ]


# Worked out by hand from _events().
EXPECTED_COLLECTIONS = {
    "customers": {"estimated_rows": 1000, "documents": 620, "rows": 930, "chunks_done": 7, "skipped": 0},
    "orders": {"estimated_rows": 50, "documents": 40, "rows": 40, "chunks_done": 1, "skipped": 1},
}
EXPECTED_CDC = {"changes": 25, "transactions": 6, "lag_seconds": 0.25, "lag_bytes": 512, "retained": 2 << 20}


def _from_dashboard(state: LiveState) -> dict[str, Any]:
    progress = state.progress()
    cdc = progress["cdc"]
    return {
        "collections": {
            c["collection"]: {
                k: c[k] for k in ("estimated_rows", "documents", "rows", "chunks_done", "skipped")
            }
            for c in progress["snapshot"]["collections"]
        },
        "cdc": {
            "changes": cdc["changes"],
            "transactions": cdc["transactions"],
            "lag_seconds": cdc["lag_seconds"],
            "lag_bytes": cdc["lag_bytes"],
            "retained": cdc["retained_wal_bytes"],
        },
        "caught_up": cdc["caught_up"],
        "running": {name: p["status"] == "running" for name, p in progress["run"]["phases"].items()},
        "throttled": progress["throttle"]["throttled"],
        "throttled_seconds": progress["throttle"]["total_seconds"],
    }


def _from_metrics(m: RunMetrics) -> dict[str, Any]:
    def v(name: str, **labels: str) -> Any:
        value = m.value(name, labels)
        assert value is not None, (name, labels)
        return int(value) if float(value).is_integer() else value

    names = {
        "estimated_rows": "migrator_snapshot_estimated_rows",
        "documents": "migrator_documents_written_total",
        "rows": "migrator_rows_copied_total",
        "chunks_done": "migrator_snapshot_chunks_done_total",
        "skipped": "migrator_documents_skipped_total",
    }
    collections = {
        c: {
            k: (v(n, collection=c) if m.value(n, {"collection": c}) is not None else 0)
            for k, n in names.items()
        }
        for c in EXPECTED_COLLECTIONS
    }
    return {
        "collections": collections,
        "cdc": {
            "changes": v("migrator_changes_applied_total"),
            "transactions": v("migrator_transactions_applied_total"),
            "lag_seconds": v("migrator_cdc_lag_seconds"),
            "lag_bytes": v("migrator_cdc_lag_bytes"),
            "retained": v("migrator_retained_wal_bytes"),
        },
        "caught_up": v("migrator_cdc_caught_up") == 1,
        "running": {p: v("migrator_phase_running", phase=p) == 1 for p in ("snapshot", "cdc")},
        "throttled": v("migrator_throttled") == 1,
        "throttled_seconds": v("migrator_throttled_seconds_total"),
    }


def test_dashboard_and_metrics_report_the_same_figures_for_one_event_sequence() -> None:
    state, metrics = LiveState("run", clock=lambda: T0 + 12), RunMetrics()
    for event in _events():
        state.emit(event)
        metrics.emit(event)
    dashboard, prometheus = _from_dashboard(state), _from_metrics(metrics)
    expected = {
        "collections": EXPECTED_COLLECTIONS,
        "cdc": EXPECTED_CDC,
        "caught_up": False,
        "running": {"snapshot": False, "cdc": False},
        "throttled": False,
        "throttled_seconds": 5,
    }
    assert dashboard == expected
    assert prometheus == expected
    assert metrics.value("migrator_cdc_writes_total") == 12  # 9 + 3: BatchApplied alone says it


def test_both_agree_after_every_event_not_only_at_the_end() -> None:
    state, metrics = LiveState("run", clock=lambda: T0 + 12), RunMetrics()
    for event in _events():
        state.emit(event)
        metrics.emit(event)
        progress = state.progress()
        snapshot = progress["snapshot"]
        for c in snapshot["collections"]:
            written = metrics.value("migrator_documents_written_total", {"collection": c["collection"]}) or 0
            assert written == c["documents"], event
        if progress["cdc"] is not None:
            assert metrics.value("migrator_changes_applied_total") == progress["cdc"]["changes"], event
            lag = metrics.value("migrator_cdc_lag_seconds")
            assert lag == progress["cdc"]["lag_seconds"], event
        else:
            assert math.isnan(metrics.value("migrator_cdc_lag_seconds") or 0.0), event
        for phase, p in progress["run"]["phases"].items():
            running = metrics.value("migrator_phase_running", {"phase": phase})
            assert running == (1 if p["status"] == "running" else 0), event
