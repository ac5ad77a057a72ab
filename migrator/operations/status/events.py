"""The sections of `migrator status` read from the run's event log: recent errors and warnings,
the last verify report, live throttling, the write freezes, and whether the last `migrator run`
ended. Text that may quote a server goes through `clean` (no password)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from migrator.engine.events import (
    RunFinished,
    RunStarted,
    Throttled,
    ThrottleLifted,
    VerifyFinished,
    WriteFreeze,
)
from migrator.engine.throttle import CHUNK_ROWS, MAX_LAG, PAUSED
from migrator.operations.status.report import ErrorInfo, ThrottleStatus, VerifyInfo, WarningInfo
from migrator.operations.status.times import iso, now
from migrator.plan.models import Plan
from migrator.state import EventRecord, RunRecord, StateStore

VERIFY_EVENT = VerifyFinished.kind
RECENT_ERRORS = 10
RECENT_WARNINGS = 5

Clean = Callable[[str], str]


def unfinished(events: Sequence[EventRecord]) -> bool:
    """Whether the last `migrator run` of these events started and recorded no end."""
    ends = [e.kind for e in events if e.kind in (RunStarted.kind, RunFinished.kind)]
    return bool(ends) and ends[-1] == RunStarted.kind


def freezes(events: Sequence[EventRecord]) -> dict[str, float]:
    """The last write freeze of each direction, in ms."""
    found: dict[str, float] = {}
    for e in events:
        if e.kind == WriteFreeze.kind:
            found[str(e.payload.get("direction"))] = float(e.payload.get("freeze_ms") or 0.0)
    return found


def throttle_status(
    plan: Plan, store: StateStore, run: RunRecord, events: Sequence[EventRecord], clean: Clean
) -> ThrottleStatus:
    controls = store.controls(run.id)
    values = {c.name: c.value for c in controls}
    held = 0.0
    current: EventRecord | None = None
    for event in events:
        if event.kind == ThrottleLifted.kind:
            held += float(event.payload.get("seconds") or 0.0)
            current = None
        elif event.kind == Throttled.kind:
            current = event
        elif event.kind in (RunStarted.kind, RunFinished.kind):
            current = None  # a run that ended (or died) while throttled holds nothing now
    since: datetime.datetime | None = None
    if current is not None:
        since = datetime.datetime.fromtimestamp(float(current.payload.get("since") or 0.0), datetime.UTC)
        held += max(0.0, (now() - since).total_seconds())
    chunk_rows, max_lag = values.get(CHUNK_ROWS), values.get(MAX_LAG)
    return ThrottleStatus(
        throttled=current is not None,
        phase=None if current is None else str(current.payload.get("phase")),
        since=None if since is None else iso(since),
        reasons=[clean(str(r)) for r in (current.payload.get("reasons", []) if current else [])],
        throttled_seconds=round(held, 3),
        paused=bool(values.get(PAUSED, False)),
        chunk_rows=None if chunk_rows is None else int(chunk_rows),
        max_lag_seconds=None if max_lag is None else float(max_lag),
        controls_updated_at=max((c.updated_at for c in controls), default=None),
        file=plan.phases.throttle.file,
    )


def errors(events: Sequence[EventRecord], clean: Clean) -> list[ErrorInfo]:
    found = [e for e in events if e.kind == "error"][-RECENT_ERRORS:]
    return [
        ErrorInfo(
            seq=e.seq,
            at=e.ts,
            phase=e.payload.get("phase"),
            error=str(e.payload.get("error", "")),
            message=clean(str(e.payload.get("message", ""))),
            retrying=bool(e.payload.get("retrying", False)),
            hint=None if e.payload.get("hint") is None else clean(str(e.payload["hint"])),
            code=None if e.payload.get("code") is None else str(e.payload["code"]),
            cause=None if e.payload.get("cause") is None else str(e.payload["cause"]),
        )
        for e in reversed(found)
    ]


def last_verify(events: Sequence[EventRecord]) -> VerifyInfo | None:
    for event in reversed(events):
        if event.kind == VERIFY_EVENT and isinstance(event.payload.get("report"), dict):
            return VerifyInfo(event.seq, event.ts, event.payload["report"])
    return None


def warnings(events: Sequence[EventRecord], clean: Clean) -> list[WarningInfo]:
    found = [e for e in events if e.kind == "notice" and e.payload.get("level") == "warn"][-RECENT_WARNINGS:]
    return [WarningInfo(e.seq, e.ts, clean(str(e.payload.get("message", "")))) for e in reversed(found)]
