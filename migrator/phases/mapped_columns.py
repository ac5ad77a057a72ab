"""What the mapping takes of each source table, as the source's schema checks need it: plain
data (adapters/base.py MappedColumns), so that the source adapter decides what a schema change
means for the run without knowing the mapping's types (docs/architecture.md, "Schema changes")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from migrator.adapters.base import MappedColumns
from migrator.mapping.columns import columns_read
from migrator.mapping.spec import CollectionMapping


def mapped_columns(
    plan_collections: Sequence[Any], collections: Sequence[CollectionMapping]
) -> MappedColumns:
    """From the plan's collections (as written: which levels list no `fields`) and the resolved
    mappings."""
    mapped: dict[str, set[str]] = {}
    # Per table, the key columns that say which document or element its row is. (A link column
    # that neither tuple carries did not change: the mapper finds its element by the element's own
    # key, which preflight makes unique wherever the link is outside the replica identity;
    # docs/architecture.md, "Embeds: owner and lookup".)
    locating: dict[str, tuple[str, ...]] = {}

    for collection in collections:
        for level in collection.levels:
            doc = level.document
            known = locating.get(doc.table, ())
            locating[doc.table] = tuple(dict.fromkeys((*known, *doc.key)))
            # Fields, keys and link columns on either side: what the mapping cannot lose.
            columns = mapped.setdefault(doc.table, set())
            columns.update(f.column.name for f in doc.fields)
            columns.update(doc.key)
            columns.update(level.link)
            for child in doc.embeds:
                columns.update(p for _, p in child.on)

    open_shapes: dict[str, list[frozenset[str]]] = {}

    def shapes(shape: Any) -> None:
        if shape.fields is None:
            open_shapes.setdefault(shape.table, []).append(frozenset(shape.exclude))
        for embed in shape.embed:
            shapes(embed)

    for collection in plan_collections:
        shapes(collection)
    return MappedColumns(
        read=columns_read(collections),
        mapped={t: frozenset(c) for t, c in mapped.items()},
        locating=locating,
        open_shapes={t: tuple(s) for t, s in open_shapes.items()},
    )
