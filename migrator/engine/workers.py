"""A pool of worker threads that share the caller's queue of work (snapshot chunks, verify
ranges), and the one way the caller's thread waits for them.

The wait survives Ctrl-C: a KeyboardInterrupt during it sets the run's stop event, waits until
every worker has finished the item it holds (each checks `stop` between items, so a chunk in
flight is completed and checkpointed, not left half-written and 'running'), and is raised again.
A worker's error reaches the caller: once every worker has ended, the first error raised is
raised on the caller's thread (and `failed` tells the other workers to stop taking work).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from migrator.engine.threads import BackgroundThread

# How often the caller's thread wakes while it waits: the interval at which Ctrl-C is seen.
_POLL_S = 0.2


class Workers:
    """`count` threads named `name-0`, `name-1`, ...; `run(work)` runs `work` on each."""

    def __init__(self, name: str, count: int, stop: threading.Event) -> None:
        self.name = name
        self.count = max(1, count)
        self._stop = stop
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []

    @property
    def failed(self) -> bool:
        """A worker has raised: the others should stop at their next item."""
        return bool(self._errors)

    def run(self, work: Callable[[], None]) -> None:
        """Run `work` on every worker and return once all have ended; raise the first error a
        worker raised. A KeyboardInterrupt while waiting: see the module's docstring."""

        def failed(exc: BaseException) -> None:  # on the worker's thread: kept in order
            with self._lock:
                self._errors.append(exc)

        # Wait on events, not Thread.join: on CPython < 3.13 a KeyboardInterrupt raised inside
        # join(timeout) marks the still-running thread as stopped (the bpo-45274 handler releases
        # that thread's own lock), so a later join() returns at once and the process exits with
        # the work in flight half-done.
        threads = [BackgroundThread(f"{self.name}-{i}", work, on_error=failed) for i in range(self.count)]
        for thread in threads:
            thread.start()
        interrupted: KeyboardInterrupt | None = None
        try:
            for thread in threads:
                while not thread.wait(timeout=_POLL_S):
                    pass
        except KeyboardInterrupt as exc:
            # Let the workers finish the items they hold, then stop.
            interrupted = exc
            self._stop.set()
            for thread in threads:
                thread.wait()
        if self._errors:
            raise self._errors[0]
        if interrupted is not None:
            raise interrupted
