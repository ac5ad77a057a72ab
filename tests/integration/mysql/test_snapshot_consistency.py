"""Consistent snapshots of a MariaDB source: what a reader sees, and the binlog position it reports
(checked against the binlog itself with SHOW BINLOG EVENTS), on MariaDB's lock-free path and on the
MySQL 8 path (a short FLUSH TABLES WITH READ LOCK), which MariaDB also accepts."""

from __future__ import annotations

from typing import Any

import pytest

from migrator.adapters.base import LevelRead
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.connection import MysqlEndpoint as Endpoint
from migrator.adapters.mysql.snapshot import SnapshotExport, position_value
from tests.support.mariadb import column_info, connect

LEVEL = LevelRead(
    path=(),
    columns=(column_info("id", "integer", "base"), column_info("v", "character varying", "base")),
    order_by=(),
)


def _rows(reader: Any) -> list[tuple[Any, ...]]:
    (stream,) = reader.stream([LEVEL], "t", ["id"], ["integer"], None, None)
    return list(stream)


def _binlog_file(cur: Any, position: str) -> str:
    """The binlog file a position's number names (the server's own base name)."""
    number = int(position.split(":")[0])
    cur.execute("SHOW BINARY LOGS")
    names = [row[0] for row in cur.fetchall()]
    return next(n for n in names if int(n.rsplit(".", 1)[-1]) == number)


def _first_row_event_after(cur: Any, position: str) -> tuple[str, str]:
    """The first row event in the binlog from `position`: (event type, the table it maps)."""
    _number, offset = position.split(":")
    cur.execute(f"SHOW BINLOG EVENTS IN '{_binlog_file(cur, position)}' FROM {int(offset)}")
    events = cur.fetchall()
    assert events, "nothing in the binlog after the position"
    # The position is an event boundary: a transaction's first event (MariaDB's GTID event).
    assert events[0][2] in ("Gtid", "Query"), events[0]
    table = ""
    for _, _, event_type, _, _, info in events:
        if event_type == "Table_map":
            table = info
        if event_type.startswith(("Write_rows", "Update_rows", "Delete_rows")):
            return event_type, table
    raise AssertionError(f"no row event after {position}: {events}")


@pytest.mark.parametrize("lock", [False, True], ids=["mariadb-status", "mysql8-flush-lock"])
def test_the_export_position_is_where_the_changes_after_it_begin(mysql_url: str, lock: bool) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("CREATE TABLE other (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1, 'before'), (2, 'before')")
        export = SnapshotExport(Endpoint(mysql_url), lock=lock)
        start = export.start
        export.close()
        assert start.snapshot_name == start.position
        assert start.gtid  # MariaDB's @@gtid_binlog_pos, e.g. 0-1-12
        if lock:
            assert start.lock_seconds is not None and start.lock_seconds >= 0
        else:
            assert start.lock_seconds is None
        cur.execute("INSERT INTO other VALUES (7)")  # the first change after the export
        cur.execute("UPDATE t SET v = 'after' WHERE id = 1")
        event, table = _first_row_event_after(cur, start.position)
        assert event.startswith("Write_rows")
        assert table.endswith(".other)")


