"""Names of the objects a run creates, derived from the plan name so that reruns find them."""

from __future__ import annotations

import hashlib
import re


def _identifier(prefix: str, plan_name: str) -> str:
    # Slot names allow only lower-case letters, digits and '_', at most 63 bytes. Two plan
    # names that clean to the same text get different names thanks to the digest suffix.
    cleaned = re.sub(r"[^a-z0-9_]", "_", plan_name.lower())
    digest = hashlib.sha256(plan_name.encode()).hexdigest()[:8]
    return f"{prefix}_{cleaned[:40]}_{digest}"


def slot_name(plan_name: str) -> str:
    return _identifier("migrator", plan_name)


def publication_name(plan_name: str) -> str:
    return _identifier("migrator", plan_name)


def cdc_checkpoint_id(plan_name: str) -> str:
    """_id of the CDC checkpoint document in the target's `_migrator` collection."""
    return f"cdc:{plan_name}"


def reverse_origin_name(plan_name: str) -> str:
    """PostgreSQL replication origin that tags reverse sync's transactions on the source, so that
    forward CDC recognises (and skips) them."""
    return _identifier("migrator_reverse", plan_name)
