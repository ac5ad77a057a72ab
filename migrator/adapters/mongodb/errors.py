"""MongoDB errors classified by exception class and server error code, never by message text."""

from __future__ import annotations

from typing import Any

from pymongo import errors as mongo

from migrator.errors import AuthenticationFailed, ConnectionFailed, MigratorError, TargetError, TransientError
from migrator.redact import redact_text

# https://www.mongodb.com/docs/manual/reference/error-codes/
_AUTH_CODES = frozenset(
    {13, 18, 31, 33}
)  # Unauthorized, AuthenticationFailed, RoleNotFound, PrivilegeNotFound
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


def classify(exc: mongo.PyMongoError, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    """A pymongo error as a typed migrator error; it carries the server's error code and the
    driver's class (`code`, `cause`) for the run's error record."""
    return _classify(exc, endpoint, secrets).caused_by(exc, _code(exc) or None)


def _first_write_error(exc: mongo.PyMongoError) -> dict[str, Any] | None:
    """A bulk write's first failed write: a BulkWriteError's own code (65) only says "some
    writes failed"; the write's code (11000 for a duplicate key, ...) says what happened."""
    if not isinstance(exc, mongo.BulkWriteError):
        return None
    details = exc.details or {}
    errors = details.get("writeErrors") or details.get("writeConcernErrors") or []
    return errors[0] if errors and isinstance(errors[0], dict) else None


def _code(exc: mongo.PyMongoError) -> int:
    first = _first_write_error(exc)
    if first is not None and isinstance(first.get("code"), int):
        return int(first["code"])
    return (exc.code or 0) if isinstance(exc, mongo.OperationFailure) else 0


def _classify(exc: mongo.PyMongoError, endpoint: str, secrets: tuple[str, ...]) -> MigratorError:
    first = _first_write_error(exc)
    text = (
        str(first.get("errmsg") or "") if first is not None else str(exc).splitlines()[0] if str(exc) else ""
    )
    reason = redact_text(text or type(exc).__name__, secrets)
    if isinstance(exc, mongo.OperationFailure):
        code = _code(exc)
        if code in _AUTH_CODES:
            return AuthenticationFailed(endpoint, f"{reason} (code {code})")
        if code in _TRANSIENT_CODES or exc.has_error_label("TransientTransactionError"):
            return TransientError(f"{endpoint}: {reason} (code {code})")
        return TargetError(f"{endpoint}: {reason} (code {code})")
    if isinstance(exc, mongo.ConfigurationError | mongo.InvalidURI):
        return TargetError(
            f"the target URL is not usable ({endpoint}): {reason}",
            hint="write it as mongodb://user:password@host:port/?replicaSet=... (or directConnection=true)",
        )
    if isinstance(exc, mongo.ConnectionFailure):
        return ConnectionFailed(endpoint, reason, hint="check that the server runs and the host and port")
    return TargetError(f"{endpoint}: {reason}")
