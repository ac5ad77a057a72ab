"""The binlog read as change events: every contract type, transactions, commit order, positions,
resuming, markers, DDL, a purged position, a lost connection, a large transaction."""

from __future__ import annotations

import threading
import time
import tracemalloc
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from bson.int64 import Int64

from migrator.adapters.base import (
    Change,
    Idle,
    Keepalive,
    Marker,
    Received,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
)
from migrator.adapters.mysql import MysqlSource
from migrator.errors import ConnectionFailed, SourceError, StreamLost, TerminalError, TransientError
from tests.support.mariadb import connect
from tests.support.mysql_binlog import (
    SLOT,
    database,
    execute,
    position_now,
    read_transactions,
    read_until_idle,
    reading,
)

TYPES_DDL = """CREATE TABLE every_type (
    id INT PRIMARY KEY,
    ti TINYINT, tb TINYINT(1), tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
    d DECIMAL(10,3), f FLOAT, db DOUBLE, b BIT(5),
    c CHAR(5), vc VARCHAR(10), tx TEXT, lt TEXT CHARACTER SET latin1,
    bn BINARY(4), vb VARBINARY(5), bl BLOB, j JSON,
    e ENUM('x','y','z'), s SET('a','b','c'),
    dt DATE, dtt DATETIME(3), ts TIMESTAMP(6) NULL, tm TIME(2), y YEAR
) ENGINE=InnoDB"""
COLUMNS = "id, ti, tb, tu, si, su, mi, mu, i, iu, bi, bu, d, f, db, b, c, vc, tx, lt, bn, vb, bl, j, e, s, dt, dtt, ts, tm, y"
FULL_ROW = (
    "1, -128, 1, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
    "-9223372036854775808, 18446744073709551615, -1234567.891, 1.1, 2.2, b'00110', "
    "'ab  ', 'héllo ', 't€xt', 'çà', 'ab', x'0001', x'ff00', '{\"a\": [1, 2.5, null], \"b\": \"c\"}', "
    "'y', 'c,a', '2024-02-29', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.123456', '-838:59:59.50', 2155"
)
# What the contract (docs/architecture.md, "MySQL and MariaDB sources") says each value is, by hand.
FULL_VALUES = {
    "id": 1,
    "ti": -128,
    "tb": 1,
    "tu": 255,
    "si": -32768,
    "su": 65535,
    "mi": -8388608,
    "mu": 16777215,
    "i": -2147483648,
    "iu": 4294967295,
    "bi": -9223372036854775808,
    "bu": Decimal("18446744073709551615"),
    "d": Decimal("-1234567.891"),
    "f": 1.100000023841858,  # the float nearest 1.1, widened: what the column holds
    "db": 2.2,
    "b": "00110",
    "c": "ab",
    "vc": "héllo ",
    "tx": "t€xt",
    "lt": "çà",
    "bn": b"ab\x00\x00",
    "vb": b"\x00\x01",
    "bl": b"\xff\x00",
    "j": {"a": [1, 2.5, None], "b": "c"},
    "e": "y",
    "s": ["a", "c"],
    "dt": date(2024, 2, 29),
    "dtt": datetime(2024, 2, 29, 12, 34, 56, 789000),
    "ts": datetime(2024, 2, 29, 12, 34, 56, 123456, tzinfo=UTC),
    "tm": "-838:59:59.50",
    "y": 2155,
}
NULL_VALUES = dict.fromkeys(FULL_VALUES) | {"id": 2}


def _only_changes(events: list[object]) -> list[object]:
    return [e for e in events if not isinstance(e, TransactionBegun | TransactionCommitted)]


