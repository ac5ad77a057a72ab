"""Running `migrator run` in a test: to a stop point (`run`), or following changes on a thread
(`follow`, a `Follower`), bounded so that a run that does not return fails the test instead of
hanging it; and the waits and source writes that go with it.

The `stop_followers` fixture is registered for every test through `pytest_plugins` in
tests/conftest.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrator import api
from migrator.engine.events import CdcProgress, Collector, Notice
from migrator.engine.threads import BackgroundThread
from migrator.operations.run import RunOutcome
from tests.support.docs import Migration

RUN_TIMEOUT = 90.0

_FOLLOWERS: list[Follower] = []


@pytest.fixture
def stop_followers(mig: Migration) -> Iterator[None]:
    """Stop every run a test left following, before its database is dropped. A module that
    follows changes uses it for all its tests: `pytestmark = pytest.mark.usefixtures("stop_followers")`."""
    yield
    while _FOLLOWERS:
        follower = _FOLLOWERS.pop()
        follower.stop.set()
        follower._thread.join(30)


class ApiRun:
    """`api.run(plan, until)` on a thread, bounded: a run that does not return in time fails the
    test instead of hanging it. `stop` is the event the run stops on; `finish()` sets it."""

    def __init__(
        self,
        name: str,
        plan: Path,
        until: str,
        state: Path,
        env: dict[str, str],
        stop: threading.Event | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> None:
        self.events = Collector()
        self.stop = stop or threading.Event()
        self.timeout = timeout
        mode: Any = until  # api.run's Literal, from the caller's text
        self._thread = BackgroundThread(
            name,
            lambda: api.run(plan, until=mode, state=state, sinks=[self.events], env=env, stop=self.stop),
        ).start()

    @property
    def outcome(self) -> RunOutcome | None:
        return self._thread.result

    @property
    def error(self) -> BaseException | None:
        return self._thread.error

    @property
    def alive(self) -> bool:
        return self._thread.alive()

    def join(self, timeout: float | None = None) -> RunOutcome:
        timeout = self.timeout if timeout is None else timeout
        self._thread.join(timeout)
        if self._thread.alive():
            self.stop.set()
            self._thread.join(30)
            pytest.fail(f"the run did not return within {timeout:.0f} s")
        self._thread.raise_error()
        assert self.outcome is not None
        return self.outcome

    def finish(self, timeout: float | None = None) -> RunOutcome:
        """Set the stop event and wait for the run to checkpoint and return."""
        self.stop.set()
        return self.join(timeout)


class Follower(ApiRun):
    """A run of `mig`'s plan, stopped by `stop_followers` if the test leaves it following."""

    def __init__(self, mig: Migration, plan: Path, until: str, stop: threading.Event | None = None) -> None:
        super().__init__(f"migrator-{until}", plan, until, mig.state_path, mig.env, stop)
        _FOLLOWERS.append(self)

    def notices(self) -> list[str]:
        return [n.message for n in self.events.of(Notice)]


def run(mig: Migration, plan: Path, until: str = "caught-up", timeout: float = RUN_TIMEOUT) -> Follower:
    """Run to completion (snapshot, or caught-up); returns the finished Follower (events, outcome)."""
    follower = Follower(mig, plan, until)
    follower.join(timeout)
    return follower


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def slot_active(mig: Migration, plan_name: str) -> bool:
    rows = mig.rows("SELECT active FROM pg_replication_slots WHERE slot_name = %s", [mig.slot(plan_name)])
    return bool(rows and rows[0][0])


def follow(mig: Migration, plan: Path, plan_name: str, stop: threading.Event | None = None) -> Follower:
    """Start following changes (until stopped) and return once the replication stream is open."""
    follower = Follower(mig, plan, "stopped", stop)
    wait_for(lambda: slot_active(mig, plan_name) or not follower.alive, "the replication stream", 60)
    if not follower.alive:
        follower.join()
        pytest.fail("the run ended before it started streaming")
    return follower


def streaming(run: ApiRun, timeout: float = RUN_TIMEOUT) -> ApiRun:
    """`run` once it reports CDC progress (its stream is open), whatever the source: a verify
    started before may find nothing following yet on a busy machine, which is what verify must
    report, not what a test of a difference means to see."""
    wait_for(lambda: bool(run.events.of(CdcProgress)) or not run.alive, "CDC to report progress", timeout)
    if not run.alive:
        run.join()
        pytest.fail("the run ended before CDC reported progress")
    return run


def transactions(mig: Migration, *txns: Sequence[str] | str) -> None:
    """Run each item as one transaction (a string: one statement)."""
    source_transactions(mig.pg_url, *txns)


def source_transactions(pg_url: str, *txns: Sequence[str] | str) -> None:
    """Run each item as one transaction on the database at `pg_url` (a string: one statement)."""
    with psycopg.connect(pg_url) as conn:
        for txn in txns:
            statements = [txn] if isinstance(txn, str) else txn
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
