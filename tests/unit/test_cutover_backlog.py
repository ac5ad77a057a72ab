"""The cutover gate's first marker waits behind the backlog CDC replays first: as long as CDC
applies something, however long that takes; it gives up (Stalled) only once nothing was applied
for the idle budget, and reports how far it is."""

from __future__ import annotations

import threading
import time

import pytest

from migrator.phases.cutover import Abandoned, Stalled, wait_for_backlog


class SlowCdc:
    """A target whose CDC checkpoint advances by `step` every `every` seconds, up to `until`."""

    def __init__(self, every: float, step: int, until: int | None = None) -> None:
        self.began = time.monotonic()
        self.every, self.step, self.until = every, step, until

    def applied_position(self, checkpoint: str) -> int:
        moved = int((time.monotonic() - self.began) / self.every) * self.step
        return moved if self.until is None else min(moved, self.until)


def test_a_backlog_longer_than_the_idle_budget_is_waited_for_while_cdc_applies() -> None:
    reports: list[str] = []
    target = SlowCdc(every=0.1, step=10)  # reaches 150 after 1.5 s: three idle budgets
    began = time.monotonic()
    wait_for_backlog(target, "p", 150, 0.5, stop=threading.Event(), report=reports.append, every=0.2)
    assert time.monotonic() - began >= 1.4
    assert reports and "applied up to" in reports[0] and "to go" in reports[0]


def test_nothing_applied_for_the_idle_budget_is_stalled() -> None:
    target = SlowCdc(every=0.05, step=10, until=30)  # stops at 30, short of the marker
    began = time.monotonic()
    with pytest.raises(Stalled, match=r"applied nothing for 0\.3 s"):
        wait_for_backlog(target, "p", 100, 0.3, stop=threading.Event(), report=lambda _: None)
    assert time.monotonic() - began >= 0.3


def test_a_stop_ends_the_wait() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Abandoned, match="stopped"):
        wait_for_backlog(SlowCdc(every=0.05, step=1), "p", 10**9, 60, stop=stop, report=lambda _: None)
