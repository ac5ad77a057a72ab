"""engine/retry.py: the retry shapes every phase uses (tenacity's own Retrying underneath)."""

from __future__ import annotations

import threading
import time

import pytest

from migrator.engine.retry import RetryStopped, bounded_attempts, retrying_streak
from migrator.errors import BatchTooLarge, TerminalError, TransientError

# -- retrying_streak: until stopped, bounded by failures in a row without progress -----------------


class _Loop:
    """An attempt function that fails as scripted: an error to raise, or a position to reach."""

    def __init__(self, script: list[BaseException | int], result: str = "done") -> None:
        self.script = list(script)
        self.result = result
        self.position = 0
        self.previous: list[TransientError | None] = []
        self.announced: list[tuple[str, float, int]] = []

    def attempt(self, previous: TransientError | None) -> str:
        self.previous.append(previous)
        while self.script:
            step = self.script.pop(0)
            if isinstance(step, int):
                self.position = step  # progress made during this attempt
                continue
            raise step
        return self.result

    def announce(self, exc: TransientError, delay: float, failures: int) -> None:
        self.announced.append((exc.message, delay, failures))

    def run(self, limit: int = 3, stop: threading.Event | None = None, **kwargs: object) -> str:
        return retrying_streak(
            self.attempt,
            stop=stop or threading.Event(),
            limit=limit,
            progress=lambda: self.position,
            announce=self.announce,
            multiplier=0.001,
            **kwargs,  # type: ignore[arg-type]
        )


def test_streak_retries_transient_errors_and_passes_the_previous_one() -> None:
    first, second = TransientError("lost"), TransientError("lost again")
    loop = _Loop([first, second])
    assert loop.run() == "done"
    assert loop.previous == [None, first, second]
    # waits double with the streak: multiplier * 2^(n-1)
    assert loop.announced == [("lost", 0.001, 1), ("lost again", 0.002, 2)]


def test_streak_gives_up_after_limit_failures_without_progress() -> None:
    errors = [TransientError(f"e{i}") for i in range(5)]
    loop = _Loop(list(errors))
    with pytest.raises(TransientError) as raised:
        loop.run(limit=3)
    assert raised.value is errors[3]  # the fourth failure in a row is past the limit of 3
    assert [a[2] for a in loop.announced] == [1, 2, 3]


def test_progress_starts_a_new_streak() -> None:
    # every failure comes after the position moved: the streak never passes 1
    script: list[BaseException | int] = []
    for i in range(1, 8):
        script += [i, TransientError(f"e{i}")]
    loop = _Loop(script)
    assert loop.run(limit=2) == "done"
    assert [a[2] for a in loop.announced] == [1] * 7


def test_a_fresh_error_is_retried_at_once_and_starts_a_new_streak() -> None:
    loop = _Loop([TransientError("a"), TransientError("b"), BatchTooLarge("big"), TransientError("c")])
    assert loop.run(limit=2, fresh=(BatchTooLarge,)) == "done"
    assert loop.announced == [("a", 0.001, 1), ("b", 0.002, 2), ("big", 0.0, 0), ("c", 0.001, 1)]


def test_the_wait_is_capped() -> None:
    loop = _Loop([TransientError(str(i)) for i in range(6)])
    loop.run(limit=10, longest=0.004)
    assert [a[1] for a in loop.announced] == [0.001, 0.002, 0.004, 0.004, 0.004, 0.004]


def test_other_errors_are_raised_at_once() -> None:
    terminal = TerminalError("bad plan")
    loop = _Loop([TransientError("lost"), terminal, TransientError("never reached")])
    with pytest.raises(TerminalError) as raised:
        loop.run()
    assert raised.value is terminal
    assert len(loop.previous) == 2

    loop = _Loop([ValueError("a bug")])
    with pytest.raises(ValueError):
        loop.run()
    assert loop.announced == []


def test_the_stop_event_ends_the_wait_with_retry_stopped() -> None:
    stop = threading.Event()
    loop = _Loop([TransientError("lost")] * 2)
    loop.announce = lambda exc, delay, failures: stop.set()  # type: ignore[method-assign]
    with pytest.raises(RetryStopped):
        loop.run(stop=stop)
    assert len(loop.previous) == 1  # no attempt after the stop


def test_a_stop_set_during_a_long_wait_ends_it_at_once() -> None:
    stop = threading.Event()
    loop = _Loop([TransientError("lost")] * 2)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(RetryStopped):
        retrying_streak(
            loop.attempt, stop=stop, limit=3, progress=lambda: 0, announce=loop.announce, multiplier=30
        )
    assert time.monotonic() - started < 5


def test_ended_stops_like_the_stop_event() -> None:
    loop = _Loop([TransientError("lost")] * 2)
    with pytest.raises(RetryStopped):
        loop.run(ended=lambda: True)
    assert len(loop.previous) == 1


# -- bounded_attempts: a fixed number of attempts --------------------------------------------


def test_bounded_attempts_retries_then_raises_the_last_error() -> None:
    announced: list[TransientError] = []
    calls: list[int] = []
    errors = [TransientError(f"e{i}") for i in range(3)]

    def call() -> None:
        calls.append(1)
        raise errors[len(calls) - 1]

    with pytest.raises(TransientError) as raised:
        bounded_attempts(3, announce=announced.append, multiplier=0.001)(call)
    assert raised.value is errors[2]
    assert announced == errors[:2]


def test_bounded_attempts_iterated_and_succeeding() -> None:
    attempts = 0
    for attempt in bounded_attempts(3, announce=lambda exc: None, multiplier=0.001):
        with attempt:
            attempts += 1
            if attempts < 3:
                raise TransientError("lost")
    assert attempts == 3


def test_bounded_attempts_raise_other_errors_at_once() -> None:
    attempts = 0
    with pytest.raises(TerminalError):
        for attempt in bounded_attempts(3, announce=lambda exc: None, multiplier=0.001):
            with attempt:
                attempts += 1
                raise TerminalError("no")
    assert attempts == 1

    with pytest.raises(KeyboardInterrupt):
        for attempt in bounded_attempts(3, announce=lambda exc: None, multiplier=0.001):
            with attempt:
                raise KeyboardInterrupt
