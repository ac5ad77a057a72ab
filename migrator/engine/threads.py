"""A thread that hands its outcome back: `body` runs on a daemon thread; what it returns or raises
is kept for the caller's thread, which raises the error there (the library never lets a thread's
error go to threading.excepthook, which prints it: errors are handed back, never swallowed).

Used by the directions that run beside a protocol (operations/follow.py), the worker pool
(engine/workers.py) and the dual-write oracle (phases/oracle.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundThread(Generic[T]):
    """`body` on a daemon thread named `name`. `on_error(exc)` runs on that thread as soon as
    `body` raises (e.g. set a stop event so the other side winds down)."""

    def __init__(
        self, name: str, body: Callable[[], T], *, on_error: Callable[[BaseException], None] | None = None
    ) -> None:
        self.name = name
        self._body = body
        self._on_error = on_error
        self.result: T | None = None
        self.error: BaseException | None = None
        # Set once `body` has ended. Waiting on it, unlike Thread.join(timeout), survives a
        # KeyboardInterrupt on CPython < 3.13 (see engine/workers.py).
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        try:
            self.result = self._body()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread (raise_error)
            self.error = exc
            if self._on_error is not None:
                self._on_error(exc)
        finally:
            self.finished.set()

    def start(self) -> BackgroundThread[T]:
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """True once `body` has ended (returned or raised), False after `timeout`."""
        return self.finished.wait(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self.started:
            self._thread.join(timeout)

    def raise_error(self) -> None:
        """Raise what `body` raised, if it did, on the calling thread."""
        if self.error is not None:
            raise self.error
