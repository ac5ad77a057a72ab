"""A read of the source opened only once its snapshot shows the batch's transactions
(adapters/shown.py; docs/architecture.md, "Why reading 'now' converges"), and MySQL/MariaDB's
decision from a snapshot's binlog position (adapters/mysql/readers.py `not_shown`). The clock and
the pauses are the test's own; positions are written by hand as '<file number>:<offset>'."""

from __future__ import annotations

import pytest

from migrator.adapters.mysql.positions import pack
from migrator.adapters.mysql.readers import not_shown
from migrator.adapters.shown import DEADLINE_S, PAUSES_S, read_when_shown
from migrator.errors import NotShownYet, TransientError


class Source:
    """Attempts that show the transaction from the `shows_at`-th on (None: never)."""

    def __init__(self, shows_at: int | None) -> None:
        self.shows_at = shows_at
        self.attempts = 0
        self.ended = 0
        self.now = 0.0
        self.pauses: list[float] = []

    def attempt(self) -> tuple[str, str]:
        self.attempts += 1
        shown = self.shows_at is not None and self.attempts >= self.shows_at
        return f"read {self.attempts}", "" if shown else "transaction 726"

    def end(self) -> None:
        self.ended += 1

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def read(self) -> str:
        return read_when_shown(self.attempt, self.end, "source", sleep=self.sleep, clock=lambda: self.now)


def test_a_shown_transaction_is_read_at_once() -> None:
    source = Source(shows_at=1)
    assert source.read() == "read 1"
    assert (source.attempts, source.ended, source.pauses) == (1, 0, [])


def test_a_read_that_does_not_show_it_is_ended_and_opened_again_after_growing_pauses() -> None:
    source = Source(shows_at=9)
    assert source.read() == "read 9"
    assert source.ended == 8  # every read that did not show it, and only those
    assert source.pauses == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.032, 0.032]


def test_past_the_deadline_a_transient_error_names_what_it_waited_for() -> None:
    source = Source(shows_at=None)
    with pytest.raises(NotShownYet) as raised:
        source.read()
    assert isinstance(raised.value, TransientError)
    assert "transaction 726" in str(raised.value) and raised.value.waited_for == "transaction 726"
    assert source.now >= DEADLINE_S and source.ended == source.attempts
    assert max(source.pauses) == PAUSES_S[-1]


def test_a_binlog_snapshot_shows_a_transaction_once_it_stands_past_where_it_begins() -> None:
    begins = pack(3, 1200)
    assert not_shown("000003:1300", [begins]) == ""
    assert not_shown("000004:4", [begins]) == ""  # the next file
    assert not_shown("000003:1300", [None]) == ""  # nothing to wait for
    assert not_shown("000003:1300", []) == ""
    # At where it begins, or before: the snapshot was taken before its engine commit.
    assert "000003:1200" in not_shown("000003:1200", [begins])
    assert not_shown("000003:900", [begins]) != ""
    assert not_shown("000002:99999", [begins]) != ""
    # The batch's last transaction decides (positions grow in commit order).
    assert not_shown("000003:1300", [pack(3, 100), begins, pack(3, 1250)]) == ""
    assert not_shown("000003:1300", [pack(3, 100), begins, pack(3, 1300)]) != ""
