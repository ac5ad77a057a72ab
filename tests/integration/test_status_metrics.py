"""`migrator status`, metrics and structured logs against real servers.

Every test's source URL carries PASSWORD (the throwaway cluster trusts local connections and
ignores it, which is exactly why it must never be seen: nothing would fail if it leaked), and
every output a test reads is checked for it.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.adapters.postgres.lsn import Lsn
from migrator.cli.logs import LogLines
from migrator.cli.main import cli
from migrator.engine.metrics import RunMetrics
from migrator.errors import TerminalError
from migrator.operations.status import StatusReport
from migrator.plan.names import cdc_checkpoint_id
from migrator.state.labels import CdcLabel, SnapshotLabel
from tests.support.cli_process import migrator_script
from tests.support.docs import Migration
from tests.support.runs import Follower, wait_for

PASSWORD = "St4tus-Pw-n3ver-sh0wn-9qZ"
RUN_TIMEOUT = 90.0
CUSTOMERS = 250
ORDERS_PER_CUSTOMER = 2

COLLECTIONS = """
- name: customers
  from: customers
  key: id
  embed: [{as: orders, from: orders, on: {customer_id: id}, key: id}]
- {name: notes, from: notes, key: id}
"""
PHASES = "snapshot: {parallel: 2, chunk_rows: 100}\ncdc: {max_lag: 1s, heartbeat_interval: 1s}"


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] or "postgres"
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, parts.fragment))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


@pytest.fixture
def source_url(pg_url: str) -> str:
    """The source's URL carries PASSWORD, which no output may show."""
    return _with_password(pg_url, PASSWORD)


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)",
        "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers,"
        " total numeric(10, 2))",
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text)",
        f"INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, {CUSTOMERS}) g",
        f"INSERT INTO orders SELECT g, (g - 1) % {CUSTOMERS} + 1, g * 1.5"
        f" FROM generate_series(1, {CUSTOMERS * ORDERS_PER_CUSTOMER}) g",
        "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 30) g",
    )


@pytest.fixture
def plan(mig: Migration) -> Path:
    return mig.plan(COLLECTIONS, name="statusplan", phases=PHASES)


def _status(mig: Migration, plan: Path, **kwargs: Any) -> StatusReport:
    report = api.status(plan, state=mig.state_path, env=mig.env, **kwargs)
    _no_secret(json.dumps(report.to_dict(), default=str))
    return report


