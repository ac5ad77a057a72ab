"""The binlog section's own connections and error classes: a stopgap until the adapter's
connection.py (MysqlEndpoint) and errors.py (classify by errno) are merged, which replace it
(docs/architecture.md, "MySQL and MariaDB sources").

Errors are classified by the server's errno (or PyMySQL's client errno), never by message text;
no message carries the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from migrator.errors import ConnectionFailed, MigratorError, SourceError, TerminalError
from migrator.redact import url_passwords

# Client-side (CR_*) and server errnos a retry may get past: the connection is gone, the server
# is starting or stopping, a lock or deadlock, too many connections, a replica id taken by a
# connection the server has not noticed is dead yet.
TRANSIENT_ERRNOS = frozenset(
    {
        2002,  # CR_CONNECTION_ERROR
        2003,  # CR_CONN_HOST_ERROR
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
        2055,  # CR_SERVER_LOST_EXTENDED
        1040,  # ER_CON_COUNT_ERROR
        1053,  # ER_SERVER_SHUTDOWN
        1205,  # ER_LOCK_WAIT_TIMEOUT
        1213,  # ER_LOCK_DEADLOCK
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        4052,  # ER_SLAVE_SAME_ID (MariaDB): a replica with this server_id is still connected
    }
)
AUTH_ERRNOS = frozenset({1044, 1045, 1227, 1698})  # access denied, missing privilege
BINLOG_UNAVAILABLE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, or not a binlog position


def errno_of(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def classify(exc: BaseException, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    """A PyMySQL error as a typed one: transient or terminal by errno."""
    code = errno_of(exc)
    text = str(exc.args[1]) if len(getattr(exc, "args", ())) > 1 else type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    error: MigratorError
    if code in TRANSIENT_ERRNOS or (code is None and isinstance(exc, OSError)):
        error = ConnectionFailed(endpoint, f"{text} (errno {code})")
    elif code in AUTH_ERRNOS:
        error = TerminalError(
            f"{endpoint}: {text} (errno {code})",
            hint="grant the migrator user REPLICATION SLAVE, REPLICATION CLIENT (BINLOG MONITOR on MariaDB) "
            "and SELECT on the mapped tables",
        )
    else:
        error = SourceError(f"{endpoint}: {text} (errno {code})")
    return error.caused_by(exc, code)


class BinlogEndpoint:
    """A mysql:// URL held in memory; only `.name` (no password) is ever shown."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise SourceError(
                "the source URL is not a mysql:// URL", hint="write mysql://user:password@host:port/db"
            )
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 3306
        self.user = unquote(parts.username or "root")
        self._password = unquote(parts.password or "")
        self.database = unquote(parts.path.lstrip("/"))
        self.secrets = url_passwords(url)
        self.name = f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"

    def settings(self) -> dict[str, Any]:
        """PyMySQL keyword arguments (also what mysql-replication takes as connection_settings)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self._password,
            "charset": "utf8mb4",
            "connect_timeout": 10,
        }

    def connect(self, **options: Any) -> pymysql.connections.Connection[Any]:
        settings = {**self.settings(), "autocommit": True, "database": self.database or None, **options}
        try:
            conn = pymysql.connect(**settings)
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
        except pymysql.Error as exc:
            raise classify(exc, self.name, self.secrets) from None
        return conn

    def query(self, conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.Error as exc:
            raise classify(exc, self.name, self.secrets) from None

    def __repr__(self) -> str:
        return f"BinlogEndpoint({self.name!r})"
