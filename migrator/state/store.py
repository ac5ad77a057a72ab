"""What every state store offers, and the records it hands back.

A state store remembers runs, their phases, chunk progress, checkpoints and an
append-only event log, so that a crashed run resumes instead of starting over and a
rollback knows where to go back to. Backends (SQLite now, PostgreSQL for shared
workers later) implement `StateStore`; callers never see a backend's types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

from migrator.errors import StateError
from migrator.redact import MASK, redact_text

RunStatus = Literal["active", "succeeded", "failed", "rolled_back", "abandoned"]
PhaseStatus = Literal["pending", "running", "done", "failed", "rolled_back"]
ChunkStatus = Literal["pending", "running", "done", "failed"]

RUN_STATUSES: frozenset[str] = frozenset({"active", "succeeded", "failed", "rolled_back", "abandoned"})
FINAL_RUN_STATUSES: frozenset[str] = RUN_STATUSES - {"active"}
PHASE_STATUSES: frozenset[str] = frozenset({"pending", "running", "done", "failed", "rolled_back"})
CHUNK_STATUSES: frozenset[str] = frozenset({"pending", "running", "done", "failed"})

# A failed run may still be rolled back or given up on afterwards; every other final
# status is the end of the story.
RUN_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "active": FINAL_RUN_STATUSES,
    "failed": frozenset({"rolled_back", "abandoned"}),
}


@dataclass(frozen=True)
class RunRecord:
    id: str
    plan_name: str
    plan_digest: str
    status: RunStatus
    phase: str | None
    started_at: str
    ended_at: str | None
    # The run's replication slot (plan/names.py): its name carries the run, except for runs
    # begun before it did, whose slot is named after the plan.
    slot: str = ""


@dataclass(frozen=True)
class PhaseRecord:
    run_id: str
    name: str
    status: PhaseStatus
    started_at: str | None
    ended_at: str | None


@dataclass(frozen=True)
class ChunkRecord:
    """Progress of one key range of one source table. `lo`/`hi` are decoded JSON; None is unbounded."""

    run_id: str
    table: str
    chunk_id: int
    lo: Any
    hi: Any
    status: ChunkStatus
    rows_read: int
    docs_written: int
    attempts: int
    updated_at: str


@dataclass(frozen=True)
class CheckpointRecord:
    """A durable resume point. `position` is opaque to the store (an LSN, a resume token as JSON)."""

    id: int
    run_id: str
    phase: str
    label: str
    position: str
    created_at: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class ControlRecord:
    """A run-time control of a run (`migrator throttle`): `value` is decoded JSON."""

    run_id: str
    name: str
    value: Any
    updated_at: str


@dataclass(frozen=True)
class EventRecord:
    seq: int
    run_id: str | None
    ts: str
    kind: str
    payload: dict[str, Any]


@runtime_checkable
class StateStore(Protocol):
    """Durable memory of runs. Every method is safe to call from several threads."""

    def begin_run(
        self, plan_name: str, plan_digest: str, *, run_id: str | None = None, slot: str | None = None
    ) -> RunRecord:
        """Start a run (`run_id`: a new one by default; `slot`: its replication slot's name);
        raises ActiveRunExists when the plan already has an active run."""
        ...

    def hold(self, plan_name: str, command: str) -> None:
        """Take the plan's lease until close(): only one process works on a plan's run in one
        state file at a time; raises RunInUse naming the one that holds it."""
        ...

    def active_run(self, plan_name: str) -> RunRecord | None: ...

    def get_run(self, run_id: str) -> RunRecord: ...

    def runs(self, plan_name: str | None = None) -> list[RunRecord]: ...

    def finish_run(self, run_id: str, status: RunStatus) -> RunRecord: ...

    def set_plan_digest(self, run_id: str, plan_digest: str) -> None:
        """Record the run's plan digest anew (an older digest version upgraded on resume)."""
        ...

    def set_phase(self, run_id: str, phase: str, status: PhaseStatus) -> PhaseRecord: ...

    def phases(self, run_id: str) -> list[PhaseRecord]: ...

    def record_chunk(
        self,
        run_id: str,
        table: str,
        chunk_id: int,
        *,
        lo: Any,
        hi: Any,
        status: ChunkStatus,
        rows_read: int = 0,
        docs_written: int = 0,
        attempts: int = 0,
    ) -> ChunkRecord: ...

    def chunks(self, run_id: str, table: str | None = None) -> list[ChunkRecord]: ...

    def add_checkpoint(
        self,
        run_id: str,
        phase: str,
        label: str,
        position: str,
        detail: Mapping[str, Any] | None = None,
    ) -> CheckpointRecord: ...

    def checkpoints(self, run_id: str, phase: str | None = None) -> list[CheckpointRecord]: ...

    def latest_checkpoint(self, run_id: str, phase: str) -> CheckpointRecord | None: ...

    def append_event(
        self, run_id: str | None, kind: str, payload: Mapping[str, Any] | None = None
    ) -> EventRecord: ...

    def events(
        self, run_id: str | None = None, since_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]: ...

    def set_controls(self, run_id: str, values: Mapping[str, Any]) -> list[ControlRecord]:
        """Set run-time controls of a run in one transaction; a value of None removes the
        control (back to the plan's setting). Returns every control the run has now."""
        ...

    def controls(self, run_id: str) -> list[ControlRecord]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


# Keys that name a secret. A resume token is a stream position, not a credential, so
# it is let through; everything else spelled like a token is assumed to be one.
_SECRET_KEY = re.compile(r"password|passwd|secret|token")
_NOT_SECRET_KEY = re.compile(r"resumetoken$")


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret (password, api_token, clientSecret, ...)."""
    squashed = re.sub(r"[^a-z0-9]", "", key.lower())
    if _NOT_SECRET_KEY.search(squashed):
        return False
    return squashed == "pwd" or _SECRET_KEY.search(squashed) is not None


def _sanitize(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        clean: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StateError(f"cannot store {path}: key {key!r} is not a string")
            # Refuse rather than mask: redact_text recognises a secret only by its shape
            # (a URL's userinfo, password=...), and a bare value under a key named
            # "password" has none. A caller that puts a credential here has a bug that
            # probably leaks it elsewhere too (logs, the runbook), so it must fail loudly
            # in tests instead of being quietly tidied up on the way to disk.
            if is_secret_key(key) and item != MASK:
                raise StateError(
                    f"refusing to store {path}.{key}: the key names a secret and its value is not masked",
                    hint=f"replace the value with {MASK!r} (migrator.redact) before recording it",
                )
            clean[redact_text(key)] = _sanitize(item, f"{path}.{key}")
        return clean
    if isinstance(value, list | tuple):
        return [_sanitize(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise StateError(f"cannot store {path}: {type(value).__name__} is not a JSON value")


def encode_document(value: Mapping[str, Any] | None, what: str) -> str:
    """Redact, check and serialise an event payload or checkpoint detail to JSON text."""
    clean = _sanitize(dict(value or {}), what)
    try:
        return json.dumps(clean, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:  # NaN or infinity: not JSON, would not read back elsewhere
        raise StateError(f"cannot store {what}: {exc}") from None


def encode_key(value: Any, what: str) -> str:
    """Serialise a chunk bound. Keys are source data: they are stored as given, never redacted."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StateError(
            f"cannot store {what}: {exc}",
            hint="encode key values as JSON types (str, int, float, bool, None, lists) first",
        ) from None
