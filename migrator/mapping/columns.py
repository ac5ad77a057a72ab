"""Which source columns a mapping reads: what the change stream must carry for it.

Everything else (an excluded password hash, a column the plan's `fields` leave out) need never
leave the source; the PostgreSQL adapter turns this into a publication column list where the
server allows one (docs/architecture.md, "Publication column lists").
"""

from __future__ import annotations

from collections.abc import Iterable

from migrator.mapping.spec import CollectionMapping, DocumentMapping


def columns_read(collections: Iterable[CollectionMapping]) -> dict[str, set[str]]:
    """Per table: its mapped fields, its key, the `on` links on both sides, `order_by`, and what
    each mapped generated column is computed from (before PostgreSQL 18 it is not sent, so CDC
    computes it from the row). A table mapped in several places reads the union."""
    read: dict[str, set[str]] = {}

    def walk(doc: DocumentMapping) -> None:
        columns = read.setdefault(doc.table, set())
        columns.update(doc.key)
        for fld in doc.fields:
            columns.add(fld.column.name)
            columns.update(fld.column.generated_from)
        for embed in doc.embeds:
            columns.update(parent for _child, parent in embed.on)
            child = read.setdefault(embed.child.table, set())
            child.update(c for c, _parent in embed.on)
            child.update(embed.order_by)
            walk(embed.child)

    for collection in collections:
        walk(collection.document)
    return read
