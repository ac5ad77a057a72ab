"""The PostgreSQL change reader (adapters/postgres/changes.py, relations.py, spool.py) fed with
encoded pgoutput messages (tests/support/pgoutput_encode.py): grouping into transactions, skipping
what is applied, the origin filter, spooling of streamed transactions (protocol 2: S/E blocks,
then c or A) and TRUNCATE of partitions. No server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from migrator.adapters.postgres.changes import (
    Change,
    ChangeReader,
    Event,
    Marker,
    Received,
    Replayed,
    TableDescribed,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
)
from migrator.adapters.postgres.partitions import Partitions
from migrator.adapters.postgres.pgoutput import UNCHANGED
from migrator.adapters.postgres.relations import Relations, RelationState
from migrator.adapters.postgres.replication import Idle, Keepalive
from migrator.adapters.postgres.spool import StreamedTransactions
from migrator.errors import SourceError, TerminalError
from tests.support import pgoutput_encode as enc

REVERSE = "migrator_reverse_demo"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
USERS, LEAF_A, LEAF_B = 16384, 16390, 16391
COLUMNS = [("id", 23, -1, True), ("name", 25, -1, False)]


class FakeStream:
    """What ChangeReader reads: the items a replication stream delivers."""

    def __init__(self, items: list[bytes | Keepalive | Idle]) -> None:
        self.items = items
        self.linger: float | None = None

    def messages(self, wait_s: float = 1.0) -> Iterator[bytes | Keepalive | Idle]:
        yield from self.items


class FakePartitions:
    def __init__(self, leaves: dict[str, set[int]]) -> None:
        self._leaves = leaves

    def leaves(self, root: str) -> set[int]:
        return self._leaves.get(root, set())


def state(table: str = "public.users", *, leaf: str | None = None) -> RelationState:
    return RelationState(table, ["id", "name"], [int, bytes.decode], [True, False], leaf=leaf)


def read(
    items: list[bytes | Keepalive | Idle],
    *,
    applied: int = 0,
    partitions: dict[str, set[int]] | None = None,
    relations: Relations | None = None,
) -> list[Any]:
    """Every event, as the phase sees them: a Relation registered when described (its leaf
    partitions as leaves of public.users), a Replayed transaction read out in place."""
    relations = relations if relations is not None else Relations()
    reader = ChangeReader(
        cast(Any, FakeStream(items)),
        relations,
        cast(Partitions, FakePartitions(partitions or {})),
        applied=lambda: applied,
        skip_origin=REVERSE,
    )
    out: list[Any] = []
    for event in reader.events(wait_s=0.1):
        if isinstance(event, TableDescribed):
            rel = event.relation
            leaf = None if rel.relation_id == USERS else rel.table
            relations.register(rel.relation_id, state(leaf=leaf))
        if isinstance(event, Replayed):
            out.append((event, list(event.changes)))
            for item in out[-1][1]:
                if isinstance(item, TableDescribed):
                    relations.register(item.relation.relation_id, state())
        else:
            out.append(event)
    return out


def kinds(events: list[Any]) -> list[str]:
    return [type(e[0] if isinstance(e, tuple) else e).__name__ for e in events]


def users(xid: int | None = None, relation_id: int = USERS, name: str = "users") -> bytes:
    return enc.relation(relation_id, "public", name, "d", COLUMNS, xid=xid)


def row(key: int, name: str = "x") -> list[enc.TupleValue]:
    return [enc.text(str(key)), enc.text(name)]


def test_a_transaction_is_begun_changes_committed_in_order() -> None:
    events = read(
        [
            enc.begin(0x100, AT, 7),
            users(),
            enc.insert(USERS, row(1, "a")),
            enc.update(USERS, [enc.text("1"), enc.UNCHANGED_TOAST]),
            enc.update(USERS, row(3, "c"), old=[enc.text("2"), enc.NULL], old_kind="K"),
            enc.delete(USERS, [enc.text("3"), enc.NULL]),
            enc.commit(0x100, 0x128, AT),
        ]
    )
    assert events[0] == TransactionBegun(0x100, 7)  # its xid: what a read of the source waits to show
    assert isinstance(events[1], TableDescribed) and not events[1].spooled
    assert events[2:6] == [
        Change("public.users", "insert", None, {"id": 1, "name": "a"}),
        Change("public.users", "update", None, {"id": 1, "name": UNCHANGED}),
        Change("public.users", "update", {"id": 2}, {"id": 3, "name": "c"}),
        Change("public.users", "delete", {"id": 3}, None),
    ]
    assert events[6] == TransactionCommitted(0x100, 0x128, AT, skipped=False)


def test_keepalives_idle_and_markers_pass_through() -> None:
    events = read(
        [
            Keepalive(0x10),
            enc.message(0x20, "migrator.heartbeat", b"plan", transactional=False),
            enc.type_info(600, "public", "mood"),
            Idle(0x30),
        ]
    )
    assert events == [Keepalive(0x10), Marker("migrator.heartbeat", b"plan"), Received(), Idle(0x30)]


def test_a_transaction_committed_before_the_applied_position_is_skipped() -> None:
    events = read(
        [
            users(),
            enc.begin(0x100, AT, 7),
            enc.insert(USERS, row(1)),
            enc.truncate([USERS]),
            enc.commit(0x100, 0x128, AT),
        ],
        applied=0x200,
    )
    assert kinds(events) == [
        "TableDescribed",
        "TransactionBegun",
        "Received",
        "Received",
        "TransactionCommitted",
    ]
    assert events[-1].skipped


def test_reverse_syncs_origin_is_skipped_other_origins_are_applied() -> None:
    def transaction(origin: str) -> list[bytes | Keepalive | Idle]:
        return [
            enc.begin(0x100, AT, 7),
            enc.origin(0x90, origin),
            enc.insert(USERS, row(1)),
            enc.commit(0x100, 0x128, AT),
        ]

    echo = read([users(), *transaction(REVERSE)])
    assert kinds(echo) == [
        "TableDescribed",
        "TransactionBegun",
        "Received",
        "Received",
        "TransactionCommitted",
    ]
    assert echo[-1].skipped
    other = read([users(), *transaction("some_other_subscription")])
    assert isinstance(other[3], Change) and not other[-1].skipped


def test_a_streamed_transaction_is_spooled_and_replayed_whole_at_its_commit() -> None:
    relations = Relations()
    events = read(
        [
            enc.stream_start(9, True),
            users(xid=9),
            enc.insert(USERS, row(1, "a"), xid=9),
            enc.stream_stop(),
            # Another transaction commits while the streamed one is in progress: it comes first.
            enc.begin(0x150, AT, 8),
            enc.insert(USERS, row(2, "b")),
            enc.commit(0x150, 0x160, AT),
            enc.stream_start(9, False),
            enc.insert(USERS, row(3, "c"), xid=9),
            enc.truncate([USERS], xid=9),
            enc.stream_stop(),
            enc.stream_commit(9, 0x200, 0x228, AT),
        ],
        relations=relations,
    )
    assert kinds(events) == [
        "Received",  # Stream Start: behind
        "TableDescribed",  # spooled, but registered at once
        "Received",
        "Received",
        "TransactionBegun",
        "Change",
        "TransactionCommitted",
        "Received",
        "Received",
        "Received",
        "Received",
        "Replayed",
    ]
    assert events[0].behind and not events[2].behind
    assert events[1].spooled
    assert events[5] == Change("public.users", "insert", None, {"id": 2, "name": "b"})
    replayed, changes = events[-1]
    assert (replayed.commit_position, replayed.end_position, replayed.skipped) == (0x200, 0x228, False)
    assert changes[0] == TableDescribed(changes[0].relation)
    assert changes[1:] == [
        Change("public.users", "insert", None, {"id": 1, "name": "a"}),
        Change("public.users", "insert", None, {"id": 3, "name": "c"}),
        Truncated(("public.users",)),
    ]


def test_an_aborted_subtransaction_is_dropped_an_aborted_transaction_forgotten() -> None:
    events = read(
        [
            users(),
            enc.stream_start(9, True),
            enc.insert(USERS, row(1), xid=9),
            enc.insert(USERS, row(2), xid=10),  # a subtransaction of 9
            enc.insert(USERS, row(3), xid=11),
            enc.stream_stop(),
            enc.stream_abort(9, 10),
            enc.stream_commit(9, 0x200, 0x228, AT),
            enc.stream_start(12, True),
            enc.insert(USERS, row(4), xid=12),
            enc.stream_stop(),
            enc.stream_abort(12, 12),
        ]
    )
    replayed = [e for e in events if isinstance(e, tuple)]
    assert len(replayed) == 1
    assert [c.new["id"] for c in replayed[0][1]] == [1, 3]


def test_a_streamed_transaction_of_reverse_sync_or_already_applied_is_skipped() -> None:
    def streamed(origin: str | None, commit_lsn: int) -> list[bytes | Keepalive | Idle]:
        head = [enc.stream_start(9, True)]
        if origin is not None:
            head.append(enc.origin(0x90, origin))
        return [
            users(),
            *head,
            enc.insert(USERS, row(1), xid=9),
            enc.stream_stop(),
            enc.stream_commit(9, commit_lsn, commit_lsn + 0x28, AT),
        ]

    for items, applied in ((streamed(REVERSE, 0x200), 0), (streamed(None, 0x200), 0x300)):
        replayed, changes = read(items, applied=applied)[-1]
        assert replayed.skipped and changes == []
    replayed, changes = read(streamed("another_origin", 0x200))[-1]
    assert not replayed.skipped and len(changes) == 1


def test_the_spool_is_closed_when_a_replay_stops_early() -> None:
    streamed = StreamedTransactions(REVERSE)
    streamed.start(9)
    streamed.add(9, enc.insert(USERS, row(1), xid=9))
    assert streamed.active and streamed.pending
    streamed.stop()
    committed = streamed.commit(9)
    assert not streamed.pending and committed.spool is not None
    reader = ChangeReader(
        cast(Any, FakeStream([])),
        Relations(),
        cast(Partitions, FakePartitions({})),
        applied=lambda: 0,
        skip_origin="",
    )
    changes = reader._replay(committed.spool.replay(set()), committed.spool.close)
    with pytest.raises(SourceError, match="unknown relation"):
        next(changes)
    assert committed.spool.file.closed


def test_truncate_of_every_leaf_is_the_roots_of_some_leaves_stops() -> None:
    partitions = {"public.users": {LEAF_A, LEAF_B}}
    leaves = [users(), users(relation_id=LEAF_A, name="users_a"), users(relation_id=LEAF_B, name="users_b")]
    every = read([*leaves, enc.begin(1, AT, 7), enc.truncate([LEAF_A, LEAF_B])], partitions=partitions)
    assert every[-1] == Truncated(("public.users",))
    with pytest.raises(TerminalError, match=r"TRUNCATE of partition public\.users_a of public\.users"):
        read([*leaves, enc.begin(1, AT, 7), enc.truncate([LEAF_A])], partitions=partitions)


def test_a_change_of_an_unannounced_relation_is_an_error() -> None:
    with pytest.raises(SourceError, match="change for unknown relation 99"):
        read([enc.begin(1, AT, 7), enc.insert(99, row(1))])


def test_a_change_logged_under_a_narrower_identity_must_carry_the_columns_needed() -> None:
    relations = Relations()
    relations.register(
        USERS,
        RelationState("public.users", ["id", "name"], [int, bytes.decode], [True, False], unsure=("name",)),
    )
    base: list[bytes | Keepalive | Idle] = [enc.begin(1, AT, 7)]
    events: list[Event] = read([*base, enc.delete(USERS, row(1, "a"), old_kind="O")], relations=relations)
    assert events[-1] == Change("public.users", "delete", {"id": 1, "name": "a"}, None)
    with pytest.raises(TerminalError, match=r"a DELETE of public.users was logged .* lacked name"):
        read([*base, enc.delete(USERS, [enc.text("1"), enc.NULL])], relations=relations)
