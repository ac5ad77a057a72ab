"""MySQL/MariaDB errors classified by their error number (errno), never by message text.

Numbers below 2000 are the server's (ER_*), 2000 and above the client library's (CR_*), as PyMySQL
raises them: `exc.args == (errno, message)`. Every message names the endpoint, never the password.
"""

from __future__ import annotations

from typing import Any

import pymysql

from migrator.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DatabaseNotFound,
    MigratorError,
    SourceError,
    TransientError,
)
from migrator.redact import redact_text

_REACH_HINT = "check that the server runs and the host and port"

# The connection is gone or was never made (CR_CONNECTION_ERROR 2002, CR_CONN_HOST_ERROR 2003,
# CR_UNKNOWN_HOST 2005, CR_SERVER_GONE_ERROR 2006, CR_SERVER_LOST 2013, CR_SERVER_LOST_EXTENDED
# 2055), or the server refuses connections for now: too many (1040, per user 1203), shutting down
# (1053), the connection killed (1927 MariaDB ER_CONNECTION_KILLED), a packet lost (1158-1161).
CONNECTION_LOST = frozenset(
    {2002, 2003, 2005, 2006, 2013, 2055, 1040, 1203, 1053, 1927, 1158, 1159, 1160, 1161}
)
# The statement failed for the moment: lock wait timeout (1205), deadlock (1213), interrupted
# (1317), statement time limit (MySQL 3024, MariaDB 1969).
RETRY_STATEMENT = frozenset({1205, 1213, 1317, 3024, 1969})
# The user may not do what was asked: a table (1142), a column (1143), a routine (1370), a
# global privilege (1227), a database (1044).
PRIVILEGE = frozenset({1142, 1143, 1227, 1370, 1044})
ACCESS_DENIED = frozenset({1045, 1698})  # wrong user or password; no password for a socket login
UNKNOWN_DATABASE = 1049
# The binlog position asked for cannot be read (ER_MASTER_FATAL_ERROR_READING_BINLOG): purged, or
# never written. Never a silent restart (docs/architecture.md, "MySQL and MariaDB sources").
BINLOG_UNREADABLE = 1236


def errno_of(exc: BaseException) -> int | None:
    """The MySQL error number a PyMySQL error carries, or None."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) and args[0] > 0 else None


def classify(exc: BaseException, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    """Turn a PyMySQL error into a typed migrator error that names `endpoint`, not the password;
    it carries the errno and the driver's class (`code`, `cause`) for the run's error record."""
    return _classify(exc, endpoint, secrets).caused_by(exc, errno_of(exc))


def _classify(exc: BaseException, endpoint: str, secrets: tuple[str, ...]) -> MigratorError:
    errno = errno_of(exc)
    reason = redact_text(_reason(exc), secrets)
    if errno is None:
        if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError | OSError):
            # No number: the link broke, or the connection was already closed.
            return ConnectionFailed(endpoint, reason, hint=_REACH_HINT)
        return SourceError(f"{endpoint}: {reason}")
    said = f"{reason} (error {errno})"
    if errno in CONNECTION_LOST:
        return ConnectionFailed(endpoint, said, hint=_REACH_HINT if errno >= 2000 else None)
    if errno in RETRY_STATEMENT:
        return TransientError(f"{endpoint}: {said}")
    if errno in ACCESS_DENIED:
        return AuthenticationFailed(
            endpoint,
            said,
            hint="check the user name and the password in the source URL (percent-encoded: %40 for '@'), "
            "and that the user may connect from this host",
        )
    if errno in PRIVILEGE:
        return AuthenticationFailed(
            endpoint,
            f"insufficient privilege: {said}",
            hint="GRANT the user the privilege named, or use a user that has it",
        )
    if errno == UNKNOWN_DATABASE:
        return DatabaseNotFound(f"{endpoint}: {said}", hint="check the database name in the source URL")
    if errno == BINLOG_UNREADABLE:
        return SourceError(
            f"{endpoint}: the binlog cannot be read from the position the run needs: {said}",
            hint="the binlog files holding it were purged (or never written): the changes since are lost to "
            "this run; start again from a new snapshot (`migrator rollback --to start`, then `migrator run`) "
            "and keep binlogs longer (SET GLOBAL binlog_expire_logs_seconds = ...)",
        )
    return SourceError(f"{endpoint}: {said}")


def _reason(exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    text = str(args[1]) if len(args) > 1 else str(exc)
    text = text.strip()
    return text.splitlines()[0] if text else type(exc).__name__
