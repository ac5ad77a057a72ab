"""The in-process database the memory adapters share with a test: tables with a change log on
the source side, collections of documents and migrator's state records on the target side.

Positions are integers: commit n of the log is at position n (text "m/<n>"). A snapshot at
position p is the tables as of the log's first p commits.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from migrator.adapters.memory.faults import Faults
from migrator.errors import TerminalError


@dataclass
class MemoryTable:
    name: str  # schema.table
    columns: dict[str, str]  # name -> canonical type name ('integer', 'text', ...)
    key: tuple[str, ...]
    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)

    def key_of(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key)


@dataclass(frozen=True)
class LoggedChange:
    table: str
    kind: str  # 'insert', 'update', 'delete'
    old: dict[str, Any] | None
    new: dict[str, Any] | None


@dataclass(frozen=True)
class Commit:
    position: int
    time: datetime
    changes: tuple[LoggedChange, ...]
    marker: tuple[str, bytes] | None = None  # a heartbeat: (prefix, content)


def _take(table: MemoryTable, key: Sequence[Any]) -> dict[str, Any]:
    try:
        return table.rows.pop(tuple(key))
    except KeyError:
        raise TerminalError(f"no row of {table.name} has the key {tuple(key)!r}") from None


class Transaction:
    """Changes committed together (MemoryDatabase.transaction)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self.changes: list[LoggedChange] = []

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        self._db.check_fence(table)
        t = self._db.table(table)
        new = {c: row.get(c) for c in t.columns}
        if t.key_of(new) in t.rows:
            raise TerminalError(f"duplicate key {t.key_of(new)!r} in {table}")
        t.rows[t.key_of(new)] = new
        self.changes.append(LoggedChange(table, "insert", None, dict(new)))

    def update(self, table: str, key: Sequence[Any], values: Mapping[str, Any]) -> None:
        self._db.check_fence(table)
        t = self._db.table(table)
        old = _take(t, key)
        new = {**old, **values}
        t.rows[t.key_of(new)] = new
        moved = t.key_of(new) != t.key_of(old)
        self.changes.append(
            LoggedChange(table, "update", {k: old[k] for k in t.key} if moved else None, dict(new))
        )

    def delete(self, table: str, key: Sequence[Any]) -> None:
        self._db.check_fence(table)
        t = self._db.table(table)
        old = _take(t, key)
        self.changes.append(LoggedChange(table, "delete", {k: old[k] for k in t.key}, None))


