"""What `migrator status` reports: where a plan's run stands, gathered read-only.

Three places know part of it, and each is asked separately so that one being down never hides
what the others know:

- the state store: the run, its phases, chunk progress, checkpoints (the mirrored CDC position
  among them) and the event log (errors, warnings);
- the target: the CDC checkpoint in its `_migrator` collection, written with the data (the
  authoritative applied position), and the collections' document counts;
- the source: the replication slot (retained WAL, confirmed position, whether a stream holds
  it) and the current WAL position, from which the lag in bytes follows.

Nothing here prints, writes to a database, or creates a state file: a plan without a state
file has no run, and its report says so. Where the state file to read was not named (--state,
MIGRATOR_STATE) and the default one holds no run, the target's ownership record says which run
owns the plan's data and where its state file is (docs/architecture.md, "One owner"): on the same
host that file is read, so that `status` finds a run from any directory; elsewhere the report
names it.

The package: report.py (the report's sections), reader.py (StatusReader, gather), live.py (the
reads from the databases), snapshot.py, cdc.py and events.py (one section each), times.py.
"""

from __future__ import annotations

from migrator.operations.status.reader import StatusReader, gather
from migrator.operations.status.report import (
    CdcStatus,
    CheckpointInfo,
    CollectionProgress,
    CutoverStatus,
    EndpointStatus,
    ErrorInfo,
    OwnerInfo,
    PhaseInfo,
    RunInfo,
    SlotStatus,
    SnapshotStatus,
    StatusReport,
    ThrottleStatus,
    VerifyInfo,
    WarningInfo,
)

__all__ = [
    "CdcStatus",
    "CheckpointInfo",
    "CollectionProgress",
    "CutoverStatus",
    "EndpointStatus",
    "ErrorInfo",
    "OwnerInfo",
    "PhaseInfo",
    "RunInfo",
    "SlotStatus",
    "SnapshotStatus",
    "StatusReader",
    "StatusReport",
    "ThrottleStatus",
    "VerifyInfo",
    "WarningInfo",
    "gather",
]
