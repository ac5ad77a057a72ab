"""The dashboard's HTTP server (cli/dashboard/server.py) and `--http-port`, without a database."""

from __future__ import annotations

import fnmatch
import json
import re
import socket
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from migrator.cli.dashboard.server import DashboardServer
from migrator.cli.main import cli, observe_options
from migrator.cli.observe import Observed
from migrator.engine.events import ErrorRaised, RowsCopied, TablePlanned
from migrator.engine.live_state import LiveState
from migrator.errors import TerminalError

REPO = Path(__file__).parents[2]
STATIC = REPO / "migrator" / "cli" / "dashboard" / "static"


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.fixture
def served() -> tuple[LiveState, str]:
    state = LiveState("verify")
    state.emit(TablePlanned("customers", "public.customers", 200, 2, 0, 0))
    state.emit(RowsCopied("customers", 50, 50))
    with DashboardServer(state, 0) as server:
        yield state, server.url


def test_the_api_answers_the_state_as_it_is_now(served: tuple[LiveState, str]) -> None:
    state, url = served
    status, kind, body = _get(url + "api/v1/progress")
    assert status == 200 and kind == "application/json"
    first = json.loads(body)
    assert first["command"] == "verify" and first["snapshot"]["documents"] == 50
    assert first["snapshot"]["collections"][0]["percent"] == 25.0
    state.emit(RowsCopied("customers", 30, 30))
    assert json.loads(_get(url + "api/v1/progress?x=1")[2])["snapshot"]["documents"] == 80


def test_the_page_embeds_the_progress_safely_and_names_its_files(served: tuple[LiveState, str]) -> None:
    state, url = served
    state.emit(ErrorRaised("snapshot", "SourceError", "</script><script>alert(1)</script>", False))
    status, kind, body = _get(url)
    page = body.decode()
    assert status == 200 and kind == "text/html; charset=utf-8"
    embedded = re.search(r'<script id="initial-progress" type="application/json">(.*?)</script>', page, re.S)
    assert embedded is not None
    progress = json.loads(embedded.group(1))
    assert progress["snapshot"]["documents"] == 50
    assert progress["messages"][0]["message"] == "</script><script>alert(1)</script>"
    for name in re.findall(r'(?:src|href)="/static/([^"]+)"', page):
        assert _get(url + "static/" + name)[2] == (STATIC / name).read_bytes()


def test_no_password_reaches_the_api_or_the_page() -> None:
    state = LiveState("run")
    state.emit(
        ErrorRaised(
            "cdc",
            "SourceError",
            "connection to postgresql://app:Hunter2pw@db:5432/shop failed; pw s3cr3t!",
            False,
        )
    )
    with DashboardServer(state, 0, secrets=("s3cr3t!",)) as server:
        api_body = _get(server.url + "api/v1/progress")[2].decode()
        page = _get(server.url)[2].decode()
    for text in (api_body, page):
        assert "Hunter2pw" not in text and "s3cr3t!" not in text
        assert "postgresql://app:" in text  # the message is there, its secrets masked
    message = json.loads(api_body)["messages"][0]["message"]
    assert message.startswith("connection to postgresql://app:") and "db:5432/shop" in message


def test_static_files_only_from_the_package_and_404_otherwise(served: tuple[LiveState, str]) -> None:
    _, url = served
    status, kind, body = _get(url + "static/uPlot.iife.min.js")
    assert (
        status == 200
        and kind.startswith("text/javascript")
        and body.startswith(b"/*! https://github.com/leeoniya/uPlot (v1.6.32)")
    )
    for path in (
        "static/../server.py",
        "static/..%2Fserver.py",
        "static/nothing.js",
        "metrics",
        "api/v2/progress",
    ):
        assert _get(url + path)[0] == 404, path


def test_a_port_in_use_is_a_terminal_error_with_a_hint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TerminalError) as caught:
            DashboardServer(LiveState(), port)
    assert f"127.0.0.1:{port}" in caught.value.message and "--http-port" in (caught.value.hint or "")


def test_the_wheel_carries_every_static_file_and_the_license() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["migrator.cli.dashboard"]
    files = [p.relative_to(STATIC.parent).as_posix() for p in STATIC.iterdir()]
    assert {
        "static/index.html",
        "static/dashboard.js",
        "static/uPlot.iife.min.js",
        "static/uPlot.LICENSE",
    } <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert "MIT License" in (STATIC / "uPlot.LICENSE").read_text()


@pytest.mark.parametrize("command", ["run", "cutover"])
def test_http_port_is_an_option_of_the_long_commands(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "--http-port" in result.output


def test_observed_takes_the_port_and_command_from_the_context() -> None:
    seen: list[tuple[int | None, str]] = []

    @click.command("verify")
    @observe_options
    def command(metrics_port: int | None, metrics_addr: str, log_format: str | None) -> None:
        observed = Observed("plan.yaml", log_format, metrics_port, metrics_addr)
        seen.append((observed.http_port, observed.command))

    assert CliRunner().invoke(command, ["--http-port", "8123"]).exit_code == 0
    assert CliRunner().invoke(command, []).exit_code == 0
    assert seen == [(8123, "verify"), (None, "verify")]
