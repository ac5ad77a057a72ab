"""MongoDB errors classified by exception class and server error code, never by message text."""

from __future__ import annotations

from pymongo import errors as mongo

from migrator.errors import AuthenticationFailed, ConnectionFailed, MigratorError, TargetError, TransientError
from migrator.redact import redact_text

# https://www.mongodb.com/docs/manual/reference/error-codes/
_AUTH_CODES = frozenset(
    {13, 18, 31, 33}
)  # Unauthorized, AuthenticationFailed, RoleNotFound, PrivilegeNotFound
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


def classify(exc: mongo.PyMongoError, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    reason = redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)
    if isinstance(exc, mongo.OperationFailure):
        code = exc.code or 0
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
