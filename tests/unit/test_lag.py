"""phases/lag.py: the one measure of CDC lag (docs/architecture.md invariant 10, "Lag"), and the
throttler's max_lag rule fed from it. No servers: clocks and positions are given."""

from __future__ import annotations

import datetime
from typing import Any

from migrator.engine.events import Event
from migrator.engine.throttle import Throttler
from migrator.phases.lag import COMMIT_TIME, LagTracker, from_checkpoint, measure


def test_a_backlog_reads_as_old_as_the_newest_applied_commit_never_0() -> None:
    lag = measure(now=1000.0, applied_commit_time=700.0, caught_up_at=None, caught_up=False)
    assert lag.seconds == 300.0 and not lag.caught_up
    # Caught up before the commit now pending: counted from that moment.
    assert measure(now=1000.0, applied_commit_time=700.0, caught_up_at=990.0, caught_up=False).seconds == 10.0
    assert measure(now=1000.0, applied_commit_time=700.0, caught_up_at=990.0, caught_up=True).seconds == 0.0
    assert measure(now=1000.0, applied_commit_time=None, caught_up_at=None, caught_up=False).seconds is None


def test_status_reads_caught_up_only_when_the_source_wrote_nothing_since() -> None:
    at = datetime.datetime.fromtimestamp(900.0, datetime.UTC)
    record = {"position": 100, COMMIT_TIME: at}
    behind = from_checkpoint(record, now=1000.0, confirmed_position=90, current_position=150)
    assert behind.seconds == 100.0 and behind.bytes == 50 and not behind.caught_up
    # The slot confirmed further (a keepalive with nothing pending) up to the source's position.
    idle = from_checkpoint(record, now=1000.0, confirmed_position=150, current_position=150)
    assert idle.seconds == 0.0 and idle.bytes == 0 and idle.caught_up
    # The state store's mirror keeps the commit time as ISO text.
    mirrored = from_checkpoint(
        {"position": 100, COMMIT_TIME: at.isoformat()},
        now=1000.0,
        confirmed_position=None,
        current_position=150,
    )
    assert mirrored.seconds == 100.0


def test_a_keepalive_in_the_middle_of_a_backlog_is_not_caught_up() -> None:
    clock = [1000.0]
    tracker = LagTracker(clock=lambda: clock[0])
    tracker.resume({"position": 10, COMMIT_TIME: datetime.datetime.fromtimestamp(400.0, datetime.UTC)})
    assert not tracker.caught_up(20)  # the source's position not measured yet
    tracker.source_position(50)
    assert not tracker.caught_up(20) and tracker.seconds() == 600.0
    tracker.applied(50, commit_time=990.0)
    assert tracker.caught_up(50) and tracker.seconds() == 0.0
    tracker.behind()
    clock[0] += 3.0
    assert tracker.seconds() == 3.0  # since the moment it was last caught up, not since 990


def _throttler(events: Any) -> Throttler:
    return Throttler(
        file=None,
        max_active_sessions=None,
        max_replica_lag=None,
        check_interval=0.0,
        max_lag=2.0,
        chunk_rows=100,
        events=events,
        controls=dict,
    )


def test_the_throttlers_max_lag_rule_reads_cdcs_lag_and_holds_only_copy_work() -> None:
    """The rule is fed from phases/lag.py's tracker (what CdcPhase registers): copy work beside a
    lagging CDC is held, CDC's own apply never; caught up, nothing is held."""

    class Sink:
        def emit(self, event: Event) -> None:
            pass

    clock = [1000.0]
    tracker = LagTracker(clock=lambda: clock[0])
    throttle = _throttler(Sink())
    throttle.follow_lag(tracker.seconds)
    tracker.applied(10, commit_time=990.0)  # the newest applied commit is 10 s old
    held = throttle.poll("snapshot")
    assert held.throttled and any("CDC lag 10.0 s" in r for r in held.reasons)
    assert not throttle.poll("cdc").throttled
    tracker.source_position(30)
    assert not tracker.caught_up(20)  # the source is further: a keepalive mid-backlog
    assert tracker.caught_up(30)
    assert tracker.seconds() == 0.0
    assert not throttle.poll("snapshot").throttled
    tracker.behind()
    clock[0] += 1.5  # behind since the moment it was caught up: 1.5 s, under max_lag
    assert not throttle.poll("snapshot").throttled
    clock[0] += 1.0
    assert throttle.poll("snapshot").throttled