def test_rows_of_every_type_arrive_as_transactions_in_commit_order(mysql_url: str) -> None:
    execute(mysql_url, TYPES_DDL, "CREATE TABLE other (id INT PRIMARY KEY, v INT)")
    start = position_now(mysql_url)
    execute(
        mysql_url,
        "BEGIN",
        f"INSERT INTO every_type ({COLUMNS}) VALUES ({FULL_ROW})",
        "INSERT INTO every_type (id, s) VALUES (2, '')",
        "COMMIT",
        "INSERT INTO other VALUES (1, 1)",  # not mapped: nothing is handed over
        "BEGIN",
        "UPDATE every_type SET f = 3.25, s = '', tm = '01:02:03', bu = 5, id = 3 WHERE id = 1",
        "DELETE FROM every_type WHERE id = 2",
        "COMMIT",
        "UPDATE every_type SET vc = NULL WHERE id = 3",
    )
    table = f"{database(mysql_url)}.every_type"
    with reading(mysql_url, ["every_type"], start) as reader:
        events = read_transactions(reader, 3)
    updated = FULL_VALUES | {"id": 3, "f": 3.25, "s": [], "tm": "01:02:03.00", "bu": 5}
    null_row = NULL_VALUES | {"s": []}
    assert _only_changes(events) == [
        Change(table, "insert", None, FULL_VALUES),
        Change(table, "insert", None, null_row),
        Change(table, "update", FULL_VALUES, updated),
        Change(table, "delete", null_row, None),
        Change(table, "update", updated, updated | {"vc": None}),
    ]
    first = next(e for e in events if isinstance(e, Change))
    assert first.new is not None
    # The table's bigint (BIGINT, INT UNSIGNED, BIGINT UNSIGNED within int64) is BSON's Int64, as
    # the snapshot hands it; the other integers plain ints.
    assert [type(first.new[c]) for c in ("bi", "iu", "i", "mu")] == [Int64, Int64, int, int]
    third = [e for e in events if isinstance(e, Change)][2]
    assert third.new is not None and type(third.new["bu"]) is Int64
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "TransactionBegun",
        "Change",
        "Change",
        "TransactionCommitted",
        "TransactionBegun",
        "Change",
        "Change",
        "TransactionCommitted",
        "TransactionBegun",
        "Change",
        "TransactionCommitted",
    ]
    # Positions: each transaction begins after the previous one ends and commits within itself.
    marks = [e for e in events if isinstance(e, TransactionBegun | TransactionCommitted)]
    previous_end = start
    for begun, committed in zip(marks[::2], marks[1::2], strict=True):
        assert isinstance(begun, TransactionBegun) and isinstance(committed, TransactionCommitted)
        assert previous_end <= begun.commit_position < committed.commit_position < committed.end_position
        assert not committed.skipped
        previous_end = committed.end_position
    assert previous_end <= position_now(mysql_url)


def _commit(event: TransactionCommitted) -> tuple[int, int, datetime | None, bool]:
    at = event.commit_time.replace(microsecond=0) if event.commit_time else None
    return event.commit_position, event.end_position, at, event.skipped


