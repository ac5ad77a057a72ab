"""Live throttling, in the manner of gh-ost's Throttler.

Two halves:

- `decide(metrics, settings, now)`: a pure function from what was measured to whether the
  migration holds its work, and why. Everything it needs is in its arguments, so it is
  unit-tested without servers or clocks.
- `Throttler`: collects those metrics every `check_interval` (the operator's controls from the
  state store, the throttle file, the source's load), calls `decide`, emits Throttled /
  ThrottleProgress / ThrottleLifted on changes and accounts throttled time. Phases ask it
  between units of work (`poll`) and block in it while throttled (`wait`).

Conditions: an operator pause (`migrator throttle --pause`), the throttle file existing, more
active source sessions than `max_active_sessions`, a physical replica of the source replaying
more than `max_replica_lag` behind, and CDC lag over `max_lag` (the plan's `cdc.max_lag`, or
the operator's `--max-lag`). CDC lag holds only copy work that runs beside CDC, never CDC's own
apply: holding the stream because it lags would only make it lag more (gh-ost, too, gives change
events priority over row copy). Load measured longer ago than `stale_after` is treated as
unknown, and unknown load is no reason to throttle: a source that cannot be asked fails the
stream itself, loudly.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from migrator.adapters.base import LoadSample
from migrator.engine.events import EventBus, Notice, Throttled, ThrottleLifted, ThrottleProgress
from migrator.errors import MigratorError, TerminalError

# Names of the run-time controls `migrator throttle` writes to the state store.
PAUSED = "paused"
CHUNK_ROWS = "chunk_rows"
MAX_LAG = "max_lag"
CONTROL_NAMES = (PAUSED, CHUNK_ROWS, MAX_LAG)
CDC_PHASE = "cdc"  # the phase the max_lag rule never holds (phases/cdc.py's PHASE)
STALE_CHECKS = 3  # load older than this many check intervals counts as unknown


@dataclass(frozen=True)
class ThrottleSettings:
    """Thresholds in force: the plan's `phases.throttle` with the operator's overrides applied.
    None: that condition is not checked."""

    file: str | None = None
    max_active_sessions: int | None = None
    max_replica_lag: float | None = None
    max_lag: float | None = None
    stale_after: float = 3.0  # seconds after which a load measurement no longer counts


@dataclass(frozen=True)
class ThrottleMetrics:
    """What was measured. `measured_at` (wall clock) dates the load figures (`active_sessions`,
    `replica_lag_seconds`); None means not measured. `replica_lag_seconds` None: no replica."""

    paused: bool = False
    file_exists: bool = False
    active_sessions: int | None = None
    replica_lag_seconds: float | None = None
    cdc_lag_seconds: float | None = None
    measured_at: float | None = None


@dataclass(frozen=True)
class ThrottleDecision:
    throttled: bool
    reasons: tuple[str, ...] = ()


NOT_THROTTLED = ThrottleDecision(False)


def _s(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


def decide(metrics: ThrottleMetrics, settings: ThrottleSettings, now: float) -> ThrottleDecision:
    """Whether to hold the migration's work, with every reason that holds (in a fixed order)."""
    reasons: list[str] = []
    if metrics.paused:
        reasons.append("paused by the operator (`migrator throttle --resume` lifts it)")
    if settings.file is not None and metrics.file_exists:
        reasons.append(f"throttle file {settings.file} exists")
    fresh = metrics.measured_at is not None and now - metrics.measured_at <= settings.stale_after
    if fresh:
        sessions = metrics.active_sessions
        limit = settings.max_active_sessions
        if limit is not None and sessions is not None and sessions > limit:
            reasons.append(f"source load: {sessions} active sessions, over max_active_sessions {limit}")
        lag = metrics.replica_lag_seconds
        if settings.max_replica_lag is not None and lag is not None and lag > settings.max_replica_lag:
            reasons.append(f"replica lag {_s(lag)}, over max_replica_lag {_s(settings.max_replica_lag)}")
    cdc_lag = metrics.cdc_lag_seconds
    if settings.max_lag is not None and cdc_lag is not None and cdc_lag > settings.max_lag:
        reasons.append(f"CDC lag {_s(cdc_lag)}, over max_lag {_s(settings.max_lag)}")
    return ThrottleDecision(bool(reasons), tuple(reasons))


class LoadSampler(Protocol):
    def sample(self, *, sessions: bool, replicas: bool) -> LoadSample: ...

    def close(self) -> None: ...


