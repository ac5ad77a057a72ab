"""The labels of the state store's checkpoints, named once per phase that records them.

A label is stored as its text in every state file, and a resumed run, `status` and rollback
find a checkpoint by it: a value here never changes (tests/unit/test_checkpoint_labels.py pins
each one), or state files written before could no longer resume. The names are plain `str`
constants, not enum members, so what is stored, compared, printed and put in error messages is
exactly the text it always was.
"""

from __future__ import annotations

from typing import Final


class SnapshotLabel:
    """Checkpoints of phase 'snapshot' (phases/snapshot.py)."""

    TARGET_BEFORE: Final = "target_before"  # the target's collections before the run: rollback keeps them
    SOURCE_BEFORE: Final = "source_before"  # whether the publication existed before: rollback keeps it
    SLOT: Final = "slot"  # the slot's consistent point, where CDC starts; the mapped tables' shape
    PLANNED: Final = "planned"  # chunks per collection, planned once
    REREAD: Final = "reread"  # a resumed copy's read position (past the slot's)
    DONE: Final = "done"  # every chunk copied


class CdcLabel:
    """Checkpoints of phase 'cdc' (runner.py mirrors the target's checkpoint into the store)."""

    APPLIED: Final = "applied"  # a position durable on the target, mirrored for status and history


class CutoverLabel:
    """Checkpoints of phase 'cutover' (phases/cutover.py, switchover.py)."""

    GATE: Final = "gate"  # the verify gate passed
    FLIPPING: Final = "flipping"  # the switch is about to flip (recorded before)
    FLIP_FAILED: Final = "flip-failed"  # flipping raised: the switch did not flip
    SWITCHED: Final = "switched"  # the switch names the target
    UNFENCED: Final = "unfenced"  # source writes released
    DONE: Final = "done"  # cutover finished
    STOPPED: Final = "stopped"  # a signal stopped it before the flip: the source stays primary


class RollbackLabel:
    """Checkpoints of phase 'rollback'.

    Before cutover (rollback.py) a step's name is its label: the fixed steps below, and
    `rollback_collection(name)` per collection. After cutover (switchback.py) the flip back is
    SWITCHED_BACK and every other step is `switchback_step(step)`, "cutover:" and its name,
    beside the labels of a rollback before cutover."""

    CDC_CHECKPOINT: Final = "cdc_checkpoint"
    SLOT: Final = "slot"
    PUBLICATION: Final = "publication"
    REVERSE: Final = "reverse"
    RELEASE: Final = "release"

    SWITCHED_BACK: Final = "switched-back"  # the switch names the source again
    SWITCHBACK_VERIFY: Final = "cutover:verify"
    SWITCHBACK_FENCING: Final = "cutover:fencing"  # the collections' own options, recorded before the fence
    SWITCHBACK_FENCE: Final = "cutover:fence"
    SWITCHBACK_DRAIN: Final = "cutover:drain"
    SWITCHBACK_RECHECK: Final = "cutover:recheck"
    SWITCHBACK_ABANDONED: Final = "cutover:abandoned"
    SWITCHBACK_FENCE_LIFTED: Final = "cutover:fence-lifted"  # an attempt gave up: the target stays primary
    SWITCHBACK_SEQUENCES: Final = "cutover:sequences"  # the source's sequences past the target's
    SWITCHBACK_FLIPPING: Final = "cutover:flipping"  # the switch is about to flip back (recorded before)
    SWITCHBACK_DRAIN_AGAIN: Final = "cutover:drain-again"
    SWITCHBACK_UNFENCE: Final = "cutover:unfence"
    SWITCHBACK_FORGET: Final = "cutover:forget"
    SWITCHBACK_HOOK: Final = "cutover:hook"
    SWITCHBACK_DONE: Final = "cutover:done"  # that rollback after cutover finished


class FinishLabel:
    """Checkpoints of phase 'finish' (operations/finish.py): each step's name is its label,
    recorded once the step is done, so that a finish cut short is completed by running it again.
    REVERSE is the first: from it on, reverse sync is over and rollback is refused."""

    REVERSE: Final = "reverse"  # reverse sync stopped for good
    SLOT: Final = "slot"  # forward CDC's slot dropped on the source
    PUBLICATION: Final = "publication"  # its capture objects dropped (if the run created them)
    SOURCE_REVERSE: Final = "source-reverse"  # reverse sync's checkpoint and origin on the source
    TARGET_FEED: Final = "target-feed"  # reverse sync's feed and forward CDC's origin on the target
    RELEASE: Final = "release"  # the run's records and ownership record on the target
    DONE: Final = "done"  # the run marked finished


COLLECTION_PREFIX: Final = "collection:"
SWITCHBACK_PREFIX: Final = "cutover:"


def rollback_collection(name: str) -> str:
    """The label (and step name) of the rollback step for collection `name`."""
    return COLLECTION_PREFIX + name


def switchback_step(step: str) -> str:
    """The label of step `step` of a rollback after cutover (switchback.py)."""
    return SWITCHBACK_PREFIX + step
