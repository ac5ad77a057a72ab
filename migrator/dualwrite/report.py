"""One reporting interface for shadow reads and dual writes: a Reporter gets what was checked,
every mismatch and every failure; the default logs them and keeps counters."""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Protocol

from migrator.errors import MigratorError
from migrator.mapping.compare import FieldDiff
from migrator.redact import redact_text

SHADOW_READ = "shadow_read"
DUAL_WRITE = "dual_write"


@dataclass(frozen=True)
class Mismatch:
    """A document the two sides disagree on.

    operation: 'shadow_read' or 'dual_write'; id: the _id as relaxed extended JSON; kind:
    'missing' (the target has no such document), 'extra' (the source has none), 'mismatched'
    (see `diffs`), or 'unsettled' (a dual write could not pin the source down: it kept changing)."""

    operation: str
    collection: str
    id: Any
    kind: str
    diffs: tuple[FieldDiff, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        text = f"{self.operation}: {self.collection} _id {self.id!r} {self.kind}"
        if self.diffs:
            text += ": " + "; ".join(
                f"{d.path} ({d.kind}) source {d.source or '(absent)'}, target {d.target or '(absent)'}"
                for d in self.diffs
            )
        if self.detail:
            text += f" ({self.detail})"
        return text


class Reporter(Protocol):
    """Where shadow reads and dual writes report. Called from the application's threads."""

    def checked(self, operation: str, collection: str, documents: int) -> None:
        """`documents` were compared (shadow read) or mirrored (dual write)."""

    def mismatch(self, mismatch: Mismatch) -> None: ...

    def failure(self, operation: str, collection: str, error: BaseException) -> None:
        """The shadow side or the mirror failed; the application's own answer or write stands."""


class LoggingReporter:
    """Logs mismatches (warning) and failures (error) through `logging` and counts them:
    `counts['shadow_read.checked']`, `counts['shadow_read.mismatched']`,
    `counts['dual_write.failed']`, ...; keeps the latest `keep` mismatches in `recent`."""

    def __init__(self, logger: logging.Logger | None = None, *, keep: int = 100) -> None:
        self.logger = logger or logging.getLogger("migrator.dualwrite")
        self.counts: Counter[str] = Counter()
        self.recent: deque[Mismatch] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def checked(self, operation: str, collection: str, documents: int) -> None:
        with self._lock:
            self.counts[f"{operation}.checked"] += documents

    def mismatch(self, mismatch: Mismatch) -> None:
        with self._lock:
            self.counts[f"{mismatch.operation}.{mismatch.kind}"] += 1
            self.counts[f"{mismatch.operation}.mismatches"] += 1
            self.recent.append(mismatch)
        self.logger.warning("%s", mismatch.describe())

    def failure(self, operation: str, collection: str, error: BaseException) -> None:
        with self._lock:
            self.counts[f"{operation}.failed"] += 1
        self.logger.error("%s: %s failed: %s", operation, collection, describe_error(error))

    def mismatches(self, operation: str | None = None) -> int:
        with self._lock:
            if operation is not None:
                return self.counts[f"{operation}.mismatches"]
            return sum(v for k, v in self.counts.items() if k.endswith(".mismatches"))


def describe_error(error: BaseException) -> str:
    """An error's message, free of secrets (migrator's own are already)."""
    if isinstance(error, MigratorError):
        return error.message
    return redact_text(f"{type(error).__name__}: {error}")