@dataclass
class _State:
    decision: ThrottleDecision = NOT_THROTTLED
    phase: str | None = None
    since: float | None = None  # monotonic start of the current throttled interval
    since_wall: float | None = None
    total: float = 0.0  # closed intervals
    controls: dict[str, Any] = field(default_factory=dict)
    load: LoadSample | None = None
    load_at: float | None = None  # wall clock
    last_check: float | None = None  # monotonic
    failing: set[str] = field(default_factory=set)  # what could not be read (noticed once)


class Throttler:
    """Collects throttle metrics, decides and accounts throttled time; shared by a run's phases
    and their worker threads."""

    def __init__(
        self,
        *,
        file: str | None,
        max_active_sessions: int | None,
        max_replica_lag: float | None,
        check_interval: float,
        max_lag: float,
        chunk_rows: int,
        events: EventBus,
        controls: Callable[[], Mapping[str, Any]],
        load: LoadSampler | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        exists: Callable[[str], bool] = os.path.exists,
    ) -> None:
        self.interval = check_interval
        self._base = ThrottleSettings(
            file=file,
            max_active_sessions=max_active_sessions,
            max_replica_lag=max_replica_lag,
            max_lag=max_lag,
            stale_after=STALE_CHECKS * check_interval,
        )
        self._chunk_rows = chunk_rows
        self._events = events
        self._read_controls = controls
        self._load = load
        self._clock = clock
        self._wall = wall
        self._exists = exists
        self._lock = threading.RLock()
        self._state = _State()
        self._cdc_lag: Callable[[], float | None] | None = None

    def follow_lag(self, seconds: Callable[[], float | None]) -> None:
        """Read CDC's lag (phases/lag.py) from `seconds` for the max_lag rule: CDC registers its
        tracker when it starts. The rule holds the other phases' work only, never CDC's own."""
        self._cdc_lag = seconds

    # -- what the phases read --------------------------------------------------------------------

    @property
    def settings(self) -> ThrottleSettings:
        """The thresholds in force now: the plan's, with `migrator throttle --max-lag` applied."""
        max_lag = self._state.controls.get(MAX_LAG)
        return self._base if max_lag is None else replace(self._base, max_lag=float(max_lag))

    @property
    def max_lag(self) -> float:
        value = self.settings.max_lag
        assert value is not None
        return value

    @property
    def chunk_rows(self) -> int:
        """Root rows a snapshot worker copies between two throttle checks (`--chunk-rows`;
        default: the plan's snapshot.chunk_rows, i.e. once a chunk)."""
        value = self._state.controls.get(CHUNK_ROWS)
        return int(value) if value is not None else self._chunk_rows

    @property
    def throttled(self) -> bool:
        return self._state.decision.throttled

    @property
    def total_seconds(self) -> float:
        with self._lock:
            state = self._state
            open_interval = 0.0 if state.since is None else self._clock() - state.since
            return state.total + open_interval

    # -- checking --------------------------------------------------------------------------------

    def poll(self, phase: str, *, lag_seconds: float | None = None) -> ThrottleDecision:
        """The current decision, measured anew at most every `check_interval`. `lag_seconds`: the
        CDC lag, from copy work that runs beside CDC; by default the lag of the CDC that
        registered with follow_lag (phases/lag.py). Never weighed for CDC's own phase."""
        with self._lock:
            now = self._clock()
            last = self._state.last_check
            if last is not None and now - last < self.interval and phase == self._state.phase:
                return self._state.decision
            return self._refresh(phase, lag_seconds, now)

    def wait(
        self,
        phase: str,
        stop: threading.Event,
        *,
        tick: Callable[[], None] | None = None,
        lag_seconds: Callable[[], float | None] | None = None,
    ) -> float:
        """Block while throttled (or until `stop` is set); returns the seconds held. `tick` runs at
        least every check interval while held: CDC keeps its replication connection alive there."""
        lag = lag_seconds or (lambda: None)
        if not self.poll(phase, lag_seconds=lag()).throttled:
            return 0.0
        started = self._clock()
        while not stop.is_set():
            if tick is not None:
                tick()
            if stop.wait(min(self.interval, 1.0)):
                break
            if not self.poll(phase, lag_seconds=lag()).throttled:
                break
        return self._clock() - started

    def release(self, phase: str) -> None:
        """The phase stops (done, stopped or failed) while perhaps throttled: close the interval,
        so that the time is counted and nothing reads as throttled any more. Safe in a `finally`:
        reporting the lift must not hide the error that ended the phase."""
        with self._lock:
            self._state.last_check = None
            if self._state.decision.throttled:
                with contextlib.suppress(MigratorError):
                    self._lift(phase, self._clock())

    def close(self) -> None:
        """Release (as above) and close the source connection load was read on."""
        try:
            with self._lock:
                if self._state.decision.throttled:
                    with contextlib.suppress(MigratorError):
                        self._lift(self._state.phase or "-", self._clock())
        finally:
            if self._load is not None:
                self._load.close()

    # -- internals -------------------------------------------------------------------------------

    def _refresh(self, phase: str, lag_seconds: float | None, now: float) -> ThrottleDecision:
        state = self._state
        state.last_check = now
        try:
            state.controls = dict(self._read_controls())
            state.failing.discard("controls")
        except MigratorError as exc:  # a busy state file: keep the controls last read
            self._notice_once("controls", f"cannot read throttle controls: {exc.message}")
        settings = self.settings
        sessions = settings.max_active_sessions is not None
        replicas = settings.max_replica_lag is not None
        if self._load is not None and (sessions or replicas):
            try:
                state.load = self._load.sample(sessions=sessions, replicas=replicas)
                state.load_at = self._wall()
                state.failing.discard("load")
            except MigratorError as exc:  # stale soon, then unknown: no reason to throttle
                self._notice_once("load", f"cannot read the source's load for throttling: {exc.message}")
        load = state.load
        metrics = ThrottleMetrics(
            paused=bool(state.controls.get(PAUSED, False)),
            file_exists=settings.file is not None and self._exists(settings.file),
            active_sessions=None if load is None else load.active_sessions,
            replica_lag_seconds=None if load is None else load.replica_lag_seconds,
            cdc_lag_seconds=self._lag_for(phase, lag_seconds),
            measured_at=state.load_at,
        )
        decision = decide(metrics, settings, self._wall())
        previous = state.decision
        if previous.throttled and (not decision.throttled or phase != state.phase):
            self._lift(state.phase or phase, now)
            previous = NOT_THROTTLED
        state.decision = decision
        if decision.throttled:
            if not previous.throttled:
                state.since, state.since_wall, state.phase = now, self._wall(), phase
            state.phase = phase
            if decision.reasons != previous.reasons:
                assert state.since_wall is not None
                self._events.emit(Throttled(phase, list(decision.reasons), round(state.since_wall, 3)))
            assert state.since is not None
            self._events.emit(
                ThrottleProgress(
                    phase,
                    list(decision.reasons),
                    round(now - state.since, 3),
                    round(state.total + now - state.since, 3),
                )
            )
        state.phase = phase
        return decision

    def _lag_for(self, phase: str, given: float | None) -> float | None:
        """The CDC lag the max_lag rule weighs for `phase`: none for CDC itself (holding the stream
        because it lags would only make it lag more), else the lag given, else CDC's own reading."""
        if phase == CDC_PHASE:
            return None
        if given is not None or self._cdc_lag is None:
            return given
        return self._cdc_lag()

    def _lift(self, phase: str, now: float) -> None:
        state = self._state
        seconds = 0.0 if state.since is None else now - state.since
        state.total += seconds
        state.since = state.since_wall = None
        state.decision = NOT_THROTTLED
        self._events.emit(ThrottleLifted(phase, round(seconds, 3), round(state.total, 3)))

    def _notice_once(self, what: str, message: str) -> None:
        if what not in self._state.failing:
            self._state.failing.add(what)
            self._events.emit(Notice("warn", message))


