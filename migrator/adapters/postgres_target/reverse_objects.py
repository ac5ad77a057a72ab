"""The slot and the publication on a PostgreSQL target that reverse sync reads the target's changes
through (docs/architecture.md, "Reverse sync from a PostgreSQL target"), both named after the plan
(`reverse_feed_name`): created when reverse sync is prepared (before the switch flips), dropped by
`rollback --to start` (ownership.py's release) with the forward origin.

The slot retains the target's WAL while it exists (invariant 7): it is confirmed up to reverse
sync's durable checkpoint each time the feed is opened (reverse.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres.lsn import Lsn
from migrator.adapters.postgres_target.schema import qualified

_SLOT_SQL = "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s"


# From PostgreSQL 13 a partitioned table's changes can be published under its own name: a target
# table made partitioned before the run (plan's target.partitions fix) is written by the
# application through its partitions, whose names reverse sync does not map.
VIA_ROOT_SERVER_VERSION = 130000


def ensure_publication(conn: psycopg.Connection[Any], name: str, tables: Sequence[str]) -> bool:
    """The publication of `tables` (created, or its table list set), publishing a partitioned
    table's changes as its own (not its partitions'); True when created here."""
    listed = sql.SQL(", ").join(sql.SQL(qualified(t)) for t in tables)
    via_root = conn.info.server_version >= VIA_ROOT_SERVER_VERSION
    found = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [name]).fetchone()
    if found is None:
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}{}").format(
                sql.Identifier(name),
                listed,
                sql.SQL(" WITH (publish_via_partition_root = true)" if via_root else ""),
            )
        )
        return True
    conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), listed))
    if via_root:
        conn.execute(
            sql.SQL("ALTER PUBLICATION {} SET (publish_via_partition_root = true)").format(
                sql.Identifier(name)
            )
        )
    return False


def ensure_slot(conn: psycopg.Connection[Any], name: str) -> int:
    """The slot's position: where it stands (confirmed), or, created now, its consistent point.
    `conn` must be in autocommit: a slot is not created in a transaction that wrote."""
    row = conn.execute(_SLOT_SQL, [name]).fetchone()
    if row is not None and row[0] is not None:
        return Lsn.parse(str(row[0])).value
    created = conn.execute(
        "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", [name]
    ).fetchone()
    assert created is not None
    return Lsn.parse(str(created[0])).value


def drop(conn: psycopg.Connection[Any], name: str) -> list[str]:
    """Drop the slot and the publication named `name`; what was dropped."""
    dropped = []
    if conn.execute(_SLOT_SQL, [name]).fetchone() is not None:
        conn.execute("SELECT pg_drop_replication_slot(%s)", [name])
        dropped.append(f"replication slot {name}")
    if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [name]).fetchone() is not None:
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(name)))
        dropped.append(f"publication {name}")
    return dropped
