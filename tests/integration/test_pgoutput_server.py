"""The pgoutput decoder on REAL server output (PostgreSQL 15).

Changes are read with `pg_logical_slot_peek_binary_changes`, whose rows are exactly the pgoutput
messages a walsender would put in XLogData. Protocol 1: every message type a plain transaction
produces (Begin, Type, Relation, Insert, Update with UNCHANGED TOAST and with an old key, Delete,
Truncate, transactional and non-transactional logical messages, Commit, a Relation re-sent
mid-transaction after ALTER TABLE). Protocol 2 with streaming 'on' and a 64kB
logical_decoding_work_mem: a streamed commit, a streamed rollback, a streamed transaction with a
rolled-back subtransaction; then the same WAL without streaming. PostgreSQL 15 streams through the
SQL interface, so no replication connection is needed here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from migrator.adapters.base import Idle, Keepalive
from migrator.adapters.postgres import pgoutput as pgo
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.lsn import Lsn
from migrator.adapters.postgres.replication import ReplicationStream
from migrator.errors import ConnectionFailed, StreamLost, TransientError

SLOT = "pgo_slot"
PUB = "pgo_pub"
# Messages that carry an xid in protocol 2 when (and only when) they are inside a stream.
XID_BEARING = (
    pgo.Relation,
    pgo.TypeInfo,
    pgo.Insert,
    pgo.Update,
    pgo.Delete,
    pgo.Truncate,
    pgo.LogicalMessage,
)
KIND = {
    pgo.Begin: "B",
    pgo.Commit: "C",
    pgo.Origin: "O",
    pgo.Relation: "R",
    pgo.TypeInfo: "Y",
    pgo.Insert: "I",
    pgo.Update: "U",
    pgo.Delete: "D",
    pgo.Truncate: "T",
    pgo.LogicalMessage: "M",
    pgo.StreamStart: "S",
    pgo.StreamStop: "E",
    pgo.StreamCommit: "c",
    pgo.StreamAbort: "A",
}


@dataclass(frozen=True)
class Row:
    lsn: int  # the row's lsn column
    message: pgo.Message
    in_stream: bool  # decoded as inside Stream Start .. Stream Stop


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        yield connection


def run(conn: psycopg.Connection[Any], *statements: str) -> None:
    for statement in statements:
        conn.execute(statement)


def peek(conn: psycopg.Connection[Any], *options: str) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, VARIADIC %s::text[])",
        (SLOT, ["publication_names", PUB, "messages", "true", *options]),
    ).fetchall()
    return [(Lsn.parse(lsn).value, bytes(data)) for lsn, data in rows]


def decode_all(raw: list[tuple[int, bytes]]) -> list[Row]:
    """Decode like a consumer: in_stream is True between Stream Start and Stream Stop."""
    rows: list[Row] = []
    in_stream = False
    for lsn, data in raw:
        message = pgo.decode(data, in_stream=in_stream)
        rows.append(Row(lsn, message, in_stream))
        if isinstance(message, pgo.StreamStart):
            assert not in_stream, "Stream Start inside a stream"
            in_stream = True
        elif isinstance(message, pgo.StreamStop):
            assert in_stream, "Stream Stop outside a stream"
            in_stream = False
    assert not in_stream, "output ends inside a stream"
    return rows


def kinds(rows: list[Row]) -> str:
    return "".join(KIND[type(row.message)] for row in rows)


def of_type(rows: list[Row], cls: type[Any] | tuple[type[Any], ...]) -> list[Any]:
    return [row.message for row in rows if isinstance(row.message, cls)]


def check_transactions(rows: list[Row]) -> None:
    """Begin .. Commit pairing and LSN order, as a resuming consumer relies on."""
    begin: pgo.Begin | None = None
    last_end = -1
    for row in rows:
        message = row.message
        if isinstance(message, pgo.Begin):
            assert begin is None, "nested Begin"
            begin = message
        elif isinstance(message, pgo.Commit):
            assert begin is not None, "Commit without Begin"
            assert message.commit_lsn == begin.final_lsn
            assert message.commit_time == begin.commit_time
            assert message.end_lsn > message.commit_lsn
            assert message.end_lsn > last_end, "commit end_lsn must increase"
            assert row.lsn == message.end_lsn  # the SQL interface reports the commit at end_lsn
            last_end = message.end_lsn
            begin = None
        elif isinstance(message, pgo.StreamCommit):
            assert message.end_lsn > message.commit_lsn
            assert message.end_lsn > last_end, "commit end_lsn must increase"
            assert row.lsn == message.end_lsn
            last_end = message.end_lsn
        elif isinstance(message, (pgo.Insert, pgo.Update, pgo.Delete, pgo.Truncate)):
            assert begin is not None or row.in_stream, f"change outside a transaction: {message}"
    assert begin is None, "output ends inside a transaction"


# -- protocol 1 -----------------------------------------------------------------------------


def test_protocol_1_messages_from_a_real_server(conn: psycopg.Connection[Any]) -> None:
    run(
        conn,
        "CREATE TYPE mood AS ENUM ('ok', 'sad')",
        "CREATE TABLE item (id int PRIMARY KEY, small text, big text, feeling mood)",
        "ALTER TABLE item ALTER COLUMN big SET STORAGE EXTERNAL",  # out of line, never compressed
        'CREATE TABLE "ünïcode tåble" (id serial PRIMARY KEY)',
        f'CREATE PUBLICATION {PUB} FOR TABLE item, "ünïcode tåble"',
        f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')",
    )
    item_oid, other_oid, mood_oid = conn.execute(
        "SELECT 'item'::regclass::oid, '\"ünïcode tåble\"'::regclass::oid, 'mood'::regtype::oid"
    ).fetchone() or (0, 0, 0)
    big = os.urandom(512 * 1024).hex()  # 1 MiB of random hex digits

    with conn.transaction():
        conn.execute("INSERT INTO item VALUES (1, 'one', %s, 'ok')", (big,))
        conn.execute("INSERT INTO item VALUES (2, NULL, 'tiny', NULL)")
    # Precondition of the UNCHANGED assertions: the big value really lives in the TOAST table.
    toast = conn.execute(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'item'::regclass"
    ).fetchone()
    assert toast is not None
    chunks = conn.execute(f"SELECT count(*) FROM {toast[0]}").fetchone()
    assert chunks is not None and chunks[0] > 400
    run(
        conn,
        "UPDATE item SET small = 'uno' WHERE id = 1",  # big column untouched: arrives as 'u'
        "UPDATE item SET id = 10 WHERE id = 1",  # key change: old key tuple 'K'
        "DELETE FROM item WHERE id = 2",
        'TRUNCATE item, "ünïcode tåble" RESTART IDENTITY',
        "SELECT pg_logical_emit_message(true, 'migrator', 'hello')",
        # A rolled-back transaction: only its non-transactional message comes out.
        "BEGIN",
        "INSERT INTO item VALUES (3, 'three', 'x', 'ok')",
        "SELECT pg_logical_emit_message(true, 'migrator', 'never')",
        "SELECT pg_logical_emit_message(false, 'migrator', 'now')",
        "ROLLBACK",
    )
    with conn.transaction():  # the schema changes mid-transaction: a second Relation message
        conn.execute("INSERT INTO item VALUES (4, 'four', 'x', 'sad')")
        conn.execute("ALTER TABLE item ADD COLUMN extra int")
        conn.execute("INSERT INTO item VALUES (5, 'five', 'y', 'ok', 55)")

    raw = peek(conn, "proto_version", "1")
    rows = decode_all(raw)
    assert kinds(rows) == (
        "BYRIIC"  # two inserts; Type (enum) and Relation before the first change of the table
        "BUC"  # update of the small column
        "BUC"  # update of the key
        "BDC"
        "BYRRTC"  # truncate of both tables; item's Relation re-sent (its relfilenode changed)
        "BMC"  # transactional message
        "M"  # non-transactional message of the rolled-back transaction, outside any Begin/Commit
        "BYRIYRIC"  # ALTER TABLE between two inserts: Relation re-sent inside the transaction
    ), [row.message for row in rows]
    check_transactions(rows)
    assert all(row.in_stream is False for row in rows)
    for message in of_type(rows, XID_BEARING):
        assert message.xid is None  # protocol 1 never has an xid on changes

    begins = of_type(rows, pgo.Begin)
    assert [b.xid for b in begins] == sorted({b.xid for b in begins})  # distinct, in commit order

    types = of_type(rows, pgo.TypeInfo)
    assert {(t.type_oid, t.namespace, t.name) for t in types} == {(mood_oid, "public", "mood")}

    relations = of_type(rows, pgo.Relation)
    item_columns = (
        pgo.Column("id", 23, -1, True),
        pgo.Column("small", 25, -1, False),
        pgo.Column("big", 25, -1, False),
        pgo.Column("feeling", mood_oid, -1, False),
    )
    item_rel = pgo.Relation(None, item_oid, "public", "item", "d", item_columns)
    other_rel = pgo.Relation(
        None, other_oid, "public", "ünïcode tåble", "d", (pgo.Column("id", 23, -1, True),)
    )
    assert relations == [
        item_rel,
        item_rel,
        other_rel,
        item_rel,
        pgo.Relation(
            None, item_oid, "public", "item", "d", (*item_columns, pgo.Column("extra", 23, -1, False))
        ),
    ]
    assert relations[2].table == "public.ünïcode tåble"

    inserts = of_type(rows, pgo.Insert)
    assert [i.relation_id for i in inserts] == [item_oid] * 4
    assert inserts[0].new == (b"1", b"one", big.encode(), b"ok")  # the full TOASTed value on insert
    assert inserts[1].new == (b"2", None, b"tiny", None)
    assert inserts[2].new == (b"4", b"four", b"x", b"sad")
    assert inserts[3].new == (b"5", b"five", b"y", b"ok", b"55")

    small_update, key_update = of_type(rows, pgo.Update)
    assert small_update.old is None and small_update.old_is_key is False
    assert small_update.new[:2] == (b"1", b"uno") and small_update.new[3] == b"ok"
    assert small_update.new[2] is pgo.UNCHANGED
    assert key_update.old == (b"1", None, None, None) and key_update.old_is_key is True
    assert key_update.new[:2] == (b"10", b"uno") and key_update.new[2] is pgo.UNCHANGED

    (delete,) = of_type(rows, pgo.Delete)
    assert delete == pgo.Delete(None, item_oid, (b"2", None, None, None), True)

    (truncate,) = of_type(rows, pgo.Truncate)
    assert set(truncate.relation_ids) == {item_oid, other_oid} and len(truncate.relation_ids) == 2
    assert truncate.restart_identity is True and truncate.cascade is False

    hello, now = of_type(rows, pgo.LogicalMessage)
    assert (hello.prefix, hello.content, hello.transactional) == ("migrator", b"hello", True)
    assert (now.prefix, now.content, now.transactional) == ("migrator", b"now", False)
    message_rows = [row for row in rows if isinstance(row.message, pgo.LogicalMessage)]
    assert [row.lsn for row in message_rows] == [hello.lsn, now.lsn]  # reported at the message's LSN
    assert hello.lsn < now.lsn

    # Protocol 2 without streaming is the same bytes: the xid appears only inside streams.
    raw_v2 = peek(conn, "proto_version", "2")
    assert raw_v2 == raw
    assert [row.message for row in decode_all(raw_v2)] == [row.message for row in rows]


# -- protocol 2, streaming ------------------------------------------------------------------


def _id(message: pgo.Insert) -> int:
    value = message.new[0]
    assert isinstance(value, bytes)
    return int(value)


def _apply_streams(rows: list[Row]) -> set[int]:
    """Replay like a subscriber: buffer streamed changes per xid, drop aborted (sub)transactions.

    Returns the ids of the rows committed.
    """
    committed: set[int] = set()
    pending: dict[int, list[tuple[int, int]]] = {}  # top xid -> [(change xid, id)]
    current_top: int | None = None
    current_tx: list[int] = []
    for row in rows:
        message = row.message
        if isinstance(message, pgo.StreamStart):
            current_top = message.xid
        elif isinstance(message, pgo.StreamStop):
            current_top = None
        elif isinstance(message, pgo.Insert):
            if row.in_stream:
                assert current_top is not None and message.xid is not None
                pending.setdefault(current_top, []).append((message.xid, _id(message)))
            else:
                current_tx.append(_id(message))
        elif isinstance(message, pgo.Commit):
            committed.update(current_tx)
            current_tx = []
        elif isinstance(message, pgo.StreamAbort):
            changes = pending.get(message.xid, [])
            if message.subxid == message.xid:
                pending.pop(message.xid, None)
            else:
                pending[message.xid] = [(x, i) for x, i in changes if x != message.subxid]
        elif isinstance(message, pgo.StreamCommit):
            committed.update(i for _, i in pending.pop(message.xid))
    assert not pending, f"streams neither committed nor aborted: {sorted(pending)}"
    return committed


def test_protocol_2_streaming_from_a_real_server(conn: psycopg.Connection[Any]) -> None:
    run(
        conn,
        "CREATE TABLE s (id int PRIMARY KEY, v text)",
        f"CREATE PUBLICATION {PUB} FOR TABLE s",
        f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')",
    )
    rows_sql = "INSERT INTO s SELECT g, repeat('x', 100) FROM generate_series({}, {}) g"
    xids: dict[str, int] = {}
    for name, statements in {
        "committed": ["BEGIN", rows_sql.format(1, 5000), "COMMIT"],
        "rolled_back": ["BEGIN", rows_sql.format(10001, 15000), "ROLLBACK"],
        "savepoint": [
            "BEGIN",
            rows_sql.format(20001, 20100),
            "SAVEPOINT sp",
            rows_sql.format(30001, 35000),
            "ROLLBACK TO SAVEPOINT sp",
            rows_sql.format(40001, 40010),
            "COMMIT",
        ],
        "small": ["BEGIN", rows_sql.format(50001, 50001), "COMMIT"],
    }.items():
        conn.execute(statements[0])
        found = conn.execute("SELECT txid_current()").fetchone()
        assert found is not None
        xids[name] = found[0] & 0xFFFFFFFF
        run(conn, *statements[1:])

    conn.execute("SET logical_decoding_work_mem = '64kB'")  # read by this (decoding) session
    rows = decode_all(peek(conn, "proto_version", "2", "streaming", "on"))
    check_transactions(rows)

    # Inside a stream every change carries an xid; outside none does.
    for row in rows:
        if isinstance(row.message, XID_BEARING):
            assert (row.message.xid is not None) == row.in_stream, row

    starts = of_type(rows, pgo.StreamStart)
    committed_xid, rolled_back_xid, savepoint_xid, small_xid = (
        xids["committed"],
        xids["rolled_back"],
        xids["savepoint"],
        xids["small"],
    )
    # Each large transaction is streamed in several blocks; first_segment marks only the first.
    for xid in (committed_xid, rolled_back_xid, savepoint_xid):
        flags = [s.first_segment for s in starts if s.xid == xid]
        assert len(flags) >= 2 and flags[0] is True and not any(flags[1:]), (xid, flags)
    assert {s.xid for s in starts} == {committed_xid, rolled_back_xid, savepoint_xid}

    assert [c.xid for c in of_type(rows, pgo.StreamCommit)] == [committed_xid, savepoint_xid]
    aborts = of_type(rows, pgo.StreamAbort)
    assert len(aborts) == 2
    assert aborts[0] == pgo.StreamAbort(rolled_back_xid, rolled_back_xid)  # top level: xid == subxid
    sub_abort = aborts[1]
    assert sub_abort.xid == savepoint_xid and sub_abort.subxid != savepoint_xid
    for row in rows:
        if isinstance(row.message, (pgo.StreamCommit, pgo.StreamAbort)):
            assert row.in_stream is False  # sent between streams, not inside one

    # Streamed changes carry the xid of the (sub)transaction that made them.
    streamed = [row.message for row in rows if row.in_stream and isinstance(row.message, pgo.Insert)]
    by_xid: dict[int, set[int]] = {}
    for insert in streamed:
        assert insert.xid is not None
        by_xid.setdefault(insert.xid, set()).add(_id(insert))
    assert by_xid[committed_xid] == set(range(1, 5001))
    assert by_xid[savepoint_xid] == set(range(20001, 20101))
    assert by_xid[sub_abort.subxid] <= set(range(30001, 35001)) and by_xid[sub_abort.subxid]
    assert by_xid[rolled_back_xid] <= set(range(10001, 15001)) and by_xid[rolled_back_xid]
    # ROLLBACK TO re-opens the savepoint: the rows after it belong to a new subtransaction.
    (after_xid,) = {insert.xid for insert in streamed if 40001 <= _id(insert) <= 40010}
    assert after_xid not in (savepoint_xid, sub_abort.subxid)

    # The small transaction is not streamed: plain Begin .. Commit without xids.
    (begin,) = of_type(rows, pgo.Begin)
    assert begin.xid == small_xid
    start = rows.index(next(row for row in rows if row.message == begin))
    # No Relation: once a stream that sent it commits, pgoutput counts the schema as sent.
    assert kinds(rows[start:]) == "BIC"
    relation_ids = {r.relation_id for r in of_type(rows, pgo.Relation) if r.table == "public.s"}
    assert len(relation_ids) == 1
    assert rows[start + 1].message == pgo.Insert(None, relation_ids.pop(), (b"50001", b"x" * 100))

    # A subscriber applying these streams ends with exactly the committed rows.
    committed = _apply_streams(rows)
    expected = set(range(1, 5001)) | set(range(20001, 20101)) | set(range(40001, 40011)) | {50001}
    assert committed == expected
    in_table = conn.execute("SELECT array_agg(id) FROM s").fetchone()
    assert in_table is not None and set(in_table[0]) == expected

    # The same WAL without streaming: whole transactions at commit, nothing of the rollbacks.
    plain = decode_all(peek(conn, "proto_version", "2"))
    check_transactions(plain)
    assert not any(row.in_stream for row in plain)
    assert set(kinds(plain)) == {"B", "R", "I", "C"}
    assert [b.xid for b in of_type(plain, pgo.Begin)] == [committed_xid, savepoint_xid, small_xid]
    plain_committed = _apply_streams(plain)
    assert plain_committed == expected
    assert len(of_type(plain, pgo.Insert)) == len(expected)  # the aborted subtransaction is left out
    assert all(insert.xid is None for insert in of_type(plain, pgo.Insert))


# -- the stream, ended by the server ------------------------------------------------------------


def test_a_walsender_the_server_terminates_is_a_lost_stream_not_a_failed_connection(
    conn: psycopg.Connection[Any], pg_url: str
) -> None:
    run(
        conn,
        "CREATE TABLE item (id int PRIMARY KEY)",
        f"CREATE PUBLICATION {PUB} FOR TABLE item",
        f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')",
    )
    start = conn.execute(
        f"SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
    )
    row = start.fetchone()
    assert row is not None
    parts = urlsplit(pg_url)
    if parts.password is None and parts.username:  # unchecked by trust auth: a password to look for
        pg_url = pg_url.replace(f"//{parts.username}@", f"//{parts.username}:s3cret-pw@", 1)
    endpoint = PgEndpoint(pg_url)
    assert endpoint.secrets
    stream = ReplicationStream(endpoint, SLOT, PUB, Lsn.parse(row[0]).value)
    try:
        messages = stream.messages(wait_s=0.2)
        assert isinstance(next(messages), Idle | Keepalive)  # established: the server answers
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE backend_type = 'walsender' AND datname = current_database()"
        ).fetchone()
        assert ended == (1,)
        with pytest.raises(StreamLost) as lost:
            for _ in range(600):  # at most about 120 s of Idle at 0.2 s
                next(messages)
    finally:
        stream.close()
    # Transient (CDC retries it), and said as what it is: the stream ended after it was established.
    assert isinstance(lost.value, TransientError) and not isinstance(lost.value, ConnectionFailed)
    assert lost.value.message.startswith(
        f"{endpoint.name}: the replication stream was lost after it was established: "
    )
    assert lost.value.message.endswith("(SQLSTATE 57P01)")  # admin_shutdown
    assert "cannot connect" not in lost.value.message
    assert (lost.value.code, lost.value.cause) == ("57P01", "AdminShutdown")
    for secret in endpoint.secrets:
        assert secret not in f"{lost.value.message} {lost.value.hint}"
