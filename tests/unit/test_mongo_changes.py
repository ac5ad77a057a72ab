"""The target's change stream as reverse sync reads it (adapters/mongodb/changes.py): events
grouped into target transactions, forward CDC's own marked as echo, the caught-up marker, the
documents named, and what stops the stream. Fed with change events as pymongo returns them; the
stream against a real server is tested in tests/integration/test_reverse.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from bson.int64 import Int64
from bson.timestamp import Timestamp
from pymongo import errors as mongo

from migrator.adapters.mongodb.changes import (
    FATAL_STREAM,
    HISTORY_LOST,
    ChangedDocument,
    ChangeStream,
    OpenStream,
    Step,
    cluster_iso,
    cluster_seconds,
    timestamp_int,
)
from migrator.errors import TargetError, TerminalError, TransientError

PLAN = "shop"
WATCHED = frozenset({"customers", "orders"})
MARKER = f"reverse:{PLAN}"
FORWARD = f"cdc:{PLAN}"
LSID_A = {"id": b"session-a"}
LSID_B = {"id": b"session-b"}


class FakeStream:
    """What OpenStream reads of pymongo's ChangeStream: `alive`, `try_next()`, `resume_token`."""

    def __init__(self, events: Iterable[dict[str, Any] | None], alive: bool = True) -> None:
        self._events = list(events)
        self.alive = alive
        self.resume_token: dict[str, Any] | None = {"_data": "idle"}

    def try_next(self) -> dict[str, Any] | None:
        return self._events.pop(0) if self._events else None


def event(
    n: int,
    operation: str = "insert",
    collection: str = "customers",
    document_id: Any = None,
    txn: tuple[dict[str, Any], int] | None = None,
) -> dict[str, Any]:
    """A change event as the server sends it: token `t<n>`, cluster time (1000 + n, n)."""
    change: dict[str, Any] = {
        "_id": {"_data": f"t{n}"},
        "operationType": operation,
        "clusterTime": Timestamp(1000 + n, n),
        "ns": {"db": "app", "coll": collection},
        "documentKey": {"_id": n if document_id is None else document_id},
    }
    if txn is not None:
        change["lsid"], change["txnNumber"] = txn[0], Int64(txn[1])
    return change


def opened(*events: dict[str, Any] | None) -> OpenStream:
    return OpenStream(FakeStream(events), WATCHED, MARKER)  # type: ignore[arg-type]


def read_all(stream: OpenStream, steps: int) -> list[Step]:
    return [stream.next() for _ in range(steps)]


def test_an_event_outside_a_transaction_completes_itself() -> None:
    stream = opened(event(1, "update", document_id=7))
    step = stream.next()
    assert not step.idle
    [transaction] = step.transactions
    assert transaction.txn is None
    assert transaction.documents == [ChangedDocument("customers", 7)]
    assert transaction.events == 1
    assert transaction.token == {"_data": "t1"}
    assert transaction.cluster_time == timestamp_int(Timestamp(1001, 1))
    assert not transaction.echo
    assert not stream.in_transaction


def test_a_transaction_stays_open_until_another_begins() -> None:
    a, b = (LSID_A, 1), (LSID_B, 1)
    stream = opened(event(1, txn=a), event(2, "delete", "orders", txn=a), event(3, txn=b))
    first, second, third = read_all(stream, 3)
    assert first.transactions == () and second.transactions == ()
    [done] = third.transactions
    assert done.documents == [ChangedDocument("customers", 1), ChangedDocument("orders", 2)]
    assert done.events == 2
    assert done.token == {"_data": "t2"}  # of its last event: resuming after it reads event 3
    assert stream.in_transaction  # event 3's transaction may go on


def test_the_same_session_with_the_next_txn_number_is_another_transaction() -> None:
    stream = opened(event(1, txn=(LSID_A, 1)), event(2, txn=(LSID_A, 2)))
    _, second = read_all(stream, 2)
    [done] = second.transactions
    assert done.documents == [ChangedDocument("customers", 1)]


def test_an_event_outside_a_transaction_completes_the_open_one_first() -> None:
    stream = opened(event(1, txn=(LSID_A, 1)), event(2))
    _, second = read_all(stream, 2)
    assert [t.documents for t in second.transactions] == [
        [ChangedDocument("customers", 1)],
        [ChangedDocument("customers", 2)],
    ]
    assert [t.txn is None for t in second.transactions] == [False, True]
    assert not stream.in_transaction


def test_an_idle_stream_completes_the_open_transaction() -> None:
    """A transaction's events are in the oplog together: when the stream has nothing more, the
    open group is whole."""
    stream = opened(event(1, txn=(LSID_A, 1)))
    stream.next()
    assert stream.in_transaction
    idle = stream.next()
    assert idle.idle
    [done] = idle.transactions
    assert done.documents == [ChangedDocument("customers", 1)]
    assert not stream.in_transaction
    assert stream.next() == Step(idle=True)
    assert stream.position == {"_data": "idle"}


