"""A state file another process holds locked (a run writing it) is waited for when a command
opens it (operations/session.py `open_state_store`): the opening is retried through
engine/retry.py rather than failing with SQLITE_BUSY (`migrator status` while a run writes)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator import api
from migrator.engine.events import Collector, Notice
from migrator.errors import TransientError
from migrator.operations.session import Session
from migrator.state import SQLiteStateStore

PLAN = """\
version: 1
name: shop
source: {adapter: postgres, url: 'postgresql://app:pw@127.0.0.1:1/shop'}
target: {adapter: mongodb, url: 'mongodb://127.0.0.1:1/', database: app}
collections:
  - {name: users, from: users, key: id}
"""

HOLD_S = 1.0  # how long the other connection holds the file (not asserted: the outcome is)


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(PLAN)
    return path


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "shop.db"
    SQLiteStateStore(path).close()  # a state file as a run leaves it (WAL)
    # Each opening attempt gives up on the lock quickly (SQLite's busy handler waits 10 s by
    # default), so that the retry is what waits.
    defaults = dict(SQLiteStateStore.__init__.__kwdefaults__ or {})
    monkeypatch.setattr(SQLiteStateStore.__init__, "__kwdefaults__", {**defaults, "busy_timeout": 0.05})
    return path


class Held:
    """An exclusive lock on the state file from another connection, released by a timer (as a
    writer that finishes) or at the end of the test at the latest."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # Exclusive locking mode: in WAL mode, readers are shut out too, until it is released.
        self.conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        self.conn.execute("BEGIN EXCLUSIVE")
        self.conn.execute("CREATE TABLE held (x)")
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._timer = threading.Timer(HOLD_S, self.release)

    def start(self) -> Held:
        self._timer.start()
        return self

    def release(self) -> None:
        with self._lock:
            if self.released.is_set():
                return
            self.conn.execute("ROLLBACK")
            self.conn.execute("PRAGMA locking_mode = NORMAL")
            self.conn.execute("SELECT count(*) FROM runs").fetchall()  # drops the exclusive lock
            self.conn.close()
            self.released.set()

    def close(self) -> None:
        self._timer.cancel()
        self.release()


@pytest.fixture
def held(state: Path) -> Iterator[Held]:
    lock = Held(state)
    try:
        yield lock
    finally:
        lock.close()


def test_the_lock_is_real(state: Path, held: Held) -> None:
    """Without the retry, opening the file while it is held fails as the issue reported."""
    with pytest.raises(TransientError, match="locked by another process"):
        SQLiteStateStore(state, create=False)


def test_open_store_waits_for_a_locked_state_file(plan: Path, state: Path, held: Held) -> None:
    events = Collector()
    held.start()
    with Session(plan, state=state, sinks=[events]) as session:
        store = session.open_store(create=False)
        assert held.released.is_set()
        assert store.runs("shop") == []
        assert session.open_store() is store  # opened once
    retries = [n for n in events.of(Notice) if "opening state file" in n.message and "retrying" in n.message]
    assert retries and all(n.level == "warn" for n in retries)


def test_open_run_waits_for_a_locked_state_file(plan: Path, state: Path, held: Held) -> None:
    held.start()
    with Session(plan, state=state) as session:
        store, _, _ = session.open_run()
        assert held.released.is_set()
        assert not store.missing and store.runs("shop") == []


def test_status_waits_for_a_locked_state_file(plan: Path, state: Path, held: Held) -> None:
    held.start()
    report = api.status(plan, state=state, live=False)
    assert held.released.is_set()
    assert report.run is None and "no run of plan shop" in (report.message or "")
