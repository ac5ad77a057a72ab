"""How many writes CDC puts in one target transaction: the plan's phases.cdc.batch_changes, less
while the target aborts batches for their duration or size (docs/architecture.md, "Batches that
adapt").

A batch the target aborted (BatchTooLarge) would fail again as it is: the limit halves below the
failed batch's size, and CDC applies again from its checkpoint in smaller batches. After
`grow_after` batches in a row go through, the limit doubles, up to the plan's value, so that a
burst of large transactions does not slow the rest of the run. A limit that was grown and then
aborted again doubles the batches it takes to grow next time (each abort costs a reconnect and a
replay from the checkpoint), as TCP backs off. A single write that the target still aborts cannot
be made smaller: that is a terminal error naming the transaction and the fix.
"""

from __future__ import annotations

from migrator.engine.events import BatchLimitChanged, EventBus
from migrator.errors import BatchTooLarge, TerminalError

GROW_AFTER = 20  # batches in a row that went through before the limit doubles
MAX_GROW_AFTER = 1280  # the most it backs off to after limits grown and aborted again


class BatchLimit:
    """The current limit; `shrink` after a BatchTooLarge, `succeeded` after each applied batch."""

    def __init__(self, ceiling: int, *, grow_after: int = GROW_AFTER, events: EventBus | None = None) -> None:
        self.ceiling = ceiling
        self.limit = ceiling
        self._grow_after = grow_after
        self._events = events
        self._streak = 0
        self._grown = False  # the last change grew the limit

    def shrink(self, error: BatchTooLarge, *, writes: int, where: str) -> None:
        """The target aborted a batch of `writes` writes (`where`: the source transaction(s) it
        held): halve below it, or raise a TerminalError when it was a single write."""
        self._streak = 0
        if self._grown:
            self._grow_after = min(MAX_GROW_AFTER, self._grow_after * 2)
        self._grown = False
        if writes <= 1:
            raise TerminalError(
                f"a single write {where} is more than the target accepts in one transaction: {error.message}",
                hint="raise the target's transactionLifetimeLimitSeconds (db.adminCommand({setParameter: 1, "
                "transactionLifetimeLimitSeconds: 300})) or its transaction size limits, or split the source "
                "transaction; then `migrator run` resumes from the checkpoint",
            )
        previous = self.limit
        self.limit = max(1, min(self.limit, writes) // 2)
        self._emit(previous, error.message)

    def succeeded(self) -> None:
        if self.limit >= self.ceiling:
            return
        self._streak += 1
        if self._streak >= self._grow_after:
            self._streak = 0
            previous = self.limit
            self.limit = min(self.ceiling, self.limit * 2)
            self._grown = True
            self._emit(previous, None)

    def _emit(self, previous: int, reason: str | None) -> None:
        if self._events is not None:
            self._events.emit(BatchLimitChanged(previous, self.limit, self.ceiling, reason))
