"""The memory source's objects: capture setup, snapshot sessions and readers, the change stream
with its typed events, the monitor and the write fence (adapters/base.py protocols)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

from migrator.adapters.base import (
    Change,
    ChangeEvent,
    Idle,
    Keepalive,
    KeyOrder,
    LevelRead,
    LoadSample,
    Marker,
    TransactionBegun,
    TransactionCommitted,
)
from migrator.adapters.memory.database import Commit, MemoryDatabase
from migrator.errors import TerminalError

PREFIX = "m/"
CHANGE_BYTES = 100  # what one logged change counts for in a slot's retained bytes
IDLE_S = 0.002  # how long an empty read waits: tests stay fast, the loop does not spin


class MemoryPositions:
    """Positions are commit numbers; their text is "m/<n>"."""

    def text(self, value: int) -> str:
        return f"{PREFIX}{value}"

    def parse(self, text: str) -> int:
        if not text.startswith(PREFIX) or not text[len(PREFIX) :].isdigit():
            raise TerminalError(f"{text!r} is not a memory position (m/<n>)")
        return int(text[len(PREFIX) :])

    def bytes_between(self, older: int, newer: int) -> int | None:
        return max(0, newer - older) * CHANGE_BYTES


POSITIONS = MemoryPositions()

_INTEGERS = {"integer", "bigint", "smallint"}


def parse_key(texts: Sequence[str], key_types: Sequence[str]) -> tuple[Any, ...]:
    """Key values from the text the readers take (MemorySource.key_text)."""
    return tuple(int(t) if k in _INTEGERS else t for t, k in zip(texts, key_types, strict=True))


def key_text(value: Any) -> str:
    return str(value)


def key_order(type_name: str) -> KeyOrder | None:
    """Integer keys order by value here as everywhere; others are read by key."""
    return "integer" if type_name in _INTEGERS else None


def _single_level(levels: Sequence[LevelRead]) -> LevelRead:
    if len(levels) != 1 or levels[0].path:
        raise NotImplementedError("the memory source reads single-table collections only (no embeds)")
    return levels[0]


class CaptureSetup:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def ensure_publication(self, name: str, tables: Mapping[str, Collection[str] | None]) -> bool:
        self._db.faults.check("ensure_publication")
        with self._db.lock:
            created = name not in self._db.publications
            self._db.publications[name] = {
                table: None if columns is None else frozenset(columns) for table, columns in tables.items()
            }
            return created

    def slot_exists(self, slot: str) -> bool:
        return slot in self._db.slots

    def drop_slot(self, slot: str) -> bool:
        self._db.faults.check("drop_slot")
        with self._db.lock:
            return self._db.slots.pop(slot, None) is not None

    def drop_publication(self, name: str) -> None:
        self._db.faults.check("drop_publication")
        with self._db.lock:
            self._db.publications.pop(name, None)


class SnapshotStart:
    def __init__(self, position: int) -> None:
        self.position = POSITIONS.text(position)
        self.snapshot_name = POSITIONS.text(position)  # a snapshot is named by where it stands


class SnapshotExport:
    """A slot created at the current position, exporting the snapshot there."""

    def __init__(self, db: MemoryDatabase, slot: str) -> None:
        db.faults.check("export_snapshot")
        with db.lock:
            if slot in db.slots:
                raise TerminalError(f"replication slot {slot} already exists")
            db.slots[slot] = db.position
            self.start = SnapshotStart(db.position)

    def close(self) -> None:
        pass


class RowReader:
    """Rows as of one position: an exported snapshot's (fixed), or each read's own (begin())."""

    read_position: str | None = None  # readers share the exported snapshot

    def __init__(self, db: MemoryDatabase, position: int | None) -> None:
        self._db = db
        self._position = position

    @property
    def position_now(self) -> int:
        return self._db.position if self._position is None else self._position

    def begin(self) -> str:
        self._db.faults.check("begin")
        return POSITIONS.text(self.position_now)

    def end(self) -> None:
        pass

    def _sorted(self, root: str, key: Sequence[str]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        rows = self._db.rows_at(root, self.position_now)
        return sorted(((tuple(r[k] for k in key), r) for r in rows.values()), key=lambda i: i[0])

    def stream(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> list[Iterator[tuple[Any, ...]]]:
        self._db.faults.check("stream")
        level = _single_level(levels)
        low = None if lo is None else parse_key(lo, key_types)
        high = None if hi is None else parse_key(hi, key_types)
        rows = [
            tuple(row[c.name] for c in level.columns)
            for k, row in self._sorted(root, key)
            if (low is None or k > low) and (high is None or k <= high)
        ]
        return [iter(rows)]

    def stream_keys(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        keys: Sequence[Sequence[str]],
    ) -> list[Iterator[tuple[Any, ...]]]:
        self._db.faults.check("stream_keys")
        level = _single_level(levels)
        wanted = {parse_key(k, key_types) for k in keys}
        rows = [
            tuple(row[c.name] for c in level.columns) for k, row in self._sorted(root, key) if k in wanted
        ]
        return [iter(rows)]

    def stream_sample(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        fraction: float,
        seed: int,
    ) -> list[Iterator[tuple[Any, ...]]]:
        def chosen(row: tuple[Any, ...]) -> bool:
            digest = hashlib.sha256(f"{seed}:{row[: len(key)]!r}".encode()).digest()
            return int.from_bytes(digest[:4], "big") / 2**32 < fraction

        (stream,) = self.stream(levels, root, key, key_types, lo, hi)
        return [iter([row for row in stream if chosen(row)])]

    def first_keys(self, table: str, key: Sequence[str], limit: int) -> list[list[str]]:
        return [[key_text(v) for v in k] for k, _ in self._sorted(table, key)[:limit]]

    def missing_keys(
        self, table: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
    ) -> list[int]:
        self._db.faults.check("missing_keys")
        present = {k for k, _ in self._sorted(table, key)}
        return [i for i, k in enumerate(keys) if parse_key(k, key_types) not in present]

    def close(self) -> None:
        pass


class SnapshotSession:
    """A consistent read at an exported snapshot (its name is its position), or a fresh one."""

    def __init__(self, db: MemoryDatabase, snapshot_name: str | None) -> None:
        db.faults.check("snapshot_session")
        self._db = db
        at = db.position if snapshot_name is None else POSITIONS.parse(snapshot_name)
        self.exported = POSITIONS.text(at)
        self.position = POSITIONS.text(at)
        self._reader = RowReader(db, at)

    def key_boundaries(
        self, table: str, key: Sequence[str], key_types: Sequence[str], every: int
    ) -> list[list[str]]:
        keys = [k for k, _ in self._reader._sorted(table, key)]
        return [[key_text(v) for v in keys[i - 1]] for i in range(every, len(keys), every)]

    def close(self) -> None:
        pass


class Monitor:
    """A slot's state: retained bytes are the changes after its confirmed position."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def state(self, slot: str) -> dict[str, Any] | None:
        self._db.faults.check("monitor_state")
        with self._db.lock:
            if slot not in self._db.slots:
                return None
            confirmed = self._db.slots[slot]
            retained = sum(max(1, len(c.changes)) for c in self._db.log[confirmed:]) * CHANGE_BYTES
            return {
                "retained_bytes": retained,
                "confirmed": POSITIONS.text(confirmed),
                "active": slot in self._db.streaming,
                "current": POSITIONS.text(self._db.position),
            }

    def unapplied_changes(self, slot: str, publication: str, applied: str, upto: str) -> int | None:
        with self._db.lock:
            if slot not in self._db.slots:
                return None
            low, high = POSITIONS.parse(applied), POSITIONS.parse(upto)
            return sum(len(c.changes) for c in self._db.log[low:high])

    def heartbeat(self, prefix: str, content: str) -> str:
        """A marker transaction (pg_logical_emit_message's counterpart)."""
        return POSITIONS.text(self._db.emit_marker(prefix, content.encode()))

    def close(self) -> None:
        pass


