"""The binlog "slot" recorded on the source (adapters/mysql/slots.py): what another process sees,
what acknowledgements write, and what rollback's drops leave."""

from __future__ import annotations

import subprocess
import sys
import time

from migrator.adapters.base import Change
from migrator.adapters.mysql import MysqlSource
from tests.support.mariadb import connect
from tests.support.mysql_binlog import SLOT, database, execute, position_now, read_transactions, reading


def _rows(url: str) -> dict[str, int]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, position FROM _migrator_slots")
        return {str(name): int(position) for name, position in cur.fetchall()}


def _tables(url: str) -> set[str]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE '\\_migrator\\_%%'")
        return {str(row[0]) for row in cur.fetchall()}


def _exists_in_another_process(url: str, slot: str) -> bool:
    code = (
        "import sys; from migrator.adapters.mysql import MysqlSource; "
        "print(MysqlSource(sys.argv[1]).capture_setup().slot_exists(sys.argv[2]))"
    )
    out = subprocess.run([sys.executable, "-c", code, url, slot], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_the_export_records_the_slot_and_another_process_sees_it(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    source = MysqlSource(mysql_url)
    capture = source.capture_setup()
    assert capture.ensure_publication("pub", {f"{database(mysql_url)}.t": None})
    assert _tables(mysql_url) == {"_migrator_markers", "_migrator_slots"}
    assert not capture.slot_exists("run_slot")
    before = position_now(mysql_url)
    export = source.export_snapshot("run_slot")
    export.close()
    # Recorded just before the export's snapshot (the row's own insert lies between them).
    assert _rows(mysql_url) == {"run_slot": before}
    assert MysqlSource.positions.parse(export.start.position) > before
    assert _exists_in_another_process(mysql_url, "run_slot")
    monitor = MysqlSource(mysql_url).monitor()
    try:
        state = monitor.state("run_slot")
        assert state is not None and state["confirmed"] == MysqlSource.positions.text(before)
        assert state["active"] is False
        assert monitor.state("never_created") is None
    finally:
        monitor.close()
    source.close()


def test_acknowledgements_move_the_recorded_position_throttled_and_are_never_read_as_changes(
    mysql_url: str,
) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    table = f"{database(mysql_url)}.t"
    start = position_now(mysql_url)
    MysqlSource(mysql_url).capture_setup().record_slot(SLOT, start)
    execute(mysql_url, "INSERT INTO t VALUES (1)")
    with reading(mysql_url, ["t"], start) as reader:
        first = read_transactions(reader, 1)
        end = first[-1].end_position  # type: ignore[union-attr]
        reader.stream.acknowledge(end)
        assert _rows(mysql_url) == {SLOT: end}  # the first acknowledgement is written at once
        execute(mysql_url, "INSERT INTO t VALUES (2)")
        second = read_transactions(reader, 1)
        later = second[-1].end_position  # type: ignore[union-attr]
        reader.stream.acknowledge(later)
        assert _rows(mysql_url) == {SLOT: end}  # within the interval: not yet
        # The slot's own update came between the two inserts: never a change, never a transaction.
        assert [e for e in first + second if isinstance(e, Change)] == [
            Change(table, "insert", None, {"id": 1}),
            Change(table, "insert", None, {"id": 2}),
        ]
    # Closing the stream writes the last acknowledgement.
    assert _rows(mysql_url) == {SLOT: later}


def test_an_idle_stream_does_not_write_its_slot_again_and_again(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY)")
    start = position_now(mysql_url)
    MysqlSource(mysql_url).capture_setup().record_slot(SLOT, start)
    execute(mysql_url, "INSERT INTO t VALUES (1)")
    with reading(mysql_url, ["t"], start) as reader:
        end = read_transactions(reader, 1)[-1].end_position  # type: ignore[union-attr]
        reader.stream.acknowledge(end)
        after_update = position_now(mysql_url)
        # The stream reaches the slot's own update and acknowledges it, as CDC does on a keepalive.
        reader.stream._recorder._saved_at = float("-inf")  # no throttle: only the rule is tested
        reader.stream.acknowledge(after_update)
        assert position_now(mysql_url) == after_update
        assert _rows(mysql_url) == {SLOT: end}


def test_drops_remove_the_slot_and_the_tables_once_no_slot_is_left(mysql_url: str) -> None:
    capture = MysqlSource(mysql_url).capture_setup()
    capture.ensure_publication("pub", {})
    now = position_now(mysql_url)
    capture.record_slot("a", now)
    capture.record_slot("b", now)
    assert capture.drop_slot("a")
    assert not capture.drop_slot("a")
    capture.drop_publication("pub")
    assert _tables(mysql_url) == {"_migrator_markers", "_migrator_slots"}  # slot b still streams
    assert capture.drop_slot("b")
    capture.drop_publication("pub")
    assert _tables(mysql_url) == set()
    assert not capture.slot_exists("b")  # the table is gone: no slot, no error
    assert not capture.drop_slot("b")


def _active_in_another_process(url: str, slot: str) -> bool | None:
    code = (
        "import sys; from migrator.adapters.mysql import MysqlSource; "
        "m = MysqlSource(sys.argv[1]).monitor(); s = m.state(sys.argv[2]); m.close(); "
        "print(None if s is None else s['active'])"
    )
    out = subprocess.run([sys.executable, "-c", code, url, slot], capture_output=True, text=True, check=True)
    return {"True": True, "False": False}.get(out.stdout.strip())


def test_another_process_sees_whether_a_stream_of_the_slot_is_open(mysql_url: str) -> None:
    start = position_now(mysql_url)
    source = MysqlSource(mysql_url)
    source.capture_setup().record_slot(SLOT, start)
    assert _active_in_another_process(mysql_url, SLOT) is False
    stream = source.change_stream(SLOT, "pub", start)
    try:
        assert _active_in_another_process(mysql_url, SLOT) is True
    finally:
        stream.close()
    # The server lets the lock go when the stream's connection ends (at once, or a moment later).
    deadline = time.monotonic() + 30
    while _active_in_another_process(mysql_url, SLOT) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _active_in_another_process(mysql_url, SLOT) is False
