"""A read of the source opened only once its snapshot shows given transactions: the wait loop a
source adapter's LinkedReader runs (docs/architecture.md, "Why reading 'now' converges").

A source writes a commit to its log (WAL, binlog) before other sessions see it, and its change
stream may deliver it in between. Embedded content read for a batch must show every transaction
of the batch, so each attempt opens a read and says what its snapshot does not show yet; then the
read is ended, and after a short pause (1 ms doubling to 32 ms) another is opened, until a
generous deadline, past which a NotShownYet names what was waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from migrator.errors import NotShownYet

T = TypeVar("T")

PAUSES_S = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032)
# A commit normally shows within microseconds; one that waits for a synchronous standby shows when
# the standby answers. Past this, the batch fails as transient and is applied again.
DEADLINE_S = 60.0


def read_when_shown(
    attempt: Callable[[], tuple[T, str]],
    end: Callable[[], None],
    endpoint: str,
    *,
    deadline_s: float = DEADLINE_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """The result of the first `attempt()` whose read shows everything: `attempt` opens a read and
    returns its result with what its snapshot does not show yet ('' when nothing); `end` ends
    that read before the next attempt."""
    started = clock()
    pauses = 0
    while True:
        result, missing = attempt()
        if not missing:
            return result
        end()
        waited = clock() - started
        if waited >= deadline_s:
            raise NotShownYet(
                endpoint,
                missing,
                round(waited, 1),
                hint="a commit that waits (for a synchronous standby, say) is not shown to other sessions "
                "until it returns: look at the source's sessions waiting in commit; CDC retries the batch",
            )
        sleep(PAUSES_S[min(pauses, len(PAUSES_S) - 1)])
        pauses += 1