# -- operator controls (`migrator throttle`) ------------------------------------------------------


@dataclass(frozen=True)
class ControlsResult:
    """What `migrator throttle` did: the run, the changes asked for (None: back to the plan's
    setting) and every control in force afterwards."""

    run_id: str
    changes: dict[str, Any]
    controls: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "changes": self.changes, "controls": self.controls}


def control_changes(
    *,
    pause: bool | None = None,
    chunk_rows: int | None = None,
    max_lag: float | None = None,
    reset: bool = False,
) -> dict[str, Any]:
    """The controls to write for these requests. `pause`: True pauses, False resumes; `reset`
    removes every override (and a pause) first. Raises TerminalError on a value out of range."""
    changes: dict[str, Any] = dict.fromkeys(CONTROL_NAMES) if reset else {}
    if pause is not None:
        changes[PAUSED] = True if pause else None
    if chunk_rows is not None:
        if not 1 <= chunk_rows <= 10_000_000:
            raise TerminalError(f"--chunk-rows {chunk_rows} is out of range (1 to 10,000,000)")
        changes[CHUNK_ROWS] = int(chunk_rows)
    if max_lag is not None:
        if not max_lag > 0:
            raise TerminalError(f"--max-lag must be over 0 s, not {max_lag:g} s")
        changes[MAX_LAG] = float(max_lag)
    if not changes:
        raise TerminalError(
            "nothing to change", hint="give --pause, --resume, --chunk-rows N, --max-lag DURATION or --reset"
        )
    return changes
