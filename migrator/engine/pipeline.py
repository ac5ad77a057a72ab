"""A one-slot write-behind: the caller builds the next batch while the previous one is written.

Reading and encoding use the CPU; writing mostly waits on the target. Overlapping the two
in one copy worker is what brings the copy close to the target's own insert limit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

B = TypeVar("B")
R = TypeVar("R")

_DONE = object()


class WriteBehind(Generic[B, R]):
    def __init__(self, write: Callable[[B], R], on_result: Callable[[R], None], depth: int = 1) -> None:
        self._write = write
        self._on_result = on_result
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="migrator-write-behind", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain without writing: the caller will see the first error
            try:
                self._on_result(self._write(item))  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def submit(self, batch: B) -> None:
        if self._error is not None:
            self.close()
            raise self._error
        self._queue.put(batch)

    def close(self) -> None:
        """Wait until every submitted batch is written; re-raise the first write error."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        if self._error is not None:
            raise self._error
