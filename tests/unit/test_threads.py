"""engine/threads.py: a thread that hands its outcome back to the caller's thread."""

from __future__ import annotations

import threading

import pytest

from migrator.engine.threads import BackgroundThread


def test_the_result_is_kept() -> None:
    thread = BackgroundThread("test-thread", lambda: 42).start()
    assert thread.wait(5)
    thread.join()
    assert thread.result == 42 and thread.error is None
    thread.raise_error()  # nothing to raise
    assert not thread.alive()


def test_the_error_is_handed_back_and_on_error_runs_on_the_thread() -> None:
    boom = RuntimeError("boom")
    seen: list[tuple[BaseException, str]] = []

    def body() -> None:
        raise boom

    thread = BackgroundThread(
        "test-thread", body, on_error=lambda exc: seen.append((exc, threading.current_thread().name))
    )
    thread.start()
    assert thread.wait(5)
    assert thread.error is boom and thread.result is None
    assert seen == [(boom, "test-thread")]
    with pytest.raises(RuntimeError) as raised:
        thread.raise_error()
    assert raised.value is boom


def test_base_exceptions_are_handed_back_too() -> None:
    def body() -> None:
        raise KeyboardInterrupt

    thread = BackgroundThread("test-thread", body).start()
    thread.wait(5)
    with pytest.raises(KeyboardInterrupt):
        thread.raise_error()


def test_not_started() -> None:
    thread = BackgroundThread("test-thread", lambda: None)
    assert not thread.started and not thread.alive()
    assert not thread.wait(0.01)
    thread.join()  # returns at once: nothing to join


def test_wait_times_out_while_the_body_runs() -> None:
    release = threading.Event()
    thread = BackgroundThread("test-thread", lambda: release.wait(5)).start()
    assert thread.started and thread.alive()
    assert not thread.wait(0.05)
    release.set()
    assert thread.wait(5)
    thread.join(5)
    assert thread.result is True
