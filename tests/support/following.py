"""A scenario's `migrator run` following CDC on a thread, and the waits that go with it, shared by
the corpus harnesses (tests/support/corpus.py for a MongoDB target, tests/support/pg_corpus.py
for a PostgreSQL one): start, stop, wait until the target applied every source change committed
before the wait (a marker, pg_logical_emit_message, at or below the CDC checkpoint the target
keeps), or until the run stopped by itself.

Each harness says where its target keeps the checkpoint (`applied`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrator.adapters.postgres.lsn import Lsn
from migrator.operations.run import RunOutcome
from tests.support.runs import ApiRun, source_transactions

RUN_TIMEOUT = 180.0  # a loaded 2-core machine runs snapshot + CDC start in seconds, but be generous
CATCH_UP_TIMEOUT = 120.0
REMARK_S = 1.0  # a new marker this often while the target has not reached the last
MARKER_PREFIX = "corpus.step"


class Follower(ApiRun):
    """`api.run(plan, until='stopped')` of a scenario on a thread; `finish()` checkpoints and returns."""

    def __init__(self, scenario: Following, until: str = "stopped") -> None:
        super().__init__(
            f"corpus-{scenario.name}",
            scenario.plan_path,
            until,
            scenario.state_path,
            scenario.env,
            timeout=RUN_TIMEOUT,
        )


class Following:
    """What a scenario does with its run; the scenario gives its names, URLs and `applied`."""

    name: str
    pg_url: str  # the source database
    plan_path: Path
    state_path: Path
    follower: Follower | None
    marker_error: BaseException | None = None  # why the last marker could not be written

    @property
    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def applied(self) -> int | None:
        """The source position the target's CDC checkpoint holds (None: none yet)."""
        raise NotImplementedError

    def scalar(self, query: str, params: Sequence[Any] = ()) -> Any:
        """One value from the source."""
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute(query, list(params)).fetchone()  # type: ignore[call-overload]
        return None if row is None else row[0]

    def start(self) -> Follower:
        """Start `migrator run` following changes; return once the snapshot is written and the
        stream has applied a marker committed after it."""
        assert self.follower is None or not self.follower.alive, "a run already follows"
        self.follower = Follower(self)
        self.catch_up(RUN_TIMEOUT)
        return self.follower

    def stop(self) -> RunOutcome | None:
        follower, self.follower = self.follower, None
        if follower is None:
            return None
        return follower.finish()

    def catch_up(self, timeout: float = CATCH_UP_TIMEOUT) -> None:
        """Wait until the target has applied every source change committed before this call."""
        follower = self.follower
        assert follower is not None, "no run follows"
        marker: int | None = None
        written = 0.0
        deadline = time.monotonic() + timeout
        while True:
            if not follower.alive:
                follower.join(1)  # raises the error that stopped it
                pytest.fail("the run stopped while it should follow changes")
            if marker is None or time.monotonic() - written > REMARK_S:
                # Again after a while: a marker committed before the run's stream position (a
                # MySQL run creates the markers table before it reads its binlog position) is
                # never seen, and the target would wait for the run's own heartbeat.
                marker, written = self.marker() or marker, time.monotonic()
            applied = self.applied()
            if marker is not None and applied is not None and applied >= marker:
                return
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the target did not catch up within {timeout:.0f} s (applied {applied}, marker {marker}"
                    + (f", last marker error {self.marker_error}" if self.marker_error else "")
                    + ")"
                )
            time.sleep(0.1)

    def marker(self) -> int | None:
        """Commit a marker on the source and return its position; None while the stream it must
        travel is not open yet (PostgreSQL: the slot is not active)."""
        if not self._slot_active():
            return None
        text = self.scalar("SELECT pg_logical_emit_message(true, %s, 'step')::text", [MARKER_PREFIX])
        return Lsn.parse(str(text)).value

    def _slot_active(self) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND active"
            )
        )

    def step(self, *transactions: str | Sequence[str]) -> None:
        """Run each item as one transaction on the source, then wait until it is applied."""
        source_transactions(self.pg_url, *transactions)
        self.catch_up()

    def wait_stopped(self, timeout: float = CATCH_UP_TIMEOUT) -> BaseException | None:
        """Wait for a run that should stop by itself; its error (None when it returned)."""
        follower = self.follower
        assert follower is not None
        deadline = time.monotonic() + timeout
        while follower.alive and time.monotonic() < deadline:
            time.sleep(0.1)
        if follower.alive:
            pytest.fail(f"the run did not stop within {timeout:.0f} s")
        self.follower = None
        return follower.error

    def stop_following(self) -> None:
        """At teardown: stop a run left following."""
        if self.follower is not None and self.follower.alive:
            self.follower.stop.set()
            self.follower._thread.join(60)
