"""Waiting until a target has applied every source change committed before the wait: a marker
transaction (`pg_logical_emit_message`, transactional) committed on the source once the run's
replication stream is open must reach the CDC checkpoint the target keeps. Shared by the corpus
harnesses (tests/support/corpus.py for MongoDB, tests/support/pg_corpus.py for PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from migrator.adapters.postgres.lsn import Lsn
from tests.support.runs import ApiRun


def wait_applied(
    follower: ApiRun, source_url: str, applied: Callable[[], int | None], timeout: float, prefix: str
) -> None:
    """Wait until `applied()` (the target's checkpoint) reaches a marker committed now; fail the
    test if the run stops or the time runs out."""
    marker: int | None = None
    deadline = time.monotonic() + timeout
    while True:
        if not follower.alive:
            follower.join(1)  # raises the error that stopped it
            pytest.fail("the run stopped while it should follow changes")
        if marker is None and _slot_active(source_url):
            marker = _emit(source_url, prefix)
        position = applied()
        if marker is not None and position is not None and position >= marker:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"the target did not catch up within {timeout:.0f} s (applied {position}, marker {marker})"
            )
        time.sleep(0.1)


def _slot_active(source_url: str) -> bool:
    with psycopg.connect(source_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND active"
        ).fetchone()
    return bool(row and row[0])


def _emit(source_url: str, prefix: str) -> int:
    with psycopg.connect(source_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_logical_emit_message(true, %s, 'step')::text", [prefix]).fetchone()
    assert row is not None
    return Lsn.parse(str(row[0])).value
