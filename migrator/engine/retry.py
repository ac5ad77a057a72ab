"""Retrying an operation that may fail transiently (a lost connection, a statement timeout, a
server that restarts), with tenacity: exponential waits, a time budget, a notice per retry.

Only a TransientError is retried; once the budget is spent the last error is raised as it is,
naming what failed, for the caller to report (verify reports it as "could not complete", never
as a difference). A stop event ends the waiting early (the last error is raised).

`bounded_attempts` is tenacity's Retrying for a piece of work retried a few times by its caller
(a snapshot chunk): a fixed number of attempts with doubling waits.

`retrying_streak` is the third shape, for a loop that runs until stopped (CDC, reverse sync): it is
bounded by failures in a row without progress, not by time, and the run's stop event (SIGINT,
SIGTERM) ends a wait as `RetryStopped`, for the loop to end as stopped rather than failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)
from tenacity.stop import stop_base

from migrator.engine.events import EventBus, Notice
from migrator.errors import TransientError

T = TypeVar("T")

# Generous: a loaded machine or a restarting server may need a minute or two to answer again.
DEFAULT_BUDGET_S = 180.0


def retrying(
    call: Callable[[], T],
    *,
    what: str,
    events: EventBus | None = None,
    stop: threading.Event | None = None,
    budget: float = DEFAULT_BUDGET_S,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """`call()`, retried on TransientError for up to `budget` seconds (waits 0.5 s doubling to
    10 s). `before_retry` runs before each new attempt (e.g. drop a broken connection)."""

    def before_sleep(state: RetryCallState) -> None:
        if before_retry is not None:
            before_retry()
        if events is not None and state.outcome is not None:
            error = state.outcome.exception()
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            events.emit(
                Notice(
                    "warn",
                    f"{what}: {getattr(error, 'message', error)}; retrying in {delay:.1f} s "
                    f"(attempt {state.attempt_number}, for up to {budget:g} s)",
                )
            )

    ends: stop_base = stop_after_delay(budget)
    if stop is not None:
        ends = ends | stop_when_event_set(stop)  # the last error is raised once stop is set

    def sleep(seconds: float) -> None:
        if stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    retry = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=ends,
        wait=wait_exponential(multiplier=0.5, max=10),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retry(call)


def bounded_attempts(
    count: int, *, announce: Callable[[TransientError], None], multiplier: float = 0.5
) -> Retrying:
    """At most `count` attempts; a TransientError is retried after `multiplier` * 2^(n-1) s
    (`announce(error)` first), anything else is raised at once, as is the last error. Iterate it
    (`for attempt in bounded_attempts(...): with attempt: ...`) when the caller does work between
    attempts that must not itself be retried."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(error, TransientError), error  # only TransientError is retried
        announce(error)

    return Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(count),
        wait=wait_exponential(multiplier=multiplier),
        before_sleep=before_sleep,
        reraise=True,
    )


class RetryStopped(Exception):
    """The run's stop event was set while waiting to retry: no further attempt was made. Not an
    error: the loop that retried ends as stopped, its last checkpoint standing."""


class _Streak:
    """Transient failures in a row without progress. Progress (the loop's position moved during
    the failed attempt) starts a new streak at 1; a `fresh` error starts one at 0 and is retried
    at once."""

    def __init__(self, progress: Callable[[], object], fresh: tuple[type[TransientError], ...]) -> None:
        self.progress = progress
        self.fresh = fresh
        self.failures = 0
        self.last: TransientError | None = None
        self._mark: object = None

    def before(self, state: RetryCallState) -> None:
        self._mark = self.progress()

    def after(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(error, TransientError), error  # only TransientError is retried
        self.last = error
        if isinstance(error, self.fresh):
            self.failures = 0
        else:
            self.failures = 1 if self.progress() != self._mark else self.failures + 1


def retrying_streak(
    attempt: Callable[[TransientError | None], T],
    *,
    stop: threading.Event,
    limit: int,
    progress: Callable[[], object],
    announce: Callable[[TransientError, float, int], None],
    fresh: tuple[type[TransientError], ...] = (),
    ended: Callable[[], bool] | None = None,
    multiplier: float = 0.5,
    longest: float = 30.0,
) -> T:
    """`attempt(previous)` until it returns, retried on TransientError (`previous` is the error
    that ended the last attempt, None the first time). Any other error is raised at once.

    Bounded by failures in a row: after `limit` failures without `progress()` changing during an
    attempt, the last error is raised. The wait before a retry grows with the streak
    (`multiplier` * 2^(n-1) s, at most `longest`); a `fresh` error (e.g. a batch the target
    aborted, retried smaller) is retried at once and starts a new streak. `announce(error,
    wait, failures)` runs before each wait. The wait ends early when `stop` is set or `ended()`
    turns true (a deadline): then RetryStopped is raised instead of another attempt."""
    streak = _Streak(progress, fresh)

    def wait(state: RetryCallState) -> float:
        if streak.failures == 0:
            return 0.0
        return float(min(longest, multiplier * 2 ** (streak.failures - 1)))

    def before_sleep(state: RetryCallState) -> None:
        assert streak.last is not None
        announce(streak.last, state.upcoming_sleep, streak.failures)

    def sleep(seconds: float) -> None:
        if stop.wait(seconds) or (ended is not None and ended()):
            raise RetryStopped

    retry = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=lambda state: streak.failures > limit,
        wait=wait,
        before=streak.before,
        after=streak.after,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retry(lambda: attempt(streak.last))
