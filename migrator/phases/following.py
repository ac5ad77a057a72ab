"""Whether the target is being brought up to the source while verify compares them.

Verify confirms a difference only once the target has applied the source position it was seen
at: a marker transaction committed after that position (pg_logical_emit_message) must reach
CDC's checkpoint in the target (`_migrator`, written with the data). That needs a CDC that
follows the slot. Without one, markers are never applied, and the old behaviour was to wait
`settle_timeout` per recheck and end, minutes later, with keys "unsettled". So:

- no slot: nothing replicates into the target; the current states compare as they are;
- the slot is in use (a stream follows it): markers get applied; wait for them;
- the slot is idle and holds no unapplied change up to now: the target is at rest at the
  source's position, so a plain comparison is exact;
- the slot is idle and holds unapplied changes: nothing follows. That is said at once (a
  notice), and a difference that needs CDC to be confirmed stops the pass within seconds (a
  grace lets a `migrator run` that is starting take the slot), naming the failure CDC
  recorded in the state store, if any. Documents equal at first look are equal regardless
  (an application that writes both databases itself keeps them so).

Every database call here is retried on transient errors (engine/retry.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from migrator.adapters.base import SourceAdapter, TargetAdapter
from migrator.engine.events import EventBus, Notice
from migrator.engine.retry import DEFAULT_BUDGET_S, retrying
from migrator.errors import TerminalError
from migrator.plan.names import cdc_checkpoint_id, publication_name
from migrator.state.store import StateStore

MARKER_PREFIX = "migrator.verify"
# How long an idle slot with unapplied changes may wait for a stream to take it (a `migrator
# run` starting or reconnecting) before verify says that nothing follows.
FOLLOW_GRACE_S = 30.0  # a `migrator run` starting on a busy host (imports, lease, preflight) takes seconds
_POLL_FIRST_S = 0.005  # a CDC that keeps up applies a marker within milliseconds
_POLL_MAX_S = 0.1


class CdcNotFollowing(TerminalError):
    """The source has changes the target has not applied, and no CDC is applying them."""


class CdcFailed(CdcNotFollowing):
    """As CdcNotFollowing, and the state store holds the error that stopped CDC."""


def recorded_cdc_failure(store: StateStore, run_id: str) -> str | None:
    """The error that stopped the run's CDC, as recorded (`migrator status` lists it), when CDC
    has not started again since; None otherwise."""
    failure: str | None = None
    for event in store.events(run_id):
        payload = event.payload
        if payload.get("phase") != "cdc":
            continue
        if event.kind == "phase.started":
            failure = None
        elif event.kind == "error" and not payload.get("retrying"):
            failure = f"{payload.get('error')}: {payload.get('message')}"
            if payload.get("hint"):
                failure += f" (hint: {payload['hint']})"
    if failure is None and any(p.name == "cdc" and p.status == "failed" for p in store.phases(run_id)):
        failure = "the CDC phase is marked failed"
    return failure


class Following:
    """Markers and the checks above, for one verify pass; safe from its worker threads.

    `cdc_alive`, where CDC runs in this process (run --until verified, cutover, rollback after
    cutover), raises the error that stopped it; `failure` is what the state store recorded."""

    def __init__(
        self,
        plan_name: str,
        source: SourceAdapter,
        target: TargetAdapter,
        events: EventBus,
        *,
        settle_timeout: float,
        stop: threading.Event,
        failure: str | None = None,
        cdc_alive: Callable[[], None] | None = None,
        retry_budget: float = DEFAULT_BUDGET_S,
    ) -> None:
        self.plan_name = plan_name
        self.source = source
        self.target = target
        self.events = events
        self.settle_timeout = settle_timeout
        self.stop = stop
        self.failure = failure
        self.cdc_alive = cdc_alive
        self.retry_budget = retry_budget
        # The slot of the run that owns the target (its name carries the run: plan/names.py).
        self.slot = target.ownership(plan_name).slot()
        self.publication = publication_name(plan_name)
        self.checkpoint_id = cdc_checkpoint_id(plan_name)
        self.monitor = source.monitor()
        self._lock = threading.Lock()  # one monitor connection, shared by the workers
        self._marker: int | None = None  # the last marker emitted (its commit position)
        self._idle_since: float | None = None
        self._seen_applied: int | None = None

    def close(self) -> None:
        self.monitor.close()

    def _retry(self, what: str, call: Callable[[], Any]) -> Any:
        return retrying(
            call,
            what=what,
            events=self.events,
            stop=self.stop,
            budget=self.retry_budget,
            before_retry=self.monitor.close,
        )

    def applied(self) -> int | None:
        return self._retry(
            "reading the target's CDC checkpoint", lambda: self.target.applied_position(self.checkpoint_id)
        )

    def _unapplied(self, upto: str) -> tuple[int | None, int | None]:
        """(changes in the slot after the target's checkpoint and up to `upto`, or None when a
        stream holds the slot; the checkpoint)."""
        applied = self.applied()
        with self._lock:
            count = self._retry(
                f"peeking at {self.source.vocabulary.named_stream(self.slot)}",
                lambda: self.monitor.unapplied_changes(
                    self.slot, self.publication, self.source.positions.text(applied or 0), upto
                ),
            )
        return count, applied

    def check(self) -> None:
        """Before a pass: say at once when CDC failed or nothing follows a source that has
        changes the target lacks. The pass goes on: documents equal at first look are equal
        whatever CDC does; `wait` raises when a difference needs CDC and nothing follows."""
        if self.cdc_alive is not None:
            self.cdc_alive()
        with self._lock:
            state = self._retry(
                f"reading {self.source.vocabulary.named_stream(self.slot)}",
                lambda: self.monitor.state(self.slot),
            )
        if state is None:
            return
        count, applied = self._unapplied(str(state["current"]))
        if count is None:
            return  # a stream holds the slot: it follows
        if count == 0:
            if self.failure is not None:
                self.events.emit(
                    Notice(
                        "warn",
                        f"CDC of plan {self.plan_name} is not running ({self.failure}); the target is at rest "
                        "at the source's position, so this verify compares them as they are",
                    )
                )
            return
        with self._lock:
            self._idle_since = time.monotonic()
        error = self._not_following(count, applied, str(state["current"]))
        self.events.emit(
            Notice(
                "warn",
                f"{error.message}; a difference found cannot be confirmed unless CDC applies them "
                f"(verify stops if none follows within {FOLLOW_GRACE_S:g} s of needing it)",
            )
        )

    def _progressed(self, applied: int | None) -> bool:
        """Whether the target's checkpoint moved since the last look (CDC in poll mode holds
        the slot only while it polls)."""
        with self._lock:
            moved = self._seen_applied is not None and applied is not None and applied > self._seen_applied
            if applied is not None:
                self._seen_applied = max(applied, self._seen_applied or 0)
        return moved

    def _not_following(self, count: int, applied: int | None, current: str) -> CdcNotFollowing:
        since = (
            f"after {self.source.positions.text(applied)} (the target's CDC checkpoint)"
            if applied
            else "since the snapshot (CDC has applied nothing yet)"
        )
        behind = f"{count} transaction(s) committed on the source {since} and up to {current} are not applied to the target"
        hint = (
            f"start `migrator run` for plan {self.plan_name} (it follows changes) and verify while it runs, "
            "or use `migrator run PLAN --until verified`"
        )
        if self.failure is not None:
            return CdcFailed(
                f"CDC of plan {self.plan_name} failed and nothing applies changes to the target: "
                f"{self.failure}; {behind}",
                hint="fix what the error names, then " + hint,
            )
        return CdcNotFollowing(
            f"nothing follows the changes of plan {self.plan_name}: "
            f"{self.source.vocabulary.named_stream(self.slot)} is not in use "
            f"and {behind}, so verify cannot tell a difference from a change not yet applied",
            hint=hint,
        )

    def wait(self, position: str) -> bool:
        """Whether the target has applied every source change up to `position`, waiting up to
        settle_timeout for CDC to get there; raises when nothing follows (see `check`)."""
        with self._lock:
            state = self._retry(
                f"reading {self.source.vocabulary.named_stream(self.slot)}",
                lambda: self.monitor.state(self.slot),
            )
            if state is None:
                return True  # no slot: nothing replicates into the target; current states compare
            if self._marker is not None and self._marker > self.source.positions.parse(position):
                marker = self._marker  # committed after `position`: it serves this wait too
            else:
                text = self._retry(
                    "emitting a verify marker", lambda: self.monitor.heartbeat(MARKER_PREFIX, self.plan_name)
                )
                marker = self._marker = self.source.positions.parse(text)
        deadline = time.monotonic() + self.settle_timeout
        pause = _POLL_FIRST_S
        while True:
            if self.cdc_alive is not None:
                self.cdc_alive()
            count, applied = self._unapplied(position)
            if applied is not None and applied >= marker:
                return True
            if count == 0:
                return True
            now = time.monotonic()
            if count is None or self._progressed(applied):
                self._idle_since = None  # a stream holds the slot, or a poll applied changes
            else:
                with self._lock:
                    self._idle_since = self._idle_since or now
                    idle = now - self._idle_since
                if idle >= FOLLOW_GRACE_S or now >= deadline:
                    raise self._not_following(count, applied, position)
            if now >= deadline or self.stop.is_set():
                return False
            time.sleep(pause)
            pause = min(_POLL_MAX_S, pause * 2)
