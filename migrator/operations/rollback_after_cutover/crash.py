"""Crash points for the kill -9 tests of rollback after cutover (see the package's doc)."""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "MIGRATOR_TEST_KILL_AT"  # read by kill_point only


def kill_point(point: str) -> None:
    """A crash exactly here, between an action and its checkpoint, for the kill -9 tests
    (tests/integration/test_rollback_kill.py): the process kills itself when MIGRATOR_TEST_KILL_AT
    names `point`. Nothing else reads that variable."""
    if os.environ.get(KILL_AT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