class ChangeStream:
    """The slot's changes after `start`, read from the log (CaptureStream)."""

    def __init__(self, db: MemoryDatabase, slot: str, publication: str, start: int) -> None:
        db.faults.check("change_stream")
        if slot not in db.slots:
            raise TerminalError(f"replication slot {slot} does not exist")
        self.db = db
        self.slot = slot
        self.publication = publication
        self.start = start
        self.linger: float | None = None
        with db.lock:
            db.streaming.add(slot)

    def keepalive(self, interval: float = 0.0, /) -> None:
        pass

    def acknowledge(self, position: int, /) -> None:
        with self.db.lock:
            if self.slot in self.db.slots:
                self.db.slots[self.slot] = max(self.db.slots[self.slot], min(position, self.db.position))

    def close(self) -> None:
        with self.db.lock:
            self.db.streaming.discard(self.slot)


class ChangeEvents:
    """The log after a stream's start as typed events, one committed transaction at a time."""

    def __init__(self, stream: ChangeStream, applied: Callable[[], int]) -> None:
        self._stream = stream
        self._applied = applied
        self.in_transaction = False

    @property
    def in_stream(self) -> bool:
        return False

    @property
    def streams_pending(self) -> bool:
        return False

    def events(self, wait_s: float) -> Iterator[ChangeEvent]:
        db, stream = self._stream.db, self._stream
        tables = dict(db.publications.get(stream.publication, {}))
        sent = stream.start
        told: int | None = None
        while True:
            db.faults.check("events")
            with db.lock:
                commits = db.log[sent:]
            if not commits:
                if told != sent:
                    told = sent
                    yield Keepalive(sent)
                else:
                    time.sleep(min(wait_s, IDLE_S, stream.linger or IDLE_S))
                    yield Idle(sent)
                continue
            for commit in commits:
                yield from self._transaction(commit, tables)
                sent = commit.position

    def _transaction(
        self, commit: Commit, tables: Mapping[str, frozenset[str] | None]
    ) -> Iterator[ChangeEvent]:
        skipped = commit.position <= self._applied()
        self.in_transaction = True
        yield TransactionBegun(commit.position)
        if not skipped:
            for change in commit.changes:
                if change.table in tables:
                    # Only the published columns leave the source (a publication's column list).
                    columns = tables[change.table]
                    yield Change(
                        change.table, change.kind, _only(change.old, columns), _only(change.new, columns)
                    )
            if commit.marker is not None:
                yield Marker(commit.marker[0], commit.marker[1])
        self.in_transaction = False
        yield TransactionCommitted(commit.position, commit.position, commit.time, skipped)


