"""The MySQL/MariaDB write fence on a real MariaDB: while held, other sessions read the fenced
tables but their writes wait (and time out with errno 1205); a table outside the fence (markers)
stays writable; released, the writes go through (rows read back)."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from migrator.adapters.base import Marker
from migrator.adapters.mysql import MysqlSource
from migrator.errors import FenceNotTaken
from tests.support.mariadb import connect, rows
from tests.support.mysql_binlog import position_now, read_transactions, reading


def _setup(url: str) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.execute("CREATE TABLE u (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("CREATE TABLE _migrator_markers (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("INSERT INTO t VALUES (1, 10)")


def _insert(url: str, row: tuple[int, int], wait_s: int = 1) -> int | None:
    """Insert `row` into t from a new session; the errno it failed with, or None."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %s", [wait_s])
        try:
            cur.execute("INSERT INTO t VALUES (%s, %s)", list(row))
        except pymysql.MySQLError as exc:
            return int(exc.args[0])
    return None


def test_fence_holds_writes_not_reads_and_releases(mysql_url: str) -> None:
    _setup(mysql_url)
    source = MysqlSource(mysql_url)
    fence = source.write_fence(["t", "u"], lock_timeout=2, hold_limit=5)
    assert fence.describe() == "LOCK TABLES `t` READ, `u` READ"
    fence.engage()
    try:
        assert _insert(mysql_url, (2, 20)) == 1205  # the write waited for the lock and timed out
        assert rows(mysql_url, "SELECT id, v FROM t ORDER BY id") == [(1, 10)]  # reads go on
        # A marker goes to a table outside the fence, from another session: never held.
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO _migrator_markers VALUES (1)")
        assert rows(mysql_url, "SELECT id FROM _migrator_markers") == [(1,)]
    finally:
        held = fence.lift()
    assert held is not None and held > 0
    assert fence.lift() is None  # lifting twice is harmless
    assert _insert(mysql_url, (2, 20)) is None
    assert rows(mysql_url, "SELECT id, v FROM t ORDER BY id") == [(1, 10), (2, 20)]


def test_waiting_writers_are_counted_and_cancelled(mysql_url: str) -> None:
    _setup(mysql_url)
    fence = MysqlSource(mysql_url).write_fence(["t"], lock_timeout=2, hold_limit=30)
    fence.engage()
    failed: list[int | None] = []
    writer = threading.Thread(target=lambda: failed.append(_insert(mysql_url, (3, 30), wait_s=60)))
    try:
        writer.start()
        deadline = time.monotonic() + 20
        while fence.waiting_writers() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fence.waiting_writers() == 1
        assert fence.cancel_waiting() == 1
        writer.join(20)
        assert failed == [1317]  # query interrupted: the application retries it
        assert fence.waiting_writers() == 0
    finally:
        fence.lift()
        writer.join(20)
    assert rows(mysql_url, "SELECT id FROM t ORDER BY id") == [(1,)]


def test_fence_not_taken_while_a_transaction_holds_the_table(mysql_url: str) -> None:
    _setup(mysql_url)
    with connect(mysql_url) as holder, holder.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE t SET v = 11 WHERE id = 1")
        fence = MysqlSource(mysql_url).write_fence(["t"], lock_timeout=1, hold_limit=5)
        with pytest.raises(FenceNotTaken) as caught:
            fence.engage()
        assert "1205" in caught.value.message and "`t`" not in caught.value.message
        assert not fence.engaged
        cur.execute("COMMIT")
    assert _insert(mysql_url, (4, 40)) is None  # nothing was left held
    assert rows(mysql_url, "SELECT id, v FROM t ORDER BY id") == [(1, 11), (4, 40)]


def test_server_releases_a_fence_whose_holder_went_silent(mysql_url: str) -> None:
    """hold_limit bounds the hold even if this process hangs: the session's wait_timeout is
    three times it (here 2 s), after which the server ends the session and its locks."""
    _setup(mysql_url)
    fence = MysqlSource(mysql_url).write_fence(["t"], lock_timeout=1, hold_limit=0.5)
    fence.engage()
    try:
        deadline = time.monotonic() + 30
        result = _insert(mysql_url, (5, 50), wait_s=1)
        while result == 1205 and time.monotonic() < deadline:
            result = _insert(mysql_url, (5, 50), wait_s=1)
        assert result is None
    finally:
        fence.lift()  # the session is gone: lifting still returns cleanly
    assert rows(mysql_url, "SELECT id FROM t ORDER BY id") == [(1,), (5,)]


def test_a_marker_is_written_and_streamed_while_the_fence_holds(mysql_url: str) -> None:
    """Cutover writes its marker under the fence: the monitor's heartbeat commits it into
    `_migrator_markers` (outside the lock list, from its own session) and the binlog stream hands
    it over, while the fenced table's writes wait."""
    _setup_fenced_only(mysql_url)
    source = MysqlSource(mysql_url)
    database = mysql_url.rsplit("/", 1)[1].split("?")[0]
    assert source.capture_setup().ensure_publication("pub", {f"{database}.t": None})
    start = position_now(mysql_url)
    fence = source.write_fence(["t"], lock_timeout=2, hold_limit=30)
    monitor = source.monitor()
    fence.engage()
    try:
        assert _insert(mysql_url, (7, 70)) == 1205
        monitor.heartbeat("migrator.cutover", "fenced")
    finally:
        monitor.close()
        fence.lift()
    with reading(mysql_url, ["t"], start) as reader:
        events = read_transactions(reader, 1)
    assert [e for e in events if isinstance(e, Marker)] == [Marker("migrator.cutover", b"fenced")]


def _setup_fenced_only(url: str) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
