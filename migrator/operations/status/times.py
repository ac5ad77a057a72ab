"""Times as `migrator status` shows them: RFC 3339 UTC with `Z`, to the millisecond."""

from __future__ import annotations

import datetime

from migrator.timestamps import utc_text


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def iso(value: datetime.datetime) -> str:
    """RFC 3339 UTC with `Z` (docs/json.md); a naive value is UTC (pymongo without tz_aware)."""
    return utc_text(value)


def parse_time(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def aware(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
