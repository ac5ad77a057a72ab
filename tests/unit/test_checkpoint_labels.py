"""Checkpoint labels are stored as text in every state file, and resume, status and rollback find
checkpoints by them: each value stays what it always was (a state file written by an earlier
version must resume), and each is a plain str (stored, compared and shown as that text)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from migrator.state import SQLiteStateStore
from migrator.state.labels import (
    CdcLabel,
    CutoverLabel,
    FinishLabel,
    RollbackLabel,
    SnapshotLabel,
    rollback_collection,
    switchback_step,
)

STORED = {
    SnapshotLabel: {
        "TARGET_BEFORE": "target_before",
        "SOURCE_BEFORE": "source_before",
        "SLOT": "slot",
        "PLANNED": "planned",
        "REREAD": "reread",
        "DONE": "done",
    },
    CdcLabel: {"APPLIED": "applied"},
    FinishLabel: {
        "REVERSE": "reverse",
        "SLOT": "slot",
        "PUBLICATION": "publication",
        "SOURCE_REVERSE": "source-reverse",
        "TARGET_FEED": "target-feed",
        "RELEASE": "release",
        "DONE": "done",
    },
    CutoverLabel: {
        "GATE": "gate",
        "FLIPPING": "flipping",
        "FLIP_FAILED": "flip-failed",
        "SWITCHED": "switched",
        "UNFENCED": "unfenced",
        "DONE": "done",
        "STOPPED": "stopped",
    },
    RollbackLabel: {
        "CDC_CHECKPOINT": "cdc_checkpoint",
        "SLOT": "slot",
        "PUBLICATION": "publication",
        "REVERSE": "reverse",
        "RELEASE": "release",
        "SWITCHED_BACK": "switched-back",
        "SWITCHBACK_VERIFY": "cutover:verify",
        "SWITCHBACK_FENCING": "cutover:fencing",
        "SWITCHBACK_FENCE": "cutover:fence",
        "SWITCHBACK_DRAIN": "cutover:drain",
        "SWITCHBACK_RECHECK": "cutover:recheck",
        "SWITCHBACK_ABANDONED": "cutover:abandoned",
        "SWITCHBACK_FENCE_LIFTED": "cutover:fence-lifted",
        "SWITCHBACK_SEQUENCES": "cutover:sequences",
        "SWITCHBACK_FLIPPING": "cutover:flipping",
        "SWITCHBACK_DRAIN_AGAIN": "cutover:drain-again",
        "SWITCHBACK_UNFENCE": "cutover:unfence",
        "SWITCHBACK_FORGET": "cutover:forget",
        "SWITCHBACK_HOOK": "cutover:hook",
        "SWITCHBACK_DONE": "cutover:done",
    },
}


def _named(owner: type) -> dict[str, object]:
    return {name: value for name, value in vars(owner).items() if name.isupper()}


def test_every_label_keeps_its_stored_text() -> None:
    for owner, expected in STORED.items():
        named = _named(owner)
        assert named == expected, owner.__name__
        assert all(type(value) is str for value in named.values()), owner.__name__


def test_composed_labels_keep_their_stored_text() -> None:
    assert rollback_collection("customers") == "collection:customers"
    assert switchback_step("drain-again") == "cutover:drain-again" == RollbackLabel.SWITCHBACK_DRAIN_AGAIN
    assert switchback_step("done") == RollbackLabel.SWITCHBACK_DONE


def test_a_state_file_holds_the_label_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SQLiteStateStore(path) as store:
        run = store.begin_run("shop", "digest")
        store.add_checkpoint(run.id, "snapshot", SnapshotLabel.SLOT, "0/16B3748", {"slot": "s"})
        store.add_checkpoint(run.id, "rollback", switchback_step("fence"), "", {})
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT phase, label, typeof(label) FROM checkpoints ORDER BY id").fetchall()
    assert stored == [("snapshot", "slot", "text"), ("rollback", "cutover:fence", "text")]
