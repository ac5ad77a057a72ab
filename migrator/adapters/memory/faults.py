"""Injected failures for the memory adapters (dlt's dummy destination): per method name, fail
terminally, fail transiently N times, call a hook instead of being slow, or crash after N calls.

A `Crash` is a BaseException: it stands for kill -9. Nothing after it runs (no error handler of
the library catches it), and what was committed before it stays (docs/architecture.md,
"Invariants": checkpoint after data).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from migrator.errors import TerminalError, TransientError


class Crash(BaseException):
    """The process died here (kill -9): the test catches it and starts a new "process"."""


@dataclass
class _Rule:
    terminal: str | None = None
    transient: int = 0
    crash_after: int | None = None
    hook: Callable[[], None] | None = None
    calls: int = 0


@dataclass
class Faults:
    """Failures armed per method name (e.g. "write", "apply", "fetch_range"); each adapter
    method calls `check(name)` before it changes anything."""

    _rules: dict[str, _Rule] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _rule(self, method: str) -> _Rule:
        return self._rules.setdefault(method, _Rule())

    def fail(self, method: str, message: str = "injected failure") -> None:
        """Every call of `method` raises a TerminalError."""
        self._rule(method).terminal = message

    def fail_transiently(self, method: str, times: int = 1) -> None:
        """The next `times` calls of `method` raise a TransientError."""
        self._rule(method).transient = times

    def slow(self, method: str, hook: Callable[[], None]) -> None:
        """Call `hook` at each call of `method` (where a slow server would take its time)."""
        self._rule(method).hook = hook

    def crash_after(self, method: str, calls: int) -> None:
        """Let `calls` calls of `method` through; the next raises Crash before doing anything."""
        rule = self._rule(method)
        rule.crash_after, rule.calls = calls, 0

    def clear(self, method: str | None = None) -> None:
        """Disarm `method` (or everything): the next "process" runs clean."""
        with self._lock:
            if method is None:
                self._rules.clear()
            else:
                self._rules.pop(method, None)

    def transient_left(self, method: str) -> int:
        """How many of `method`'s armed transient failures have not been raised yet."""
        rule = self._rules.get(method)
        return 0 if rule is None else rule.transient

    def check(self, method: str) -> None:
        with self._lock:
            rule = self._rules.get(method)
            if rule is None:
                return
            hook = rule.hook
            if rule.crash_after is not None:
                if rule.calls >= rule.crash_after:
                    raise Crash(f"crash injected at {method} after {rule.crash_after} call(s)")
                rule.calls += 1
            if rule.terminal is not None:
                raise TerminalError(f"{method}: {rule.terminal}")
            if rule.transient > 0:
                rule.transient -= 1
                raise TransientError(f"{method}: injected transient failure")
        if hook is not None:
            hook()
