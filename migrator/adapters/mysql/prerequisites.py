"""What a MySQL/MariaDB source must offer, as the runbook's checklist lists it (Prerequisite,
adapters/vocabulary.py): a binlog in ROW format with whole rows and column names, kept long
enough, readable by the plan's user; then per table SELECT, a primary key and a transactional
engine. Each line names the preflight check that decides it (server_checks.py)."""

from __future__ import annotations

from collections.abc import Sequence

from migrator.adapters.base import Prerequisite, SourceInfo

# The binlog settings server_checks.py requires, each its own check `source.<name>`.
_BINLOG = (
    ("binlog_format", "ROW", "changes logged as rows"),
    ("binlog_row_image", "FULL", "every row event carries the whole row"),
    ("binlog_row_metadata", "FULL", "row events name their columns"),
)


def prerequisites(plan_name: str, tables: Sequence[str], info: SourceInfo | None) -> list[Prerequisite]:
    del plan_name  # nothing on the server is named after the plan before a run
    server = info.server if info is not None else None
    seen = server is not None
    found = [
        Prerequisite(
            "source.reachable", "the source MySQL/MariaDB answers at the plan's URL", inspected=seen
        ),
        Prerequisite(
            "source.version",
            "MariaDB 10.5 or MySQL 8.0, or newer (row events that name their columns)",
            server.version if server is not None else None,
            inspected=seen,
        ),
        Prerequisite("source.log_bin", "the binary log is on (log_bin)", inspected=seen),
        *(
            Prerequisite(f"source.{name}", f"{name} = {want} ({why})", inspected=seen)
            for name, want, why in _BINLOG
        ),
        Prerequisite("source.server_id", "a server_id other than 0", inspected=seen),
        Prerequisite(
            "source.binlog_retention",
            "binlogs are kept longer than the snapshot takes (binlog_expire_logs_seconds)",
            inspected=seen,
        ),
        Prerequisite(
            "source.privilege",
            "the plan's user may read the binlog and its positions (REPLICATION SLAVE; BINLOG MONITOR or "
            "REPLICATION CLIENT)",
            inspected=seen,
        ),
    ]
    for table in tables:
        t = info.tables.get(table) if info is not None else None
        read = t is not None
        found += [
            Prerequisite(
                "source.select_privilege",
                f"the plan's user may SELECT from `{table}`",
                "granted" if read else None,
                subject=table,
                inspected=read,
            ),
            Prerequisite(
                "source.primary_key",
                f"`{table}` has a primary key (a change is applied to its document by it)",
                f"primary key ({', '.join(t.primary_key)})" if t is not None else None,
                subject=table,
                inspected=read,
            ),
            Prerequisite(
                "source.engine",
                f"`{table}` uses a transactional engine (InnoDB), read consistently with the binlog position",
                "transactional" if read else None,
                subject=table,
                inspected=read,
            ),
        ]
    return found
