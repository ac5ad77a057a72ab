"""Durable memory of runs: phases, chunk progress, checkpoints and the event log."""

from migrator.state.schema import SCHEMA_VERSION
from migrator.state.sqlite import (
    STATE_ENV,
    SQLiteStateStore,
    default_state_path,
    new_run_id,
    resolve_state_path,
)
from migrator.state.store import (
    CheckpointRecord,
    ChunkRecord,
    ChunkStatus,
    ControlRecord,
    EventRecord,
    PhaseRecord,
    PhaseStatus,
    RunRecord,
    RunStatus,
    StateStore,
    is_secret_key,
)

__all__ = [
    "SCHEMA_VERSION",
    "STATE_ENV",
    "CheckpointRecord",
    "ChunkRecord",
    "ChunkStatus",
    "ControlRecord",
    "EventRecord",
    "PhaseRecord",
    "PhaseStatus",
    "RunRecord",
    "RunStatus",
    "SQLiteStateStore",
    "StateStore",
    "default_state_path",
    "is_secret_key",
    "new_run_id",
    "resolve_state_path",
]
