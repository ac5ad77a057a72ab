"""Typed errors. Every error the library raises is a MigratorError.

Two marker classes decide what a caller may do next: a TransientError may succeed
if retried (connection lost, server restarting); a TerminalError will not (bad plan,
failed preflight, authentication refused). Errors are classified by SQLSTATE or
server error code where a server is involved, never by message text.
"""

from __future__ import annotations

from dataclasses import dataclass


class MigratorError(Exception):
    """Base of every error raised by migrator.

    `hint` says how to fix the problem, in a sentence an operator can act on. `exit_code` is the
    one the CLI exits with (docs/json.md, "Exit codes"): 3, an operational failure (cannot
    connect, a database refused, the state store), unless a subclass says otherwise: 2 a usage
    error or an invalid plan, 1 checks failed.
    """

    exit_code = 3
    # What the server said, where one did: SQLSTATE or MongoDB error code, and the driver's
    # exception class (set by the adapters' classify(); kept in the run's error record).
    code: str | None = None
    cause: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def caused_by(self, exc: BaseException, code: object = None) -> MigratorError:
        """Note the driver error this one classifies (its class, and its code when it has one)."""
        self.cause = type(exc).__name__
        self.code = None if code in (None, "", 0) else str(code)
        return self

    def origin_of(self, error: MigratorError) -> MigratorError:
        """Keep the server code and driver class of `error`, which this one restates with more
        context (so the run's error record still says what the server said)."""
        self.code, self.cause = error.code, error.cause
        return self

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class TransientError(MigratorError):
    """Retrying may succeed (lost connection, server starting, serialization failure)."""


class BatchTooLarge(TransientError):
    """The target aborted a batch's transaction for its size or its duration (MongoDB aborts a
    transaction older than transactionLifetimeLimitSeconds, 60 s by default, and refuses one too
    large): the same batch would fail again, a smaller one may succeed. Its message says which."""


class TerminalError(MigratorError):
    """Retrying will not help until something is changed."""


class InternalError(TerminalError):
    """A defect of migrator itself (an unexpected exception), recorded with where it happened."""


@dataclass(frozen=True)
class PlanProblem:
    """One problem found in a plan file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" at '{self.key_path}'" if self.key_path else ""
        return f"{where}{key}: {self.message}"


class PlanError(TerminalError):
    """The plan file is unreadable, not YAML, or does not match plan format v1."""

    exit_code = 2

    def __init__(self, problems: list[PlanProblem]) -> None:
        self.problems = problems
        text = "\n".join(str(p) for p in problems)
        super().__init__(f"invalid plan:\n{text}" if len(problems) > 1 else f"invalid plan: {text}")


class UsageError(TerminalError):
    """The command's arguments name what does not exist (a table `--tables` asks for)."""

    exit_code = 2


class ChecksFailed(TerminalError):
    """A check the command exists to make failed (a gate, a final check): exit 1, as for
    differences found, never 3 (which says the check could not be made)."""

    exit_code = 1


class NoActiveRun(TerminalError):
    """The plan has no run the command could act on (`migrator run` starts one)."""

    exit_code = 1


class ConnectionFailed(TransientError):
    """An endpoint could not be reached. `endpoint` never carries a password."""

    def __init__(self, endpoint: str, reason: str, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        super().__init__(f"cannot connect to {endpoint}: {reason}", hint=hint)


class StreamLost(TransientError):
    """A source's change stream (a binlog dump) ended after it was established: the server is
    reachable, or was; CDC reconnects and resumes from its durable checkpoint. `endpoint` never
    carries a password."""

    def __init__(self, endpoint: str, stream: str, reason: str, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: the {stream} was lost after it was established: {reason}", hint=hint)


class ReadStalled(TransientError):
    """A server sent nothing for `seconds` in the middle of a read (a hung backend, a network that
    drops packets without a reset): the connection is abandoned and the read redone on a new one.
    `endpoint` never carries a password."""

    def __init__(self, endpoint: str, what: str, seconds: float, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        self.seconds = seconds
        super().__init__(f"{endpoint}: {what}: the server sent nothing for {seconds:g} s", hint=hint)


class AuthenticationFailed(TerminalError):
    """The endpoint refused the credentials or the role lacks a privilege."""

    def __init__(self, endpoint: str, reason: str, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint} refused access: {reason}", hint=hint)


class DatabaseNotFound(TerminalError):
    """The server has no database of the name the URL gives (SQLSTATE 3D000)."""


class SourceError(TerminalError):
    """The source database rejected an operation for a reason retrying will not fix."""


class TargetError(TerminalError):
    """The target database rejected an operation for a reason retrying will not fix."""


class TargetLostWrites(TargetError):
    """The target no longer holds a checkpoint (and its data) that it acknowledged as durable, and
    the source was already confirmed up to it (docs/architecture.md invariant 3)."""


class PreflightFailed(TerminalError):
    """One or more preflight checks failed; the report names each object and its fix."""

    exit_code = 1

    def __init__(self, failures: list[str], *, unreached: bool = False) -> None:
        self.failures = failures
        if unreached:  # a database could not be inspected: an operational failure, not a check
            self.exit_code = 3
        super().__init__(
            "preflight failed:\n" + "\n".join(f"  - {f}" for f in failures),
            hint="apply each failure's fix; `migrator plan PLAN` shows the whole report",
        )


class StateError(TerminalError):
    """The state store is unreadable, from a newer version, or its invariants would break."""


class ActiveRunExists(StateError):
    """A plan already has an active run; a second one would race it."""


class StateDiskFull(StateError):
    """The filesystem holding the state file is full (SQLITE_FULL, or ENOSPC from the OS). What
    the failed write would have recorded is redone on resume; nothing recorded is lost."""


class RunInUse(TerminalError):
    """Another migrator process works on the plan's run in this state file now."""


class OwnedByAnotherRun(TerminalError):
    """The target's ownership record (or the source's slots) say that another run of the plan owns
    its data: this run must not touch it."""


class FenceNotTaken(TransientError):
    """A write fence could not be taken in time (a source's locks held by running transactions):
    the cutover attempt is abandoned, nothing was held."""


class NotShownYet(TransientError):
    """A read of the source waited for transactions the change stream already delivered, and the
    source's snapshots still did not show them (a commit is written to the log before other
    sessions see it; one that waits for a synchronous standby stays unseen while it waits).
    `waited_for` names them as the source does (xids, a binlog position); the batch is applied
    again from its checkpoint."""

    def __init__(self, endpoint: str, waited_for: str, seconds: float, *, hint: str | None = None) -> None:
        self.endpoint = endpoint
        self.waited_for = waited_for
        self.seconds = seconds
        super().__init__(
            f"{endpoint}: after {seconds:g} s the source still does not show {waited_for}, whose commit "
            "its change stream delivered: embedded content is not read before it is shown",
            hint=hint,
        )
