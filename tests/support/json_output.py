"""Reading `--json` output by the contract of docs/json.md: every stdout line is one JSON object;
a streaming command prints events then one final `result` line; a one-shot command one object;
an error one line (`"event": "failed"`) with `error`, `hint` and `exit_code`. Every moment is `ts`, RFC 3339 UTC with
milliseconds and `Z`."""

from __future__ import annotations

import json
import re
from typing import Any

# Every command of the group, as `migrator --help` lists them.
COMMANDS = (
    "plan",
    "run",
    "verify",
    "rollback",
    "cutover",
    "finish",
    "runbook",
    "init",
    "schema",
    "status",
    "throttle",
)

TS = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of `stdout`, each parsed (fails on a line that is not one JSON object)."""
    lines = stdout.splitlines()
    assert lines, "no output"
    parsed = []
    for line in lines:
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def stream(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A streaming command's events and its last line (`result`, or an error)."""
    lines = json_lines(stdout)
    *events, last = lines
    for event in events:
        assert isinstance(event.get("event"), str) and event["event"] not in ("result", "failed"), event
        assert TS.match(event["ts"]), event
    assert last.get("event") in ("result", "failed"), last
    assert TS.match(last["ts"]), last
    return events, last


def result(stdout: str) -> dict[str, Any]:
    """A streaming command's `result` line (after checking every line)."""
    _, last = stream(stdout)
    assert last["event"] == "result", last
    return last


def one_object(stdout: str) -> dict[str, Any]:
    """A one-shot command's output: exactly one line, one object."""
    lines = json_lines(stdout)
    assert len(lines) == 1, stdout
    return lines[0]


def error(stdout: str, exit_code: int) -> dict[str, Any]:
    """The one error line a failed `--json` command prints last, with its keys checked."""
    last = json_lines(stdout)[-1]
    assert last["event"] == "failed" and {"error", "message", "hint", "exit_code"} <= set(last), last
    assert last["exit_code"] == exit_code, last
    assert TS.match(last["ts"]), last
    return last
