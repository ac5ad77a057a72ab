"""The live dashboard of a real `migrator run --http-port` (PostgreSQL to the MongoDB-compatible
test server), loaded twice in headless Chromium: what the page shows must move with the run.

The expectations come from the test's own data: the rows it created (the snapshot's documents and
the estimate ANALYZE gives) and the rows it inserts while CDC follows (one change each)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium, dump_dom, screenshot, shown
from tests.support.cli_process import migrator_script
from tests.support.docs import Migration
from tests.support.runs import wait_for

CUSTOMERS = 300
NOTES = 30
INSERTED = 20
COLLECTIONS = """
- name: customers
  from: customers
  key: id
- {name: notes, from: notes, key: id}
"""
PHASES = "snapshot: {parallel: 2, chunk_rows: 100}\ncdc: {max_lag: 1s, heartbeat_interval: 1s}"


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (
        "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)",
        "CREATE TABLE notes (id bigint PRIMARY KEY, body text)",
        f"INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, {CUSTOMERS}) g",
        f"INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, {NOTES}) g",
        "ANALYZE customers, notes",  # exact estimates: the page's percentages are known
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _progress(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None


def test_the_dashboard_of_a_running_migration_in_headless_chromium(mig: Migration, tmp_path: Path) -> None:
    chromium()  # before starting anything: a skip (or a CI failure) names the package
    plan = mig.plan(COLLECTIONS, name="dashplan", phases=PHASES)
    port = _free_port()
    page, api_url = f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/api/v1/progress"
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [migrator_script(), "run", str(plan), "--state", str(mig.state_path), "--http-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, **mig.env}, cwd=tmp_path, text=True,
        )  # fmt: skip
    try:

        def following() -> bool:
            assert proc.poll() is None, f"migrator run ended: {err.read_text()}"
            progress = _progress(api_url)
            return progress is not None and progress["cdc"] is not None and progress["run"]["phase"] == "cdc"

        wait_for(following, "CDC following, seen through the API", 60, every=0.2)
        first = shown(dump_dom(page))
        assert first["status"]["text"] == "running" and first["phase"]["text"] == "cdc"
        assert first["plan"]["text"] == "dashplan" and first["command"]["text"] == "run"
        assert int(first["snapshot-total"]["data-documents"]) == CUSTOMERS + NOTES
        table = first["snapshot"]["text"]
        assert "public.customers" in table and "public.notes" in table
        assert table.count("100.0 %") == 2  # documents over ANALYZE's exact estimates
        assert re.fullmatch(r"\d+(\.\d+)? (B|KiB|MiB)", first["retained"]["text"]), first["retained"]["text"]
        assert first["retained-budget"]["text"].startswith("budget 10.0 GiB")  # the plan's default
        assert re.fullmatch(r"\d+\.\d+ s", first["lag-seconds"]["text"]), first["lag-seconds"]["text"]
        assert first["verify-verdict"]["text"] == "no pass yet"
        assert int(first["page"]["data-polls"]) >= 2  # the embedded progress, then at least one poll
        changes_before = int(first["changes"]["data-value"])

        mig.sql(*(f"INSERT INTO notes VALUES ({1000 + i}, 'live {i}')" for i in range(INSERTED)))
        wait_for(
            lambda: (_progress(api_url) or {}).get("cdc", {}).get("changes", 0) >= changes_before + INSERTED,
            "the inserted rows applied",
            30,
            every=0.2,
        )
        second = shown(dump_dom(page))
        assert int(second["changes"]["data-value"]) == changes_before + INSERTED
        assert second["page"]["data-ts"] > first["page"]["data-ts"]
        for chart in ("chart-lag", "chart-bytes", "chart-rate"):
            assert int(second[chart]["data-points"]) > int(first[chart]["data-points"]) > 0, chart
        assert second["messages"]["data-count"] == "0"
        assert "hidden" in second["offline"] and "data-error" not in second["page"]  # every poll answered
        screenshot(page, tmp_path / "dashboard.png")
        assert (tmp_path / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, err.read_text()
    assert f"serving the dashboard at {page}" in err.read_text()
    assert _progress(api_url) is None  # the dashboard ends with the command
