"""What a PostgreSQL source must offer, as the runbook's checklist lists it (Prerequisite,
adapters/vocabulary.py): logical decoding, replication grants and room for a slot, then per
table a key that UPDATE and DELETE are logged by in the WAL (docs/architecture.md, "Partitioned
tables"). Each line names the preflight check that decides it (server_checks.py, publication.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from migrator.adapters.base import Prerequisite, SourceInfo, TableInfo
from migrator.adapters.postgres.server_checks import MIN_SERVER_VERSION
from migrator.plan.names import slot_name_pattern


def prerequisites(plan_name: str, tables: Sequence[str], info: SourceInfo | None) -> list[Prerequisite]:
    server = info.server if info is not None else None
    settings = server.settings if server is not None else {}
    seen = server is not None
    found = [
        Prerequisite(
            "source.reachable", "the source PostgreSQL answers at the plan's URL", None, inspected=seen
        ),
        Prerequisite(
            "source.version",
            f"PostgreSQL {MIN_SERVER_VERSION // 10000} or newer (14+ streams large transactions)",
            f"PostgreSQL {server.version}" if server is not None else None,
            inspected=seen,
        ),
        Prerequisite(
            "source.wal_level",
            "wal_level = logical",
            f"wal_level = {settings.get('wal_level', 'unknown')}",
            inspected=seen,
        ),
        Prerequisite(
            "source.replication_privilege",
            "the plan's role may replicate (REPLICATION or superuser)",
            inspected=seen,
        ),
        Prerequisite(
            "source.free_replication_slots", "a free replication slot (max_replication_slots)", inspected=seen
        ),
        Prerequisite("source.free_wal_senders", "a free WAL sender (max_wal_senders)", inspected=seen),
        Prerequisite(
            "source.create_publication",
            "the plan's role may create a publication in the source database",
            "allowed" if seen else None,
            inspected=seen,
        ),
        Prerequisite(
            "source.existing_slot",
            f"no leftover replication slot of an earlier run (`{slot_name_pattern(plan_name)}`; it would retain WAL)",
            "none exists" if seen else None,
            inspected=seen,
        ),
    ]
    for table in tables:
        t = info.tables.get(table) if info is not None else None
        found += _identity(table, t)
        owner = None
        if t is not None and server is not None:
            owner = "superuser" if server.is_superuser else "owned by the plan's role"
        found.append(
            Prerequisite(
                "source.table_owner",
                f"the plan's role owns `{table}` (CREATE PUBLICATION ... FOR TABLE)",
                owner,
                subject=table,
                inspected=t is not None,
            )
        )
    return found


def _identity(table: str, info: TableInfo | None) -> list[Prerequisite]:
    if info is None:
        return [
            Prerequisite(
                "source.replica_identity",
                f"`{table}` has a primary key or a replica identity (UPDATE/DELETE keyed in the WAL)",
                subject=table,
            )
        ]
    key = ", ".join(info.primary_key) or "none"
    if info.kind != "partitioned":
        return [
            Prerequisite(
                "source.replica_identity",
                f"`{table}` has a primary key or a replica identity (UPDATE/DELETE keyed in the WAL)",
                f"REPLICA IDENTITY {info.replica_identity.upper()}, primary key ({key})",
                subject=table,
                inspected=True,
            )
        ]
    # Changes come from each partition with that partition's own replica identity
    # (docs/architecture.md, "Partitioned tables"): one line per leaf, each with the fix preflight
    # found for it; the partitioned table's own line is about its key, which a partition created
    # later takes as its identity.
    lines = [
        Prerequisite(
            "source.replica_identity",
            f"partitioned `{table}` has a primary key (a partition created later takes it as "
            "replica identity; REPLICA IDENTITY is set per partition, not here)",
            f"primary key ({key}), {len(info.leaves)} partition(s)",
            subject=table,
            inspected=True,
        )
    ]
    for leaf in info.leaves:
        leaf_key = ", ".join(leaf.primary_key) or "none"
        lines.append(
            Prerequisite(
                "source.replica_identity",
                f"partition `{leaf.name}` of `{table}` has a replica identity (UPDATE/DELETE keyed in the WAL)",
                f"REPLICA IDENTITY {leaf.replica_identity.upper()}, primary key ({leaf_key})",
                subject=leaf.name,
                inspected=True,
            )
        )
    return lines
