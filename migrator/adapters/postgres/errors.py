"""PostgreSQL errors classified by SQLSTATE (or, for a failed connection, by what the server
says when asked), never by message text."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import conninfo, pq

from migrator.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DatabaseNotFound,
    MigratorError,
    SourceError,
    TransientError,
)
from migrator.redact import redact_text

# SQLSTATE classes and codes after which the same statement may succeed.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "58"})
_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "55P03", "57014"})
CONFIGURATION_LIMIT_EXCEEDED = "53400"  # terminal although class 53 (below)
_LIMIT_HINT = (
    "a limit in the server's configuration is reached (the message names it): free what holds it "
    "(SELECT slot_name, active FROM pg_replication_slots; SELECT external_id FROM "
    "pg_replication_origin_status) or raise the setting (ALTER SYSTEM SET max_replication_slots = N; "
    "then restart the server), and run again"
)
_REACH_HINT = "check that the server runs and the host and port"
# Where a connection that failed is diagnosed from (docs/architecture.md, "Connection failures").
_MAINTENANCE_DATABASES = ("postgres", "template1")


def classify(exc: psycopg.Error, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    """Turn a psycopg error into a typed migrator error that names the endpoint, not the password;
    it carries the SQLSTATE and the driver's class (`code`, `cause`) for the run's error record."""
    return _classify(exc, endpoint, secrets).caused_by(exc, exc.sqlstate)


def _classify(exc: psycopg.Error, endpoint: str, secrets: tuple[str, ...]) -> MigratorError:
    state = exc.sqlstate
    reason = redact_text(_first_line(exc), secrets)
    if state is None:
        if isinstance(exc, psycopg.OperationalError):
            # No SQLSTATE: the server was never reached (refused, DNS, timeout) or the link broke.
            return ConnectionFailed(endpoint, reason, hint=_REACH_HINT)
        return SourceError(f"{endpoint}: {reason}")
    return _by_sqlstate(state, reason, endpoint)


def _by_sqlstate(state: str, reason: str, endpoint: str) -> MigratorError:
    # https://www.postgresql.org/docs/current/errcodes-appendix.html
    if state == "28P01":
        return AuthenticationFailed(
            endpoint,
            f"password authentication failed: {reason} (SQLSTATE {state})",
            hint="check the password in the source URL (percent-encoded) against the role's "
            "(ALTER ROLE ... PASSWORD sets it)",
        )
    if state[:2] == "28":
        return AuthenticationFailed(
            endpoint,
            f"{reason} (SQLSTATE {state})",
            hint="check the user name, and that pg_hba.conf lets it connect from this host",
        )
    if state == "42501":
        return AuthenticationFailed(
            endpoint,
            f"insufficient privilege: {reason} (SQLSTATE {state})",
            hint="grant the role the privilege named, or use a role that has it",
        )
    if state == "3D000":
        return DatabaseNotFound(
            f"{endpoint}: {reason} (SQLSTATE {state})", hint="check the database name in the URL"
        )
    if state == CONFIGURATION_LIMIT_EXCEEDED:
        # A server limit set in its configuration (max_replication_slots for slots and origins):
        # waiting does not lift it, so retrying only delays the error (terminal).
        return SourceError(f"{endpoint}: {reason} (SQLSTATE {state})", hint=_LIMIT_HINT)
    if state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES:
        if state[:2] == "08":
            return ConnectionFailed(endpoint, f"{reason} (SQLSTATE {state})")
        return TransientError(f"{endpoint}: {reason} (SQLSTATE {state})")
    return SourceError(f"{endpoint}: {reason} (SQLSTATE {state})")


def classify_connect(
    exc: psycopg.Error, url: str, endpoint: str, secrets: tuple[str, ...], options: dict[str, Any]
) -> MigratorError:
    """A failed connection attempt, typed by asking the server what went wrong.

    psycopg raises connection failures without a SQLSTATE (the server's error arrives during the
    startup handshake, where libpq keeps only its text), so they cannot be told apart by code.
    libpq's own signals can: PQping says whether a server answers at all, `needs_password` /
    `used_password` whether it asked for a password, and a second connection to a maintenance
    database with the same credentials tells credentials (28P01 / 28000) from a database that is
    missing (3D000) or closed to the role (42501)."""
    if exc.sqlstate is not None or not isinstance(exc, psycopg.OperationalError):
        return classify(exc, endpoint, secrets)
    reason = redact_text(_first_line(exc), secrets)
    params = conninfo.conninfo_to_dict(url, **{k: v for k, v in options.items() if k == "connect_timeout"})
    who, where = str(params.get("user") or "(the default user)"), _hostport(params)
    ping = pq.PGconn.ping(conninfo.make_conninfo("", **params).encode())
    if ping == pq.Ping.REJECT:
        return ConnectionFailed(
            endpoint,
            f"the server at {where} does not accept connections now (starting, stopping or recovering)",
            hint="wait until it has started; migrator retries",
        )
    if ping != pq.Ping.OK:
        return ConnectionFailed(endpoint, reason, hint=_REACH_HINT)
    pgconn = exc.pgconn
    if pgconn is not None and pgconn.needs_password:
        return AuthenticationFailed(
            endpoint,
            f"authentication failed for user {who} at {where}: the server asks for a password and "
            "the source URL gives none",
            hint="put the password in the source URL (postgresql://user:PASSWORD@host/db, percent-encoded) "
            "or in ~/.pgpass",
        )
    database = str(params.get("dbname") or who)
    probe = _probe(params, database)
    if isinstance(probe, psycopg.Error):
        if probe.pgconn is not None and probe.pgconn.used_password:
            return AuthenticationFailed(
                endpoint,
                f"password authentication failed for user {who} at {where} (SQLSTATE 28P01)",
                hint="check the password in the source URL (percent-encoded: %40 for '@') against the "
                f"role's; ALTER ROLE {who} PASSWORD '...' sets it (a role or server at its connection "
                "limit refuses after the password and looks the same here)",
            )
        return AuthenticationFailed(
            endpoint,
            f"authentication failed for user {who} at {where} (SQLSTATE 28000)",
            hint=f"check that role {who} exists and may log in (and its password), and that pg_hba.conf "
            "lets it connect from this host",
        )
    if probe == "missing":
        return DatabaseNotFound(
            f"database {database} does not exist at {where} (SQLSTATE 3D000)",
            hint="check the database name in the source URL",
        )
    if probe == "denied":
        return AuthenticationFailed(
            endpoint,
            f"user {who} may not connect to database {database} at {where} (SQLSTATE 42501)",
            hint=f"GRANT CONNECT ON DATABASE {database} TO {who}",
        )
    if probe == "closed":
        return SourceError(
            f"database {database} at {where} does not allow connections (datallowconn is false)",
            hint=f"ALTER DATABASE {database} ALLOW_CONNECTIONS true",
        )
    # The credentials work and the database admits the role: a limit (too many connections)
    # or a server going down; worth retrying.
    return ConnectionFailed(endpoint, reason)


def _probe(params: dict[str, Any], database: str) -> str | psycopg.Error:
    """Connect with the same credentials to a maintenance database and look `database` up:
    'missing', 'denied' (no CONNECT privilege), 'closed' (datallowconn false), 'ok'; or the
    error of the last attempt when no maintenance database admits the credentials."""
    error: psycopg.Error | None = None
    for maintenance in _MAINTENANCE_DATABASES:
        try:
            with psycopg.connect(**{**params, "dbname": maintenance}, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT has_database_privilege(oid, 'CONNECT'), datallowconn FROM pg_database"
                    " WHERE datname = %s",
                    (database,),
                ).fetchone()
        except psycopg.Error as exc:
            error = exc
            continue
        if row is None:
            return "missing"
        return "denied" if not row[0] else "closed" if not row[1] else "ok"
    assert error is not None
    return error


def _hostport(params: dict[str, Any]) -> str:
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    return f"{host}:{params.get('port') or 5432}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
