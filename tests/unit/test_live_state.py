"""The dashboard's state (engine/live_state.py): events in, the documented API object out.

Events are made up; a hand-driven clock decides when history samples are taken, so every number
below is worked out by hand from the events sent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from migrator.engine.events import (
    CdcProgress,
    ChunkFinished,
    CutoverAbandoned,
    CutoverStep,
    DocumentSkipped,
    ErrorRaised,
    FinishStepDone,
    Notice,
    PhaseFinished,
    PhaseStarted,
    ReverseProgress,
    RollbackStepDone,
    RowsCopied,
    RunFinished,
    RunStarted,
    TablePlanned,
    ThrottleLifted,
    ThrottleProgress,
    VerifyFinished,
    VerifyProgress,
    WriteFreeze,
)
from migrator.engine.live_state import HISTORY, MESSAGES, LiveState

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _state() -> tuple[LiveState, Clock]:
    clock = Clock()
    return LiveState("run", clock=clock), clock


def _cdc(
    changes: int, lag: float | None, lag_bytes: int, retained: int, caught_up: bool = False
) -> CdcProgress:
    return CdcProgress("0/16B3748", changes // 2, changes, lag_bytes, lag, retained, caught_up, "slot", "WAL")


def test_before_any_event_the_object_has_every_documented_key_and_no_numbers_made_up() -> None:
    state, _ = _state()
    progress = state.progress()
    assert set(progress) == {
        "api_version", "ts", "command", "run", "snapshot", "cdc", "throughput", "budgets", "verify",
        "cutover", "rollback", "finish", "reverse", "throttle", "messages", "history",
    }  # fmt: skip
    assert progress["api_version"] == 1 and progress["command"] == "run"
    assert progress["ts"] == "2027-01-15T08:00:00.000Z"
    assert progress["run"]["status"] == "starting" and progress["run"]["phase"] is None
    assert progress["cdc"] is None and progress["reverse"] is None
    assert progress["snapshot"] == {
        "collections": [],
        "documents": 0,
        "rows": 0,
        "estimated_rows": 0,
        "percent": None,
    }
    assert progress["throughput"] == {"documents_per_second": None, "changes_per_second": None}
    assert progress["budgets"] == {
        "max_lag_seconds": None,
        "max_retained_wal_bytes": None,
        "max_write_freeze_seconds": None,
    }
    assert progress["history"]["t"] == [T0] and progress["history"]["lag_seconds"] == [None]
    json.dumps(progress)  # serialisable as it is


def test_snapshot_progress_per_collection_against_the_estimate() -> None:
    state, clock = _state()
    state.emit(RunStarted("run-1", "shop", resumed=False))
    state.emit(PhaseStarted("snapshot", resumed=False))
    state.emit(TablePlanned("customers", "public.customers", 400, 4, 0, 0))
    state.emit(TablePlanned("notes", "public.notes", 0, 1, 0, 0))  # no estimate: no percentage
    state.emit(RowsCopied("customers", 150, 100))
    state.emit(RowsCopied("customers", 150, 50))
    state.emit(ChunkFinished("customers", "public.customers", 1, 1, 100, "0/1", 300, 150, 0, 1, 0.2))
    state.emit(RowsCopied("notes", 7, 7))
    state.emit(DocumentSkipped("notes", 8, 17_000_000, "over 16 MB"))
    progress = state.progress()
    assert progress["run"]["plan"] == "shop" and progress["run"]["run_id"] == "run-1"
    assert progress["run"]["status"] == "running" and progress["run"]["phase"] == "snapshot"
    customers, notes = progress["snapshot"]["collections"]
    assert customers == {
        "collection": "customers", "table": "public.customers", "estimated_rows": 400, "documents": 150,
        "rows": 300, "percent": 37.5, "chunks": 4, "chunks_done": 1, "skipped": 0,
    }  # fmt: skip
    assert notes["documents"] == 7 and notes["percent"] is None and notes["skipped"] == 1
    assert progress["snapshot"]["documents"] == 157 and progress["snapshot"]["estimated_rows"] == 400
    assert progress["snapshot"]["percent"] == round(100 * 157 / 400, 1)
    assert (
        progress["messages"][-1]["level"] == "warning"
        and "document 8 skipped" in progress["messages"][-1]["message"]
    )

    clock.now += 5
    state.emit(PhaseFinished("snapshot", 5.0))
    assert state.progress()["run"]["phases"]["snapshot"]["status"] == "done"


def test_a_resumed_snapshot_starts_from_what_earlier_runs_copied() -> None:
    state, _ = _state()
    state.emit(TablePlanned("customers", "public.customers", 1000, 10, 6, 900, 600))
    state.emit(RowsCopied("customers", 30, 20))
    (customers,) = state.progress()["snapshot"]["collections"]
    assert (customers["documents"], customers["rows"], customers["chunks_done"]) == (620, 930, 6)
    assert customers["percent"] == 62.0


def test_over_100_percent_of_an_estimate_shows_100() -> None:
    state, _ = _state()
    state.emit(TablePlanned("c", "public.c", 10, 1, 0, 0))
    state.emit(RowsCopied("c", 12, 12))
    assert state.progress()["snapshot"]["collections"][0]["percent"] == 100.0


def test_cdc_lag_is_sampled_once_a_second_and_throughput_comes_from_the_totals() -> None:
    state, clock = _state()
    state.emit(_cdc(0, None, 0, 1000))  # t=0
    for second in range(1, 13):
        clock.now = T0 + second
        state.emit(_cdc(50 * second, 0.5 * second, 10 * second, 1000 + second))
        clock.now = T0 + second + 0.5
        state.emit(_cdc(50 * second + 1, 9.9, 9, 9))  # within the same second: no new sample
    clock.now = T0 + 12.5
    progress = state.progress()
    history = progress["history"]
    assert history["t"] == [T0 + s for s in range(13)]
    assert history["lag_seconds"] == [None] + [0.5 * s for s in range(1, 13)]
    assert history["lag_bytes"] == [0] + [10 * s for s in range(1, 13)]
    assert history["retained_wal_bytes"] == [1000] + [1000 + s for s in range(1, 13)]
    # Each sample holds the changes total of its first event that second: 50 per second, measured
    # over up to 10 s back (the first sample has nothing before it).
    assert history["changes_per_second"][0] is None
    assert history["changes_per_second"][1:] == [50.0] * 12
    assert history["documents_per_second"][1:] == [0.0] * 12
    assert progress["throughput"]["changes_per_second"] == 50.0
    # The current values are the newest event's, not the sample's.
    cdc = progress["cdc"]
    assert (cdc["changes"], cdc["lag_seconds"], cdc["lag_bytes"], cdc["retained_wal_bytes"]) == (
        601,
        9.9,
        9,
        9,
    )
    assert cdc["stream"] == "slot" and cdc["change_log"] == "WAL" and cdc["caught_up"] is False


def test_history_keeps_the_newest_samples_only() -> None:
    state, clock = _state()
    for second in range(HISTORY + 5):
        clock.now = T0 + second
        state.emit(_cdc(second, 0.0, 0, 0, caught_up=True))
    t = state.progress()["history"]["t"]
    assert len(t) == HISTORY and t[-1] == T0 + HISTORY + 4 and t[0] == T0 + 5


def test_verify_progress_then_its_report_with_the_differences() -> None:
    state, clock = _state()
    state.emit(VerifyProgress("customers", "0/1", 100, 98, 2))
    state.emit(VerifyProgress("customers", "0/2", 50, 50, 0))
    running = state.progress()["verify"]
    assert running["running"] is True and (running["checked"], running["equal"], running["differing"]) == (
        150,
        148,
        2,
    )
    assert running["report"] is None
    report: dict[str, Any] = {
        "verdict": "different", "score": 0.993333, "checked": 150, "equal": 149, "mismatched": 1,
        "missing": 0, "extra": 0, "unsettled": 0, "repaired": 0,
        "mismatches": [{"collection": "customers", "id": 7, "kind": "mismatched", "position": "0/2",
                        "diffs": [{"path": "name", "source": "'a'", "target": "'b'"}]}],
    }  # fmt: skip
    clock.now += 3
    state.emit(VerifyFinished(report, at=clock.now))
    done = state.progress()["verify"]
    assert done["running"] is False and done["report"] == report and done["ts"] == "2027-01-15T08:00:03.000Z"
    # A second pass counts from zero and keeps showing the last report until it ends.
    state.emit(VerifyProgress("customers", "0/3", 10, 10, 0))
    again = state.progress()["verify"]
    assert again["running"] is True and again["checked"] == 10 and again["report"] == report


def test_cutover_steps_freeze_and_rollback() -> None:
    state, _ = _state()
    state.set_budgets(1.0, 1024.0, 2.0)
    state.emit(CutoverStep("fence", "attempt 1: source writes held", at=T0 + 1))
    state.emit(CutoverStep("unfenced", "source writes released; write freeze 123 ms", at=T0 + 2))
    state.emit(WriteFreeze("forward", 123.456))
    state.emit(RollbackStepDone("drop-slot", "done", "drop slot s", at=T0 + 3))
    state.emit(WriteFreeze("back", 45.0))
    state.emit(FinishStepDone("slot", "dropped", "drop replication slot s", at=T0 + 4))
    progress = state.progress()
    assert progress["budgets"] == {
        "max_lag_seconds": 1.0,
        "max_retained_wal_bytes": 1024.0,
        "max_write_freeze_seconds": 2.0,
    }
    assert [s["step"] for s in progress["cutover"]["steps"]] == ["fence", "unfenced"]
    assert progress["cutover"]["steps"][0]["ts"] == "2027-01-15T08:00:01.000Z"
    assert progress["cutover"]["freeze_ms"] == 123.5
    assert progress["rollback"] == {
        "steps": [
            {
                "ts": "2027-01-15T08:00:03.000Z",
                "step": "drop-slot",
                "outcome": "done",
                "description": "drop slot s",
            }
        ],
        "freeze_ms": 45.0,
    }
    assert progress["finish"] == {
        "steps": [
            {
                "ts": "2027-01-15T08:00:04.000Z",
                "step": "slot",
                "outcome": "dropped",
                "description": "drop replication slot s",
            }
        ]
    }


def test_errors_and_warnings_are_kept_newest_last_and_bounded() -> None:
    state, _ = _state()
    state.emit(PhaseStarted("cdc", resumed=False))
    state.emit(Notice("info", "not shown: information"))
    state.emit(Notice("warn", "lag over budget"))
    state.emit(ErrorRaised("cdc", "ConnectionFailed", "connection lost", True, hint="retried", code="57P01"))
    state.emit(ErrorRaised("cdc", "SourceError", "slot gone", False))
    messages = state.progress()["messages"]
    assert [(m["level"], m["kind"], m["phase"], m["message"]) for m in messages] == [
        ("warning", "notice", "cdc", "lag over budget"),
        ("warning", "ConnectionFailed", "cdc", "connection lost"),
        ("error", "SourceError", "cdc", "slot gone"),
    ]
    assert (
        messages[1]["hint"] == "retried"
        and messages[1]["code"] == "57P01"
        and messages[1]["retrying"] is True
    )
    for n in range(MESSAGES + 3):
        state.emit(Notice("warn", f"w{n}"))
    messages = state.progress()["messages"]
    assert len(messages) == MESSAGES and messages[-1]["message"] == f"w{MESSAGES + 2}"


def test_throttle_run_end_and_failure() -> None:
    state, _ = _state()
    state.emit(PhaseStarted("cdc", resumed=True))
    state.emit(ThrottleProgress("cdc", ["paused"], 1.0, 4.04))
    assert state.progress()["throttle"] == {"throttled": True, "reasons": ["paused"], "total_seconds": 4.0}
    state.emit(ThrottleLifted("cdc", 2.0, 5.0))
    assert state.progress()["throttle"] == {"throttled": False, "reasons": [], "total_seconds": 5.0}
    state.emit(RunFinished("run-1", "active", "caught-up"))
    run = state.progress()["run"]
    assert run["status"] == "stopped" and run["stopped_after"] == "caught-up"
    assert run["phases"]["cdc"]["status"] == "stopped" and run["phases"]["cdc"]["resumed"] is True
    state.failed("TerminalError", "retained WAL over budget")
    progress = state.progress()
    assert progress["run"]["status"] == "failed"
    assert (
        progress["messages"][-1]["level"] == "error" and progress["messages"][-1]["error"] == "TerminalError"
    )


def _keys(value: Any, skip: frozenset[str]) -> set[str]:
    """Every dict key in `value`, nested ones included, but not below the keys in `skip`."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            found.add(key)
            if key not in skip:
                found |= _keys(inner, skip)
    elif isinstance(value, list):
        for inner in value:
            found |= _keys(inner, skip)
    return found


