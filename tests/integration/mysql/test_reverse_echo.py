"""Echo prevention on a real MariaDB: the forward binlog stream skips reverse sync's own
transactions (its mark, the checkpoint row written first, names the origin the stream skips) and
hands over the application's; a stream told another origin hands over every transaction."""

from __future__ import annotations

from migrator.adapters.base import Change, TransactionCommitted
from migrator.adapters.mysql import MysqlSource
from migrator.adapters.rows import DocumentRows, LevelRows, ReverseCheckpoint, TableLevel
from tests.support.mysql_binlog import database, execute, position_now, read_transactions, reading

ORIGIN = "migrator_reverse_shop"
LEVEL = (TableLevel("t", ("id",)),)


def _document(key: int, value: str) -> DocumentRows:
    return DocumentRows("t", key, LEVEL, {"id": key}, [LevelRows(rows=[{"id": key, "v": value}])])


def _write(url: str) -> None:
    writer = MysqlSource(url).reverse_writer("shop", ORIGIN)
    writer.setup()
    try:
        writer.apply([_document(1, "from the target")], ReverseCheckpoint({"_data": "01"}, None, 1))
        execute(url, "INSERT INTO t VALUES (2, 'from the application')")
        writer.apply([_document(1, "changed on the target"), _document(3, "new on the target")], None)
    finally:
        writer.close()


def test_the_forward_stream_skips_reverse_syncs_transactions(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
    start = position_now(mysql_url)
    _write(mysql_url)
    table = f"{database(mysql_url)}.t"
    with reading(mysql_url, ["t"], start, skip_origin=ORIGIN) as reader:
        events = read_transactions(reader, 3)
    assert [e.skipped for e in events if isinstance(e, TransactionCommitted)] == [True, False, True]
    assert [(e.table, e.kind, e.new) for e in events if isinstance(e, Change)] == [
        (table, "insert", {"id": 2, "v": "from the application"})
    ]


def test_a_stream_of_another_origin_hands_reverse_writes_over(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))")
    start = position_now(mysql_url)
    _write(mysql_url)
    table = f"{database(mysql_url)}.t"
    with reading(mysql_url, ["t"], start, skip_origin="migrator_reverse_other") as reader:
        events = read_transactions(reader, 3)
    assert [e.skipped for e in events if isinstance(e, TransactionCommitted)] == [False, False, False]
    assert [(e.kind, e.new) for e in events if isinstance(e, Change) and e.table == table] == [
        ("insert", {"id": 1, "v": "from the target"}),
        ("insert", {"id": 2, "v": "from the application"}),
        ("update", {"id": 1, "v": "changed on the target"}),
        ("insert", {"id": 3, "v": "new on the target"}),
    ]
