"""Lag tells the truth (docs/architecture.md invariant 10; issue 17 defect 9), against a
deliberately delayed apply on real servers.

The source runs with track_commit_timestamp, so every row's commit time is read from PostgreSQL
itself (pg_xact_commit_timestamp), independently of what CDC decodes. The apply is delayed by
wrapping the applier (test-only): once the batch holding a chosen row is durable, the apply
thread waits until the test has taken its readings, so the lag is read while the target holds
that row and nothing newer. The lag must then be at least the time since that row's commit, by
every channel (progress events, the Prometheus gauge, `migrator status`), and back to 0 once CDC
has caught up. Only lower bounds on the lag are asserted, never wall-clock speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from migrator import api
from migrator.adapters.base import WriteOp
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.engine.events import CdcProgress, Event
from migrator.engine.metrics import RunMetrics
from tests.support.docs import Migration
from tests.support.servers import create_pg_database, unique_name, with_database

BACKLOG_S = 6.0  # how old the replayed change is when CDC starts
HELD_S = 4.0  # how long the apply is held after the row is durable, at least
TIMEOUT = 180.0


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Progress:
    """CdcProgress events with the wall time they were seen."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, CdcProgress]] = []

    def emit(self, event: Event) -> None:
        if isinstance(event, CdcProgress):
            self.seen.append((time.time(), event))

    def since(self, at: float) -> list[tuple[float, CdcProgress]]:
        return [(w, e) for w, e in list(self.seen) if w >= at]


class HeldApply:
    """Wraps ChangeApplier.apply: after the batch that writes document `doc_id` of `collection`
    is durable, the apply thread waits until `release` is set (the deliberate delay)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, collection: str, doc_id: int) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        original = ChangeApplier.apply

        def apply(applier: ChangeApplier, ops: Sequence[WriteOp], *args: Any, **kwargs: Any) -> None:
            original(applier, ops, *args, **kwargs)
            if not self.release.is_set() and any(
                op.collection == collection and op.filter.get("_id") == doc_id for op in ops
            ):
                self.held.set()
                self.release.wait(TIMEOUT)

        monkeypatch.setattr(ChangeApplier, "apply", apply)


@pytest.fixture
def source_url(pg_cluster_factory: Callable[..., Any]) -> str:
    # Commit timestamps kept by PostgreSQL: what the lag is checked against, read independently.
    server = pg_cluster_factory(settings={"track_commit_timestamp": "on"})
    name = unique_name("lag")
    create_pg_database(server.url, name)
    return with_database(server.url, name)


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (
        "CREATE TABLE notes (id integer PRIMARY KEY, body text)",
        "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 20) g",
    )


def _commit_time(mig: Migration, row_id: int) -> float:
    ((at,),) = mig.rows(
        "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 FROM notes WHERE id = %s", [row_id]
    )
    return float(at)


def _doc(mig: Migration, doc_id: int) -> dict[str, Any] | None:
    return mig.client[mig.database]["notes"].find_one({"_id": doc_id})


def test_lag_is_the_age_of_the_newest_applied_commit_while_a_backlog_replays_and_0_once_caught_up(
    mig: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = mig.plan(
        "- {name: notes, from: notes, key: id}",
        name="lagplan",
        phases="cdc: {max_lag: 1s, heartbeat_interval: 1s}",
    )
    mig.run(plan)  # the snapshot; no CDC follows yet
    mig.sql("INSERT INTO notes VALUES (100, 'backlog')")
    committed = _commit_time(mig, 100)
    ((source_now,),) = mig.rows("SELECT extract(epoch FROM clock_timestamp())::float8")
    time.sleep(max(0.0, BACKLOG_S - (float(source_now) - committed)))  # the change waits, unapplied

    held = HeldApply(monkeypatch, "notes", 100)
    progress, metrics = Progress(), RunMetrics()
    stop = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            api.run(
                plan, until="stopped", state=mig.state_path, sinks=[progress, metrics], env=mig.env, stop=stop
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        assert held.held.wait(TIMEOUT), f"CDC never applied the backlog ({errors})"
        # The target holds row 100 (durable with its checkpoint) and nothing newer, while the
        # application goes on writing.
        assert _doc(mig, 100) is not None
        mig.sql("INSERT INTO notes VALUES (150, 'meanwhile')")
        held_at = time.time()
        _wait_for(lambda: len(progress.since(held_at)) >= 1, "a progress event while the apply is held")
        while time.time() - held_at < HELD_S:
            time.sleep(0.2)
        reading_at = time.time()
        status = api.status(plan, state=mig.state_path, env=mig.env)
        gauge = metrics.lag_seconds._value.get()
        caught_up_gauge = metrics.caught_up._value.get()
        events = progress.since(held_at)
    finally:
        held.release.set()

    try:
        # Every channel reads at least the age of the newest applied commit (PostgreSQL's own
        # commit time of row 100) at the moment it was read: the backlog is BACKLOG_S old.
        cdc = status.cdc
        assert cdc is not None and cdc.lag_seconds is not None
        assert cdc.caught_up is False
        assert cdc.lag_seconds >= reading_at - committed - 1.0  # status rounds to ms; clocks agree here
        assert cdc.lag_seconds >= BACKLOG_S
        assert cdc.applied_commit_time is not None
        for seen_at, event in events:
            assert event.lag_seconds is not None and event.caught_up is False
            assert event.lag_seconds >= seen_at - committed - 1.0, (seen_at - committed, event)
            assert event.lag_seconds >= BACKLOG_S
        assert gauge >= BACKLOG_S and caught_up_gauge == 0

        # Once caught up: 0 by every channel, and the caught-up gauge says so.
        _wait_for(
            lambda: (
                bool(progress.seen)
                and progress.seen[-1][1].caught_up
                and progress.seen[-1][1].lag_seconds == 0
            ),
            "a progress event that says caught up",
        )
        _wait_for(
            lambda: metrics.caught_up._value.get() == 1 and metrics.lag_seconds._value.get() == 0, "gauges"
        )

        # A live change under a held apply: the lag grows from that commit, and falls back after.
        held2 = HeldApply(monkeypatch, "notes", 200)
        mig.sql("INSERT INTO notes VALUES (200, 'live')")
        committed2 = _commit_time(mig, 200)
        assert held2.held.wait(TIMEOUT)
        mig.sql("INSERT INTO notes VALUES (250, 'meanwhile')")
        while time.time() - committed2 < HELD_S + 1:
            time.sleep(0.2)
        status2 = api.status(plan, state=mig.state_path, env=mig.env)
        assert status2.cdc is not None and status2.cdc.lag_seconds is not None
        assert status2.cdc.lag_seconds >= HELD_S
        held2.release.set()
        _wait_for(
            lambda: progress.seen[-1][1].caught_up and progress.seen[-1][1].lag_seconds == 0,
            "caught up again",
        )

        def status_low() -> bool:
            cdc = api.status(plan, state=mig.state_path, env=mig.env).cdc
            return cdc is not None and cdc.lag_seconds is not None and cdc.lag_seconds < HELD_S

        _wait_for(status_low, "status to show the lag fallen back")
        for row_id in (100, 150, 200, 250):
            ((body,),) = mig.rows("SELECT body FROM notes WHERE id = %s", [row_id])
            doc = _doc(mig, row_id)
            assert doc is not None and doc["body"] == body
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert not errors, errors
