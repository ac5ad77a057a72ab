"""The one form of a moment in what migrator prints and records for people and machines:
RFC 3339 in UTC with a `Z` and milliseconds (`2026-05-01T12:00:00.123Z`). Events, log lines,
`migrator status` and reports use it (docs/json.md, "Timestamps")."""

from __future__ import annotations

import datetime


def utc_text(moment: datetime.datetime | float) -> str:
    """`moment` (a datetime, naive meaning UTC, or seconds since the epoch) as RFC 3339 UTC."""
    if isinstance(moment, int | float):
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    text = moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def now_text() -> str:
    return utc_text(datetime.datetime.now(datetime.UTC))
