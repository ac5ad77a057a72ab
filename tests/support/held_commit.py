"""A PostgreSQL commit held in the gap between the WAL and other sessions' snapshots.

PostgreSQL flushes a transaction's commit to the WAL, and so decodes and sends it, before the
committing session leaves the running transactions; until then other sessions' snapshots read the
rows before it (docs/architecture.md, "Why reading 'now' converges"). The gap, normally
microseconds, is held open here: the server names a synchronous standby that does not exist
(`synchronous_standby_names`), and the application's session commits with `synchronous_commit =
on`, so its commit is flushed and decoded and then waits; every other session commits with the
server's default, set to `local` meanwhile (no wait: migrator's own markers and heartbeats, the
test's other transactions). Lifting the settings lets the commit return, shown.

The server is the test's own (a cluster fixture): the settings are server-wide.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.support.runs import wait_for

TIMEOUT_S = 60.0
_WAITING = "FROM pg_stat_activity WHERE wait_event = 'SyncRep'"


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[call-overload]
        assert row is not None
        return row[0]


def _hold(url: str, on: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if on:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'migrator_test_absent_standby'")
            conn.execute("ALTER SYSTEM SET synchronous_commit = local")
        else:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("ALTER SYSTEM RESET synchronous_commit")
        conn.execute("SELECT pg_reload_conf()")
    wanted = "migrator_test_absent_standby" if on else ""
    wait_for(
        lambda: scalar(url, "SHOW synchronous_standby_names") == wanted,
        f"synchronous_standby_names = {wanted!r}",
        TIMEOUT_S,
    )


@dataclass
class HeldCommit:
    xid: int  # the transaction's, as pgoutput's Begin gives it (32 bits)
    release: Callable[[], None]  # lifts the settings: the commit returns and is shown

    def decoded(self, url: str) -> None:
        """Wait until the walsender sent the commit (the follower has the transaction)."""
        flushed = scalar(url, "SELECT pg_current_wal_flush_lsn()::text")
        sent = f"SELECT count(*) FROM pg_stat_replication WHERE sent_lsn >= '{flushed}'::pg_lsn"
        wait_for(lambda: scalar(url, sent) == 1, "the walsender to send the commit", TIMEOUT_S)


@contextmanager
def held_commit(url: str, *statements: str) -> Iterator[HeldCommit]:
    """`statements` committed in one transaction that waits for a standby that never comes:
    flushed and decoded, not shown to other sessions until `release` (also on the way out)."""
    errors: list[psycopg.Error] = []

    def application() -> None:
        try:
            with psycopg.connect(url) as conn:
                conn.execute("SET synchronous_commit = on")
                for statement in statements:
                    conn.execute(statement)  # type: ignore[call-overload]
        except psycopg.Error as exc:  # reported by the test's thread
            errors.append(exc)

    _hold(url, True)
    writer = threading.Thread(target=application, name="application")
    try:
        writer.start()
        wait_for(
            lambda: scalar(url, f"SELECT count(*) {_WAITING}") == 1,
            "the application's commit to wait for the standby",
            TIMEOUT_S,
        )
        yield HeldCommit(int(scalar(url, f"SELECT backend_xid::text {_WAITING}")), lambda: _hold(url, False))
    finally:
        _hold(url, False)
        writer.join(TIMEOUT_S)
    assert not errors, errors
