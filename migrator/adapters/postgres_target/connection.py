"""The target's connections: typed errors (by SQLSTATE, as the source's) that name the target,
never its password."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import conninfo

from migrator.adapters.postgres.errors import classify as classify_source
from migrator.adapters.postgres_target.rows import TargetTable, read_table
from migrator.connstr import MalformedConnection, parse_postgres
from migrator.errors import MigratorError, SourceError, TargetError
from migrator.redact import url_passwords

APPLICATION_NAME = "migrator"
# Values go in and come out as the source reader gives them: timestamps in UTC (a timestamp
# without time zone holds the UTC wall clock: docs/architecture.md, "Tables as collections").
SESSION = "SET TimeZone = 'UTC'; SET synchronous_commit = on"


def classify(exc: psycopg.Error, endpoint: str, secrets: tuple[str, ...]) -> MigratorError:
    """A psycopg error on the target, typed by SQLSTATE: the source's classification, with what
    it would call a source error called a target error."""
    error = classify_source(exc, endpoint, secrets)
    if type(error) is SourceError:
        return TargetError(error.message, hint=error.hint).caused_by(exc, exc.sqlstate)
    return error


class TargetEndpoint:
    """A target URL held in memory; only `.name` (no password) is ever shown."""

    def __init__(self, url: str) -> None:
        self._url = url
        try:
            parse_postgres(url)
            params = conninfo.conninfo_to_dict(url)
        except (MalformedConnection, psycopg.ProgrammingError) as exc:
            reason = str(exc) if isinstance(exc, MalformedConnection) else "libpq cannot parse it"
            raise TargetError(
                f"the target URL is not a valid PostgreSQL connection string: {reason}",
                hint="write it as postgresql://user:password@host:port/database (percent-encode "
                "'@', '/', '?', '#', '%' in the password)",
            ) from None
        self.secrets = url_passwords(url)
        host = params.get("host") or "localhost"
        port = params.get("port") or "5432"
        user = params.get("user")
        self.database = str(params.get("dbname") or user or "")
        who = f"{user}@" if user else ""
        self.name = f"postgresql://{who}{host}:{port}/{self.database}"

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {"application_name": APPLICATION_NAME, "connect_timeout": 10}
        given = conninfo.conninfo_to_dict(self._url)
        options = {k: v for k, v in options.items() if k not in given}
        try:
            conn = psycopg.connect(self._url, autocommit=True, **options)
            conn.execute(SESSION)
            conn.autocommit = autocommit
        except psycopg.Error as exc:
            raise classify(exc, self.name, self.secrets) from None
        return conn

    def __repr__(self) -> str:
        return f"TargetEndpoint({self.name!r})"


class Connections:
    """One connection a thread (the snapshot's copy workers write in parallel), each in
    autocommit mode with explicit transactions, closed together; and the target tables as their
    catalog describes them, read once."""

    def __init__(self, endpoint: TargetEndpoint) -> None:
        self.endpoint = endpoint
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[psycopg.Connection[Any]] = []
        self._tables: dict[str, TargetTable] = {}

    def mine(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self.endpoint.connect()
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
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

    def discard(self) -> None:
        """Close this thread's connection (after an error: the next use opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, []
        for conn in opened:
            conn.close()
