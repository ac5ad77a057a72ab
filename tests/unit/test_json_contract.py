"""The output contract of docs/json.md, command by command, without a database: every stdout line
of `--json` parses; one object, or events then one `result` line, or one `failed` line with
`error`, `hint` and `exit_code`; `ts` in RFC 3339 UTC with `Z`; exit codes from the typed errors
(0 ok, 1 checks failed, 2 usage or invalid plan, 3 cannot connect). Also the CLI conventions:
-q / -v, MIGRATOR_ environment variables, --log-format and metrics on every long-running
command, and an Examples block in each command's --help. The success cases against real
servers are in tests/integration/test_json_contract_live.py."""

from __future__ import annotations

import datetime
import io
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from migrator.cli.logs import Leveled, LogLines
from migrator.cli.main import cli
from migrator.cli.progress import JsonLines
from migrator.engine.events import CdcProgress, ErrorRaised, PhaseStarted
from migrator.errors import ConnectionFailed, StateError, TransientError
from migrator.state import SQLiteStateStore
from tests.support import json_output
from tests.support.json_output import COMMANDS, TS

LONG_RUNNING = ("run", "cutover", "verify", "rollback")
# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = (
    "version: 1\n"
    "source: {adapter: postgres, url: 'postgresql://app:Sup3rSecret@127.0.0.1:1/shop?connect_timeout=2'}\n"
    "target: {adapter: mongodb, url: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300', database: d}\n"
    "collections: [{name: shop, from: t, key: id}]\n"
)


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(UNREACHABLE)
    return path


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Sup3rSecret" not in result.output
    return result.exit_code, result.stdout


def test_an_invalid_plan_is_one_error_line_exit_2_for_every_command_that_reads_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsource: {adapter: postgres}\n")
    for command in ("plan", "run", "verify", "rollback", "cutover", "finish", "status", "throttle"):
        extra = (
            ["--pause"] if command == "throttle" else ["--yes"] if command in ("rollback", "finish") else []
        )
        code, out = invoke([command, str(bad), "--json", *extra])
        assert code == 2, (command, out)
        error = json_output.error(out, 2)
        assert len(out.splitlines()) == 1, (command, out)
        assert error["error"] == "PlanError" and error["problems"], (command, error)
        assert {p["file"] for p in error["problems"]} == {str(bad)}