class MemoryDatabase:
    """What a test builds and shares with the adapters (registered under a name, found by the
    URL memory://NAME). All methods are thread-safe (one lock)."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.lock = threading.RLock()
        self.faults = Faults()
        # source side
        self.tables: dict[str, MemoryTable] = {}
        self._base: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}  # rows at position 0
        self.log: list[Commit] = []
        self.slots: dict[str, int] = {}  # slot -> confirmed position
        self.streaming: set[str] = set()  # slots a change stream reads now ("active")
        # publication -> its tables and their published columns (None: every column)
        self.publications: dict[str, dict[str, frozenset[str] | None]] = {}
        self.fenced: set[str] = set()  # tables whose application writes are refused
        # target side
        self.collections: dict[str, dict[bytes, tuple[Any, dict[str, Any]]]] = {}
        self.records: dict[str, dict[str, Any]] = {}  # migrator's own records by id
        self.target_fenced: set[str] = set()

    # -- source: the application's side ---------------------------------------------------------

    def create_table(self, name: str, columns: Mapping[str, str], key: Sequence[str]) -> MemoryTable:
        with self.lock:
            if self.log:
                raise TerminalError("create tables before the first commit")
            table = MemoryTable(name, dict(columns), tuple(key))
            self.tables[name] = table
            self._base[name] = table.rows
            return table

    def table(self, name: str) -> MemoryTable:
        try:
            return self.tables[name]
        except KeyError:
            raise TerminalError(f"no table {name} in memory database {self.name}") from None

    def load(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows present before anything is logged (position 0)."""
        with self.lock:
            if self.log:
                raise TerminalError("load rows before the first commit")
            t = self.table(table)
            for row in rows:
                new = {c: row.get(c) for c in t.columns}
                t.rows[t.key_of(new)] = new

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """The application's transaction: committed (logged) at the end of the block."""
        with self.lock:
            if not self._base_frozen:
                self._freeze_base()
            tx = Transaction(self)
            before = {name: dict(t.rows) for name, t in self.tables.items()}
            try:
                yield tx
            except BaseException:
                # Nothing of a transaction that did not commit stays (rows are replaced, never
                # changed in place, so the shallow copies are the rows as they were).
                for name, rows in before.items():
                    self.tables[name].rows = rows
                raise
            if tx.changes:
                self._commit(tuple(tx.changes))

    def insert(self, table: str, row: Mapping[str, Any]) -> int:
        with self.transaction() as tx:
            tx.insert(table, row)
        return self.position

    def update(self, table: str, key: Sequence[Any], values: Mapping[str, Any]) -> int:
        with self.transaction() as tx:
            tx.update(table, key, values)
        return self.position

    def delete(self, table: str, key: Sequence[Any]) -> int:
        with self.transaction() as tx:
            tx.delete(table, key)
        return self.position

    def sessions_ended(self) -> None:
        """What a server does when its client was killed (-9): the dead sessions' locks (a write
        fence) and replication connections (a slot "active") go. A test calls it after a Crash."""
        with self.lock:
            self.fenced.clear()
            self.streaming.clear()
            self.target_fenced.clear()

    def check_fence(self, table: str) -> None:
        if table in self.fenced:
            raise TerminalError(f"writes to {table} are fenced (cutover)")

    _base_frozen = False

    def _freeze_base(self) -> None:
        # The rows at position 0 are kept apart from the live rows, which change from now on.
        self._base = {name: copy.deepcopy(t.rows) for name, t in self.tables.items()}
        self._base_frozen = True

    def _commit(self, changes: tuple[LoggedChange, ...], marker: tuple[str, bytes] | None = None) -> int:
        position = len(self.log) + 1
        self.log.append(Commit(position, datetime.now(UTC), changes, marker))
        return position

    def emit_marker(self, prefix: str, content: bytes) -> int:
        with self.lock:
            if not self._base_frozen:
                self._freeze_base()
            return self._commit((), (prefix, content))

    @property
    def position(self) -> int:
        """The last commit's position (0: nothing committed)."""
        return len(self.log)

    def rows_at(self, table: str, position: int) -> dict[tuple[Any, ...], dict[str, Any]]:
        """`table`'s rows as of `position` (replayed from position 0)."""
        with self.lock:
            t = self.table(table)
            if not self._base_frozen:
                return copy.deepcopy(t.rows)
            rows = copy.deepcopy(self._base.get(table, {}))
            for commit in self.log[:position]:
                for change in commit.changes:
                    if change.table != table:
                        continue
                    if change.old is not None:
                        rows.pop(tuple(change.old[k] for k in t.key), None)
                    if change.new is not None:
                        if change.old is None:
                            rows.pop(t.key_of(change.new), None)
                        rows[t.key_of(change.new)] = dict(change.new)
            return rows

    # -- target: what a test reads back ------------------------------------------------------------

    def documents(self, collection: str) -> list[dict[str, Any]]:
        """`collection`'s documents (decoded as stored), in _id order."""
        with self.lock:
            found = self.collections.get(collection, {})
            stored = sorted(found.values(), key=lambda item: _order(item[0]))
            return [copy.deepcopy(doc) for _, doc in stored]


def _order(doc_id: Any) -> tuple[Any, ...]:
    # A compound _id (a dict) orders by its values, in the key's order.
    return tuple(doc_id.values()) if isinstance(doc_id, dict) else (doc_id,)


_REGISTERED: dict[str, MemoryDatabase] = {}


def register(db: MemoryDatabase) -> MemoryDatabase:
    """Make `db` the database the URL memory://<db.name> finds (in this process)."""
    _REGISTERED[db.name] = db
    return db


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def database_at(url: str) -> MemoryDatabase:
    """The MemoryDatabase registered under NAME, for memory://NAME."""
    prefix = "memory://"
    if not url.startswith(prefix):
        # The URL is not quoted: another adapter's URL given here may carry a password.
        raise TerminalError("a memory adapter's URL is memory://NAME")
    name = url[len(prefix) :].strip("/")
    try:
        return _REGISTERED[name]
    except KeyError:
        raise TerminalError(f"no memory database registered as {name!r}") from None
