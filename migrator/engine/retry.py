"""Retrying an operation that may fail transiently (a lost connection, a statement timeout, a
server that restarts), with tenacity: exponential waits, a time budget, a notice per retry.

Only a TransientError is retried; once the budget is spent the last error is raised as it is,
naming what failed, for the caller to report (verify reports it as "could not complete", never
as a difference). A stop event ends the waiting early (the last error is raised).
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
