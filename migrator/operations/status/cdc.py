"""The CDC section of `migrator status`: the applied position (the target's checkpoint, else the
state store's mirror of it when the target cannot be read) and lag as phases/lag.py defines it."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.adapters.base import Positions, SourceVocabulary
from migrator.operations.status.report import CdcStatus, EndpointStatus, SlotStatus
from migrator.operations.status.times import aware, iso, now, parse_time
from migrator.phases.lag import from_checkpoint
from migrator.plan.models import Plan
from migrator.state import CheckpointRecord
from migrator.state.labels import CdcLabel


@dataclass
class _Applied:
    """Where CDC stands by the target's checkpoint (`from_`: "target") or its mirror in the
    state store ("state store"); `record`: what lag is computed from."""

    position: str | None = None
    at: datetime.datetime | None = None
    from_: str | None = None
    mirrored: dict[str, Any] = field(default_factory=dict)


def cdc_status(
    plan: Plan,
    checkpoints: Sequence[CheckpointRecord],
    status: str,
    target: EndpointStatus,
    applied: dict[str, Any] | None,
    slot: SlotStatus,
    positions: Positions,
    vocabulary: SourceVocabulary,
) -> CdcStatus:
    found = _applied(checkpoints, target, applied, positions)
    age = None if found.at is None else max(0.0, (now() - aware(found.at)).total_seconds())
    # Lag as phases/lag.py defines it, from the checkpoint record (or its mirror) and the slot.
    record: dict[str, Any] | None = None
    if found.position is not None:
        record = dict(applied) if found.from_ == "target" and applied is not None else dict(found.mirrored)
        record["position"] = positions.parse(found.position)
    lag = from_checkpoint(
        record,
        now=now().timestamp(),
        confirmed_position=None
        if slot.confirmed_position is None
        else positions.parse(slot.confirmed_position),
        current_position=None if slot.current_position is None else positions.parse(slot.current_position),
        bytes_between=positions.bytes_between,
    )
    known = found.position is not None and slot.current_position is not None
    settings = plan.phases.cdc
    return CdcStatus(
        status=status,
        applied_position=found.position,
        applied_at=None if found.at is None else iso(found.at),
        applied_age_seconds=None if age is None else round(age, 3),
        applied_from=found.from_,
        lag_bytes=lag.bytes if known else None,
        lag_seconds=lag.seconds if known else None,
        caught_up=lag.caught_up if known else None,
        applied_commit_time=lag.to_dict()["applied_commit_time"],
        max_lag_seconds=float(settings.max_lag),
        max_retained_wal_bytes=int(settings.max_retained_wal),
        slot=slot,
        stream=vocabulary.stream,
        change_log=vocabulary.change_log,
    )


def _applied(
    checkpoints: Sequence[CheckpointRecord],
    target: EndpointStatus,
    applied: dict[str, Any] | None,
    positions: Positions,
) -> _Applied:
    found = _Applied()
    if applied is not None:
        found.position = str(applied.get("position_text") or "") or None
        if found.position is None and applied.get("position") is not None:
            found.position = positions.text(int(applied["position"]))
        if isinstance(applied.get("updated_at"), datetime.datetime):
            found.at = applied["updated_at"]
        found.from_ = "target" if found.position is not None else None
    if found.position is None and not target.reachable:
        mirrors = [c for c in checkpoints if c.phase == "cdc" and c.label == CdcLabel.APPLIED]
        if mirrors:
            found.position = mirrors[-1].position
            found.at = parse_time(mirrors[-1].created_at)
            found.from_ = "state store"
            found.mirrored = dict(mirrors[-1].detail)
    return found
