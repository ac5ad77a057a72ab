"""CDC writes a batch's checkpoint only once the source shows every transaction up to it
(phases/follow_loop.py `Following.apply`, mapping/source_reads.py `confirm`; docs/architecture.md,
"Why reading 'now' converges"): the source is asked which it may still not show before the
target's transaction opens, and a read waits for those; a batch without a checkpoint (a part of a
large transaction) is written at once and leaves its transactions to the next checkpoint. The fake
reader's and applier's records are the test's own."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from migrator.errors import NotShownYet
from migrator.mapping.source_reads import SourceReads
from migrator.phases.follow_loop import Batch, Following


class Source:
    """A source whose snapshots do not show the transactions in `still` (until the test says)."""

    def __init__(self, still: set[int]) -> None:
        self.still = still
        self.log: list[Any] = []

    def linked_reader(self) -> Source:
        return self

    def unshown(self, visible: Sequence[Any]) -> list[Any]:
        self.log.append(("unshown", tuple(visible)))
        return [v for v in visible if v in self.still]

    def begin(self, visible: Sequence[Any] = ()) -> str:
        self.log.append(("begin", tuple(visible)))
        if any(v in self.still for v in visible):
            raise NotShownYet("source", ", ".join(map(str, visible)), 60.0)
        return "0/0"

    def end(self) -> None:
        self.log.append(("end",))

    def close(self) -> None:
        pass


class Applier:
    """Records each batch's target transaction: opened here, with its checkpoint."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def apply(
        self, ops: Sequence[Any], position: int | None, text: str | None, *, fields: Any = None
    ) -> None:
        self.log.append(("target transaction", position))


def following(still: set[int]) -> tuple[Any, Source]:
    source = Source(still)
    phase = SimpleNamespace(reads=SourceReads(source), applier=Applier(source.log))  # type: ignore[arg-type]
    return SimpleNamespace(phase=phase), source


def apply(loop: Any, visible: list[Any], position: int | None) -> None:
    text = None if position is None else str(position)
    Following.apply(loop, Batch(visible=visible), position, text, {} if position is not None else None)


def test_a_checkpoint_waits_for_what_the_source_does_not_show_before_the_target_transaction() -> None:
    loop, source = following(still=set())
    apply(loop, [701, 702], 10)
    # Everything shown: one question, no read, then the target's transaction.
    assert source.log == [("unshown", (701, 702)), ("target transaction", 10)]


def test_a_part_without_checkpoint_leaves_its_transaction_to_the_checkpoint() -> None:
    loop, source = following(still={703})
    apply(loop, [703], None)
    assert source.log == [("target transaction", None)]  # no checkpoint: nothing asked
    source.still.clear()
    apply(loop, [], 20)
    assert source.log[1:] == [("unshown", (703,)), ("target transaction", 20)]


def test_a_transaction_still_unseen_keeps_the_checkpoint_back() -> None:
    loop, source = following(still={705})
    with pytest.raises(NotShownYet):
        apply(loop, [704, 705], 30)
    # Waited for the unseen one alone; no target transaction opened (the batch is applied again
    # from the checkpoint before it).
    assert source.log == [("unshown", (704, 705)), ("begin", (705,))]
    assert loop.phase.reads.visible == (704, 705)  # still carried