def _cli_status(mig: Migration, plan: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(
        cli, ["status", str(plan), "--state", str(mig.state_path), *args], env=env or mig.env
    )
    _no_secret(result.output)
    return result


# -- status ---------------------------------------------------------------------------------------


def test_status_after_snapshot_reports_progress_slot_and_checkpoint(mig: Migration, plan: Path) -> None:
    outcome, _ = mig.run(plan)
    report = _status(mig, plan)
    assert report.run is not None and report.run.id == outcome.run_id
    assert report.run.status == "active" and report.run.phase == "snapshot"
    assert [(p.name, p.status) for p in report.phases] == [("snapshot", "done")]
    assert report.source.reachable is True and report.target.reachable is True
    assert f"postgresql://postgres@{urlsplit(mig.pg_url).hostname}" in report.source.endpoint

    snap = report.snapshot
    assert snap is not None and snap.status == "done"
    by_name = {c.collection: c for c in snap.collections}
    customers, notes = by_name["customers"], by_name["notes"]
    assert customers.table == "public.customers" and notes.table == "public.notes"
    assert customers.chunks_total == 3 and customers.chunks_done == 3  # 250 rows in chunks of 100
    assert notes.chunks_total == 1 and notes.chunks_done == 1
    assert customers.rows == CUSTOMERS * (1 + ORDERS_PER_CUSTOMER)  # root rows and embedded rows
    assert customers.documents == CUSTOMERS and customers.target_documents == CUSTOMERS
    assert notes.rows == 30 and notes.documents == 30 and notes.target_documents == 30
    assert snap.rows == customers.rows + notes.rows and snap.chunks_done == snap.chunks_total == 4
    assert snap.position == outcome.snapshot.position  # type: ignore[union-attr]

    cdc = report.cdc
    assert cdc is not None and cdc.status == "pending" and cdc.applied_position is None
    assert cdc.slot.name == mig.slot("statusplan") and cdc.slot.name.endswith(report.run.id[:8])  # type: ignore[union-attr]
    assert cdc.slot.exists is True and cdc.slot.active is False
    assert cdc.slot.retained_wal_bytes is not None and cdc.slot.retained_wal_bytes > 0
    assert cdc.max_lag_seconds == 1.0
    assert report.last_checkpoint is not None and report.last_checkpoint.label == SnapshotLabel.DONE
    assert report.last_checkpoint.position == snap.position
    assert report.errors == [] and report.history is None

    # The CLI's JSON has the same facts under the documented names.
    result = _cli_status(mig, plan, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {
        "plan", "state", "ts", "run", "message", "source", "target", "phases", "snapshot", "cdc",
        "last_checkpoint", "errors", "warnings", "verify", "history",
    }  # fmt: skip
    assert data["run"]["id"] == outcome.run_id and data["message"] is None
    assert data["snapshot"]["chunks_done"] == 4 and data["snapshot"]["rows"] == snap.rows
    assert data["snapshot"]["collections"][0]["collection"] == "customers"
    assert data["cdc"]["slot"]["exists"] is True and data["cdc"]["applied_position"] is None
    assert data["verify"] is None and data["history"] is None
    # ... and the text view shows the progress table.
    text = _cli_status(mig, plan)
    assert text.exit_code == 0, text.output
    assert "customers" in text.output and "3/3" in text.output and f"{customers.rows:,}" in text.output
    assert "reachable" in text.output and "last checkpoint" in text.output
    # A PostgreSQL source keeps its own words for the slot and its change log.
    assert f"replication slot {cdc.slot.name} idle" in text.output, text.output
    assert "WAL" in text.output and "binlog" not in text.output, text.output


def test_status_while_cdc_follows_and_after_it_stopped(mig: Migration, plan: Path) -> None:
    mig.run(plan)
    follower = Follower(mig, plan, "stopped")
    try:
        wait_for(
            lambda: _status(mig, plan).cdc.slot.active is True,  # type: ignore[union-attr]
            "the stream to hold the slot",
            60,
            every=0.2,
        )
        made = time.time()
        mig.sql(
            "INSERT INTO notes VALUES (1000, 'new'), (1001, 'newer')",
            "UPDATE customers SET name = 'x' WHERE id = 7",
        )
        ((after_change,),) = mig.rows("SELECT pg_current_wal_lsn()::text")

        def applied_past_change() -> bool:
            cdc = _status(mig, plan).cdc
            assert cdc is not None
            return cdc.applied_position is not None and Lsn.parse(cdc.applied_position) >= Lsn.parse(
                after_change
            )

        wait_for(applied_past_change, "CDC to apply the changes", 60, every=0.2)
        during = _status(mig, plan)
        cdc = during.cdc
        assert cdc is not None and cdc.status == "running" and during.run.phase == "cdc"  # type: ignore[union-attr]
        assert cdc.applied_from == "target"
        stored = mig.client[mig.database]["_migrator"].find_one({"_id": cdc_checkpoint_id("statusplan")})
        assert stored is not None and Lsn.parse(cdc.applied_position).value <= int(stored["position"])  # type: ignore[arg-type]
        assert cdc.applied_at is not None and cdc.applied_age_seconds is not None
        # The newest applied commit is at most as old as these changes (however slow the machine).
        assert 0 <= cdc.applied_age_seconds <= time.time() - made + 1.0
        assert cdc.lag_bytes is not None and cdc.lag_bytes >= 0 and cdc.lag_seconds is not None
        assert cdc.slot.active is True and cdc.slot.retained_wal_bytes is not None
        by_name = {c.collection: c for c in during.snapshot.collections}  # type: ignore[union-attr]
        assert by_name["notes"].target_documents == 32
    finally:
        follower.finish()

    after = _status(mig, plan, history=True)
    cdc = after.cdc
    assert cdc is not None and cdc.slot.active is False and cdc.applied_position is not None
    assert Lsn.parse(cdc.applied_position) >= Lsn.parse(after_change)
    # The state store mirrors the target's position when the phase returns: the last checkpoint.
    assert after.last_checkpoint is not None
    assert (after.last_checkpoint.phase, after.last_checkpoint.label) == ("cdc", CdcLabel.APPLIED)
    assert after.last_checkpoint.position == cdc.applied_position
    assert after.history is not None and after.history[-1] == after.last_checkpoint

    result = _cli_status(mig, plan, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["cdc"]
    assert data["applied_position"] == cdc.applied_position and data["applied_from"] == "target"
    assert isinstance(data["lag_bytes"], int) and isinstance(data["lag_seconds"], float)
    assert isinstance(data["slot"]["retained_wal_bytes"], int) and data["slot"]["active"] is False
    text = _cli_status(mig, plan)
    assert f"applied   {cdc.applied_position} (target)" in text.output


def test_status_after_caught_up_and_history(mig: Migration, plan: Path) -> None:
    mig.run(plan)
    mig.sql("DELETE FROM notes WHERE id = 3")
    api.run(plan, until="caught-up", state=mig.state_path, env=mig.env)

    result = _cli_status(mig, plan, "--history", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    history = data["history"]
    labels = [(c["phase"], c["label"]) for c in history]
    assert labels[:5] == [
        ("snapshot", SnapshotLabel.TARGET_BEFORE),
        ("snapshot", SnapshotLabel.SOURCE_BEFORE),
        ("snapshot", SnapshotLabel.SLOT),
        ("snapshot", SnapshotLabel.PLANNED),
        ("snapshot", SnapshotLabel.DONE),
    ]
    assert labels[-1] == ("cdc", CdcLabel.APPLIED)
    assert [c["id"] for c in history] == sorted(c["id"] for c in history)
    for c in history:
        assert set(c) == {"id", "phase", "label", "position", "created_at"}
    assert history[2]["position"] == data["snapshot"]["position"]
    assert history[0]["position"] is None  # a record without a stream position
    assert history[-1]["position"] == data["cdc"]["applied_position"]
    assert data["cdc"]["status"] == "running"  # CDC has no end of its own: it waits for cutover
    assert data["snapshot"]["collections"][1]["target_documents"] == 29

    text = _cli_status(mig, plan, "--history")
    assert text.exit_code == 0, text.output
    assert "checkpoints" in text.output and SnapshotLabel.TARGET_BEFORE in text.output
    assert data["cdc"]["applied_position"] in text.output


def test_status_for_a_plan_without_a_run_exits_1_and_writes_nothing(mig: Migration, plan: Path) -> None:
    assert not mig.state_path.exists()
    report = _status(mig, plan)
    assert report.run is None and report.snapshot is None and report.cdc is None
    assert report.message is not None and "no run of plan statusplan" in report.message
    assert report.source.reachable is None  # no run: no database is asked
    result = _cli_status(mig, plan)
    assert result.exit_code == 1
    assert "no run of plan statusplan" in result.output
    result = _cli_status(mig, plan, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["run"] is None and "no run of plan statusplan" in data["message"]
    assert not mig.state_path.exists()  # status never creates a state file
    assert mig.slots() == []


def test_status_with_unreachable_databases_names_them_and_keeps_what_the_store_knows(
    mig: Migration, plan: Path
) -> None:
    mig.run(plan)
    api.run(plan, until="caught-up", state=mig.state_path, env=mig.env)
    reachable = _status(mig, plan)
    assert reachable.cdc is not None and reachable.cdc.applied_position is not None

    dbname = urlsplit(mig.pg_url).path.lstrip("/")
    down = {
        **mig.env,
        "MIGRATOR_SOURCE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/{dbname}?connect_timeout=3",
        "MIGRATOR_TARGET_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
    }
    report = api.status(plan, state=mig.state_path, env=down)
    _no_secret(json.dumps(report.to_dict(), default=str))
    assert report.source.reachable is False and report.target.reachable is False
    assert report.source.endpoint == f"postgresql://postgres@127.0.0.1:1/{dbname}"
    assert (
        report.source.error is not None
        and "cannot connect to postgresql://postgres@127.0.0.1:1/" in report.source.error
    )
    assert report.target.error is not None and "127.0.0.1:1" in report.target.error
    # What the state store knows is still there: progress, checkpoints, the mirrored position.
    assert report.snapshot is not None and reachable.snapshot is not None
    assert report.snapshot.rows == reachable.snapshot.rows > 0
    assert report.snapshot.chunks_done == reachable.snapshot.chunks_done == 4
    assert report.snapshot.position == reachable.snapshot.position
    assert all(c.target_documents is None for c in report.snapshot.collections)
    assert report.cdc is not None and report.cdc.applied_from == "state store"
    assert report.cdc.applied_position == reachable.cdc.applied_position
    assert report.cdc.slot.exists is None and report.cdc.lag_bytes is None
    assert report.last_checkpoint == reachable.last_checkpoint

    for args in ([], ["--json"]):
        result = _cli_status(mig, plan, *args, env=down)
        assert result.exit_code == 0, result.output
        assert f"postgresql://postgres@127.0.0.1:1/{dbname}" in result.output
    assert "unreachable" in _cli_status(mig, plan, env=down).output


def test_errors_reach_status_metrics_and_logs(mig: Migration, plan: Path) -> None:
    mig.run(plan)
    mig.sql("TRUNCATE notes")  # phases.cdc.on_truncate defaults to stop: a terminal error
    metrics = RunMetrics()
    stream = io.StringIO()
    logs = LogLines("json", stream=stream, secrets=(PASSWORD,))
    with pytest.raises(TerminalError, match=r"TRUNCATE of public\.notes"):
        api.run(plan, until="caught-up", state=mig.state_path, sinks=[metrics, logs], env=mig.env)

    report = _status(mig, plan)
    assert [(p.name, p.status) for p in report.phases] == [("snapshot", "done"), ("cdc", "failed")]
    assert len(report.errors) == 1
    error = report.errors[0]
    assert (error.phase, error.error, error.retrying) == ("cdc", "TerminalError", False)
    assert "TRUNCATE of public.notes" in error.message and error.hint and "on_truncate" in error.hint
    assert metrics.value("migrator_errors_total", {"kind": "TerminalError", "phase": "cdc"}) == 1.0

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failed = [line for line in lines if line["event"] == "error"]
    assert len(failed) == 1 and failed[0]["level"] == "error" and failed[0]["phase"] == "cdc"
    _no_secret(stream.getvalue())

    result = _cli_status(mig, plan)
    assert "recent errors" in result.output and "TRUNCATE of public.notes" in result.output


# -- metrics and logs from `migrator run` -----------------------------------------------------------


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    _no_secret(text)
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def test_metrics_scraped_from_a_running_migrator_run_and_json_logs(
    mig: Migration, plan: Path, tmp_path: Path
) -> None:
    port = _free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {**os.environ, **mig.env}
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [migrator_script(), "-v", "run", str(plan), "--state", str(mig.state_path), "--metrics-port",
             str(port), "--log-format", "json"],
            stdout=stdout, stderr=stderr, env=env, cwd=tmp_path, text=True,
        )  # fmt: skip
    try:

        def scrape_or_empty() -> dict[str, float]:
            try:
                return _scrape(port)
            except OSError:
                assert proc.poll() is None, f"migrator run ended: {err.read_text()}"
                return {}

        wait_for(
            lambda: _total(scrape_or_empty(), "migrator_rows_copied_total") > 0, "rows copied", 60, every=0.2
        )
        wait_for(lambda: _status(mig, plan).cdc.slot.active is True, "the stream", 60, every=0.2)  # type: ignore[union-attr]
        mig.sql(*(f"INSERT INTO notes VALUES ({i}, 'live {i}')" for i in range(100, 110)))
        wait_for(
            lambda: scrape_or_empty().get("migrator_changes_applied_total", 0) >= 10,
            "changes applied",
            60,
            every=0.2,
        )
        wait_for(
            lambda: not math.isnan(scrape_or_empty().get("migrator_retained_wal_bytes", math.nan)),
            "a lag measurement",
            30,
            every=0.2,
        )
        samples = _scrape(port)
        rows = CUSTOMERS * (1 + ORDERS_PER_CUSTOMER) + 30
        assert _total(samples, "migrator_rows_copied_total") == rows
        assert samples['migrator_documents_written_total{collection="customers"}'] == CUSTOMERS
        assert samples['migrator_documents_written_total{collection="notes"}'] == 30
        assert samples['migrator_snapshot_chunks_done_total{collection="customers"}'] == 3
        assert samples["migrator_changes_applied_total"] >= 10
        assert samples["migrator_transactions_applied_total"] >= 10
        assert samples["migrator_retained_wal_bytes"] > 0
        assert samples["migrator_cdc_lag_bytes"] >= 0 and samples["migrator_cdc_lag_seconds"] >= 0
        assert samples["migrator_cdc_apply_latency_seconds_count"] >= 10
        assert samples['migrator_phase_running{phase="cdc"}'] == 1
        assert not any(k.startswith("migrator_errors_total{") for k in samples)
        # The plan's limits (PHASES sets max_lag; the others are the documented defaults), the
        # snapshot's estimates beside its counters, and no _created series (ops/ relies on them).
        assert samples["migrator_cdc_lag_budget_seconds"] == 1.0
        assert samples["migrator_retained_wal_budget_bytes"] == 10 * 1024**3
        assert samples["migrator_write_freeze_budget_seconds"] == 2.0
        assert {'migrator_snapshot_estimated_rows{collection="customers"}',
                'migrator_snapshot_estimated_rows{collection="notes"}'} <= set(samples)  # fmt: skip
        assert not any("_created" in k for k in samples)
        run_info = [k for k in samples if k.startswith("migrator_run_info{")]
        assert len(run_info) == 1 and 'plan="statusplan"' in run_info[0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, err.read_text()
    stdout_text, stderr_text = out.read_text(), err.read_text()
    _no_secret(stdout_text, stderr_text)
    lines = [json.loads(line) for line in stderr_text.splitlines()]  # every stderr line is JSON
    assert lines, "no log lines"
    for line in lines:
        assert {"ts", "level", "event"} <= set(line)
        assert line["ts"].endswith("Z") and line["level"] in {"debug", "info", "warning", "error"}
    kinds = [line["event"] for line in lines]
    assert kinds[0] == "metrics.serving" and lines[0]["url"] == f"http://127.0.0.1:{port}/metrics"
    for kind in (
        "run.started",
        "phase.started",
        "snapshot.chunk_finished",
        "cdc.batch_applied",
        "run.finished",
    ):
        assert kind in kinds, kind
    chunk = next(line for line in lines if line["event"] == "snapshot.chunk_finished")
    assert chunk["level"] == "info" and chunk["rows_read"] > 0 and "collection" in chunk
    assert next(line for line in lines if line["event"] == "cdc.batch_applied")["level"] == "debug"  # -v
    # The port is released when the run ends.
    with pytest.raises(OSError):
        _scrape(port)


def test_text_logs_and_errors_of_a_failing_run_never_show_the_password(
    mig: Migration, plan: Path, tmp_path: Path
) -> None:
    dbname = urlsplit(mig.pg_url).path.lstrip("/")
    env = {
        **os.environ,
        **mig.env,
        "MIGRATOR_SOURCE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/{dbname}?connect_timeout=3",
    }
    for log_format in ("text", "json"):
        result = subprocess.run(
            [migrator_script(), "run", str(plan), "--state", str(tmp_path / "s.db"), "--log-format", log_format],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        _no_secret(result.stdout, result.stderr)
        assert result.returncode == 3, result.stderr  # cannot connect (docs/json.md)
        assert f"postgresql://postgres@127.0.0.1:1/{dbname}" in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        if log_format == "json":
            line = json.loads(last)
            assert line["level"] == "error" and line["event"] == "run.failed"
            assert line["error"] == "PreflightFailed"
        else:
            assert " ERROR run.failed " in last and "error=PreflightFailed" in last

    # `migrator status` on the same (run-less) state, and with a run and the source down.
    mig.run(plan)
    for args in (["--json"], []):
        result = CliRunner().invoke(
            cli, ["status", str(plan), "--state", str(mig.state_path), *args], env=env
        )
        assert result.exit_code == 0, result.output
        _no_secret(result.output)
        assert f"postgresql://postgres@127.0.0.1:1/{dbname}" in result.output
