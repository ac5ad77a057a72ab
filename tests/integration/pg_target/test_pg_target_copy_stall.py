"""`phases.snapshot.stall_timeout` on a PostgreSQL -> PostgreSQL run (docs/snapshot.md): a source
backend that hangs mid-COPY (stopped with SIGSTOP on the throwaway cluster) costs the chunk one
ReadStalled, announced as a retried error, and the chunk is copied again on a new connection; the
run ends with every row on the target rather than waiting for the backend.

The backend is stopped once its COPY has sent its first block (the wrapper of copy_out.blocks
below only finds its pid and signals it: the wait and the error are the reader's own), so the
stall is met at a known point, and the plan's timeout reaches that reader (not the 600 s
default). The expectation is the source's rows, hashed by the source itself."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg import sql

from migrator.adapters.postgres import copy_out
from migrator.engine.events import ErrorRaised
from tests.support.pg_target import PgToPg

ROWS = 200_000
HASH = "SELECT count(*), md5(string_agg(id || ':' || payload, ',' ORDER BY id)) FROM items"


@pytest.fixture
def stalled_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Stops the backend of the first COPY the snapshot reads, after its first block; yields the
    read timeouts each COPY was given. The stopped backend runs again after the test (SIGCONT)."""
    original = copy_out.blocks
    timeouts: list[float] = []
    stopped: list[int] = []
    timers: list[threading.Timer] = []
    lock = threading.Lock()

    def stalling(
        conn: psycopg.Connection[Any], query: sql.Composed, params: Sequence[Any], timeout_s: float
    ) -> Iterator[bytes]:
        with lock:
            timeouts.append(timeout_s)
            stall = not stopped
            if stall:
                stopped.append(conn.info.backend_pid)
        for n, block in enumerate(original(conn, query, params, timeout_s)):
            if stall and n == 0:
                os.kill(stopped[0], signal.SIGSTOP)
                # A safety net only: a reader that never gave up (the default's 600 s) meets the
                # end of the stall after 60 s, copies on, and the test fails on what it expects.
                resume = threading.Timer(60, os.kill, [stopped[0], signal.SIGCONT])
                resume.daemon = True
                resume.start()
                timers.append(resume)
            yield block

    monkeypatch.setattr(copy_out, "blocks", stalling)
    try:
        yield timeouts
    finally:
        for timer in timers:
            timer.cancel()  # else it fires in a later test, at a backend long gone
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):  # resumed by the safety net and gone
                os.kill(pid, signal.SIGCONT)


def test_a_copy_stalled_mid_stream_is_retried_after_the_plans_stall_timeout(
    pg2pg: PgToPg, stalled_once: list[float]
) -> None:
    pg2pg.source(
        "CREATE TABLE public.items (id integer PRIMARY KEY, payload text)",
        f"INSERT INTO items SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, {ROWS}) g",
    )
    plan = pg2pg.plan(
        "- {from: public.items}", phases="snapshot: {stall_timeout: 1s, chunk_rows: 100000, parallel: 1}"
    )
    outcome, events = pg2pg.run(plan)

    assert outcome.snapshot is not None and not outcome.interrupted
    retried = [e for e in events.of(ErrorRaised) if e.retrying]
    assert [e.error for e in retried] == ["ReadStalled"], events.of(ErrorRaised)
    assert "COPY of public.items" in retried[0].message and "nothing for 1 s" in retried[0].message
    assert not [e for e in events.of(ErrorRaised) if not e.retrying]
    # Two chunks and the stalled one's second attempt, each given the plan's timeout.
    assert stalled_once == [1.0, 1.0, 1.0]
    assert pg2pg.target_rows(HASH) == pg2pg.source_rows(HASH)
    assert pg2pg.target_rows("SELECT count(*) FROM items") == [(ROWS,)]
