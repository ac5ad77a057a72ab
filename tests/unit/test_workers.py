"""engine/workers.py: the worker pool of snapshot and verify."""

from __future__ import annotations

import _thread
import queue
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from migrator.engine.workers import Workers


def test_every_worker_runs_until_the_work_is_done() -> None:
    pending: queue.Queue[int] = queue.Queue()
    for i in range(100):
        pending.put(i)
    done: list[int] = []
    names: set[str] = set()
    lock = threading.Lock()

    def work() -> None:
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                return
            time.sleep(0.001)
            with lock:
                done.append(item)
                names.add(threading.current_thread().name)

    Workers("test-pool", 3, threading.Event()).run(work)
    assert sorted(done) == list(range(100))
    assert names <= {"test-pool-0", "test-pool-1", "test-pool-2"}


def test_a_workers_error_reaches_the_caller_and_the_others_stop() -> None:
    stop = threading.Event()
    pool = Workers("test-pool", 3, stop)
    boom = RuntimeError("chunk 7 failed")
    ended: list[str] = []
    lock = threading.Lock()
    failing = threading.Lock()

    def work() -> None:
        name = threading.current_thread().name
        if failing.acquire(blocking=False):
            raise boom
        while not pool.failed:  # the others take work until a worker has failed
            time.sleep(0.005)
        with lock:
            ended.append(name)

    with pytest.raises(RuntimeError) as raised:
        pool.run(work)
    assert raised.value is boom
    assert len(ended) == 2  # the two others ended before the error was raised
    assert not stop.is_set()  # an error is no stop request


def test_the_first_error_is_raised() -> None:
    first = ValueError("first")
    gate = threading.Event()
    order = threading.Lock()

    def work() -> None:
        if order.acquire(blocking=False):
            raise first
        gate.wait(5)
        raise ValueError("later")

    threading.Timer(0.1, gate.set).start()
    with pytest.raises(ValueError) as raised:
        Workers("test-pool", 2, threading.Event()).run(work)
    assert raised.value is first


def _interrupt_soon() -> None:
    """Ctrl-C as the terminal sends it: SIGINT handled by Python's default handler, which raises
    KeyboardInterrupt in the main thread."""
    threading.Timer(0.3, _thread.interrupt_main).start()


@pytest.fixture(autouse=True)
def _default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler for each test: a test before this one in the same process (a
    CLI command run in-process) may have left its handler installed, which sets a stop event
    instead of raising KeyboardInterrupt, and the interrupt below would never arrive."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


needs_main_thread = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="KeyboardInterrupt is delivered to the main thread only",
)


@needs_main_thread
def test_ctrl_c_during_the_wait_stops_the_workers_and_is_raised_again() -> None:
    stop = threading.Event()
    holding = threading.Barrier(3)  # both workers hold an item when Ctrl-C comes
    finished: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        holding.wait(5)
        deadline = time.monotonic() + 60  # never hang the suite: the asserts below then fail
        while not stop.is_set() and time.monotonic() < deadline:  # the pool's stop ends the loop
            time.sleep(0.01)
        time.sleep(0.2)  # the item in flight is completed (and checkpointed) after the stop
        with lock:
            finished.append(threading.current_thread().name)

    def interrupt_once_holding() -> None:
        holding.wait(5)
        time.sleep(0.1)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_holding, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        Workers("test-pool", 2, stop).run(work)
    assert stop.is_set()
    assert sorted(finished) == ["test-pool-0", "test-pool-1"]  # no worker left running


@needs_main_thread
def test_ctrl_c_with_a_failed_worker_raises_the_workers_error() -> None:
    stop = threading.Event()
    boom = RuntimeError("failed while stopping")

    def work() -> None:
        stop.wait(5)
        raise boom

    _interrupt_soon()
    with pytest.raises(RuntimeError) as raised:
        Workers("test-pool", 2, stop).run(work)
    assert raised.value is boom
    assert stop.is_set()
