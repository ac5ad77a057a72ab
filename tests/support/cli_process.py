"""Run the `migrator` CLI in a subprocess and signal it at a named moment.

A moment is an event line of `--json` output (a cutover or rollback step): the helper reads the
process's JSON lines until one matches, then sends the signal (SIGKILL: a crash at exactly that
point, as the fault campaign of issue 17 did; SIGINT: an operator's Ctrl-C). Events are emitted
after the step they name is recorded, so a kill on step X dies with X recorded and the next step
not begun: what a crash between two steps leaves behind.

`migrator_script()` is the console script every test that runs the CLI in a subprocess uses;
`MigratorRun` reads a long-running command's events on a thread, for tests that act at the nth
event of a kind (a kill -9 mid-snapshot, a signal while CDC follows).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
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


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`migrator ARGS` run to its end from the repository, with exactly `env`, as an operator
    runs it (stdin closed: nothing can ask for confirmation)."""
    return subprocess.run(
        [migrator_script(), *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


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


class MigratorRun:
    """`migrator ARGS --json` in a subprocess, its stdout read as JSON event lines on a thread (and
    its stderr kept), so that a test can wait for the moment it means to act at: a kill, a signal.
    Those moments are often progress events (snapshot.rows, cdc.batch_applied), which the JSON
    lines carry by default (docs/json.md); `-v` is given too, as it always was, and changes
    nothing in them.
    `event_timeout` bounds each wait for an event, and the wait for the process's exit after it."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path, event_timeout: float) -> None:
        self.proc = subprocess.Popen(
            [migrator_script(), "-v", *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
            cwd=cwd,
        )
        self.started = time.monotonic()
        self.event_timeout = event_timeout
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._stderr: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def describe(self) -> str:
        tail = "\n".join(self.lines[-25:])
        return f"exit code {self.proc.poll()}\n--- stdout (tail)\n{tail}\n--- stderr\n{self.stderr[-4000:]}"

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON event line; None once stdout is closed; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                break
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue  # anything not an event
            if isinstance(event, dict) and "event" in event:
                self.events.append(event)
                return event
        return None

    def _matching(self, kind: str, match: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]

    def count(self, kind: str) -> int:
        return len(self._matching(kind, {}))

    def seen(self, kind: str, **match: Any) -> bool:
        return bool(self._matching(kind, match))

    def wait_for(self, kind: str, nth: int = 1, timeout: float | None = None, **match: Any) -> dict[str, Any]:
        """Read events until the `nth` event of `kind` whose fields equal `match` (counted over this
        whole process), and return it."""
        timeout = self.event_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            seen = self._matching(kind, match)
            if len(seen) >= nth:
                return seen[nth - 1]
            try:
                event = self.next_event(deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(
                    f"no {kind} {match} #{nth} within {timeout}s\n{self.describe()}"
                ) from None
            if event is None:
                self.proc.wait(timeout=self.event_timeout)
                raise AssertionError(f"migrator ended before {kind} {match} #{nth}\n{self.describe()}")

    def run_for(self, seconds: float) -> None:
        """Keep reading events for `seconds`; the process must still be running afterwards."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                if self.next_event(remaining) is None:
                    self.proc.wait(timeout=self.event_timeout)
                    raise AssertionError(f"migrator ended within {seconds:.2f}s\n{self.describe()}")
            except TimeoutError:
                return

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc.poll() is None, f"migrator ended before {sig.name}\n{self.describe()}"
        self.proc.send_signal(sig)

    def finish(self, timeout: float | None = None) -> int:
        """Read stdout to its end and return the exit code."""
        timeout = self.event_timeout if timeout is None else timeout
        try:
            while self.next_event(timeout) is not None:
                pass
            return self.proc.wait(timeout=timeout)
        except (TimeoutError, subprocess.TimeoutExpired):
            raise AssertionError(f"migrator still running after {timeout}s\n{self.describe()}") from None

    def kill_if_running(self) -> None:
        """For teardown: never leave a migrator behind, whatever failed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        code = self.finish()
        assert code == -signal.SIGKILL, f"not killed by SIGKILL\n{self.describe()}"

    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e["event"] == "result"]
        assert len(results) == 1, self.describe()
        return results[0]

    def error(self) -> dict[str, Any]:
        """The one error line a failed `--json` run prints last (docs/json.md)."""
        errors = [e for e in self.events if e["event"] == "failed"]
        assert len(errors) == 1 and self.events[-1] is errors[0], self.describe()
        return errors[0]
