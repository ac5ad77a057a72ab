"""Inspection results written by hand, for tests of the mapping and preflight rules without a server."""

from __future__ import annotations

from migrator.adapters.base import ColumnInfo, TableInfo


def keyed_table(name: str, *columns: ColumnInfo) -> TableInfo:
    """A table keyed by `id` (its primary key and replica identity), owned, empty, no foreign keys."""
    return TableInfo(
        name=name,
        columns=columns,
        primary_key=("id",),
        unique_keys=(("id",),),
        replica_identity="default",
        identity_columns=("id",),
        foreign_keys=(),
        estimated_rows=0,
        total_bytes=0,
        owned_by_current_user=True,
    )
