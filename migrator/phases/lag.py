"""CDC lag: the one definition that the progress line, the metrics, `migrator status`, the
throttler and the cutover gate all read (docs/architecture.md invariant 10, "Lag").

- **seconds**: now minus the source commit time of the newest durably applied transaction, or
  minus the last moment CDC had nothing unapplied (`caught_up_at`), whichever is later (no
  commit before that moment can still be waiting); 0 only while CDC is caught up. Replaying a
  backlog therefore reads as old as the changes being replayed, never 0.
- **bytes**: the source's current WAL position (pg_current_wal_lsn) minus the position known
  applied (the target's checkpoint, or the slot's confirmed position where CDC acknowledged
  more: it acknowledges only what is durable, invariant 3).

Commit times are the source's clock and "now" this machine's: both are wall clocks, as for
BatchApplied's per-transaction `lag_ms`. The CDC process measures with `LagTracker` (it knows
when it is caught up); other processes (`migrator status`) measure from the checkpoint record
the target stores with each batch (`commit_time`, `caught_up_at`) and the slot's positions, where
"caught up" can only mean that the source wrote nothing since the confirmed position.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Fields of the CDC checkpoint record (the target's `_migrator`) that lag is read from.
COMMIT_TIME = "commit_time"  # source commit time of the newest transaction the record covers
CAUGHT_UP_AT = "caught_up_at"  # the last moment before the batch that CDC had nothing unapplied


@dataclass(frozen=True)
class Lag:
    """A lag reading. None: not known (nothing applied yet, or the source not reached)."""

    seconds: float | None
    bytes: int | None
    caught_up: bool
    applied_commit_time: float | None = None  # epoch seconds, the source's clock
    caught_up_at: float | None = None  # epoch seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "bytes": self.bytes,
            "caught_up": self.caught_up,
            "applied_commit_time": _iso(self.applied_commit_time),
            "caught_up_at": _iso(self.caught_up_at),
        }


def measure(
    *,
    now: float,
    applied_commit_time: float | None,
    caught_up_at: float | None,
    caught_up: bool,
    applied_position: int | None = None,
    current_position: int | None = None,
    bytes_between: Callable[[int, int], int | None] | None = None,
) -> Lag:
    """The lag at wall time `now` (epoch s) from what is known (see the module's docstring).
    `bytes_between`: the source's distance between two positions (source.positions)."""
    lag_bytes = None
    if applied_position is not None and current_position is not None:
        lag_bytes = (
            max(0, current_position - applied_position)
            if bytes_between is None
            else bytes_between(applied_position, current_position)
        )
    since = max((t for t in (applied_commit_time, caught_up_at) if t is not None), default=None)
    if caught_up:
        seconds: float | None = 0.0
    elif since is None:
        seconds = None
    else:
        seconds = round(max(0.0, now - since), 3)
    return Lag(seconds, lag_bytes, caught_up, applied_commit_time, caught_up_at)


def from_checkpoint(
    record: dict[str, Any] | None,
    *,
    now: float,
    confirmed_position: int | None,
    current_position: int | None,
    bytes_between: Callable[[int, int], int | None] | None = None,
) -> Lag:
    """The lag as a process that does not run CDC sees it: from the target's checkpoint record
    (or the state store's mirror of it) and the slot. Caught up only when the source has written
    nothing since the position known applied; otherwise the seconds since the newest applied
    commit (an idle CDC applies its own heartbeat every `cdc.heartbeat_interval`, so that stays
    small while nothing is pending)."""
    record = record or {}
    position = record.get("position")
    applied = int(position) if position is not None else None
    if confirmed_position is not None:
        applied = confirmed_position if applied is None else max(applied, confirmed_position)
    caught_up = applied is not None and current_position is not None and current_position <= applied
    return measure(
        now=now,
        applied_commit_time=_epoch(record.get(COMMIT_TIME)),
        caught_up_at=_epoch(record.get(CAUGHT_UP_AT)),
        caught_up=caught_up,
        applied_position=applied,
        current_position=current_position,
        bytes_between=bytes_between,
    )


class LagTracker:
    """What the CDC process knows: updated by its reading thread, read by anyone (the throttler,
    the cutover). `applied` when a batch with a checkpoint is durable, `caught_up` when nothing
    read is left unapplied and the stream has nothing more for now, `behind` when a transaction
    starts being read."""

    def __init__(
        self, *, clock: Any = time.time, bytes_between: Callable[[int, int], int | None] | None = None
    ) -> None:
        self._clock = clock
        self._bytes_between = bytes_between
        self._lock = threading.Lock()
        self._commit_time: float | None = None
        self._caught_up_at: float | None = None
        self._caught_up = False
        self._position: int | None = None
        self._current: int | None = None  # the source's WAL position, last measured

    def resume(self, record: dict[str, Any] | None, *, snapshot_at: str | None = None) -> None:
        """Start from the checkpoint stored in the target (what an earlier process applied); with
        none yet, from the moment the snapshot was taken (`snapshot_at`, ISO 8601: nothing
        committed before it can be pending)."""
        if record is None:
            with self._lock:
                self._caught_up_at = _epoch(snapshot_at)
            return
        with self._lock:
            self._commit_time = _epoch(record.get(COMMIT_TIME))
            self._caught_up_at = _epoch(record.get(CAUGHT_UP_AT))
            position = record.get("position")
            self._position = int(position) if position is not None else None
            self._caught_up = False  # until this process has seen the stream run dry

    def applied(self, position: int, commit_time: float | None) -> None:
        with self._lock:
            self._position = max(position, self._position or 0)
            if commit_time is not None:
                self._commit_time = max(commit_time, self._commit_time or commit_time)

    def acknowledged(self, position: int) -> None:
        """Everything before `position` is durable (a keepalive acknowledged with nothing pending)."""
        with self._lock:
            self._position = max(position, self._position or 0)

    def caught_up(self, position: int) -> bool:
        """Everything up to `position` is durable and the source said it had no more to send.
        Caught up only when that reaches the source's position last measured (a keepalive sent
        in the middle of a backlog says only that all before it was sent): True then."""
        with self._lock:
            self._position = max(position, self._position or 0)
            if self._current is None or position < self._current:
                return False
            self._caught_up = True
            self._caught_up_at = self._clock()
            return True

    def behind(self) -> None:
        """A transaction is being read: `caught_up_at` stays the last moment nothing was pending
        (refreshed at every caught_up() before), so the lag counts from there."""
        with self._lock:
            self._caught_up = False

    def source_position(self, current: int) -> None:
        with self._lock:
            self._current = current

    @property
    def is_caught_up(self) -> bool:
        return self._caught_up

    def record_fields(self) -> dict[str, Any]:
        """What a batch's checkpoint stores for lag (its own commit time is added by the caller)."""
        with self._lock:
            at = self._caught_up_at
        return {} if at is None else {CAUGHT_UP_AT: _datetime(at)}

    def reading(self) -> Lag:
        with self._lock:
            return measure(
                now=self._clock(),
                applied_commit_time=self._commit_time,
                caught_up_at=self._caught_up_at,
                caught_up=self._caught_up,
                applied_position=self._position,
                current_position=self._current,
                bytes_between=self._bytes_between,
            )

    def seconds(self) -> float | None:
        """The lag in seconds (what the throttler's max_lag rule reads)."""
        return self.reading().seconds


def marker_round_trip(
    commit_marker: Callable[[], int],
    wait_applied: Callable[[int], None],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """Seconds from committing a marker on the source (`commit_marker` returns its position) until
    CDC's durable checkpoint reaches it (`wait_applied` returns then, or raises): the lag that a
    commit made now meets, measured rather than inferred. Once the marker is applied the newest
    applied commit is at least as new as the marker, so this bounds `seconds` above: the cutover
    gate compares it with max_lag."""
    started = clock()
    wait_applied(commit_marker())
    return clock() - started


def commit_time_field(commit_time: float | None) -> dict[str, Any]:
    """The checkpoint field for a batch whose newest transaction committed at `commit_time`."""
    return {} if commit_time is None else {COMMIT_TIME: _datetime(commit_time)}


def mirror_fields(commit_time: float) -> dict[str, Any]:
    """The same for the state store's mirror of the checkpoint (JSON: an ISO-8601 text)."""
    return {COMMIT_TIME: _iso(commit_time)}


def _datetime(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
        return aware.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _epoch(datetime.datetime.fromisoformat(value))
    return None


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else _datetime(epoch).isoformat()
