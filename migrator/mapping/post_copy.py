"""What the target builds after the copy (docs/architecture.md, "After the copy"): the source's
secondary indexes and constraints of the copied tables, worded by the target under the target
tables' and columns' names. Either adapter without the capability: nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from migrator.adapters.base import (
    KeysAfterCopyTarget,
    PostCopy,
    PostCopySource,
    PostCopyStatement,
    PostCopyTarget,
    SourceAdapter,
    TargetAdapter,
)
from migrator.mapping.spec import CollectionMapping


def targets_of(collections: Sequence[CollectionMapping]) -> dict[str, tuple[str, dict[str, str]]]:
    """Each copied source table: its target table, and its columns (source -> target name)."""
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for collection in collections:
        document = collection.document
        columns = {k: k for k in document.key}
        columns.update((f.column.name, f.name) for f in document.fields if f.column.name not in columns)
        found[collection.table] = (collection.name, columns)
    return found


def planned(
    source: SourceAdapter, target: TargetAdapter, collections: Sequence[CollectionMapping]
) -> PostCopy:
    """What the target builds after the copy (flat collections only: tables): the primary keys
    first where the target adds them after the copy, then the source's secondary objects."""
    flat = [c for c in collections if not c.document.embeds]
    keys: tuple[PostCopyStatement, ...] = ()
    if flat and isinstance(target, KeysAfterCopyTarget):
        keys = tuple(target.primary_keys([(c.name, tuple(c.document.key)) for c in flat]))
    if not flat or not isinstance(source, PostCopySource) or not isinstance(target, PostCopyTarget):
        return PostCopy(keys)
    objects = source.schema_objects([c.table for c in flat])
    built = target.post_copy(objects, targets_of(flat))
    return PostCopy(keys + built.statements, built.skipped)