def test_docs_name_every_field_of_the_api() -> None:
    state, clock = _state()
    state.emit(RunStarted("run-1", "shop", resumed=False))
    state.emit(PhaseStarted("cdc", resumed=False))
    state.emit(TablePlanned("customers", "public.customers", 10, 1, 0, 0))
    state.emit(_cdc(5, 0.1, 1, 2))
    state.emit(VerifyFinished({"verdict": "equal"}))
    state.emit(CutoverStep("gate", "passed"))
    state.emit(WriteFreeze("forward", 10.0))
    state.emit(RollbackStepDone("drop-slot", "done"))
    state.emit(ErrorRaised("cdc", "ConnectionFailed", "lost", True, hint="h", code="57P01"))
    state.emit(ReverseProgress("2027-01-15T08:00:00Z", 1, 1, 0, 0.5))
    state.emit(CutoverAbandoned(1, "lag", 12.0))
    state.failed("TerminalError", "stop")
    clock.now += 2
    keys = _keys(state.progress(), frozenset({"report", "phases"}))
    docs = (Path(__file__).parents[2] / "docs" / "dashboard.md").read_text()
    missing = sorted(
        key for key in keys if f"`{key}`" not in docs and not re.search(rf"[{{ ]{key}[,}}]", docs)
    )
    assert not missing, f"docs/dashboard.md does not name: {missing}"
