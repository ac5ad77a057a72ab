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

# -- credentials and privileges (issue 17, defect 13) ------------------------------------------------
# A refused login or a missing privilege is terminal and says which, naming the endpoint (user and
# host, never the password) and the server's own message, not pymongo's dump of the reply.
_CREDENTIAL_HINTS = {
    18: "check the user name and password in the target URL (percent-encoded: %40 for '@', %3A for ':') "
    "and authSource=, the database the user was created in (admin unless the URL names another)",
    13: "grant the user readWrite on the target database (and read on `local` for change streams), or "
    "put a user that has them in the target URL",
    31: "create the role named, or grant the user an existing one",
    33: "grant the privilege named, or use a user that has it",
}
_CREDENTIAL_WHAT = {
    18: "authentication failed",
    13: "not authorized",
    31: "role not found",
    33: "privilege not found",
}


def credentials_error(
    error: mongo.OperationFailure, endpoint: str, secrets: tuple[str, ...]
) -> MigratorError:
    """AuthenticationFailed for a server error of _AUTH_CODES, with a hint that fits the code."""
    code = error.code or 0
    details = error.details or {}
    server_says = details.get("errmsg") if isinstance(details.get("errmsg"), str) else None
    reason = redact_text(server_says or type(error).__name__, secrets)
    what = _CREDENTIAL_WHAT.get(code, "access refused")
    return AuthenticationFailed(endpoint, f"{what}: {reason} (code {code})", hint=_CREDENTIAL_HINTS.get(code))


# ----------------------------------------------------------------------------------------------------


def classify(exc: mongo.PyMongoError, endpoint: str, secrets: tuple[str, ...] = ()) -> MigratorError:
    reason = redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)
    if isinstance(exc, mongo.OperationFailure):
        code = exc.code or 0
        if code in _AUTH_CODES:
            return credentials_error(exc, endpoint, secrets)
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
    # Whatever else pymongo raises keeps its class name: "target: int" alone said nothing.
    return TargetError(f"{endpoint}: {type(exc).__name__}: {reason}")
