"""The snapshot section of `migrator status`: chunk progress per collection from the state
store, and where CDC starts and where the target becomes consistent (the slot's consistent
point, moved by rereads)."""

from __future__ import annotations

from collections.abc import Sequence

from migrator.adapters.base import Positions
from migrator.operations.status.report import CollectionProgress, SnapshotStatus
from migrator.plan.models import Plan
from migrator.state import CheckpointRecord, RunRecord, StateStore
from migrator.state.labels import SnapshotLabel


def snapshot_status(
    plan: Plan,
    store: StateStore,
    run: RunRecord,
    status: str,
    target_counts: dict[str, int] | None,
    positions: Positions,
) -> SnapshotStatus:
    checkpoints = store.checkpoints(run.id, "snapshot")
    by_label: dict[str, CheckpointRecord] = {}
    for c in checkpoints:
        by_label[c.label] = c  # the latest of each label
    collections = _progress(plan, store, run, by_label, target_counts)
    slot = by_label.get(SnapshotLabel.SLOT)
    return SnapshotStatus(
        status=status,
        position=slot.position if slot is not None else None,
        consistent_after=_consistent_after(checkpoints, by_label, positions),
        chunks_total=sum(c.chunks_total for c in collections),
        chunks_done=sum(c.chunks_done for c in collections),
        rows=sum(c.rows for c in collections),
        documents=sum(c.documents for c in collections),
        collections=collections,
    )


def _progress(
    plan: Plan,
    store: StateStore,
    run: RunRecord,
    by_label: dict[str, CheckpointRecord],
    target_counts: dict[str, int] | None,
) -> list[CollectionProgress]:
    planned: dict[str, int] = (
        dict(by_label[SnapshotLabel.PLANNED].detail.get("chunks", {}))
        if SnapshotLabel.PLANNED in by_label
        else {}
    )
    chunks = store.chunks(run.id)
    collections = []
    for mapping in plan.collections:
        total = planned.get(mapping.name, 0)
        mine = [c for c in chunks if c.table == mapping.name and c.chunk_id < total]
        done = [c for c in mine if c.status == "done"]
        collections.append(
            CollectionProgress(
                collection=mapping.name,
                table=mapping.table,
                chunks_total=total,
                chunks_done=len(done),
                chunks_running=sum(1 for c in mine if c.status == "running"),
                chunks_failed=sum(1 for c in mine if c.status == "failed"),
                rows=sum(c.rows_read for c in done),
                documents=sum(c.docs_written for c in done),
                target_documents=None if target_counts is None else target_counts.get(mapping.name, 0),
            )
        )
    return collections


def _consistent_after(
    checkpoints: Sequence[CheckpointRecord], by_label: dict[str, CheckpointRecord], positions: Positions
) -> str | None:
    """Once CDC passes this position the target is consistent: the snapshot's own, or the
    latest reread's past the slot's consistent point."""
    slot = by_label.get(SnapshotLabel.SLOT)
    done_checkpoint = by_label.get(SnapshotLabel.DONE)
    if done_checkpoint is not None:
        return str(done_checkpoint.detail.get("consistent_after") or done_checkpoint.position)
    if SnapshotLabel.REREAD in by_label and slot is not None:
        return max(
            [slot.position] + [c.position for c in checkpoints if c.label == SnapshotLabel.REREAD],
            key=positions.parse,
        )
    return None
