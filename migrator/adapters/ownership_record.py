"""A target's ownership record, as every target keeps it: which run of a plan owns the plan's
data in a target database, and the error that refuses a second run (docs/architecture.md, "One
owner"). Each target stores it in its own way (adapters/mongodb/ownership.py,
adapters/postgres_target/ownership.py)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import OwnedByAnotherRun
from migrator.timestamps import utc_text


@dataclass(frozen=True)
class OwnerRecord:
    """Who owns a plan's data in a target database. `state` is the owning run's state file as
    that run saw it (an absolute path on `host`); `facts` are what the run recorded it created."""

    plan: str
    run_id: str
    started_at: str
    host: str
    state: str
    slot: str
    publication: str
    created_collection: bool  # the run created `_migrator` (rollback drops it once empty)
    claimed_at: str
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> OwnerRecord:
        claimed = doc.get("claimed_at")
        return cls(
            plan=str(doc.get("plan", "")),
            run_id=str(doc.get("run_id", "")),
            started_at=str(doc.get("started_at", "")),
            host=str(doc.get("host", "")),
            state=str(doc.get("state", "")),
            slot=str(doc.get("slot", "")),
            publication=str(doc.get("publication", "")),
            created_collection=bool(doc.get("created_collection", False)),
            claimed_at=_iso(claimed) if isinstance(claimed, datetime.datetime) else str(claimed or ""),
            facts=dict(doc.get("facts") or {}),
        )

    def describe(self) -> str:
        return (
            f"run {self.run_id} (started {self.started_at or '?'} on host {self.host or '?'}, "
            f"state file {self.state or '?'})"
        )


def refusal(owner: OwnerRecord, database: str, *, this_run: str | None = None) -> OwnedByAnotherRun:
    """The error that names the owning run and what to do instead."""
    mine = f" (this state file's run is {this_run})" if this_run else ""
    return OwnedByAnotherRun(
        f"plan {owner.plan}'s data in target database {database} belongs to {owner.describe()}{mine}: "
        "a second run of the plan would copy into the same collections and stream from its own slot",
        hint=f"resume that run with `migrator run PLAN --state {owner.state}` (on host {owner.host}), "
        f"or undo it with `migrator rollback PLAN --state {owner.state}`; then a new run may start",
    )


def _iso(value: datetime.datetime) -> str:
    return utc_text(value)  # BSON dates are UTC: a naive one too (docs/json.md, "Timestamps")