def test_a_stream_resumed_at_a_commit_yields_exactly_the_later_transactions(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
    start = position_now(mysql_url)
    execute(mysql_url, *(f"INSERT INTO t VALUES ({n}, 'v{n}')" for n in range(1, 5)))
    with reading(mysql_url, ["t"], start) as reader:
        first = read_transactions(reader, 4)
    commits = [e for e in first if isinstance(e, TransactionCommitted)]
    table = f"{database(mysql_url)}.t"
    resume = MysqlSource.positions.parse(MysqlSource.positions.text(commits[1].end_position))
    with reading(mysql_url, ["t"], resume) as reader:
        again = read_until_idle(reader)
    assert _only_changes(again) == [
        Change(table, "insert", None, {"id": 3, "v": "v3"}),
        Change(table, "insert", None, {"id": 4, "v": "v4"}),
    ]
    # The same commits; their time only to the second: a commit read as it happens is dated by its
    # arrival within the binlog's second, one read again later by that second alone.
    assert [_commit(e) for e in again if isinstance(e, TransactionCommitted)] == [
        _commit(c) for c in commits[2:]
    ]
    # The applied position says which transactions were applied: a stream from before them
    # hands them over as skipped.
    with reading(mysql_url, ["t"], start, applied=commits[1].end_position) as reader:
        skipping = read_transactions(reader, 4)
    assert [e.skipped for e in skipping if isinstance(e, TransactionCommitted)] == [True, True, False, False]
    assert len([e for e in skipping if isinstance(e, Change)]) == 2


def test_markers_arrive_in_commit_order_between_transactions(mysql_url: str) -> None:
    source = MysqlSource(mysql_url)
    assert source.capture_setup().ensure_publication("pub", {f"{database(mysql_url)}.t": None})
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    monitor = source.monitor()
    try:
        execute(mysql_url, "INSERT INTO t VALUES (1)")
        marked = MysqlSource.positions.parse(monitor.heartbeat("migrator.test", "first"))
        execute(mysql_url, "INSERT INTO t VALUES (2)")
        monitor.heartbeat("migrator.heartbeat", "second")
    finally:
        monitor.close()
    with reading(mysql_url, ["t"], start) as reader:
        events = read_transactions(reader, 4)
    table = f"{database(mysql_url)}.t"
    assert [e for e in events if not isinstance(e, TransactionBegun | TransactionCommitted)] == [
        Change(table, "insert", None, {"id": 1}),
        Marker("migrator.test", b"first"),
        Change(table, "insert", None, {"id": 2}),
        Marker("migrator.heartbeat", b"second"),
    ]
    commits = [e for e in events if isinstance(e, TransactionCommitted)]
    # The heartbeat's position is reached by the marker's transaction, not by the one before it.
    assert commits[0].end_position < marked <= commits[1].end_position
    source.capture_setup().drop_publication("pub")
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE '_migrator_markers'")
        assert cur.fetchall() == ()


def test_ddl_on_a_mapped_table_stops_naming_table_and_statement(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    execute(
        mysql_url,
        "ALTER TABLE u ADD COLUMN x INT",  # not mapped: followed
        "INSERT INTO t VALUES (1)",
        "TRUNCATE TABLE t",
        "ALTER TABLE t ADD COLUMN extra INT",
        "INSERT INTO t VALUES (2, 2)",
    )
    table = f"{database(mysql_url)}.t"
    with reading(mysql_url, ["t"], start) as reader:
        seen = []
        with pytest.raises(TerminalError) as stopped:
            for event in reader.events(wait_s=0.2):
                if isinstance(event, Change | Truncated):
                    seen.append(event)
    assert seen == [Change(table, "insert", None, {"id": 1}), Truncated((table,))]
    assert table in stopped.value.message
    assert "ALTER TABLE t ADD COLUMN extra INT" in stopped.value.message


def test_a_purged_position_is_a_terminal_error_naming_it(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    old = position_now(mysql_url)
    execute(mysql_url, "INSERT INTO t VALUES (1)", "FLUSH BINARY LOGS")
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        current_file = cur.fetchone()[0]
        # The server keeps a file a dump thread still reads (an earlier test's, until its heartbeat
        # finds the connection closed): purge until it is gone.
        deadline = time.monotonic() + 60
        while True:
            cur.execute(f"PURGE BINARY LOGS TO '{current_file}'")
            cur.execute("SHOW BINARY LOGS")
            if [row[0] for row in cur.fetchall()] == [current_file] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    text = MysqlSource.positions.text(old)
    capture = MysqlSource(mysql_url).capture_setup()
    capture.record_slot(SLOT, old)
    with pytest.raises(SourceError) as gone, reading(mysql_url, ["t"], old) as reader:
        read_transactions(reader, 1)
    assert text in gone.value.message
    assert not isinstance(gone.value, ConnectionFailed)
    assert not capture.slot_exists(SLOT)  # recorded there: purged


def test_a_lost_connection_is_transient_and_a_resume_at_the_last_commit_loses_nothing(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    execute(mysql_url, "INSERT INTO t VALUES (1)")
    table = f"{database(mysql_url)}.t"
    with reading(mysql_url, ["t"], start) as reader:
        first = read_transactions(reader, 1)
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
            for (thread,) in cur.fetchall():
                cur.execute(f"KILL {int(thread)}")
        execute(mysql_url, "INSERT INTO t VALUES (2)")
        with pytest.raises(StreamLost) as lost:
            read_transactions(reader, 1, limit_s=60)
    # Transient (retried), and said as what it is: the stream ended after it was established.
    assert isinstance(lost.value, TransientError) and not isinstance(lost.value, ConnectionFailed)
    assert "the binlog stream was lost after it was established" in lost.value.message
    assert "cannot connect" not in lost.value.message
    assert (lost.value.code, lost.value.cause) == ("2013", "OperationalError")  # CR_SERVER_LOST, PyMySQL's
    resume = next(e for e in first if isinstance(e, TransactionCommitted)).end_position
    with reading(mysql_url, ["t"], resume) as reader:
        assert _only_changes(read_transactions(reader, 1)) == [Change(table, "insert", None, {"id": 2})]


def _insert_numbered(url: str, table: str, rows: int, payload: int) -> None:
    """Rows 0..rows-1 into `table` (id, v), v the id zero-padded to `payload` characters, in one
    transaction of 1,000-row statements."""
    execute(
        url,
        "BEGIN",
        *(
            (
                f"INSERT INTO {table} VALUES " + ",".join(["(%s, %s)"] * 1000),
                [x for n in range(k, k + 1000) for x in (n, f"{n:0{payload}d}")],
            )
            for k in range(0, rows, 1000)
        ),
        "COMMIT",
    )


def test_a_large_transaction_streams_in_bounded_memory(mysql_url: str) -> None:
    rows, payload = 50_000, 400
    execute(mysql_url, "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(500))")
    start = position_now(mysql_url)
    _insert_numbered(mysql_url, "big", rows, payload)
    # Held whole, the transaction's changes would take over rows * payload bytes (20 MB of values
    # alone); read one at a time, the peak stays a small fraction of that.
    tracemalloc.start()
    try:
        count, checked = 0, 0
        with reading(mysql_url, ["big"], start) as reader:
            for event in reader.events(wait_s=0.5):
                if isinstance(event, Change):
                    assert event.new is not None
                    checked += event.new["v"] == f"{event.new['id']:0{payload}d}"
                    count += 1
                elif isinstance(event, TransactionCommitted):
                    break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == checked == rows
    assert peak < rows * payload / 4, f"peak {peak:,} bytes"


def test_the_monitor_reports_retained_bytes_from_the_acknowledged_position(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
    start = position_now(mysql_url)
    source = MysqlSource(mysql_url)
    source.capture_setup().record_slot("retained_slot", start)
    stream = source.change_stream("retained_slot", "pub", start)
    monitor = source.monitor()
    try:
        execute(mysql_url, ("INSERT INTO t VALUES (1, %s)", ["x" * 10_000]))
        state = monitor.state("retained_slot")
        assert state is not None
        assert state["active"] is True
        assert state["confirmed"] == MysqlSource.positions.text(start)
        end = MysqlSource.positions.parse(state["current"])
        assert end == position_now(mysql_url)
        # Nothing rotated the binlog in between (the same file): the bytes between the positions.
        assert end >> 32 == start >> 32
        assert state["retained_bytes"] == (end & 0xFFFFFFFF) - (start & 0xFFFFFFFF) > 10_000
        stream.acknowledge(end)
        after = monitor.state("retained_slot")
        # Recording the acknowledgement is itself a row event: the bytes after `end` are its own.
        assert after is not None and after["confirmed"] == MysqlSource.positions.text(end)
        now = position_now(mysql_url)
        assert after["retained_bytes"] == (now & 0xFFFFFFFF) - (end & 0xFFFFFFFF) < 1_000
    finally:
        stream.close()
        monitor.close()
    closed = monitor.state("retained_slot")
    assert closed is not None and closed["active"] is False
    monitor.close()
    assert not [t for t in threading.enumerate() if t.name == "migrator-binlog"]  # the dump thread ended


def test_an_idle_binlog_reports_idle_and_the_servers_heartbeat_and_other_tables_move_it_on(
    mysql_url: str,
) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE other (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    with reading(mysql_url, ["t"], start) as reader:
        seen: list[object] = []
        for event in reader.events(wait_s=0.5):
            seen.append(event)
            if isinstance(event, Idle) and Keepalive(start) in seen:
                break
        # The server's heartbeat (everything before it sent) comes many times within the wait
        # (every 20 ms); an Idle once the wait passed with nothing else.
        assert {type(e) for e in seen} <= {Keepalive, Idle, Received}
        heartbeats = seen[seen.index(Keepalive(start)) :]
        assert heartbeats.count(Keepalive(start)) >= 5, seen
        execute(mysql_url, "INSERT INTO other VALUES (1)")
        after = position_now(mysql_url)
        for event in reader.events(wait_s=0.2):
            assert not isinstance(event, Change | TransactionBegun | TransactionCommitted)
            if isinstance(event, Keepalive) and event.wal_end == after:
                break


def test_a_binlog_without_column_names_is_refused_naming_the_setting(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    execute(mysql_url, "SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        with pytest.raises(SourceError) as refused, reading(mysql_url, ["t"], start):
            pass
    finally:
        execute(mysql_url, "SET GLOBAL binlog_row_metadata = 'FULL'")
    assert "binlog_row_metadata=MINIMAL" in refused.value.message


def test_a_commit_read_as_it_happens_is_dated_within_its_second_and_the_heartbeat_follows_it(
    mysql_url: str,
) -> None:
    """The binlog's timestamps have whole seconds; a commit the stream reads as it happens is
    dated between the moment before the statement and the moment the test reads it (by its
    arrival), never at the whole second before it; and the server's heartbeat, saying it has
    sent everything, follows each commit long before the reader's wait for an Idle is over."""
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    within = []
    with reading(mysql_url, ["t"], start) as reader:
        events = reader.events(wait_s=30.0)
        for n in range(5):
            time.sleep(0.1 + 0.07 * n)  # not always at the same fraction of a second
            before = time.time()
            execute(mysql_url, f"INSERT INTO t VALUES ({n})")
            committed = next(e for e in events if isinstance(e, TransactionCommitted))
            read = time.time()
            at = committed.commit_time.timestamp()
            assert int(before) <= at <= read  # never later than it was read, nor a second early
            within.append(before <= at)
            after = next(e for e in events if not isinstance(e, Received))
            assert after == Keepalive(committed.end_position)  # not an Idle: the heartbeat came first
    # Read within the second it names (the stream keeps up): dated by its arrival. On a busy
    # machine one may be read only after the second turned, and is dated by the timestamp.
    assert any(within), within


def test_a_consumer_that_stalls_longer_than_the_servers_write_timeout_keeps_its_stream(
    mysql_url: str,
) -> None:
    """While the engine applies a large batch, the stream is not read and the server's writes to it
    wait: past the server's net_write_timeout it would drop the dump (a reset connection, resumed
    from the last commit, and again and again under a slow target). The stream's own session gives
    the server far longer (binlog.py); here the server's default is 2 s and the reader stalls 8."""
    rows, payload = 30_000, 1000
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.net_write_timeout")
        before = cur.fetchone()[0]
        cur.execute("SET GLOBAL net_write_timeout = 2")
    try:
        execute(mysql_url, "CREATE TABLE wide (id INT PRIMARY KEY, v TEXT)")
        start = position_now(mysql_url)
        _insert_numbered(mysql_url, "wide", rows, payload)
        count = 0
        with reading(mysql_url, ["wide"], start) as reader:
            for event in reader.events(wait_s=0.5):
                if isinstance(event, Change):
                    if count == 0:
                        time.sleep(8)  # the stall under test: a batch applied slowly
                    count += 1
                elif isinstance(event, TransactionCommitted):
                    break
    finally:
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute(f"SET GLOBAL net_write_timeout = {int(before)}")
    assert count == rows