def test_cannot_connect_exits_3_with_one_error_line(plan: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    switched = tmp_path / "switched.yaml"
    switched.write_text(UNREACHABLE + "phases: {cutover: {switch: {kind: file, path: ./routing}}}\n")
    for args in (["run", str(plan)], ["verify", str(plan)], ["cutover", str(switched), "--exit"]):
        code, out = invoke([*args, "--state", state, "--json"])
        assert code == 3, (args, out)
        error = json_output.error(out, 3)
        assert error["hint"], error
    verify = json_output.error(invoke(["verify", str(plan), "--state", state, "--json"])[1], 3)
    assert verify["verdict"] == "incomplete"
    # plan: its report (one object) names both databases; the exit says it could not connect.
    code, out = invoke(["plan", str(plan), "--json"])
    assert code == 3
    report = json_output.one_object(out)
    failed = {f["check"] for f in report["findings"] if f["severity"] == "fail"}
    assert failed == {"source.reachable", "target.reachable"}
    code, out = invoke(["init", "postgresql://app:Sup3rSecret@127.0.0.1:1/shop?connect_timeout=2", "--json"])
    assert code == 3 and json_output.error(out, 3)["error"] == "ConnectionFailed"


def test_usage_errors_under_json_are_one_error_line_exit_2(plan: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    cases = [
        ["throttle", str(plan), "--state", state, "--json"],  # nothing to change
        ["throttle", str(plan), "--max-lag", "soon", "--json"],  # a bad value
        ["run", str(plan), "--no-such-option", "--json"],
        ["init", "ftp://example.com/x", "--json"],  # not a source URL
        ["rollback", str(plan), "--state", state, "--json"],  # not a terminal and no --yes
        ["finish", str(plan), "--state", state, "--json"],  # not a terminal and no --yes
    ]
    for args in cases:
        code, out = invoke(args)
        assert code == 2, (args, out)
        assert json_output.error(out, 2)["error"] in ("UsageError", "PlanError"), (args, out)
        assert len(out.splitlines()) == 1


def test_no_run_exits_1_status_one_object_throttle_one_error_line(plan: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    code, out = invoke(["status", str(plan), "--state", state, "--json"])
    assert code == 1
    status = json_output.one_object(out)
    assert status["run"] is None and TS.match(status["ts"]), status
    code, out = invoke(["throttle", str(plan), "--state", state, "--pause", "--json"])
    assert code == 1 and json_output.error(out, 1)["error"] == "NoActiveRun"
    code, out = invoke(["finish", str(plan), "--state", state, "--yes", "--json"])
    assert code == 1 and json_output.error(out, 1)["error"] == "NoActiveRun"


def test_status_and_throttle_of_a_run_are_one_object_with_rfc3339_times(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    with SQLiteStateStore(state) as store:
        run = store.begin_run("shop", "digest")
    code, out = invoke(["throttle", str(plan), "--state", str(state), "--chunk-rows", "50", "--json"])
    assert code == 0, out
    throttled = json_output.one_object(out)
    assert throttled["run_id"] == run.id and throttled["controls"]["chunk_rows"] == 50
    code, out = invoke(["status", str(plan), "--state", str(state), "--json"])
    assert code == 0, out
    status = json_output.one_object(out)
    assert TS.match(status["ts"]) and TS.match(status["run"]["started_at"]), status
    assert status["run"]["id"] == run.id and status["source"]["reachable"] is False
    # Read back as a moment, the run started within the last minute: the same instant, in UTC.
    started = datetime.datetime.fromisoformat(status["run"]["started_at"])
    assert started.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - started).total_seconds()) < 60


def test_events_and_log_lines_carry_ts_never_an_epoch() -> None:
    event = PhaseStarted(phase="snapshot", resumed=False, at=1_700_000_000.25)
    data = event.to_dict()
    assert data["ts"] == "2023-11-14T22:13:20.250Z" and "at" not in data
    stream = io.StringIO()
    LogLines("json", stream=stream).emit(event)
    line = json.loads(stream.getvalue())
    assert line["ts"] == "2023-11-14T22:13:20.250Z" and line["event"] == "phase.started"


def test_quiet_and_verbose_choose_the_events_shown(capsys: pytest.CaptureFixture[str]) -> None:
    tick = CdcProgress(
        position="0/1", transactions=1, changes=1, lag_bytes=0, lag_seconds=0.0, retained_wal_bytes=0
    )
    info = PhaseStarted(phase="cdc", resumed=False)
    stopped = ErrorRaised.of("cdc", ConnectionFailed("db", "refused"), retrying=False)
    retried = ErrorRaised.of("cdc", TransientError("blip"), retrying=True)
    shown = {}
    for least in ("error", "info", "debug"):
        sink = Leveled(JsonLines(), least)
        for event in (tick, info, retried, stopped):
            sink.emit(event)
        shown[least] = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert shown == {
        "error": ["error"],
        "info": ["phase.started", "error", "error"],
        "debug": ["cdc.progress", "phase.started", "error", "error"],
    }
    code, _ = invoke(["-q", "-v", "status", "x.yaml"])
    assert code == 2


def test_every_command_has_examples_and_shows_its_environment_variables() -> None:
    top = CliRunner().invoke(cli, ["--help"]).output
    assert "Examples:" in top and "MIGRATOR_QUIET" in top and "MIGRATOR_VERBOSE" in top
    for command in COMMANDS:
        text = CliRunner().invoke(cli, [command, "--help"]).output
        assert re.search(r"\n  Examples:\n(    \S.*\n)*    migrator .+\n", text), command
        if command != "schema":
            assert f"MIGRATOR_{command.upper()}_" in text, command
    for command in LONG_RUNNING:
        text = CliRunner().invoke(cli, [command, "--help"]).output
        for option in ("--log-format", "--metrics-port", "--metrics-addr"):
            assert option in text, (command, option)
        assert f"MIGRATOR_{command.upper()}_METRICS_PORT" in text


def test_options_come_from_migrator_environment_variables(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "s.db"
    with SQLiteStateStore(state) as store:
        run = store.begin_run("shop", "digest")
    env = {
        "MIGRATOR_THROTTLE_STATE": str(state),
        "MIGRATOR_THROTTLE_JSON": "1",
        "MIGRATOR_THROTTLE_MAX_LAG": "3s",
    }
    code, out = invoke(["throttle", str(plan)], env)
    assert code == 0, out
    data = json_output.one_object(out)
    assert data["run_id"] == run.id and data["controls"]["max_lag"] == 3.0
    # The command line wins over the environment.
    code, out = invoke(["throttle", str(plan), "--max-lag", "5s"], env)
    assert json_output.one_object(out)["controls"]["max_lag"] == 5.0
    # The group's verbosity too: MIGRATOR_QUIET with -v is refused as both on the command line are.
    code, _ = invoke(["-v", "status", str(plan)], {"MIGRATOR_QUIET": "1"})
    assert code == 2


def test_cutover_of_a_plan_without_a_switch_is_refused_before_connecting_exit_2(
    plan: Path, tmp_path: Path
) -> None:
    code, out = invoke(["cutover", str(plan), "--exit", "--state", str(tmp_path / "s.db"), "--json"])
    failed = json_output.error(out, 2)
    assert code == 2 and len(out.splitlines()) == 1, out
    assert "phases.cutover.switch" in failed["message"] and "kind: file" in failed["hint"], failed


def test_usage_errors_before_a_command_is_chosen_keep_the_json_contract(plan: Path) -> None:
    cases = [
        ["--no-such-option", "run", str(plan), "--json"],  # a bad group option
        ["no-such-command", str(plan), "--json"],  # an unknown command
        ["-q", "-v", "status", str(plan), "--json"],  # the group's options exclude each other
        ["--json", "status", str(plan)],  # --json before the command: the group has none
    ]
    for args in cases:
        code, out = invoke(args)
        assert code == 2, (args, out)
        assert json_output.error(out, 2)["error"] == "UsageError", (args, out)
        assert len(out.splitlines()) == 1, (args, out)
    # Without --json in argv, click's usage text on stderr as before, and still exit 2.
    result = CliRunner().invoke(cli, ["no-such-command", str(plan)])
    assert result.exit_code == 2 and result.stdout == "" and "No such command" in result.stderr


@pytest.mark.parametrize("option", ["--metrics-port", "--http-port"])
def test_a_port_taken_is_an_operational_failure_exit_3_before_any_connection(plan: Path, option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = invoke(["run", str(plan), option, str(port), "--json"])
    failed = json_output.error(out, 3)
    assert code == 3 and len(out.splitlines()) == 1, out
    assert f"127.0.0.1:{port}" in failed["message"] and option in failed["hint"], failed


def test_status_watch_json_shows_a_failed_read_as_the_failed_line_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from migrator.cli import status as status_view

    reads = iter([StateError("state store locked", hint="wait"), KeyboardInterrupt()])

    def fetch() -> Any:
        raise next(reads)

    monkeypatch.setattr(status_view, "_sleep", lambda seconds: None)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert status_view.watch_status(fetch, Console(file=io.StringIO()), as_json=True) is None
    failed = json_output.error(out.getvalue(), StateError.exit_code)
    assert failed["error"] == "StateError" and failed["retrying"] is True, failed
    assert failed["message"] == "state store locked" and failed["hint"] == "wait", failed


def test_init_warns_when_migrator_source_url_names_another_source() -> None:
    given = "postgresql://app@127.0.0.1:1/shop?connect_timeout=2"
    env = {"MIGRATOR_SOURCE_URL": "postgresql://app@127.0.0.1:1/elsewhere?connect_timeout=2"}
    result = CliRunner().invoke(cli, ["init", given, "--json"], env=env)
    assert result.exit_code == 3, result.output
    assert json_output.error(result.stdout, 3)["error"] == "ConnectionFailed"
    assert "$MIGRATOR_SOURCE_URL is set to another URL" in result.stderr and "elsewhere" not in result.stderr
    quiet = CliRunner().invoke(cli, ["init", "--json"], env=env)  # SOURCE_URL from the variable
    assert quiet.exit_code == 3 and "another URL" not in quiet.stderr
