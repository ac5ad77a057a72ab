"""Status, metrics and logs without a database: the state store written by hand, events made up."""

from __future__ import annotations

import io
import json
import math
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli import status as status_cli
from migrator.cli.logs import LogLines
from migrator.cli.main import cli
from migrator.engine.events import (
    BatchApplied,
    CdcProgress,
    ChunkFinished,
    ErrorRaised,
    Notice,
    PhaseFinished,
    PhaseStarted,
    RowsCopied,
    RunStarted,
    VerifyFinished,
)
from migrator.engine.metrics import MetricsServer, RunMetrics
from migrator.errors import ConnectionFailed, TerminalError
from migrator.operations.run import CdcMirror
from migrator.redact import url_passwords
from migrator.state import SQLiteStateStore
from migrator.state.labels import CdcLabel, SnapshotLabel

SECRET = "Unit-0bserve-S3cret"
PLAN = f"""\
version: 1
name: shop
source: {{adapter: postgres, url: 'postgresql://app:{SECRET}@127.0.0.1:1/shop?connect_timeout=1'}}
target: {{adapter: mongodb, url: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300', database: app}}
collections:
  - {{name: users, from: users, key: id}}
  - {{name: notes, from: notes, key: id}}
"""


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(PLAN)
    return path


def _store_with_a_run(path: Path) -> str:
    """A run as a snapshot and a CDC phase leave it, plus an error and a verify report."""
    with SQLiteStateStore(path) as store:
        run = store.begin_run("shop", "digest")
        store.set_phase(run.id, "snapshot", "running")
        store.add_checkpoint(run.id, "snapshot", SnapshotLabel.TARGET_BEFORE, "", {"collections": {}})
        store.add_checkpoint(run.id, "snapshot", SnapshotLabel.SLOT, "0/16B3748", {"slot": "s"})
        store.add_checkpoint(
            run.id, "snapshot", SnapshotLabel.PLANNED, "", {"chunks": {"users": 2, "notes": 1}}
        )
        store.record_chunk(run.id, "users", 0, lo=None, hi=["5"], status="done", rows_read=5, docs_written=5)
        store.record_chunk(run.id, "users", 1, lo=["5"], hi=None, status="running")
        store.record_chunk(run.id, "notes", 0, lo=None, hi=None, status="done", rows_read=3, docs_written=3)
        store.append_event(
            run.id,
            "error",
            {
                "phase": "snapshot",
                "error": "ConnectionFailed",
                "message": "cannot connect to postgresql://app@h:5432/shop: gone",
                "retrying": True,
                "hint": None,
            },
        )
        store.append_event(run.id, "notice", {"level": "warn", "message": "slow"})
        store.append_event(
            run.id,
            "verify.finished",
            {"report": {"verdict": "different", "score": 0.5, "mode": "full", "checked": 8, "mismatched": 4}},
        )
        store.set_phase(run.id, "snapshot", "done")
        store.add_checkpoint(run.id, "cdc", CdcLabel.APPLIED, "0/16B3800", {"mirror_of": "target"})
        return run.id


