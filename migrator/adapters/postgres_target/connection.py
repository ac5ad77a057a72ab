"""The target's connections: typed errors (by SQLSTATE, as the source's) that name the target,
never its password."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify as classify_source
from migrator.adapters.postgres_target.rows import TargetTable, read_table
from migrator.errors import MigratorError, SourceError, TargetError

# Values go in and come out as the source reader gives them: timestamps in UTC (a timestamp
# without time zone holds the UTC wall clock: docs/architecture.md, "Tables as collections").
T = TypeVar("T")
SESSION = "SET TimeZone = 'UTC'; SET synchronous_commit = on"


def classify(exc: psycopg.Error, endpoint: str, secrets: tuple[str, ...]) -> MigratorError:
    """A psycopg error on the target, typed by SQLSTATE: the source's classification, with what
    it would call a source error called a target error."""
    error = classify_source(exc, endpoint, secrets)
    if type(error) is SourceError:
        return TargetError(error.message, hint=error.hint).caused_by(exc, exc.sqlstate)
    return error


class TargetEndpoint:
    """A target URL held in memory, opened as the source's are (adapters/postgres/connection.py:
    strict parsing, a refused login diagnosed); only `.name` (no password) is ever shown."""

    def __init__(self, url: str) -> None:
        try:
            self._pg = PgEndpoint(url)
        except SourceError as exc:
            # Our own message about the URL, which this endpoint's role names.
            raise TargetError(exc.message.replace("source URL", "target URL", 1), hint=exc.hint) from None
        self.name = self._pg.name
        self.secrets = self._pg.secrets
        self.database = self.name.rsplit("/", 1)[-1]

    @property
    def pg(self) -> PgEndpoint:
        """The endpoint as the source adapter's readers take it (reverse sync reads the target
        with the source's replication stream: reverse.py)."""
        return self._pg

    def connect(self) -> psycopg.Connection[Any]:
        """An autocommit connection (transactions are explicit) in the target's session settings."""
        try:
            conn = self._pg.connect()
        except SourceError as exc:
            raise TargetError(exc.message, hint=exc.hint).origin_of(exc) from None
        try:
            conn.execute(SESSION)
        except psycopg.Error as exc:
            conn.close()
            raise classify(exc, self.name, self.secrets) from None
        return conn

    def __repr__(self) -> str:
        return f"TargetEndpoint({self.name!r})"


class Connections:
    """One connection a thread (the snapshot's copy workers write in parallel), each in
    autocommit mode with explicit transactions, closed together; and the target tables as their
    catalog describes them, read once.

    A thread's connection is closed once the thread has ended (when another is opened): the
    snapshot writes each chunk from a write-behind thread of its own, and a connection kept per
    ended thread ran the server out of connections after ~100 chunks."""

    def __init__(self, endpoint: TargetEndpoint) -> None:
        self.endpoint = endpoint
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[threading.Thread, psycopg.Connection[Any]]] = []
        self._tables: dict[str, TargetTable] = {}

    def mine(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.endpoint.connect()
            self._local.conn = conn
            with self._lock:
                ended = [c for thread, c in self._open if not thread.is_alive()]
                self._open = [(t, c) for t, c in self._open if t.is_alive()]
                self._open.append((threading.current_thread(), conn))
            for old in ended:
                old.close()
        return conn

    def table(self, name: str) -> TargetTable:
        """The target table `name`, read from the catalog on first use."""
        with self._lock:
            known = self._tables.get(name)
        if known is None:
            known = read_table(self.mine(), name)
            with self._lock:
                self._tables[name] = known
        return known

    def forget_tables(self) -> None:
        """Read the tables' definitions again on next use (after creating or dropping them)."""
        with self._lock:
            self._tables.clear()

    def run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` in one transaction on this thread's connection; a driver error typed (and the
        connection replaced: it may be broken)."""
        try:
            conn = self.mine()
            with conn.transaction():
                return work(conn)
        except psycopg.Error as exc:
            self.discard()
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def run_opened(self, work: Callable[[psycopg.Connection[Any]], T], end: sql.Composed) -> T:
        """`work` on this thread's connection, which it opens a transaction on itself (its BEGIN
        sent with what goes with it, one round trip), and `end` after it (a COMMIT with what goes
        after it, one round trip: docs/architecture.md, "How a batch is written"). Any error
        closes the connection, which rolls the transaction back and ends what its session held
        (a replication origin); a driver error is typed."""
        try:
            conn = self.mine()
            try:
                result = work(conn)
                conn.execute(end)
            except BaseException:
                self.discard()
                raise
            return result
        except psycopg.Error as exc:
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def outside_transaction(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` on this thread's connection in autocommit (one statement, one round trip); a
        driver error typed, the connection replaced."""
        try:
            return work(self.mine())
        except psycopg.Error as exc:
            self.discard()
            raise classify(exc, self.endpoint.name, self.endpoint.secrets) from None

    def discard(self) -> None:
        """Close this thread's connection (after an error: the next use opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, []
        for _, conn in opened:
            conn.close()
