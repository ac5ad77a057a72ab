"""A MariaDB source's linked read (CDC's embedded content) opens only once its snapshot shows the
batch's transactions (docs/architecture.md, "Why reading 'now' converges"): the binlog is written,
and sent, before the engine commits, and content read in between is older than the change that
asked for it. The gap itself is microseconds and cannot be held open here, so the batch is made to
name a transaction that begins where the binlog ends now (the next one to commit): the read must
wait for it, and shows the row the test commits meanwhile.

The expectation is the row the test wrote."""

from __future__ import annotations

import threading
import time

from migrator.adapters.base import JoinHop, LevelRead
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.mysql.snapshot import position_value
from tests.support.mariadb import column_info, connect

HOP = JoinHop("child", (("parent_id", "id"),), 0)
LINK = (column_info("id", "integer", "base"),)
LEVELS = [
    LevelRead(path=(), columns=(column_info("n", "bigint", "base"), *LINK), order_by=()),
    LevelRead(
        path=(HOP,),
        columns=(column_info("id", "integer", "base"), column_info("label", "text", "base")),
        order_by=(column_info("id", "integer", "base"),),
    ),
]
WRITE_AFTER_S = 0.3


def test_a_linked_read_waits_until_its_snapshot_shows_the_batch(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, label TEXT, KEY (parent_id))")
        cur.execute("INSERT INTO parent VALUES (1)")
    reader = MysqlSource(mysql_url).linked_reader()

    def application() -> None:
        time.sleep(WRITE_AFTER_S)
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO child VALUES (10, 1, 'new')")

    writer = threading.Thread(target=application, name="application")
    try:
        now = reader.begin()  # where the binlog ends: the next transaction begins there
        reader.end()
        writer.start()
        at = reader.begin([position_value(now)])
        streams = reader.stream_linked(LEVELS, LINK, [["1"]], "n")
        got = [list(s) for s in streams]
        reader.end()
    finally:
        writer.join(60)
        reader.close()
    assert position_value(at) > position_value(now)
    assert got == [[(1, 1)], [(1, 10, "new")]]


def test_a_table_read_for_an_added_column_waits_until_its_snapshot_shows_what_cdc_applied(
    mysql_url: str,
) -> None:
    """CDC reads every row of a table at a point of the stream (a column added while it
    follows): the read waits for the transactions applied before it, as the linked read does."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE child (id INT PRIMARY KEY, label TEXT)")
        cur.execute("INSERT INTO child VALUES (1, 'old')")
    source = MysqlSource(mysql_url)
    reader = source.linked_reader()
    try:
        now = reader.begin()  # where the binlog ends: the next transaction begins there
        reader.end()
    finally:
        reader.close()

    def application() -> None:
        time.sleep(WRITE_AFTER_S)
        with connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute("UPDATE child SET label = 'new' WHERE id = 1")

    writer = threading.Thread(target=application, name="application")
    columns = {"id": column_info("id", "integer", "base"), "label": column_info("label", "text", "base")}
    writer.start()
    try:
        chunks = list(source.table_rows("child", columns, ["id"], 10, [position_value(now)]))
    finally:
        writer.join(60)
    assert chunks == [[{"id": 1, "label": "new"}]]
