"""Reverse sync's feed on a PostgreSQL target hands a transaction over only once the target shows
it to other sessions (docs/architecture.md, "Reverse sync from a PostgreSQL target"). A commit is
flushed to the WAL, and so decoded and sent, before the committing session leaves the running
transactions; a row read in between is the row before the commit, and reverse sync, which writes
back the row as it reads it, would carry the older state and move past the change (seen as a
rollback's recheck under the fence finding one of the application's rows differ).

The gap, normally microseconds, is held open here on purpose: the target waits for a synchronous
standby that does not exist (`synchronous_standby_names`), so the application's commit is in the
WAL and decoded while other sessions still read the row before it, until the test lifts the
setting. The test's own marker commits with `synchronous_commit = local` (no wait, shown at once).

And the fence for the switch back leaves no transaction in flight behind it: a writer that holds
its table when the fence is taken commits first (the fence waits for its lock), and the feed hands
it over with its row; a transaction that began before the fence and writes after it is refused.

The expectations are the values the test wrote, read back through the feed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from migrator.adapters.postgres_target import PostgresTarget
from migrator.adapters.postgres_target.reverse import OpenFeed, PgReverseFeed
from tests.support.servers import PgServer

TABLE = "public.items"
PLAN = "visibility"
SCHEMA = (
    "CREATE TABLE public.items (id integer PRIMARY KEY, name text)",
    "INSERT INTO items VALUES (1, 'before'), (2, 'two')",
)
TIMEOUT_S = 60.0


@dataclass
class Items:
    url: str
    target: PostgresTarget
    feed: PgReverseFeed
    start: dict[str, Any]  # the feed's position before the test's writes


@pytest.fixture
def items(pg_cluster_factory: Callable[..., PgServer]) -> Iterator[Items]:
    """A target cluster of the test's own (one test changes a server setting) with `items` and
    reverse sync's feed on it."""
    url = pg_cluster_factory().url
    _execute(url, *SCHEMA)
    with PostgresTarget(url) as target:
        feed = target.change_stream(PLAN, [TABLE], max_await_ms=100)
        yield Items(url, target, feed, dict(feed.position_now()))


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[call-overload]


def _one(url: str, query: str, params: list[Any] | None = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params or []).fetchone()  # type: ignore[call-overload]
        assert row is not None
        return row[0]


def _wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@contextmanager
def _commits_wait_for_a_standby(url: str) -> Iterator[Callable[[], None]]:
    """Commits (synchronous_commit on) wait for a standby that never comes: flushed and decoded,
    not shown to other sessions. Yields `release`, which lifts it (also done on the way out)."""

    def setting(value: str | None) -> None:
        change = (
            "ALTER SYSTEM RESET synchronous_standby_names"
            if value is None
            else f"ALTER SYSTEM SET synchronous_standby_names = '{value}'"
        )
        _execute(url, change, "SELECT pg_reload_conf()")
        wanted = value or ""
        _wait_for(
            f"synchronous_standby_names = {wanted!r}",
            lambda: _one(url, "SHOW synchronous_standby_names") == wanted,
        )

    setting("migrator_test_absent_standby")
    try:
        yield lambda: setting(None)
    finally:
        setting(None)


def _marker(url: str, feed: PgReverseFeed) -> int:
    """A marker of the feed's, committed without waiting for a standby (after what came before)."""
    number = time.time_ns()
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = local")
        conn.execute("SELECT pg_logical_emit_message(true, %s, %s)", [feed.marker_prefix, str(number)])
    return number


def _read_until(stream: OpenFeed, feed: PgReverseFeed, done: Callable[[], bool]) -> dict[Any, str]:
    """Step the feed until `done`; each row it hands over, read the moment it is handed over (as
    reverse sync reads it to write it back): id -> name."""
    read: dict[Any, str] = {}
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, "timed out reading the feed"
        step = stream.next()
        documents = [d for group in step.transactions for d in group.documents]
        current = feed.current(documents)
        for document in documents:
            row = current.get(document.key)
            read[document.document_id] = None if row is None else row["name"]
    return read


def test_a_commit_decoded_before_the_target_shows_it_is_handed_over_once_it_does(items: Items) -> None:
    url, feed = items.url, items.feed
    app = threading.Thread(
        target=_execute, args=(url, "UPDATE items SET name = 'after' WHERE id = 1"), daemon=True
    )
    with feed.follow(items.start) as stream, _commits_wait_for_a_standby(url) as release:
        app.start()
        _wait_for(
            "the application's commit to wait for the standby",
            lambda: _one(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'") == 1,
        )
        # Committed in the WAL, not shown: another session reads the row before it.
        assert _one(url, "SELECT name FROM items WHERE id = 1") == "before"
        marker = _marker(url, feed)
        # The feed has decoded the update and the marker after it ...
        held = _read_until(stream, feed, lambda: stream.marker_seen >= marker)
        # ... and hands over neither while the target does not show the update; a marker
        # behind it is not reached (reverse sync's caught-up waits on in_transaction).
        assert held == {}
        assert stream.in_transaction
        assert stream.waiting == 2
        release()
        app.join(TIMEOUT_S)
        assert not app.is_alive()
        shown = _read_until(stream, feed, lambda: not stream.in_transaction)
    assert shown == {1: "after"}


def test_the_fence_waits_for_a_writer_in_flight_and_refuses_a_transaction_that_writes_after_it(
    items: Items,
) -> None:
    url, feed = items.url, items.feed
    fence = items.target.write_fence([TABLE], PLAN)
    with psycopg.connect(url) as in_flight, psycopg.connect(url) as late:
        in_flight.execute("UPDATE items SET name = 'in flight' WHERE id = 1")  # holds the table
        late.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert late.execute("SELECT name FROM items WHERE id = 2").fetchone() == ("two",)
        engaging = threading.Thread(target=fence.engage, daemon=True)
        engaging.start()
        writer = in_flight.info.backend_pid
        _wait_for(
            "the fence to wait for the writer in flight",
            lambda: (
                _one(
                    url,
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    [writer],
                )
                == 1
            ),
        )
        in_flight.commit()
        engaging.join(TIMEOUT_S)
        assert not engaging.is_alive() and fence.engaged_at is not None
        # Began before the fence, writes after it: refused.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            late.execute("UPDATE items SET name = 'late' WHERE id = 2")
    try:
        marker = feed.write_marker()
        with feed.follow(items.start) as stream:
            read = _read_until(
                stream, feed, lambda: stream.marker_seen >= marker and not stream.in_transaction
            )
    finally:
        fence.lift({})
    assert read == {1: "in flight"}
    assert _one(url, "SELECT name FROM items WHERE id = 2") == "two"