@pytest.mark.parametrize("lock", [False, True], ids=["mariadb-status", "mysql8-flush-lock"])
def test_a_reader_sees_its_snapshot_and_reports_where_the_binlog_resumes(
    mysql_url: str, lock: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if lock:
        from migrator.adapters.mysql import readers, snapshot

        real = snapshot.open_snapshot
        monkeypatch.setattr(readers, "open_snapshot", lambda conn: real(conn, lock=True))
    source = MysqlSource(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO t VALUES (1, 'before'), (2, 'before')")
        early = source.snapshot_reader("")
        try:
            # Changed by another connection after the reader's snapshot opened: not seen by it.
            cur.execute("UPDATE t SET v = 'after' WHERE id = 1")
            cur.execute("INSERT INTO t VALUES (3, 'new')")
            cur.execute("DELETE FROM t WHERE id = 2")
            assert _rows(early) == [(1, "before"), (2, "before")]
            assert _first_row_event_after(cur, early.position)[0].startswith("Update_rows")
            late = source.snapshot_reader("")
            try:
                cur.execute("INSERT INTO t VALUES (4, 'later')")
                assert _rows(late) == [(1, "after"), (3, "new")]
                assert _first_row_event_after(cur, late.position)[0].startswith("Write_rows")
                assert position_value(late.position) > position_value(early.position)
                # The same reader reads again in the same snapshot.
                assert _rows(early) == [(1, "before"), (2, "before")]
            finally:
                late.close()
        finally:
            early.close()


def test_a_range_read_knows_its_position_and_ends(mysql_url: str) -> None:
    source = MysqlSource(mysql_url)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO t VALUES (1, 'a')")
        reader = source.range_reader()
        try:
            first = reader.begin()
            cur.execute("INSERT INTO t VALUES (2, 'b')")
            assert _rows(reader) == [(1, "a")]
            reader.end()
            second = reader.begin()
            assert _rows(reader) == [(1, "a"), (2, "b")]
            reader.end()
            assert position_value(second) > position_value(first)
        finally:
            reader.close()


def test_a_source_without_binlog_position_is_refused_by_name(mysql_url: str) -> None:
    from migrator.adapters.mysql.snapshot import _point
    from migrator.errors import SourceError

    with pytest.raises(SourceError, match="no binary log"):
        _point("", 0, None)


def test_a_reader_behind_the_export_is_refused(mysql_url: str) -> None:
    from migrator.errors import SourceError

    with pytest.raises(SourceError, match="before the snapshot's start 999999:4"):
        MysqlSource(mysql_url).snapshot_reader("999999:4")


def test_a_timestamp_key_named_by_its_millisecond_finds_its_rows(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ev (at TIMESTAMP(6) NOT NULL PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO ev VALUES ('2020-01-02 03:04:05.123456', 1), ('2020-01-02 03:04:05.124', 2)")
    level = LevelRead(
        path=(),
        columns=(column_info("at", "timestamp with time zone", "base"), column_info("v", "integer", "base")),
        order_by=(),
    )
    reader = MysqlSource(mysql_url).range_reader()
    try:
        reader.begin()
        # What a target's _id holds: the millisecond, as a BSON date (naive UTC) or aware.
        keys = [["2020-01-02 03:04:05.123000"], ["2020-01-02T03:04:05.125+00:00"]]
        key_types = ["timestamp with time zone"]
        (stream,) = reader.stream_keys([level], "ev", ["at"], key_types, keys)
        assert [r[1] for r in stream] == [1]
        assert reader.missing_keys("ev", ["at"], key_types, keys) == [1]
        reader.end()
    finally:
        reader.close()


def test_a_reader_stays_consistent_under_a_read_committed_default(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Endpoint.connect

    def read_committed(self: Endpoint, **options: Any) -> Any:
        conn = real(self, **options)
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    monkeypatch.setattr(Endpoint, "connect", read_committed)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO t VALUES (1, 'before')")
        reader = MysqlSource(mysql_url).snapshot_reader("")
        try:
            assert _rows(reader) == [(1, "before")]
            cur.execute("UPDATE t SET v = 'after'")
            assert _rows(reader) == [(1, "before")]
        finally:
            reader.close()


def test_chunks_read_in_one_snapshot_keep_an_invariant_that_concurrent_writes_keep(mysql_url: str) -> None:
    """Transfers between accounts keep the total; a reader reading chunk after chunk while they
    commit sees one moment: its total is the total."""
    import threading
    import time

    accounts = 200
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO t VALUES " + ", ".join(f"({i}, '100')" for i in range(1, accounts + 1)))
    stop = threading.Event()
    transfers = [0]

    def transfer() -> None:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            n = 0
            while not stop.is_set():
                a, b = n % accounts + 1, (n * 7 + 3) % accounts + 1
                n += 1
                if a == b:
                    continue
                cur.execute("BEGIN")
                cur.execute("UPDATE t SET v = CAST(v AS SIGNED) - 1 WHERE id = %s", [a])
                cur.execute("UPDATE t SET v = CAST(v AS SIGNED) + 1 WHERE id = %s", [b])
                cur.execute("COMMIT")
                transfers[0] += 1

    writer = threading.Thread(target=transfer)
    writer.start()
    try:
        source = MysqlSource(mysql_url)
        interleaved = 0
        for _ in range(3):
            reader = source.snapshot_reader("")
            try:
                total = 0
                before = transfers[0]
                for lo in range(0, accounts, 20):
                    (stream,) = reader.stream([LEVEL], "t", ["id"], ["integer"], [str(lo)], [str(lo + 20)])
                    total += sum(int(v) for _, v in stream)
                    time.sleep(0.02)  # let transfers commit between the chunks
                interleaved += transfers[0] - before
                assert total == 100 * accounts
            finally:
                reader.close()
    finally:
        stop.set()
        writer.join()
    assert interleaved > 0, "no transfer committed while a reader read"


def test_the_flush_lock_path_leaves_the_sessions_lock_wait_as_it_was(mysql_url: str) -> None:
    from migrator.adapters.mysql.snapshot import FLUSH_WAIT_S, open_snapshot

    conn = Endpoint(mysql_url).connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 1234")
        point = open_snapshot(conn, lock=True)
        assert point.lock_seconds is not None
        with conn.cursor() as cur:
            cur.execute("SELECT @@session.lock_wait_timeout, @@in_transaction")
            assert cur.fetchone() == (1234, 1)  # restored; the snapshot's transaction still open
        assert FLUSH_WAIT_S != 1234
    finally:
        conn.close()
