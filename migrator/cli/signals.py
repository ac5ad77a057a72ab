"""SIGINT / SIGTERM for the commands that follow changes: finish the work in flight, then stop."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from migrator.cli.observe import Observed


def stop_on_signals(observed: Observed | None = None, *, exit_at_once: bool = True) -> threading.Event:
    """SIGINT/SIGTERM set the event (finish the work in flight, checkpoint, return); a second
    signal stops the process at once (`exit_at_once`), or raises KeyboardInterrupt so that the
    command's own clean-up runs (cutover: a fence must be lifted). Each is announced on stderr
    (as a log line under `--log-format`, where stderr holds log lines only)."""
    stop = threading.Event()

    def announce(kind: str, message: str) -> None:
        with contextlib.suppress(Exception):
            if observed is None or not observed.announce(kind, message):
                sys.stderr.write(message + "\n")
                sys.stderr.flush()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set() and not exit_at_once:
            raise KeyboardInterrupt
        if stop.is_set():
            # Exit now, without waiting for the chunk or batch in flight (a KeyboardInterrupt
            # waited for them: a chunk copy, or a target transaction retried for up to two
            # minutes). As safe as kill -9, which every step survives: checkpoints commit with
            # their data, so the next run redoes what was in flight.
            announce(
                "run.interrupted",
                "stopped at once: running the command again resumes from the last checkpoint",
            )
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            os._exit(130)
        stop.set()
        announce("run.stopping", "stopping: finishing the work in flight (a second signal stops at once)")

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        # The command has returned: the handlers it installed go with it (a process that runs
        # commands in-process, as a test with CliRunner, keeps Ctrl-C as it was).
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(restore)
    return stop
