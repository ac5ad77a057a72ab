"""How a throwaway server's start-up is awaited (scripts/lib/devservices.py `_await_ready`, used by
the PostgreSQL, MongoDB-compatible and MariaDB servers): real child processes stand in for the
servers, so that an exit during start-up and a server that never gets ready are met for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import devservices


def _spawn(code: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)


def test_a_server_that_exits_during_start_up_is_reported_with_its_code_and_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = _spawn("import sys; print('FATAL: bad setting'); sys.exit(3)", log)
    with pytest.raises(devservices.ServiceError) as failed:
        devservices._await_ready(proc, "toyd", 5432, log, 30.0, lambda: False)
    assert "toyd exited with code 3 during startup (port 5432)" in str(failed.value)
    assert "FATAL: bad setting" in str(failed.value)


def test_a_server_never_ready_is_killed_and_reported_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = _spawn("import time; print('still starting', flush=True); time.sleep(120)", log)
    with pytest.raises(devservices.ServiceError) as failed:
        devservices._await_ready(proc, "toyd", 1, log, 0.5, lambda: False, waiting_for="accept connections")
    assert "toyd did not accept connections within 0s" in str(failed.value) or "within 1s" in str(
        failed.value
    )
    assert proc.wait(timeout=10) is not None  # killed, not left running


def test_a_ready_server_returns_at_once(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc = _spawn("import time; time.sleep(120)", log)
    try:
        devservices._await_ready(proc, "toyd", 1, log, 60.0, lambda: True)
        assert proc.poll() is None  # left running
    finally:
        proc.kill()
        proc.wait(timeout=10)
