"""Directions that run on threads while a protocol (cutover, rollback after cutover) or the
other direction runs on the caller's: forward CDC and reverse sync.

A thread's failure is kept and re-raised on the caller's thread (`raise_if_failed`; the thread
is engine/threads.py's), and it sets the shared stop event so the other side winds down instead
of running on alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from migrator.engine.context import RunContext
from migrator.engine.threads import BackgroundThread
from migrator.errors import TerminalError
from migrator.mapping.lookup import MappedDocuments
from migrator.phases.cdc import CdcPhase, ChangeObserver
from migrator.phases.reverse import ReverseResult, ReverseSync
from migrator.phases.touched import TouchedDocuments


class Background:
    """Runs `body` on a daemon thread; what it raises is kept for the caller."""

    def __init__(self, name: str, body: Callable[[], Any], stop: threading.Event) -> None:
        self.name = name
        self._stop = stop
        self._thread = BackgroundThread[Any](f"migrator-{name}", body, on_error=lambda _: stop.set())

    @property
    def error(self) -> BaseException | None:
        return self._thread.error

    @property
    def result(self) -> Any:
        return self._thread.result

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.alive()

    def raise_if_failed(self) -> None:
        self._thread.raise_error()
        if self._thread.started and not self._thread.alive() and not self._stop.is_set():
            raise TerminalError(f"{self.name} stopped unexpectedly")

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        self._thread.join(timeout)


class CdcFollower(Background):
    """Forward CDC; `body` runs it as `migrator run` does (phase record, checkpoints, events)."""

    def __init__(self, body: Callable[[], Any], stop: threading.Event) -> None:
        super().__init__("CDC", body, stop)

    def wait_streaming(self, ctx: RunContext, timeout: float) -> None:
        """Return once the slot is in use by this CDC (so markers emitted now will be read)."""
        monitor = ctx.source.monitor()
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.raise_if_failed()
                state = monitor.state(ctx.run.slot)
                if state is not None and state["active"]:
                    return
                if time.monotonic() > deadline:
                    raise TerminalError(f"CDC did not start streaming within {timeout:.0f} s")
                time.sleep(0.05)
        finally:
            monitor.close()


class ReverseFollower(Background):
    """Reverse sync until stopped; `drain()` catches up on the caller's thread in between."""

    def __init__(self, reverse: ReverseSync, stop: threading.Event) -> None:
        super().__init__("reverse sync", lambda: reverse.run("stopped"), stop)
        self.reverse = reverse

    def finish(self) -> ReverseResult | None:
        self.stop()
        self.reverse.close()
        self.raise_if_failed()
        return self.result if isinstance(self.result, ReverseResult) else None


def follow_cdc(ctx: RunContext, run_phase: Callable[..., Any], *observers: ChangeObserver) -> CdcFollower:
    """Forward CDC until stopped, run by `run_phase` (the runner's: phase record, errors)."""
    stop = threading.Event()
    cdc = CdcPhase(ctx, stop=stop, until="stopped")
    cdc.observers.extend(observers)
    return CdcFollower(lambda: run_phase("cdc", cdc.run, True, keep_running=True), stop)


def touched_documents(ctx: RunContext) -> tuple[TouchedDocuments, MappedDocuments]:
    """A CDC observer of the documents changes touch, and the lookups it uses (close them)."""
    identity = {name: info.identity_columns for name, info in ctx.source_info.tables.items()}
    documents = MappedDocuments(ctx.collections, ctx.source, ctx.target)
    return TouchedDocuments(ctx.collections, identity, documents, ctx.source.unchanged), documents
