"""Streamed (in-progress) transactions of pgoutput protocol 2, on disk until their commit.

With `streaming 'on'` the server sends a large transaction before it commits, in blocks between
Stream Start (S) and Stream Stop (E), interleaved with other transactions; then Stream Commit (c)
or Stream Abort (A) for the whole transaction or one of its subtransactions. The changes are
spooled to a temporary file, not memory, and replayed at the commit (dropped on abort), so that
they reach the consumer in commit order like any other transaction.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO


class Spool:
    """Changes of one streamed transaction, on disk until its commit or abort."""

    def __init__(self) -> None:
        # Closed on commit or abort, not at the end of a block: it outlives this call.
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="migrator-stream-")  # noqa: SIM115
        self.count = 0

    def add(self, xid: int | None, payload: bytes) -> None:
        pickle.dump((xid, payload), self.file)
        self.count += 1

    def replay(self, drop_xids: set[int]) -> Iterator[bytes]:
        self.file.seek(0)
        for _ in range(self.count):
            xid, payload = pickle.load(self.file)
            if xid not in drop_xids:
                yield payload

    def close(self) -> None:
        self.file.close()


@dataclass
class Committed:
    """A streamed transaction at its commit: its spool (None if no block of it was received),
    the subtransactions aborted meanwhile, and whether reverse sync wrote it (its origin)."""

    spool: Spool | None
    dropped: set[int]
    echo: bool


class StreamedTransactions:
    """The streamed transactions in progress: which one the current block belongs to, their
    spools, their aborted subtransactions, and those committed under the origin to skip."""

    def __init__(self, skip_origin: str) -> None:
        self._skip_origin = skip_origin
        self.current: int | None = None  # the xid of the block being received, None between blocks
        self._spools: dict[int, Spool] = {}
        self._aborted: dict[int, set[int]] = {}
        self._echoes: set[int] = set()  # transactions that carry the skipped origin

    @property
    def active(self) -> bool:
        """Inside a block (between Stream Start and Stream Stop)."""
        return self.current is not None

    @property
    def pending(self) -> bool:
        """Some streamed transaction has neither committed nor aborted yet."""
        return bool(self._spools)

    def start(self, xid: int) -> None:
        self.current = xid
        self._spools.setdefault(xid, Spool())

    def stop(self) -> None:
        self.current = None

    def add(self, xid: int | None, payload: bytes, origin: str | None = None) -> None:
        """A message of the current block; `origin`: the name an Origin message carries."""
        assert self.current is not None
        if origin is not None and origin == self._skip_origin:
            self._echoes.add(self.current)  # in its first block: skipped at commit
        self._spools[self.current].add(xid, payload)

    def abort(self, xid: int, subxid: int) -> None:
        if xid == subxid:
            self._echoes.discard(xid)
            spool = self._spools.pop(xid, None)
            if spool is not None:
                spool.close()
            self._aborted.pop(xid, None)
        else:
            self._aborted.setdefault(xid, set()).add(subxid)

    def commit(self, xid: int) -> Committed:
        spool = self._spools.pop(xid, None)
        dropped = self._aborted.pop(xid, set())
        echo = xid in self._echoes
        self._echoes.discard(xid)
        return Committed(spool, dropped, echo)
