"""The transactions CDC's source reads wait for are carried from batch to batch until a read has
shown them (mapping/source_reads.py; docs/architecture.md, "Why reading 'now' converges"): a batch
that reads nothing leaves its transactions to the next read; past a bound, the source says which
it may still not show, and only those are kept. The fake reader's answers are the test's own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from migrator.adapters.postgres.visibility import hidden
from migrator.mapping.source_reads import CARRIED, SourceReads


class Reader:
    """A linked reader that records what each read waited for; `unshown` keeps what `still`
    names (the source's answer)."""

    def __init__(self, still: set[int]) -> None:
        self.still = still
        self.waited: list[tuple[Any, ...]] = []
        self.asked: list[int] = []

    def begin(self, visible: Sequence[Any] = ()) -> str:
        self.waited.append(tuple(visible))
        return "0/0"

    def end(self) -> None:
        pass

    def unshown(self, visible: Sequence[Any]) -> list[Any]:
        self.asked.append(len(visible))
        return [v for v in visible if v in self.still]

    def close(self) -> None:
        pass


class Source:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.opened = 0

    def linked_reader(self) -> Reader:
        self.opened += 1
        return self.reader


def reads(still: set[int] | None = None) -> tuple[SourceReads, Reader]:
    reader = Reader(still or set())
    return SourceReads(Source(reader)), reader  # type: ignore[arg-type]


def test_a_batch_that_reads_nothing_leaves_its_transactions_to_the_next_read() -> None:
    source_reads, reader = reads(still={702})
    with source_reads.showing([701, None, 702]):
        pass  # nothing read, no checkpoint (a part of a large transaction)
    with source_reads.showing([703]):
        assert source_reads.visible == (701, 702, 703)
        source_reads.confirm()
    # Asked once which may still be unseen; a read waited for those alone.
    assert reader.asked == [3] and reader.waited == [(702,)]
    # Shown once: the next batch waits for its own only.
    with source_reads.showing([704]):
        assert source_reads.visible == (704,)


def test_a_confirm_that_finds_everything_shown_opens_no_read() -> None:
    source_reads, reader = reads()
    with source_reads.showing([701, 702]):
        source_reads.confirm()
    assert reader.asked == [2] and reader.waited == []
    assert source_reads.visible == ()


def test_a_re_read_that_showed_them_leaves_nothing_to_wait_for() -> None:
    source_reads, reader = reads()
    with source_reads.showing([701, 702]):
        visible = source_reads.visible
        source_reads.shown(visible)  # the applier's whole-document re-read waited for them
        source_reads.confirm()
    assert source_reads.visible == () and reader.waited == []


def test_past_the_bound_only_what_the_source_may_still_not_show_is_kept() -> None:
    source_reads, reader = reads(still={5, 6})
    for batch in range(CARRIED):
        with source_reads.showing([batch]):
            pass
    assert reader.asked == [] and len(source_reads.visible) == CARRIED
    with source_reads.showing([CARRIED]):
        pass
    assert reader.asked == [CARRIED + 1]
    assert source_reads.visible == (5, 6)
    for batch in range(CARRIED + 1, 2 * CARRIED - 1):  # up to the bound again
        with source_reads.showing([batch]):
            pass
    assert reader.asked == [CARRIED + 1] and len(source_reads.visible) == CARRIED
    with source_reads.showing([2 * CARRIED]):
        pass
    assert reader.asked == [CARRIED + 1, CARRIED + 1]


def test_many_still_unseen_are_looked_at_again_only_once_as_many_more_arrived() -> None:
    still = set(range(3 * CARRIED))
    source_reads, reader = reads(still=still)
    with source_reads.showing(list(range(3 * CARRIED))):
        pass
    assert reader.asked == [3 * CARRIED]
    with source_reads.showing(list(range(3 * CARRIED, 6 * CARRIED))):
        pass
    assert reader.asked == [3 * CARRIED]  # 6 * CARRIED carried: at the bound, not past it
    with source_reads.showing([6 * CARRIED]):
        pass
    assert reader.asked == [3 * CARRIED, 6 * CARRIED + 1]


def test_nothing_carried_means_nothing_to_confirm_and_no_connection() -> None:
    source_reads, reader = reads()
    with source_reads.showing([None]):
        source_reads.confirm()
    assert reader.waited == [] and source_reads._source.opened == 0  # type: ignore[attr-defined]


def test_a_snapshot_shows_whatever_is_older_than_its_xmin() -> None:
    # xmin 700: 650 is done (shown, a decoded commit is no abort); 705 runs; 730 is past xmax.
    assert hidden([650, 699, 700, 705, 720, 730], "700:726:705") == [705, 730]
