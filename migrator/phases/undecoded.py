"""Which changed columns CDC hands from the source to the target undecoded (docs/architecture.md,
"Undecoded change values"), per source table.

A column qualifies when every collection that reads its table is one flat table whose field takes
the column's values as they are (no `types` cast, no embed anywhere the table appears), the
column is not a key column (batches fold writes by key, which needs the key's value), the source's
change stream can hand the column over in a format, and the target takes that format for it (its
column of the very type of the source's). The phase compares format names only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from migrator.adapters.base import (
    ColumnInfo,
    LevelRead,
    RawColumn,
    SourceAdapter,
    SourceTextSource,
    SourceTextTarget,
    TargetAdapter,
)
from migrator.mapping.spec import CollectionMapping


def _candidates(collection: CollectionMapping) -> list[RawColumn] | None:
    """The non-key columns whose values the flat collection writes as they are, under their
    target names; None where its documents are more than one table's rows."""
    document = collection.document
    if document.embeds or len(collection.levels) != 1:
        return None
    key = set(document.key)
    return [
        RawColumn(f.column, f.name)
        for f in document.fields
        if f.cast is None and f.forward is None and f.column.name not in key
    ]


def undecoded_columns(
    source: SourceAdapter, target: TargetAdapter, collections: Sequence[CollectionMapping]
) -> dict[str, frozenset[str]]:
    """Per source table, the columns its changes carry undecoded (SourceText) to the target."""
    if not isinstance(source, SourceTextSource) or not isinstance(target, SourceTextTarget):
        return {}
    taken: dict[str, frozenset[str]] = {}
    refused: set[str] = set()  # tables some collection needs decoded whole
    for collection in collections:
        candidates = _candidates(collection)
        if candidates is None:
            refused.update(collection.tables())
            continue
        table = collection.table
        form = source.change_text_format(table, [c.column for c in candidates]) if candidates else None
        columns = frozenset() if form is None else target.takes_source_text(collection.name, form, candidates)
        # A table in several collections: only what every one of them takes.
        taken[table] = columns if table not in taken else taken[table] & columns
    return {t: c for t, c in taken.items() if c and t not in refused}


# Column types read as their exact text where the target's column is of the same type (and arrays
# of them, element by element): json keeps its text, jsonb its numbers' scale, a JSON null is not
# SQL NULL (docs/architecture.md, "Undecoded change values").
_JSON = frozenset({"json", "jsonb"})


def _is_json(column: ColumnInfo) -> bool:
    if column.type_kind == "array":
        return column.element_kind == "base" and column.element_type in _JSON
    return column.type_name in _JSON


def json_text_levels(levels: list[LevelRead], taken: frozenset[str]) -> list[LevelRead]:
    """`levels` (Assembler.reads) with the root level's json and jsonb columns (and arrays of them)
    among `taken` (a table's entry of `undecoded_columns`) read as their text (LevelRead.json_text):
    for verify, which compares them as text, and for the snapshot's document path, which writes
    them as text (neither parsed nor printed again)."""
    if not taken or not levels or levels[0].path:
        return levels
    root = levels[0]
    texts = frozenset(c.name for c in root.columns if c.name in taken and _is_json(c))
    return [dataclasses.replace(root, json_text=texts), *levels[1:]] if texts else levels
