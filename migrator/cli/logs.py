"""Structured logs of a run (`--log-format json|text`): one line per event on stderr.

json: one object per line, `{"ts": ISO 8601 UTC, "level": ..., "event": kind, ...fields}`.
text: `TS LEVEL event key=value ...`, values in JSON where they are not a plain word.

Which lines are written follows the group's -q (errors only) and -v (debug too; the default
stops at info). Levels: `error` for an error that stops a phase, `warning` for a retried error and a warning
notice, `debug` for progress ticks (events not kept in the state store), `info` for the rest.
Every string passes through the redaction of migrator.redact, with the plan's passwords as
literal secrets too: a password never reaches a log line.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from migrator.engine.events import BatchLimitChanged, ErrorRaised, Event, Notice
from migrator.errors import MigratorError
from migrator.redact import redact_tree
from migrator.timestamps import utc_text

LogFormat = Literal["json", "text"]
_ENVELOPE = frozenset({"ts", "level", "event"})
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+-]+\Z")


def level_of(event: Event) -> str:
    if isinstance(event, ErrorRaised):
        return "warning" if event.retrying else "error"
    if isinstance(event, Notice):
        return "warning" if event.level == "warn" else "info"
    if isinstance(event, BatchLimitChanged) and event.limit < event.previous:
        return "warning"  # the target aborted a batch
    return "info" if event.durable else "debug"


_RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3}


def shown(event: Event, least: str) -> bool:
    """Whether `event` is at `least`'s level or above (the group's -q / -v, cli/options.py)."""
    return _RANK[level_of(event)] >= _RANK.get(least, 0)


class Leveled:
    """An event sink passing on the events of `least`'s level and above to `sink`."""

    def __init__(self, sink: Any, least: str) -> None:
        self.sink = sink
        self.least = least

    def emit(self, event: Event) -> None:
        if shown(event, self.least):
            self.sink.emit(event)


def _timestamp(at: float) -> str:
    return utc_text(at)


class LogLines:
    """An event sink writing one log line per event."""

    def __init__(
        self,
        fmt: LogFormat,
        *,
        stream: TextIO | None = None,
        secrets: tuple[str, ...] = (),
        least: str = "debug",
    ) -> None:
        self.format = fmt
        self.least = least
        self._stream = stream
        self._secrets = secrets
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        if shown(event, self.least):
            self.write(level_of(event), event.kind, event.payload(), at=event.at)

    def failure(self, error: MigratorError, event: str = "run.failed") -> None:
        """The error that ends the command, as a log line."""
        fields: dict[str, Any] = {"error": type(error).__name__, "message": error.message}
        if error.hint:
            fields["hint"] = error.hint
        self.write("error", event, fields)

    def write(self, level: str, kind: str, fields: Mapping[str, Any], *, at: float | None = None) -> None:
        moment = _timestamp(at if at is not None else datetime.datetime.now(datetime.UTC).timestamp())
        # A field named like the envelope (a notice's own `level`) is kept, renamed.
        clean = {
            (f"event_{key}" if key in _ENVELOPE else key): value
            for key, value in self._clean(dict(fields)).items()
        }
        if self.format == "json":
            line = json.dumps({"ts": moment, "level": level, "event": kind, **clean}, default=str)
        else:
            parts = [moment, level.upper(), kind]
            parts += [f"{key}={self._text_value(value)}" for key, value in clean.items()]
            line = " ".join(parts)
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def _clean(self, value: Any) -> Any:
        return redact_tree(value, self._secrets)

    @staticmethod
    def _text_value(value: Any) -> str:
        if isinstance(value, str) and _PLAIN.match(value):
            return value
        return json.dumps(value, default=str)
