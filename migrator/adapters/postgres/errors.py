"""PostgreSQL errors classified by SQLSTATE, never by message text."""

from __future__ import annotations

import psycopg

from migrator.errors import AuthenticationFailed, ConnectionFailed, MigratorError, SourceError, TransientError
from migrator.redact import redact_text

# SQLSTATE classes and codes after which the same statement may succeed.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "58"})
_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "55P03", "57014"})
_ACCESS_CLASSES = frozenset({"28"})
_ACCESS_CODES = frozenset({"42501"})


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
            return ConnectionFailed(endpoint, reason, hint="check that the server runs and the host and port")
        return SourceError(f"{endpoint}: {reason}")
    if state[:2] in _ACCESS_CLASSES or state in _ACCESS_CODES:
        return AuthenticationFailed(endpoint, f"{reason} (SQLSTATE {state})")
    if state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_CODES:
        if state[:2] == "08":
            return ConnectionFailed(endpoint, f"{reason} (SQLSTATE {state})")
        return TransientError(f"{endpoint}: {reason} (SQLSTATE {state})")
    if state == "3D000":
        return SourceError(
            f"{endpoint}: {reason} (SQLSTATE {state})", hint="check the database name in the URL"
        )
    return SourceError(f"{endpoint}: {reason} (SQLSTATE {state})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