def _only(row: Mapping[str, Any] | None, columns: frozenset[str] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {c: v for c, v in row.items() if columns is None or c in columns}


class SchemaWatch:
    """The memory source's schema never changes: every check passes."""

    vouched = 2**62
    baseline = None

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def reader(self, stream: Any, *, applied: Callable[[], int], skip_origin: str) -> ChangeEvents:
        if not isinstance(stream, ChangeStream):
            raise TerminalError("the memory source reads only its own change streams")
        return ChangeEvents(stream, applied)

    def relation(self, relation: Any) -> None:
        pass

    def columns_of(self, relation: Any) -> None:
        return None

    def check_schema(self) -> None:
        self._db.faults.check("check_schema")

    def check_publication(self) -> None:
        pass

    def check_located(self, table: str, new: dict[str, Any]) -> None:
        pass

    def to_compute(self, change: Change) -> frozenset[str]:
        return frozenset()

    def complete(self, pending: Any) -> None:
        pass

    def table(self, table: str) -> None:
        return None

    def columns_changed(self, table: str, current: dict[str, int]) -> None:
        pass

    def remap(self, source_info: Any, mapped: Any) -> None:
        pass

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


class WriteFence:
    """Refuses the application's writes to the tables while held (MemoryDatabase.transaction)."""

    def __init__(self, db: MemoryDatabase, tables: Sequence[str]) -> None:
        self._db = db
        self._tables = tuple(tables)
        self._since: float | None = None

    def engage(self) -> float:
        """Refuse the writes; returns the monotonic time they were refused from."""
        self._db.faults.check("fence_engage")
        with self._db.lock:
            self._db.fenced.update(self._tables)
        self._since = time.monotonic()
        return self._since

    def describe(self) -> str:
        return f"application writes to {', '.join(self._tables)} refused (memory fence)"

    def waiting_writers(self) -> int:
        return 0

    def cancel_waiting(self) -> int:
        return 0

    def lift(self) -> float | None:
        """Let the writes through again; returns how long they were refused (None: not held)."""
        with self._db.lock:
            self._db.fenced.difference_update(self._tables)
        since, self._since = self._since, None
        return None if since is None else time.monotonic() - since


class ReverseWriter:
    """Reverse sync is not offered by the memory source: nothing is ever stored to forget."""

    def setup(self) -> None:
        raise NotImplementedError("the memory source has no reverse sync")

    def checkpoint(self) -> None:
        return None

    def forget(self, *, drop_empty: bool = False) -> bool:
        return False

    def apply(self, documents: Any, checkpoint: Any) -> int:
        raise NotImplementedError("the memory source has no reverse sync")

    def close(self) -> None:
        pass


class LoadProbe:
    def sample(self, *, sessions: bool, replicas: bool) -> LoadSample:
        return LoadSample(0 if sessions else None, 0 if replicas else None, None)

    def close(self) -> None:
        pass
