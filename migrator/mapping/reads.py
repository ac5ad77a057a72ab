"""What CDC reads from the source for content a change names only by link values.

A parent row inserted with a link, or whose link changed, carries the link but not the row it
points to (a lookup) nor the rows that point to it (its children); a change that carries an
unchanged TOASTed value lacks that value. The change mapper (mapping/changes.py) puts a
`SourceRead` placeholder there whose spec is an `EmbedRead`: the embed, read under a derived
parent made of the given link values, so that one query per level reads a whole batch's content,
joined and assembled exactly as the snapshot does it (mapping/assemble.py). The reader is
mapping/source_reads.py; why reading the source "now" converges: docs/architecture.md,
"Embedded content read from the source".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo
from migrator.mapping.assemble import Assembler
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping

# The derived parent's key: the position (from 1) of a set of link values among those read.
ORDINAL = "migrator_n"
ORDINAL_COLUMN = ColumnInfo(ORDINAL, "bigint", "base", None, None, False, None, None, 0)


@dataclass(frozen=True, eq=False)
class EmbedRead:
    """How to read one embed's content for given values of the parent's link columns: a derived
    parent holding exactly those columns and this one embed."""

    embed: EmbedMapping
    columns: tuple[ColumnInfo, ...]  # the parent's `on` columns, in `on` order
    assembler: Assembler

    @property
    def empty(self) -> Any:
        return [] if self.embed.many else None


def embed_read(embed: EmbedMapping, parent_columns: Sequence[ColumnInfo]) -> EmbedRead:
    """The read of `embed`'s content under a parent whose columns are `parent_columns`."""
    by_name = {c.name: c for c in parent_columns}
    columns = tuple(by_name[p] for _, p in embed.on)
    parent = DocumentMapping(
        table=f"<values of {', '.join(c.name for c in columns)}>",
        key=(ORDINAL,),
        fields=(),
        embeds=(embed,),
        table_columns=(ORDINAL_COLUMN, *columns),
    )
    return EmbedRead(embed, columns, Assembler(CollectionMapping("<embed read>", parent)))


def element_read(doc: DocumentMapping) -> EmbedRead:
    """The read of one element of `doc`'s table, whole (its fields and its own embeds), by its key."""
    by_name = {c.name: c for c in doc.all_columns}
    embed = EmbedMapping("element", False, tuple((k, k) for k in doc.key), (), doc)
    return embed_read(embed, [by_name[k] for k in doc.key])
