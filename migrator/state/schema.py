"""The SQLite state file's schema, versioned with an explicit upgrade chain.

`PRAGMA user_version` holds the version. STEPS[i] upgrades version i to i + 1; each
step runs in its own transaction together with the version bump, so a crash leaves
the file at a whole version. To add version 3, write `_v2_to_v3(conn)` and append it.
Released steps are never edited: files in the field were built by them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from migrator.errors import StateError

Step = Callable[[sqlite3.Connection], None]

# "MGRT": marks the file as ours, so a --state that points at some other SQLite
# database is refused instead of having tables added to it.
APPLICATION_ID = 0x4D475254


_V1: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        plan_name   TEXT NOT NULL,
        plan_digest TEXT NOT NULL,
        status      TEXT NOT NULL
            CHECK (status IN ('active', 'succeeded', 'failed', 'rolled_back', 'abandoned')),
        phase       TEXT,
        started_at  TEXT NOT NULL,
        ended_at    TEXT
    )
    """,
    # One active run per plan: two runners on the same plan would race each other over
    # the same slot and target, so the file itself refuses the second one.
    "CREATE UNIQUE INDEX runs_one_active_per_plan ON runs (plan_name) WHERE status = 'active'",
    "CREATE INDEX runs_by_plan ON runs (plan_name, started_at)",
    """
    CREATE TABLE phases (
        run_id     TEXT NOT NULL REFERENCES runs (id),
        name       TEXT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'rolled_back')),
        started_at TEXT,
        ended_at   TEXT,
        UNIQUE (run_id, name)
    )
    """,
    """
    CREATE TABLE chunks (
        run_id       TEXT NOT NULL REFERENCES runs (id),
        table_name   TEXT NOT NULL,
        chunk_id     INTEGER NOT NULL,
        key_lo       TEXT NOT NULL,
        key_hi       TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
        rows_read    INTEGER NOT NULL CHECK (rows_read >= 0),
        docs_written INTEGER NOT NULL CHECK (docs_written >= 0),
        attempts     INTEGER NOT NULL CHECK (attempts >= 0),
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (run_id, table_name, chunk_id)
    )
    """,
    """
    CREATE TABLE checkpoints (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id     TEXT NOT NULL REFERENCES runs (id),
        phase      TEXT NOT NULL,
        label      TEXT NOT NULL,
        position   TEXT NOT NULL,
        created_at TEXT NOT NULL,
        detail     TEXT NOT NULL
    )
    """,
    "CREATE INDEX checkpoints_by_phase ON checkpoints (run_id, phase, id)",
    # AUTOINCREMENT: a seq is never reused, so "events after seq N" is a safe cursor.
    """
    CREATE TABLE events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id  TEXT REFERENCES runs (id),
        ts      TEXT NOT NULL,
        kind    TEXT NOT NULL,
        payload TEXT NOT NULL
    )
    """,
    "CREATE INDEX events_by_run ON events (run_id, seq)",
    # The event log and the checkpoint history are what operators and rollback rely on
    # after the fact; rewriting them would make both lie.
    *(
        f"CREATE TRIGGER {table}_append_only_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        for table in ("events", "checkpoints")
        for op in ("UPDATE", "DELETE")
    ),
    f"PRAGMA application_id = {APPLICATION_ID:d}",
)


def _v0_to_v1(conn: sqlite3.Connection) -> None:
    # One execute() per statement: executescript() would COMMIT the step's transaction.
    for statement in _V1:
        conn.execute(statement)


_V2: tuple[str, ...] = (
    # Run-time controls that `migrator throttle` sets and a running `migrator run` polls: one
    # current value per run and name (JSON). Unlike events and checkpoints they are overwritten;
    # each change is also appended to the event log, which keeps their history.
    """
    CREATE TABLE controls (
        run_id     TEXT NOT NULL REFERENCES runs (id),
        name       TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    )
    """,
)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    for statement in _V2:
        conn.execute(statement)


_V3: tuple[str, ...] = (
    # The replication slot of the run, whose name carries the run (plan/names.py). NULL for runs
    # begun before: their slot is named after the plan alone (`legacy_slot_name`), and they
    # resume under that name.
    "ALTER TABLE runs ADD COLUMN slot TEXT",
)


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    for statement in _V3:
        conn.execute(statement)


STEPS: tuple[Step, ...] = (_v0_to_v1, _v1_to_v2, _v2_to_v3)
SCHEMA_VERSION = len(STEPS)


def user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def upgrade(conn: sqlite3.Connection, where: str, steps: Sequence[Step] = STEPS) -> int:
    """Bring the file up to `len(steps)`, one step per transaction; returns the version found.

    `conn` must be in autocommit mode (isolation_level=None): the transactions are ours.
    """
    found = user_version(conn)
    _check_known(conn, found, where, steps)
    if found == len(steps):
        return found
    for target in range(found + 1, len(steps) + 1):
        # IMMEDIATE takes the write lock first, so two processes opening the same old
        # file cannot both run a step; the loser re-reads the version and skips it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if user_version(conn) < target:
                steps[target - 1](conn)
                conn.execute(f"PRAGMA user_version = {target:d}")
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on some errors (SQLITE_FULL among them); a second
            # ROLLBACK would fail and hide the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return found


def _check_known(conn: sqlite3.Connection, version: int, where: str, steps: Sequence[Step]) -> None:
    if version > len(steps):
        raise StateError(
            f"state file {where} has schema version {version}, but this migrator knows only "
            f"versions up to {len(steps)}",
            hint="upgrade migrator to the version that wrote this file; never edit the file by hand",
        )
    app_id: int = conn.execute("PRAGMA application_id").fetchone()[0]
    if version == 0:
        has_tables = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
        foreign = has_tables or app_id not in (0, APPLICATION_ID)
    else:
        foreign = app_id != APPLICATION_ID
    if foreign:
        raise StateError(
            f"{where} is an SQLite database but not a migrator state file",
            hint="point --state (or MIGRATOR_STATE) at a new path or an existing migrator state file",
        )