def test_status_from_the_store_alone(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    run_id = _store_with_a_run(state)
    report = api.status(plan, state=state, history=True, live=False)
    assert report.run is not None and report.run.id == run_id and report.run.phase == "snapshot"
    assert report.source.endpoint == "postgresql://app@127.0.0.1:1/shop" and report.source.reachable is None
    snap = report.snapshot
    assert snap is not None and snap.position == "0/16B3748" and snap.status == "done"
    users, notes = snap.collections
    assert (users.chunks_total, users.chunks_done, users.chunks_running, users.rows) == (2, 1, 1, 5)
    assert (notes.chunks_total, notes.chunks_done, notes.documents, notes.target_documents) == (1, 1, 3, None)
    assert (snap.chunks_total, snap.chunks_done, snap.rows) == (3, 2, 8)
    # live=False: the target is not read, so the position is the state store's mirror of it.
    assert report.cdc is not None and report.cdc.applied_from == "state store"
    assert report.cdc.applied_position == "0/16B3800" and report.cdc.lag_bytes is None
    assert [(e.error, e.retrying, e.phase) for e in report.errors] == [("ConnectionFailed", True, "snapshot")]
    assert [w.message for w in report.warnings] == ["slow"]
    assert report.verify is not None and report.verify.report["verdict"] == "different"
    assert report.last_checkpoint is not None and report.last_checkpoint.label == CdcLabel.APPLIED
    assert report.history is not None
    assert [c.label for c in report.history] == [
        SnapshotLabel.TARGET_BEFORE,
        SnapshotLabel.SLOT,
        SnapshotLabel.PLANNED,
        CdcLabel.APPLIED,
    ]
    assert report.history[0].position is None

    data = json.loads(status_cli.status_json(report))
    assert data["verify"]["report"]["mismatched"] == 4 and data["errors"][0]["error"] == "ConnectionFailed"


def test_status_cli_renders_every_section_and_never_the_password(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _store_with_a_run(state)
    result = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state), "--history"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert SECRET not in out
    assert "unreachable" in out and "postgresql://app@127.0.0.1:1/shop" in out  # live: the source is down
    assert "1/2" in out and "last verify" in out and "different" in out and "mismatched 4" in out
    assert "recent errors" in out and "ConnectionFailed (retried)" in out
    assert "checkpoints" in out and SnapshotLabel.TARGET_BEFORE in out
    # The target being down, the position comes from the state store's mirror.
    assert "0/16B3800 (state store mirror" in out
    data = json.loads(CliRunner().invoke(cli, ["status", str(plan), "--state", str(state), "--json"]).stdout)
    assert data["source"]["reachable"] is False and SECRET not in json.dumps(data)
    assert data["cdc"]["applied_from"] == "state store" and data["cdc"]["applied_position"] == "0/16B3800"


LONG = "customer_order_line_items_archive_2024_by_region_and_sales_channel"


def test_piped_status_never_folds_a_name_and_columns_still_sets_the_width(tmp_path: Path) -> None:
    """Not a terminal (CliRunner's output): one line per collection, names whole, wider than 80;
    COLUMNS set: tables fold at that width, as on a terminal."""
    plan = tmp_path / "long.yaml"
    plan.write_text(
        PLAN.replace("{name: users, from: users, key: id}", f"{{name: {LONG}, from: {LONG}, key: id}}")
    )
    state = tmp_path / "state.db"
    with SQLiteStateStore(state) as store:
        run = store.begin_run("shop", "digest")
        store.set_phase(run.id, "snapshot", "running")
        store.add_checkpoint(run.id, "snapshot", SnapshotLabel.PLANNED, "", {"chunks": {LONG: 1, "notes": 1}})
        store.record_chunk(run.id, LONG, 0, lo=None, hi=None, status="done", rows_read=7, docs_written=7)
    piped = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state)], env={"COLUMNS": None})
    assert piped.exit_code == 0, piped.output
    rows = [line.split() for line in piped.output.splitlines() if LONG in line]
    assert rows == [[LONG, f"public.{LONG}", "1/1", "0", "0", "7", "7", "?"]], piped.output
    assert max(len(line) for line in piped.output.splitlines()) > 80
    narrow = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state)], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and LONG not in narrow.output  # the table folds it, as asked


def test_no_verify_section_without_a_verify_report(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with SQLiteStateStore(state) as store:
        store.begin_run("shop", "digest")
    report = api.status(plan, state=state, live=False)
    assert report.verify is None and report.errors == [] and report.snapshot is not None
    assert report.snapshot.chunks_total == 0
    out = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state)]).output
    assert "last verify" not in out and "recent errors" not in out  # (the state path holds the test name)


