"""Run the `migrator` CLI in a subprocess and signal it at a named moment.

A moment is an event line of `--json` output (a cutover or rollback step): the helper reads the
process's JSON lines until one matches, then sends the signal (SIGKILL: a crash at exactly that
point, as the fault campaign of issue 17 did; SIGINT: an operator's Ctrl-C). Events are emitted
after the step they name is recorded, so a kill on step X dies with X recorded and the next step
not begun: what a crash between two steps leaves behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[2]


def migrator_script() -> str:
    script = Path(sys.executable).parent / "migrator"
    if not script.exists():
        script = REPO / ".venv" / "bin" / "migrator"
    assert script.exists(), f"no migrator console script next to {sys.executable}; pip install -e ."
    return str(script)


def start(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """`migrator ARGS --json` with `env` added to this process's environment."""
    return subprocess.Popen(
        [migrator_script(), *args, "--json"],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a signal for the test runner's group never reaches it
    )


def signal_when(
    process: subprocess.Popen[str],
    predicate: Callable[[dict[str, Any]], bool],
    sig: int = signal.SIGKILL,
    timeout: float = 300,
) -> list[dict[str, Any]]:
    """Read the process's JSON lines until one matches, then send `sig`; the lines read (the
    process is not waited for: see `finish`). Fails, killing it, if the moment never comes."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        seen.append(event)
        if predicate(event):
            process.send_signal(sig)
            return seen
        if time.monotonic() > deadline:
            break
    process.kill()
    process.wait(30)
    stderr = process.stderr.read() if process.stderr else ""
    raise AssertionError(f"never saw the moment to signal at; saw {seen}; stderr: {stderr}")


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for the process; its exit code and the rest of its stdout and stderr."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(30)
        raise AssertionError(f"the process did not end within {timeout:.0f} s: {err}") from None
    return process.returncode, out, err


def step_is(event: str, step: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate: the JSON event line of kind `event` (cutover.step, rollback.step) for `step`."""
    return lambda e: e.get("event") == event and e.get("step") == step
