"""Which collections the snapshot copies undecoded (docs/architecture.md, "Undecoded copy"), and
the copy of one such chunk.

A collection qualifies when it is one flat table whose fields take the source's values as they
are (no `types` cast, no embed), the source's copy readers stream its columns in a format, and the
target takes that format for them (its columns of the very types of the source's). Renamed
fields and a subset of the columns qualify: the stream names the source columns it reads and the
target the columns it fills. Everything else takes the document path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from migrator.adapters.base import (
    RawChunkReader,
    RawChunkSource,
    RawChunkTarget,
    RawColumn,
    RawWriter,
    SourceAdapter,
    TargetAdapter,
)
from migrator.mapping.spec import CollectionMapping


@dataclass(frozen=True)
class RawRoute:
    form: str
    columns: tuple[RawColumn, ...]
    writer: RawWriter

    def copy(
        self,
        reader: RawChunkReader,
        collection: CollectionMapping,
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        *,
        known_empty: bool = False,
    ) -> int:
        """Copy the key range (lo, hi]; the rows written (the range's rows, replaced).
        `known_empty`: nothing was ever written in the range (RawWriter.replace_range)."""
        key = collection.document.key
        blocks = reader.raw_chunk(
            self.form, collection.table, [c.column.name for c in self.columns], key, key_types, lo, hi
        )
        return self.writer.replace_range(key, key_types, lo, hi, blocks, known_empty=known_empty)


def raw_columns(collection: CollectionMapping) -> list[RawColumn] | None:
    """The columns the target table takes, in the source's order, under their target names (the
    key's keep theirs); None where documents are more than the rows' values."""
    document = collection.document
    if document.embeds or any(f.plan_type is not None for f in document.fields):
        return None
    names = {f.column.name: f.name for f in document.fields}
    key = set(document.key)
    return [
        RawColumn(c, c.name if c.name in key else names[c.name])
        for c in sorted(document.all_columns, key=lambda c: c.position)
        if c.name in key or c.name in names
    ]


def raw_route(source: SourceAdapter, target: TargetAdapter, collection: CollectionMapping) -> RawRoute | None:
    """How `collection` is copied undecoded, or None: the document path."""
    columns = raw_columns(collection)
    if columns is None or not isinstance(source, RawChunkSource) or not isinstance(target, RawChunkTarget):
        return None
    form = source.raw_format(collection.table, [c.column for c in columns])
    if form is None:
        return None
    writer = target.raw_writer(collection.name, form, columns)
    if writer is None:
        return None
    # The stream carries only the columns the writer fills (not those the target computes).
    taken = {name: c for c in columns if (name := c.target) in writer.columns}
    return RawRoute(form, tuple(taken[name] for name in writer.columns), writer)
