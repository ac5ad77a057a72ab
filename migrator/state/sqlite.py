"""The default state store: one SQLite file per plan, beside the plan file
(`<plan file's directory>/.migrator/<plan>.db`), so that every command finds the same run from
any working directory."""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from migrator.errors import ActiveRunExists, MigratorError, StateDiskFull, StateError, TransientError
from migrator.plan.names import legacy_slot_name
from migrator.state import schema
from migrator.state.lease import Lease, os_error
from migrator.state.store import (
    CHUNK_STATUSES,
    FINAL_RUN_STATUSES,
    PHASE_STATUSES,
    RUN_TRANSITIONS,
    CheckpointRecord,
    ChunkRecord,
    ChunkStatus,
    ControlRecord,
    EventRecord,
    PhaseRecord,
    PhaseStatus,
    RunRecord,
    RunStatus,
    encode_document,
    encode_key,
)

STATE_ENV = "MIGRATOR_STATE"
STATE_DIR = ".migrator"
MEMORY = ":memory:"
# The plan name becomes a file name: no separators, no leading dot, nothing a shell mangles.
_PLAN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
_ENDED_PHASE = frozenset({"done", "failed", "rolled_back"})


def _check_plan_name(plan_name: str) -> None:
    if not _PLAN_NAME.match(plan_name):
        raise StateError(
            f"plan name {plan_name!r} cannot name a state file",
            hint="use letters, digits, '.', '_' and '-' only, starting with a letter or digit",
        )


def default_state_path(
    plan_name: str,
    cwd: str | os.PathLike[str] | None = None,
    *,
    plan_file: str | os.PathLike[str] | None = None,
) -> Path:
    """`<plan file's directory>/.migrator/<plan name>.db`; without a plan file (an API caller
    with a Plan object), `<cwd>/.migrator/<plan name>.db`."""
    _check_plan_name(plan_name)
    base = Path(cwd if cwd is not None else Path.cwd())
    if plan_file is not None:
        # Resolved: the same plan file names the same state file from every directory.
        base = (base / Path(plan_file).expanduser()).resolve().parent
    return base / STATE_DIR / f"{plan_name}.db"


def resolve_state_path(
    explicit: str | os.PathLike[str] | None,
    plan_name: str,
    cwd: str | os.PathLike[str] | None = None,
    *,
    plan_file: str | os.PathLike[str] | None = None,
) -> Path:
    """The state file to use: `--state PATH` if given, else $MIGRATOR_STATE, else the default
    beside the plan file. Runs begun by earlier versions kept their state in the working
    directory (`<cwd>/.migrator/<plan>.db`): when only that file exists, it is the one used, so
    that they resume."""
    base = Path(cwd if cwd is not None else Path.cwd())
    chosen = explicit if explicit not in (None, "") else os.environ.get(STATE_ENV) or None
    if chosen is None:
        default = default_state_path(plan_name, base, plan_file=plan_file)
        earlier = default_state_path(plan_name, base)
        if not default.exists() and earlier.exists():
            return earlier
        return default
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else base / path