def test_a_transaction_that_writes_forward_cdcs_checkpoint_is_echo() -> None:
    txn = (LSID_A, 5)
    stream = opened(
        event(1, txn=txn),
        event(2, "update", "_migrator", document_id=FORWARD, txn=txn),
        event(3, "update", "orders", txn=txn),
    )
    read_all(stream, 3)
    [echo] = stream.next().transactions
    assert echo.echo
    assert echo.events == 3
    # The documents stay listed; the phase skips an echo transaction whole.
    assert echo.documents == [ChangedDocument("customers", 1), ChangedDocument("orders", 3)]


def test_the_application_s_transactions_around_an_echo_are_not_echo() -> None:
    stream = opened(
        event(1, txn=(LSID_A, 1)),
        event(2, "update", "_migrator", document_id=FORWARD, txn=(LSID_B, 1)),
        event(3, txn=(LSID_A, 2)),
    )
    steps = read_all(stream, 4)
    done = [t for s in steps for t in s.transactions]
    assert [t.echo for t in done] == [False, True, False]


def test_the_caught_up_marker_is_seen_and_names_no_document() -> None:
    stream = opened(event(4, "update", "_migrator", document_id=MARKER))
    [marker] = stream.next().transactions
    assert stream.marker_seen == timestamp_int(Timestamp(1004, 4))
    assert marker.documents == [] and not marker.echo and marker.events == 1


def test_marker_seen_keeps_the_latest() -> None:
    stream = opened(
        event(5, "update", "_migrator", document_id=MARKER),
        event(3, "update", "_migrator", document_id=MARKER),
    )
    read_all(stream, 2)
    assert stream.marker_seen == timestamp_int(Timestamp(1005, 5))


def test_an_event_without_cluster_time_keeps_the_group_s_last_one() -> None:
    without = event(2, txn=(LSID_A, 1))
    del without["clusterTime"]
    stream = opened(event(1, txn=(LSID_A, 1)), without)
    read_all(stream, 2)
    [done] = stream.next().transactions
    assert done.cluster_time == timestamp_int(Timestamp(1001, 1))
    assert done.token == {"_data": "t2"}


@pytest.mark.parametrize("operation", ["createIndexes", "dropIndexes", "modify", "create"])
def test_ddl_events_change_no_document(operation: str) -> None:
    [transaction] = opened(event(1, operation)).next().transactions
    assert transaction.documents == [] and transaction.events == 1


def test_an_event_of_a_collection_not_mapped_names_no_document() -> None:
    [transaction] = opened(event(1, collection="audit")).next().transactions
    assert transaction.documents == []


@pytest.mark.parametrize("operation", ["drop", "rename", "dropDatabase", "invalidate"])
def test_dropping_or_renaming_a_watched_collection_stops(operation: str) -> None:
    with pytest.raises(TerminalError, match=f"{operation} of customers on the target"):
        opened(event(1, operation)).next()


def test_an_invalidated_stream_stops() -> None:
    stream = OpenStream(FakeStream([], alive=False), WATCHED, MARKER)  # type: ignore[arg-type]
    with pytest.raises(TerminalError, match="invalidated"):
        stream.next()


def test_document_keys_tell_bson_types_apart() -> None:
    assert ChangedDocument("c", 1).key != ChangedDocument("c", 1.0).key
    assert ChangedDocument("c", 1).key != ChangedDocument("d", 1).key
    assert ChangedDocument("c", {"a": 1, "b": 2}).key == ChangedDocument("c", {"a": 1, "b": 2}).key


def test_cluster_times_order_and_show() -> None:
    early, late = timestamp_int(Timestamp(1_700_000_000, 9)), timestamp_int(Timestamp(1_700_000_001, 1))
    assert early is not None and late is not None and early < late
    assert cluster_seconds(late) == 1_700_000_001
    assert cluster_iso(late) == "2023-11-14T22:13:21+00:00"
    assert cluster_iso(None) is None
    assert timestamp_int(None) is None


class FakeTarget:
    name = "mongo.example:27017"
    secrets = ("s3cret",)


def changes() -> ChangeStream:
    return ChangeStream(FakeTarget(), PLAN, ["orders", "customers"])  # type: ignore[arg-type]


def test_the_pipeline_watches_the_mapped_collections_and_two_migrator_documents() -> None:
    assert changes()._pipeline() == [
        {
            "$match": {
                "$or": [
                    {"ns.coll": {"$in": ["customers", "orders"]}},
                    {"ns.coll": "_migrator", "documentKey._id": {"$in": [FORWARD, MARKER]}},
                ]
            }
        }
    ]


def test_history_lost_from_the_oplog_is_terminal_and_says_what_to_do() -> None:
    error = changes().error(mongo.OperationFailure("resume point gone", code=HISTORY_LOST))
    assert isinstance(error, TargetError) and isinstance(error, TerminalError)
    assert "no longer in the target's oplog" in error.message
    assert error.hint is not None and "size the oplog" in error.hint


def test_a_fatal_stream_error_is_terminal() -> None:
    error = changes().error(mongo.OperationFailure("cannot continue", code=FATAL_STREAM))
    assert isinstance(error, TargetError)
    assert error.hint == "the change stream cannot continue: see the server's log"


def test_other_errors_are_classified_by_code() -> None:
    assert isinstance(changes().error(mongo.OperationFailure("not primary", code=10107)), TransientError)
    assert isinstance(changes().error(mongo.AutoReconnect("connection reset")), TransientError)
