"""`--json` event lines carry progress ticks by default; -q keeps only the result or failure;
plain text keeps them hidden unless -v (docs/json.md, "Which events"). Through the CLI, with the
library call replaced by one that emits a known sequence of events and then fails, so that no
database is needed: what stdout holds is compared with the sequence sent."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli
from migrator.engine.events import CdcProgress, Event, PhaseStarted, RowsCopied
from migrator.errors import TerminalError

EVENTS: list[Event] = [
    PhaseStarted("cdc", resumed=False),
    RowsCopied("items", 10, 10),  # a progress tick (debug)
    CdcProgress("0/1", 1, 3, 0, 0.5, 0),  # a progress tick (debug)
]
EVERY_KIND = ["phase.started", "snapshot.rows", "cdc.progress", "failed"]


def _emit_then_fail(*_args: Any, sinks: Sequence[Any] = (), **_kwargs: Any) -> Any:
    for event in EVENTS:
        for sink in sinks:
            sink.emit(event)
    raise TerminalError("stopped on purpose")


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(api, "run", _emit_then_fail)
    monkeypatch.setattr(api, "verify", _emit_then_fail)
    path = tmp_path / "shop.yaml"
    path.write_text("version: 1\n")  # never read: the library call is replaced
    return path


def _kinds(args: list[str]) -> list[str]:
    result = CliRunner().invoke(cli, args, env={"MIGRATOR_QUIET": None, "MIGRATOR_VERBOSE": None})
    assert result.exit_code == 3, result.output
    return [json.loads(line)["event"] for line in result.stdout.splitlines()]


@pytest.mark.parametrize("command", ["run", "verify"])
def test_json_lines_carry_progress_by_default_and_quiet_keeps_only_the_failure(
    plan: Path, command: str
) -> None:
    assert _kinds([command, str(plan), "--json"]) == EVERY_KIND
    assert _kinds(["-v", command, str(plan), "--json"]) == EVERY_KIND
    assert _kinds(["-q", command, str(plan), "--json"]) == ["failed"]


def test_plain_lines_still_hide_progress_unless_verbose(plan: Path) -> None:
    runner = CliRunner()
    quiet_env = {"MIGRATOR_QUIET": None, "MIGRATOR_VERBOSE": None}
    plain = runner.invoke(cli, ["run", str(plan)], env=quiet_env).stdout
    verbose = runner.invoke(cli, ["-v", "run", str(plan)], env=quiet_env).stdout
    # The ticks add lines only with -v; the phase line shows either way.
    assert "cdc" in plain and len(verbose.splitlines()) > len(plain.splitlines()), (plain, verbose)
