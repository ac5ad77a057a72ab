"""Names of the objects a run creates.

The replication slot carries the run that created it (docs/architecture.md, "One owner"): two
runs of one plan, started from two state files, never share or drop each other's slot, and a
slot whose name carries this run's token was created by this run and by nothing else. The
publication is named after the plan, so that a DBA may create it beforehand (its tables need
their owner's rights); whether a run created it or found it is recorded, and rollback drops only
what the run created. Runs begun before slot names carried the run keep their plan-named slot:
the state store and the target's ownership record hold each run's slot name, and callers read
it from there (`RunRecord.slot`), never derive it from the plan.
"""

from __future__ import annotations

import hashlib
import re

SLOT_PREFIX = "migrator"
# PostgreSQL identifiers (slot and publication names) hold at most 63 bytes.
MAX_IDENTIFIER = 63
RUN_TOKEN_CHARS = 8
# 'migrator_' + plan (32) + '_' + digest (8) + '_' + run token (8) = 59 <= 63.
_PLAN_CHARS_WITH_RUN = 32
_PLAN_CHARS_LEGACY = 40


def _cleaned(plan_name: str) -> str:
    # Slot names allow only lower-case letters, digits and '_'.
    return re.sub(r"[^a-z0-9_]", "_", plan_name.lower())


def _digest(plan_name: str) -> str:
    # Two plan names that clean to the same text get different names thanks to the digest.
    return hashlib.sha256(plan_name.encode()).hexdigest()[:8]


def _identifier(prefix: str, plan_name: str) -> str:
    return f"{prefix}_{_cleaned(plan_name)[:_PLAN_CHARS_LEGACY]}_{_digest(plan_name)}"


def run_token(run_id: str) -> str:
    """The part of a run id that a slot name carries."""
    token = re.sub(r"[^a-z0-9]", "", run_id.lower())[:RUN_TOKEN_CHARS]
    if len(token) < RUN_TOKEN_CHARS:
        raise ValueError(f"run id {run_id!r} is too short to name a slot")
    return token


def slot_name(plan_name: str, run_id: str) -> str:
    """The replication slot of run `run_id` of the plan (runs begun by this version)."""
    return f"{_slot_stem(plan_name)}_{run_token(run_id)}"


def legacy_slot_name(plan_name: str) -> str:
    """The slot name of runs begun before slot names carried the run (one per plan)."""
    return _identifier(SLOT_PREFIX, plan_name)


def _slot_stem(plan_name: str) -> str:
    return f"{SLOT_PREFIX}_{_cleaned(plan_name)[:_PLAN_CHARS_WITH_RUN]}_{_digest(plan_name)}"


def slot_name_pattern(plan_name: str) -> str:
    """How a run's slot will be named, for text written before a run exists (dry run, runbook)."""
    return f"{_slot_stem(plan_name)}_<run>"


def is_slot_of(plan_name: str, slot: str) -> bool:
    """Whether `slot` is the slot of some run of the plan (this version's or an earlier one's)."""
    if slot == legacy_slot_name(plan_name):
        return True
    stem = _slot_stem(plan_name) + "_"
    token = slot[len(stem) :]
    return slot.startswith(stem) and len(token) == RUN_TOKEN_CHARS and token.isalnum()


def publication_name(plan_name: str) -> str:
    return _identifier(SLOT_PREFIX, plan_name)


def cdc_checkpoint_id(plan_name: str) -> str:
    """_id of the CDC checkpoint document in the target's `_migrator` collection."""
    return f"cdc:{plan_name}"


def owner_record_id(plan_name: str) -> str:
    """_id of the ownership record in the target's `_migrator` collection: which run owns the
    plan's data in this database (adapters/mongodb/ownership.py)."""
    return f"owner:{plan_name}"


def reverse_marker_id(plan_name: str) -> str:
    """_id of reverse sync's caught-up marker in the target's `_migrator` collection."""
    return f"reverse:{plan_name}"


def reverse_origin_name(plan_name: str) -> str:
    """PostgreSQL replication origin that tags reverse sync's transactions on the source, so that
    forward CDC recognises (and skips) them."""
    return _identifier("migrator_reverse", plan_name)


def forward_origin_name(plan_name: str, database: str) -> str:
    """PostgreSQL replication origin that tags forward CDC's transactions on a PostgreSQL target,
    so that reverse sync (which reads the target's changes) recognises (and skips) them. Origins
    are the cluster's, not a database's: the target database is part of the name, so that one
    plan name migrating into two databases of one cluster never shares (or drops) one origin."""
    return _identifier("migrator_forward", f"{plan_name}@{database}")


def checkpoint_plan(checkpoint_id: str) -> str:
    """The plan a CDC checkpoint id (`cdc_checkpoint_id`) belongs to."""
    return checkpoint_id.removeprefix("cdc:")


def reverse_feed_name(plan_name: str, database: str) -> str:
    """The logical replication slot and the publication on a PostgreSQL target that reverse sync
    reads the target's changes through (adapters/postgres_target/reverse.py); the database is
    part of the name, since slot names are the cluster's."""
    return _identifier("migrator_rev", f"{plan_name}@{database}")


def target_fence_name(plan_name: str) -> str:
    """The triggers (and their function) that fence a PostgreSQL target's tables for the switch
    back (adapters/postgres_target/fence.py)."""
    return _identifier("migrator_fence", plan_name)
