"""MongoDB errors classified by exception class, server error code and error label, never by
message text."""

from __future__ import annotations

from typing import Any

from pymongo import errors as mongo

from migrator.errors import (
    AuthenticationFailed,
    BatchTooLarge,
    ConnectionFailed,
    MigratorError,
    TargetError,
    TransientError,
)
from migrator.redact import redact_text

# https://www.mongodb.com/docs/manual/reference/error-codes/
_AUTH_CODES = frozenset(
    {13, 18, 31, 33}
)  # Unauthorized, AuthenticationFailed, RoleNotFound, PrivilegeNotFound
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})

# A transaction the server aborted for its duration or its size: the same batch would fail again,
# a smaller one may not (docs/architecture.md, "Batches that adapt"). MongoDB aborts a transaction
# that outlives transactionLifetimeLimitSeconds (60 s by default): the statement it interrupts gets
# TransactionExceededLifetimeLimitSeconds (290; ExceededTimeLimit 262 before 4.4), a later statement
# or the commit NoSuchTransaction (251), both labelled TransientTransactionError.
_ABORTED_TRANSACTION = {
    251: "the transaction was gone when its next statement or its commit came (NoSuchTransaction): "
    "MongoDB aborts a transaction that outlives transactionLifetimeLimitSeconds (60 s by default)",
    290: "transaction lifetime limit (TransactionExceededLifetimeLimitSeconds): it outlived the target's "
    "transactionLifetimeLimitSeconds (60 s by default)",
    257: "transaction too large (TransactionTooLarge): its writes exceed what one transaction may hold",
    10334: "a result over the 16 MB BSON limit (BSONObjectTooLarge)",
}
# Anywhere: only a transaction is reaped. A size error (257, 10334) elsewhere is the document's own
# (a write over 16 MB), which retrying never mends: classify_batch() alone makes it BatchTooLarge.
_REAPED = frozenset({251, 290})
# Only inside a batch's transaction: a time limit there is the transaction's, not a busy server's.
_TIME_LIMIT = {
    50: "time limit (MaxTimeMSExpired)",
    262: "time limit (ExceededTimeLimit): MongoDB before 4.4 reports the transaction lifetime limit so",
}
_BATCH_HINT = (
    "migrator applies smaller batches and grows them back by itself; if it keeps happening, lower "
    "phases.cdc.batch_changes, or raise the target's transactionLifetimeLimitSeconds "
    "(db.adminCommand({setParameter: 1, transactionLifetimeLimitSeconds: 300}))"
)


def _cause(exc: mongo.PyMongoError) -> mongo.PyMongoError:
    """The server error behind `exc`. pymongo's ClientSession.with_transaction, once it has retried a
    transaction labelled TransientTransactionError for 120 s, raises a NetworkTimeout (a
    ConnectionFailure) made from the last server error, which it chains as the cause: that is what
    happened, not a lost connection."""
    cause = exc.__cause__
    if isinstance(exc, mongo.ConnectionFailure) and isinstance(cause, mongo.OperationFailure):
        return cause
    return exc


def _reason(exc: BaseException, secrets: tuple[str, ...]) -> str:
    return redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secrets)


def aborted_for_size(exc: mongo.PyMongoError) -> bool:
    """Whether a batch's transaction failed for its duration or size (classify_batch: BatchTooLarge)."""
    error = _cause(exc)
    return isinstance(error, mongo.OperationFailure) and (
        (error.code or 0) in _ABORTED_TRANSACTION or (error.code or 0) in _TIME_LIMIT
    )


def classify_batch(
    exc: mongo.PyMongoError, endpoint: str, *, writes: int, secrets: tuple[str, ...] = ()
) -> MigratorError:
    """An error of a batch's transaction (`writes` writes): BatchTooLarge where the server aborted
    it for its duration or size, else as classify() says."""
    error = _cause(exc)
    if aborted_for_size(error):
        assert isinstance(error, mongo.OperationFailure)
        code = error.code or 0
        what = _ABORTED_TRANSACTION.get(code) or _TIME_LIMIT[code]
        return BatchTooLarge(
            f"{endpoint} aborted the batch's transaction after {writes:,} writes: {what} (code {code})",
            hint=_BATCH_HINT,
        )
    return classify(exc, endpoint, secrets)


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
    """A pymongo error as a typed migrator error; it carries the server's error code and the
    driver's class (`code`, `cause`) for the run's error record."""
    return _classify(exc, endpoint, secrets).caused_by(exc, _code(_cause(exc)) or None)


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
    error = _cause(exc)
    first = _first_write_error(error)
    if first is not None:
        reason = redact_text(str(first.get("errmsg") or "") or type(error).__name__, secrets)
    else:
        reason = _reason(error, secrets)
    if isinstance(error, mongo.OperationFailure):
        code = _code(error)
        if code in _AUTH_CODES:
            return credentials_error(error, endpoint, secrets)
        if code in _REAPED:
            return BatchTooLarge(
                f"{endpoint} aborted a transaction: {_ABORTED_TRANSACTION[code]} (code {code})",
                hint=_BATCH_HINT,
            )
        if error.has_error_label("TransientTransactionError"):
            retried = " (retried for 2 minutes)" if error is not exc else ""
            return TransientError(
                f"{endpoint} aborted a transaction{retried}: {reason} (code {code}, TransientTransactionError)"
            )
        if code in _TRANSIENT_CODES:
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