def new_run_id() -> str:
    return secrets.token_hex(8)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _create_private(path: Path) -> None:
    """Create the state file owner-only before SQLite touches it.

    SQLite creates its -wal, -shm and -journal side files with the main file's mode,
    so a 0600 main file keeps them private too. Changing the umask instead would
    race every other thread of the process that creates files.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        # A file left by an older tool or copied in may be looser: tighten it, and any
        # side files a crashed process left behind.
        for candidate in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
            try:
                mode = stat.S_IMODE(candidate.stat().st_mode)
            except FileNotFoundError:
                continue
            if mode & 0o077:
                candidate.chmod(mode & 0o700)
    except OSError as exc:
        raise os_error(exc, "creating it", path) from None


class SQLiteStateStore:
    """A `StateStore` in one SQLite file; one connection, shared by threads under a lock."""

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0, create: bool = True
    ) -> None:
        """`create=False` (commands that find a run rather than begin one: verify, cutover,
        rollback): a missing state file is not created; the store reads as empty (no runs) and
        refuses every write, and no lock file is made (docs/architecture.md, "State store")."""
        self.path = str(path)
        self._lock = threading.RLock()
        self._leases: dict[str, Lease] = {}
        # A store with no file behind it: nothing to find, nothing to hold, nothing to write.
        self.missing = not create and self.path != MEMORY and not Path(self.path).exists()
        if self.path != MEMORY and create:
            _create_private(Path(self.path))
        try:
            # isolation_level=None: the module's implicit BEGINs would hide where our
            # transactions start; every write below opens its own BEGIN IMMEDIATE.
            # Without `create`, mode=rw: a file removed since the check above is not made again.
            conn = sqlite3.connect(
                MEMORY
                if self.missing
                else self.path
                if create
                else f"{Path(self.path).absolute().as_uri()}?mode=rw",
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=not create and not self.missing,
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "opening") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            # Checkpoints are resume points: a commit must survive power loss, not only a crash.
            conn.execute("PRAGMA synchronous = FULL")
            schema.upgrade(conn, MEMORY if self.missing else self.path)
            # After the schema check, so a foreign database's journal mode is never changed.
            # WAL lets `migrator status` read while a run writes.
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "opening") from None
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    # -- plumbing -------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error, doing: str) -> MigratorError:
        # Interface errors (a closed connection, a bad binding) carry no SQLite code.
        name: str = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return TransientError(
                f"state file {self.path} is locked by another process ({doing})",
                hint="wait for the other migrator process to finish, then try again",
            )
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            return StateError(f"{doing}: no such run in {self.path}")
        if name == "SQLITE_FULL":
            # SQLite reports ENOSPC as SQLITE_FULL (and so is a database at max_page_count). The
            # failed transaction was rolled back whole: nothing half-written stays behind.
            directory = Path(self.path).parent
            return StateDiskFull(
                f"the disk holding state file {self.path} is full: {doing} failed (SQLITE_FULL)",
                hint=f"free space on the filesystem of {directory} (df -h {directory}), then run the same "
                "command again: it resumes where it stopped (what was not recorded is redone)",
            )
        if name.startswith(("SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
            return StateError(
                f"state file {self.path}: {doing} failed ({name}: {exc})",
                hint="check that the state file's filesystem is mounted, writable and healthy, then run the "
                "same command again: it resumes where it stopped",
            )
        if name == "SQLITE_NOTADB":
            return StateError(
                f"{self.path} is not an SQLite database",
                hint="point --state (or MIGRATOR_STATE) at a new path or an existing migrator state file",
            )
        return StateError(f"state file {self.path}: {doing} failed ({name}: {exc})")

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state store {self.path} is closed")
        return self._conn

    @contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._require()
            except sqlite3.Error as exc:
                raise self._error(exc, doing) from None

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._require()
            if self.missing:
                raise StateError(
                    f"state file {self.path} does not exist: {doing} was not recorded",
                    hint="`migrator run` begins a run and creates its state file (--state or MIGRATOR_STATE name it)",
                )
            try:
                # IMMEDIATE: take the write lock up front, so a busy file fails here
                # (after busy_timeout) rather than midway through a read-then-write.
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc, doing) from None

    @staticmethod
    def _run(row: sqlite3.Row) -> RunRecord:
        return RunRecord(
            id=row["id"],
            plan_name=row["plan_name"],
            plan_digest=row["plan_digest"],
            status=row["status"],
            phase=row["phase"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            # Runs begun before slot names carried the run have their plan's slot.
            slot=row["slot"] or legacy_slot_name(row["plan_name"]),
        )

    @staticmethod
    def _chunk(row: sqlite3.Row) -> ChunkRecord:
        return ChunkRecord(
            run_id=row["run_id"],
            table=row["table_name"],
            chunk_id=row["chunk_id"],
            lo=json.loads(row["key_lo"]),
            hi=json.loads(row["key_hi"]),
            status=row["status"],
            rows_read=row["rows_read"],
            docs_written=row["docs_written"],
            attempts=row["attempts"],
            updated_at=row["updated_at"],
        )

    @staticmethod
    def _checkpoint(row: sqlite3.Row) -> CheckpointRecord:
        return CheckpointRecord(
            id=row["id"],
            run_id=row["run_id"],
            phase=row["phase"],
            label=row["label"],
            position=row["position"],
            created_at=row["created_at"],
            detail=json.loads(row["detail"]),
        )

    @staticmethod
    def _event(row: sqlite3.Row) -> EventRecord:
        return EventRecord(
            seq=row["seq"],
            run_id=row["run_id"],
            ts=row["ts"],
            kind=row["kind"],
            payload=json.loads(row["payload"]),
        )

    def _fetch_run(self, conn: sqlite3.Connection, run_id: str) -> RunRecord:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"no run {run_id!r} in {self.path}", hint="`migrator status` lists the runs")
        return self._run(row)

    # -- runs -----------------------------------------------------------------------

    def begin_run(
        self, plan_name: str, plan_digest: str, *, run_id: str | None = None, slot: str | None = None
    ) -> RunRecord:
        run = RunRecord(
            id=run_id or new_run_id(),
            plan_name=plan_name,
            plan_digest=plan_digest,
            status="active",
            phase=None,
            started_at=_now(),
            ended_at=None,
            slot=slot or legacy_slot_name(plan_name),
        )
        with self._write(f"beginning a run of plan {plan_name!r}") as conn:
            try:
                conn.execute(
                    "INSERT INTO runs (id, plan_name, plan_digest, status, started_at, slot) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (run.id, plan_name, plan_digest, run.status, run.started_at, slot),
                )
            except sqlite3.IntegrityError as exc:
                # The partial unique index on active runs is the only UNIQUE constraint
                # on runs (the id collision would be SQLITE_CONSTRAINT_PRIMARYKEY).
                if exc.sqlite_errorname != "SQLITE_CONSTRAINT_UNIQUE":
                    raise
                existing = conn.execute(
                    "SELECT id, started_at FROM runs WHERE plan_name = ? AND status = 'active'", (plan_name,)
                ).fetchone()
                raise ActiveRunExists(
                    f"plan {plan_name!r} already has an active run {existing['id']} "
                    f"(started {existing['started_at']})",
                    hint=f"resume it with `migrator run`, or undo it with `migrator rollback` "
                    f"(run {existing['id']})",
                ) from None
        return run

    def active_run(self, plan_name: str) -> RunRecord | None:
        with self._read("reading the active run") as conn:
            row = conn.execute(
                "SELECT * FROM runs WHERE plan_name = ? AND status = 'active'", (plan_name,)
            ).fetchone()
        return None if row is None else self._run(row)

    def get_run(self, run_id: str) -> RunRecord:
        with self._read(f"reading run {run_id}") as conn:
            return self._fetch_run(conn, run_id)

    def runs(self, plan_name: str | None = None) -> list[RunRecord]:
        with self._read("listing runs") as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE ? IS NULL OR plan_name = ? ORDER BY started_at, rowid",
                (plan_name, plan_name),
            ).fetchall()
        return [self._run(r) for r in rows]

    def set_plan_digest(self, run_id: str, plan_digest: str) -> None:
        with self._write(f"recording the plan digest of run {run_id}") as conn:
            self._fetch_run(conn, run_id)
            conn.execute("UPDATE runs SET plan_digest = ? WHERE id = ?", (plan_digest, run_id))

    def finish_run(self, run_id: str, status: RunStatus) -> RunRecord:
        if status not in FINAL_RUN_STATUSES:
            raise StateError(
                f"cannot finish run {run_id} as {status!r}: not one of {sorted(FINAL_RUN_STATUSES)}"
            )
        with self._write(f"finishing run {run_id}") as conn:
            run = self._fetch_run(conn, run_id)
            if run.status == status:  # a retried finish after a crash is harmless
                return run
            if status not in RUN_TRANSITIONS.get(run.status, frozenset()):
                raise StateError(f"run {run_id} is {run.status}; it cannot become {status}")
            ended = _now()
            conn.execute("UPDATE runs SET status = ?, ended_at = ? WHERE id = ?", (status, ended, run_id))
        return replace(run, status=status, ended_at=ended)

    # -- phases ---------------------------------------------------------------------

    def set_phase(self, run_id: str, phase: str, status: PhaseStatus) -> PhaseRecord:
        if status not in PHASE_STATUSES:
            raise StateError(f"phase status {status!r} is not one of {sorted(PHASE_STATUSES)}")
        now = _now()
        started = now if status == "running" else None
        ended = now if status in _ENDED_PHASE else None
        with self._write(f"setting phase {phase} of run {run_id}") as conn:
            conn.execute(
                """
                INSERT INTO phases (run_id, name, status, started_at, ended_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (run_id, name) DO UPDATE SET
                    status = excluded.status,
                    started_at = COALESCE(phases.started_at, excluded.started_at),
                    ended_at = excluded.ended_at
                """,
                (run_id, phase, status, started, ended),
            )
            if status == "running":
                conn.execute("UPDATE runs SET phase = ? WHERE id = ?", (phase, run_id))
            row = conn.execute(
                "SELECT * FROM phases WHERE run_id = ? AND name = ?", (run_id, phase)
            ).fetchone()
        return PhaseRecord(row["run_id"], row["name"], row["status"], row["started_at"], row["ended_at"])

    def phases(self, run_id: str) -> list[PhaseRecord]:
        with self._read(f"reading phases of run {run_id}") as conn:
            rows = conn.execute("SELECT * FROM phases WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
        return [
            PhaseRecord(r["run_id"], r["name"], r["status"], r["started_at"], r["ended_at"]) for r in rows
        ]

    # -- chunks ---------------------------------------------------------------------

    def record_chunk(
        self,
        run_id: str,
        table: str,
        chunk_id: int,
        *,
        lo: Any,
        hi: Any,
        status: ChunkStatus,
        rows_read: int = 0,
        docs_written: int = 0,
        attempts: int = 0,
    ) -> ChunkRecord:
        if status not in CHUNK_STATUSES:
            raise StateError(f"chunk status {status!r} is not one of {sorted(CHUNK_STATUSES)}")
        if min(rows_read, docs_written, attempts) < 0:
            raise StateError(f"chunk {table}#{chunk_id}: counters cannot be negative")
        what = f"chunk {chunk_id} of {table}"
        lo_json = encode_key(lo, f"{what} lower bound")
        hi_json = encode_key(hi, f"{what} upper bound")
        record = ChunkRecord(
            run_id=run_id,
            table=table,
            chunk_id=chunk_id,
            lo=json.loads(lo_json),
            hi=json.loads(hi_json),
            status=status,
            rows_read=rows_read,
            docs_written=docs_written,
            attempts=attempts,
            updated_at=_now(),
        )
        with self._write(f"recording {what} for run {run_id}") as conn:
            conn.execute(
                """
                INSERT INTO chunks (run_id, table_name, chunk_id, key_lo, key_hi, status,
                                    rows_read, docs_written, attempts, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, table_name, chunk_id) DO UPDATE SET
                    key_lo = excluded.key_lo, key_hi = excluded.key_hi, status = excluded.status,
                    rows_read = excluded.rows_read, docs_written = excluded.docs_written,
                    attempts = excluded.attempts, updated_at = excluded.updated_at
                """,
                (
                    run_id,
                    table,
                    chunk_id,
                    lo_json,
                    hi_json,
                    status,
                    rows_read,
                    docs_written,
                    attempts,
                    record.updated_at,
                ),
            )
        return record

    def chunks(self, run_id: str, table: str | None = None) -> list[ChunkRecord]:
        with self._read(f"reading chunks of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT * FROM chunks WHERE run_id = ? AND (? IS NULL OR table_name = ?) "
                "ORDER BY table_name, chunk_id",
                (run_id, table, table),
            ).fetchall()
        return [self._chunk(r) for r in rows]

    # -- checkpoints ----------------------------------------------------------------

    def add_checkpoint(
        self,
        run_id: str,
        phase: str,
        label: str,
        position: str,
        detail: Mapping[str, Any] | None = None,
    ) -> CheckpointRecord:
        if not isinstance(position, str):
            raise StateError(
                f"checkpoint position must be text (an LSN, a JSON resume token), not {type(position)}"
            )
        # The position is left as given: it is a server-issued LSN or resume token, and
        # altering it would break the resume it exists for.
        detail_json = encode_document(detail, "checkpoint detail")
        created = _now()
        with self._write(f"adding checkpoint {label!r} to run {run_id}") as conn:
            cursor = conn.execute(
                "INSERT INTO checkpoints (run_id, phase, label, position, created_at, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, phase, label, position, created, detail_json),
            )
            checkpoint_id = cast(int, cursor.lastrowid)
        return CheckpointRecord(
            checkpoint_id, run_id, phase, label, position, created, json.loads(detail_json)
        )

    def checkpoints(self, run_id: str, phase: str | None = None) -> list[CheckpointRecord]:
        with self._read(f"reading checkpoints of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT * FROM checkpoints WHERE run_id = ? AND (? IS NULL OR phase = ?) ORDER BY id",
                (run_id, phase, phase),
            ).fetchall()
        return [self._checkpoint(r) for r in rows]

    def latest_checkpoint(self, run_id: str, phase: str) -> CheckpointRecord | None:
        with self._read(f"reading the latest checkpoint of run {run_id}") as conn:
            row = conn.execute(
                "SELECT * FROM checkpoints WHERE run_id = ? AND phase = ? ORDER BY id DESC LIMIT 1",
                (run_id, phase),
            ).fetchone()
        return None if row is None else self._checkpoint(row)

    # -- events ---------------------------------------------------------------------

    def append_event(
        self, run_id: str | None, kind: str, payload: Mapping[str, Any] | None = None
    ) -> EventRecord:
        if not kind:
            raise StateError("an event needs a kind")
        payload_json = encode_document(payload, f"payload of event {kind!r}")
        ts = _now()
        with self._write(f"appending event {kind!r}") as conn:
            cursor = conn.execute(
                "INSERT INTO events (run_id, ts, kind, payload) VALUES (?, ?, ?, ?)",
                (run_id, ts, kind, payload_json),
            )
            seq = cast(int, cursor.lastrowid)
        return EventRecord(seq, run_id, ts, kind, json.loads(payload_json))

    def events(
        self, run_id: str | None = None, since_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """Events after `since_seq` in order; `run_id=None` means the events of every run."""
        with self._read("reading events") as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE seq > ? AND (? IS NULL OR run_id = ?) ORDER BY seq LIMIT ?",
                (since_seq, run_id, run_id, -1 if limit is None else limit),
            ).fetchall()
        return [self._event(r) for r in rows]

    # -- run-time controls ----------------------------------------------------------

    def set_controls(self, run_id: str, values: Mapping[str, Any]) -> list[ControlRecord]:
        encoded: dict[str, str | None] = {}
        for name, value in values.items():
            if not name:
                raise StateError("a control needs a name")
            encoded[name] = None if value is None else encode_document({"v": value}, f"control {name!r}")
        now = _now()
        with self._write(f"setting controls of run {run_id}") as conn:
            self._fetch_run(conn, run_id)
            for name, text in encoded.items():
                if text is None:
                    conn.execute("DELETE FROM controls WHERE run_id = ? AND name = ?", (run_id, name))
                else:
                    conn.execute(
                        "INSERT INTO controls (run_id, name, value, updated_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (run_id, name) DO UPDATE SET value = excluded.value, "
                        "updated_at = excluded.updated_at",
                        (run_id, name, text, now),
                    )
            rows = conn.execute("SELECT * FROM controls WHERE run_id = ? ORDER BY name", (run_id,)).fetchall()
        return [self._control(r) for r in rows]

    def controls(self, run_id: str) -> list[ControlRecord]:
        with self._read(f"reading controls of run {run_id}") as conn:
            rows = conn.execute("SELECT * FROM controls WHERE run_id = ? ORDER BY name", (run_id,)).fetchall()
        return [self._control(r) for r in rows]

    @staticmethod
    def _control(row: sqlite3.Row) -> ControlRecord:
        return ControlRecord(row["run_id"], row["name"], json.loads(row["value"])["v"], row["updated_at"])

    # -- who works on a run now --------------------------------------------------------

    def hold(self, plan_name: str, command: str) -> None:
        """Take the plan's lease in this state file until close() (state/lease.py); raises
        RunInUse naming the process that holds it. Holding it again through the same store is
        a no-op, so that the steps of one command (a switch back, then a rollback) share it."""
        if self.path == MEMORY or self.missing:
            return  # no file: no run in it to work on, and no lock file made beside it
        with self._lock:
            if plan_name not in self._leases:
                self._leases[plan_name] = Lease.take(self.path, plan_name, command)

    # -- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            for lease in self._leases.values():
                lease.release()
            self._leases.clear()
            if self._conn is not None:
                conn, self._conn = self._conn, None
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise self._error(exc, "closing") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStateStore({self.path!r})"
