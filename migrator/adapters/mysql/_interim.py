"""A minimal endpoint and error classification for the snapshot's readers, until connection.py
(MysqlEndpoint) and errors.py (classify by errno) of the inspection section replace them: the
readers only use `name`, `secrets`, `connect()` and `classify()`.

Errors are classified by the server's errno (or the client's, for a lost link), never by text.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from migrator.errors import ConnectionFailed, MigratorError, SourceError, TransientError
from migrator.redact import redact_text

# Client errnos of a link that broke or never formed (CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR,
# CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED): a reconnect may succeed.
_LINK_LOST = frozenset({2002, 2003, 2006, 2013, 2055})
# Server errnos after which the same statement may succeed: too many connections (1040),
# lock wait timeout (1205), deadlock (1213), query interrupted by a shutdown (1053, 1927).
_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1927})


def errno_of(exc: BaseException) -> int | None:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return args[0] if args and isinstance(args[0], int) else None


def classify(exc: pymysql.MySQLError, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    """A PyMySQL error as a typed migrator error naming the endpoint, never the password."""
    errno = errno_of(exc)
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    reason = redact_text(str(args[1]) if len(args) > 1 else type(exc).__name__, secrets)
    error: MigratorError
    if errno in _LINK_LOST:
        error = ConnectionFailed(endpoint, reason)
    elif errno in _TRANSIENT:
        error = TransientError(f"{endpoint}: {reason}")
    else:
        error = SourceError(f"{endpoint}: {reason}")
    return error.caused_by(exc, errno)


class Endpoint:
    """A mysql:// URL held in memory; only `.name` (no password) is ever shown."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 3306
        self._user = unquote(parts.username or "root")
        self._password = unquote(parts.password or "")
        self.database = parts.path.lstrip("/") or None
        # migrator/connstr.py does not parse mysql:// yet (url_passwords would take every word of
        # the URL for a secret): the password, as written and decoded.
        self.secrets = tuple(dict.fromkeys(p for p in (parts.password, self._password) if p))
        self.name = f"mysql://{self._user}@{self._host}:{self._port}/{self.database or ''}"

    def connect(self, *, cursorclass: Any = None) -> pymysql.connections.Connection[Any]:
        try:
            return pymysql.connect(
                host=self._host,
                port=self._port,
                user=self._user,
                password=self._password,
                database=self.database,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=10,
                # UTC, so that TIMESTAMP values and comparisons are in UTC (values.py).
                init_command="SET time_zone = '+00:00'",
                **({"cursorclass": cursorclass} if cursorclass is not None else {}),
            )
        except pymysql.MySQLError as exc:
            raise classify(exc, self.name, self.secrets) from None

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r})"
