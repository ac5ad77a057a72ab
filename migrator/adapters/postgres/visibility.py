"""Whether a snapshot of a PostgreSQL server shows a transaction whose commit was decoded.

A commit is flushed to the WAL (and so decoded and sent by the walsender) before the committing
session leaves the running transactions; until then other sessions' snapshots do not show it, and
a row read in between is the row before it (docs/architecture.md, "Reverse sync from a PostgreSQL
target", "Why reading 'now' converges"). A reader that must see a decoded transaction checks its
snapshot with `shown`: pgoutput gives the transaction's xid in 32 bits (Begin, Stream Commit),
`pg_current_snapshot()` gives 64-bit ids (epoch and xid) as `xmin:xmax:running`.
"""

from __future__ import annotations

from collections.abc import Iterable

_XID_SPACE = 1 << 32
SNAPSHOT = "pg_current_snapshot()::text"


def shown(xid: int, snapshot: str) -> bool:
    """Whether the snapshot (`pg_current_snapshot()` as text: xmin:xmax:running xids, 64 bits
    each) shows the committed transaction `xid` (32 bits, within 2^31 of the snapshot's xmax):
    neither at or past its xmax nor running."""
    return not hidden([xid], snapshot)


def hidden(xids: Iterable[int], snapshot: str) -> list[int]:
    """Those of `xids` (committed, decoded) that the snapshot does not show yet. Anything older
    than the snapshot's xmin is shown (a decoded commit is no abort): only the rest is looked up,
    the snapshot read once."""
    low, xmax, running = snapshot.split(":")
    xmin, top = int(low) % _XID_SPACE, int(xmax) % _XID_SPACE
    unseen = {int(r) % _XID_SPACE for r in running.split(",") if r}
    half = _XID_SPACE // 2
    return [
        x for x in xids if (x - xmin) % _XID_SPACE < half and ((x - top) % _XID_SPACE < half or x in unseen)
    ]
