"""Which source columns a mapping reads: what the change stream must carry for it.

Everything else (an excluded password hash, a column the plan's `fields` leave out) need never
leave the source; the PostgreSQL adapter turns this into a publication column list where the
server allows one (docs/architecture.md, "Publication column lists").
"""

from __future__ import annotations

from collections.abc import Iterable

from migrator.mapping.spec import CollectionMapping


def columns_read(collections: Iterable[CollectionMapping]) -> dict[str, set[str]]:
    """Per table: its mapped fields, its key, the `on` links on both sides, `order_by`, and what
    each mapped generated column is computed from (before PostgreSQL 18 it is not sent, so CDC
    computes it from the row). A table mapped in several places reads the union."""
    read: dict[str, set[str]] = {}
    for collection in collections:
        for level in collection.levels:
            doc = level.document
            columns = read.setdefault(doc.table, set())
            columns.update(doc.key)
            columns.update(level.link)
            for fld in doc.fields:
                columns.add(fld.column.name)
                columns.update(fld.column.generated_from)
            for embed in doc.embeds:
                columns.update(parent for _child, parent in embed.on)
            if level.embed is not None:
                columns.update(level.embed.order_by)
    return read