def test_status_without_a_run_exits_1_and_creates_nothing(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "nothing" / "state.db"
    report = api.status(plan, state=state)
    assert report.run is None and report.message is not None and "no run of plan shop" in report.message
    result = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state)])
    assert result.exit_code == 1 and "no run of plan shop" in result.output
    result = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["run"] is None
    assert not state.parent.exists()
    # A state file holding only another plan's run: still no run of this plan.
    other = tmp_path / "other.db"
    with SQLiteStateStore(other) as store:
        store.begin_run("another", "digest")
    result = CliRunner().invoke(cli, ["status", str(plan), "--state", str(other)])
    assert result.exit_code == 1 and "no run of plan shop" in result.output


def test_watch_refreshes_until_ctrl_c(plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state.db"
    _store_with_a_run(state)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_cli, "_sleep", sleep)
    result = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state), "--json", "--watch"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and sleeps == [1.0, 1.0, 1.0]
    assert all(line["run"]["status"] == "active" for line in lines)


# -- metrics ----------------------------------------------------------------------------------------


def test_metrics_follow_the_events() -> None:
    m = RunMetrics()
    assert math.isnan(m.value("migrator_cdc_lag_seconds") or 0.0)  # unknown, not 0
    m.emit(RunStarted("r1", "shop", False))
    m.emit(PhaseStarted("snapshot", False))
    m.emit(RowsCopied("users", 100, 90))
    m.emit(RowsCopied("users", 50, 50))
    m.emit(ChunkFinished("users", "public.users", 0, None, None, "0/1", 150, 140, 0, 1, 0.5))
    m.emit(PhaseFinished("snapshot", 1.0))
    m.emit(BatchApplied("0/2", 2, 7, 9, [120.0, 80.0]))
    # A transaction larger than a batch: its parts reach the totals only through progress.
    m.emit(CdcProgress("0/3", 5, 20, 4096, 0.25, 1 << 20))
    m.emit(ErrorRaised.of("cdc", ConnectionFailed("postgresql://u@h/db", "reset"), retrying=True))
    m.emit(ErrorRaised.of("cdc", TerminalError("boom"), retrying=False))
    m.emit(VerifyFinished({"checked": 10, "equal": 9, "mismatched": 1, "verdict": "different"}))
    v = m.value
    assert v("migrator_rows_copied_total", {"collection": "users"}) == 150
    assert v("migrator_documents_written_total", {"collection": "users"}) == 140
    assert v("migrator_snapshot_chunks_done_total", {"collection": "users"}) == 1
    assert v("migrator_changes_applied_total") == 20 and v("migrator_transactions_applied_total") == 5
    assert v("migrator_cdc_writes_total") == 9
    assert v("migrator_cdc_lag_seconds") == 0.25 and v("migrator_cdc_lag_bytes") == 4096
    assert v("migrator_retained_wal_bytes") == 1 << 20
    assert v("migrator_cdc_apply_latency_seconds_count") == 2
    assert v("migrator_cdc_apply_latency_seconds_sum") == pytest.approx(0.2)
    assert v("migrator_errors_total", {"kind": "ConnectionFailed", "phase": "cdc"}) == 1
    assert v("migrator_errors_total", {"kind": "TerminalError", "phase": "cdc"}) == 1
    assert v("migrator_verify_documents", {"result": "mismatched"}) == 1
    assert v("migrator_run_info", {"plan": "shop", "run_id": "r1"}) == 1
    assert v("migrator_phase_running", {"phase": "snapshot"}) == 0
    # Progress totals that lag behind the batches already counted never count twice.
    m.emit(BatchApplied("0/4", 1, 3, 3, [1.0]))
    m.emit(CdcProgress("0/4", 6, 23, 0, 0.0, 1))
    assert v("migrator_changes_applied_total") == 23


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_metrics_server_serves_and_releases_its_port() -> None:
    metrics = RunMetrics()
    metrics.emit(RowsCopied("users", 7, 7))
    with MetricsServer(metrics, 0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        text = _scrape(server.url)
        assert 'migrator_rows_copied_total{collection="users"} 7.0' in text
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            busy = s.getsockname()[1]
            with pytest.raises(TerminalError, match=f"cannot serve metrics on 127.0.0.1:{busy}"):
                MetricsServer(metrics, busy)
    with pytest.raises(OSError):
        _scrape(server.url)


# -- logs -----------------------------------------------------------------------------------------


def _lines(fmt: Any, *events: Any) -> list[str]:
    stream = io.StringIO()
    sink = LogLines(fmt, stream=stream, secrets=(SECRET,))
    for event in events:
        sink.emit(event)
    sink.failure(TerminalError(f"failed with password {SECRET}", hint="check postgresql://u:pw@h/db"))
    return stream.getvalue().splitlines()


def test_json_logs_one_object_per_event_without_secrets() -> None:
    lines = _lines(
        "json",
        RunStarted("r1", "shop", False, "/srv/plans/.migrator/shop.db", at=1_700_000_000.25),
        RowsCopied("users", 3, 3),
        Notice("warn", f"retrying postgresql://app:{SECRET}@h/db"),
        ErrorRaised.of("cdc", TerminalError("stop"), retrying=False),
    )
    assert SECRET not in "".join(lines) and ":pw@" not in "".join(lines)
    parsed = [json.loads(line) for line in lines]
    assert parsed[0] == {
        "ts": "2023-11-14T22:13:20.250Z",
        "level": "info",
        "event": "run.started",
        "run_id": "r1",
        "plan": "shop",
        "resumed": False,
        "state": "/srv/plans/.migrator/shop.db",
    }
    assert [p["level"] for p in parsed] == ["info", "debug", "warning", "error", "error"]
    assert parsed[2]["message"] == "retrying postgresql://app:***@h/db" and parsed[2]["event_level"] == "warn"
    assert parsed[4]["event"] == "run.failed" and parsed[4]["message"] == "failed with password ***"


def test_text_logs() -> None:
    lines = _lines("text", PhaseStarted("snapshot", True, at=1_700_000_000.0), Notice("info", "two words"))
    assert lines[0] == "2023-11-14T22:13:20.000Z INFO phase.started phase=snapshot resumed=true"
    assert lines[1].endswith('INFO notice event_level=info message="two words"')
    assert " ERROR run.failed error=TerminalError " in lines[2] and SECRET not in lines[2]


# -- the CDC mirror ---------------------------------------------------------------------------------


def test_cdc_mirror_writes_now_and_then_and_never_twice(tmp_path: Path) -> None:
    with SQLiteStateStore(tmp_path / "s.db") as store:
        run = store.begin_run("shop", "d")
        mirror = CdcMirror(store, run.id, interval=3600)
        mirror.emit(BatchApplied("0/10", 1, 1, 1, [1.0]))  # the first one is written at once
        mirror.emit(BatchApplied("0/20", 1, 1, 1, [1.0]))  # within the interval: not yet
        assert [c.position for c in store.checkpoints(run.id, "cdc")] == ["0/10"]
        mirror.flush("0/30")
        mirror.flush("0/30")
        assert [c.position for c in store.checkpoints(run.id, "cdc")] == ["0/10", "0/30"]
        # A resumed run starts from what the store holds.
        CdcMirror(store, run.id).flush("0/30")
        assert len(store.checkpoints(run.id, "cdc")) == 2


def test_help_lists_the_new_command_and_options() -> None:
    assert "status" in CliRunner().invoke(cli, ["--help"]).output
    run_help = CliRunner().invoke(cli, ["run", "--help"]).output
    for option in ("--metrics-port", "--metrics-addr", "--log-format"):
        assert option in run_help
    status_help = CliRunner().invoke(cli, ["status", "--help"]).output
    for option in ("--state", "--json", "--watch", "--history"):
        assert option in status_help


def test_url_passwords_finds_userinfo_and_query_passwords() -> None:
    found = url_passwords("postgresql://u:p%40ss@h/db?password=q1", "mongodb://h:1/", "not a url")
    assert set(found) == {"p%40ss", "p@ss", "q1"}
