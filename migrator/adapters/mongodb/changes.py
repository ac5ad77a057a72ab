"""The target's change stream, read for reverse sync (phases/reverse.py): watch the mapped
collections, resume after a stored resume token, group the events of one target transaction,
mark forward CDC's own transactions (the echo reverse sync skips), and read the documents the
events name as they are now.

- **Typed, in stream order.** `OpenStream.next()` hands out `Transaction`s (the events of one target
  transaction, or one event outside a transaction) with the documents they wrote, as
  `ChangedDocument`s, in the order the stream returned them.
- **Opaque position.** A transaction carries the resume token of its last event (what a stream
  resumes after) and its cluster time (a BSON Timestamp as `(time << 32) | inc`, ordered as the
  oplog is): the phase compares, stores and shows them (`cluster_seconds`, `cluster_iso`), and
  hands the token back to `ChangeStream.follow` to resume; it never looks inside.
- **Echo.** Forward CDC writes the target in MongoDB transactions that also write its `_migrator`
  checkpoint document (`cdc:<plan>`, adapters/mongodb/applier.py); the events of one transaction
  share `lsid` and `txnNumber` and arrive together, so a transaction that touches that document
  is forward CDC's own (`echo`) and is skipped whole. (A transaction's events are written to the
  oplog together, so when the stream has nothing more to return, an open group is complete.)
- **Caught-up marker.** `write_marker()` writes a document of `_migrator` (`reverse:<plan>`) and
  returns its cluster time; once the stream shows it (`OpenStream.marker_seen`), everything written
  on the target before it has been read by that stream. `marker_seen` belongs to one open stream:
  a stream opened again (after a transient error) starts at 0 and resumes after the checkpoint,
  so it reads the marker again after what the failed stream read and did not apply.
- **Errors** are classified by server error code (adapters/mongodb/errors.py); history lost from
  the oplog and a fatal stream error are terminal, with what to do.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import bson
from bson.timestamp import Timestamp
from pymongo import change_stream
from pymongo import errors as mongo
from pymongo.database import Database
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from migrator.adapters.base import ChangedDocument as Changed
from migrator.adapters.mongodb.applier import STATE_COLLECTION
from migrator.adapters.mongodb.codec import CODEC
from migrator.adapters.mongodb.errors import classify
from migrator.adapters.mongodb.reader import FETCH_IDS_PER_QUERY
from migrator.errors import MigratorError, TargetError, TerminalError
from migrator.plan.names import cdc_checkpoint_id, reverse_marker_id

if TYPE_CHECKING:
    from migrator.adapters.mongodb import MongoTarget

DOCUMENT_OPS = frozenset({"insert", "update", "replace", "delete"})
FATAL_OPS = frozenset({"drop", "rename", "dropDatabase", "invalidate"})
HISTORY_LOST = 286  # ChangeStreamHistoryLost: the resume point is no longer in the oplog
FATAL_STREAM = 280  # ChangeStreamFatalError

Token = Mapping[str, Any]  # a resume token: stored and handed back as it is


def timestamp_int(value: Any) -> int | None:
    """A BSON Timestamp as one ordered integer, `(time << 32) | inc`; None for anything else."""
    if isinstance(value, Timestamp):
        return (value.time << 32) | value.inc
    return None


def cluster_seconds(cluster_time: int) -> int:
    """The wall-clock second (Unix time) of a cluster time."""
    return cluster_time >> 32


def cluster_iso(cluster_time: int | None) -> str | None:
    """A cluster time as ISO 8601 UTC (to the second), None for none."""
    if cluster_time is None:
        return None
    return datetime.datetime.fromtimestamp(cluster_seconds(cluster_time), datetime.UTC).isoformat()


class ChangedDocument(NamedTuple):
    """A document an event names, by collection and `_id`."""

    collection: str
    document_id: Any

    @property
    def key(self) -> bytes:
        """Its identity, exact to the BSON type (1 and 1.0 are different _ids)."""
        return document_key(self.collection, self.document_id)


def document_key(collection: str, document_id: Any) -> bytes:
    return collection.encode() + b"\0" + bson.encode({"_id": document_id}, codec_options=CODEC)


@dataclass
class Transaction:
    """The events of one target transaction (or one event outside a transaction)."""

    txn: tuple[bytes, int] | None  # (lsid, txnNumber); None outside a transaction
    documents: list[ChangedDocument] = field(default_factory=list)  # written, in event order
    echo: bool = False  # forward CDC's own: it wrote the `_migrator` checkpoint
    events: int = 0
    token: Token | None = None  # of its last event: a stream resumed after it reads what follows
    cluster_time: int | None = None


@dataclass(frozen=True)
class Step:
    """What one read of the stream gave: the transactions it completed, in stream order, and
    whether the stream had nothing more for now (`idle`: every event up to here was returned)."""

    idle: bool
    transactions: tuple[Transaction, ...] = ()


class ChangeStream:
    """The target's change stream on `collections` and the two `_migrator` documents reverse sync
    watches (forward CDC's checkpoint, the caught-up marker) of plan `plan_name`."""

    def __init__(
        self, target: MongoTarget, plan_name: str, collections: Iterable[str], *, max_await_ms: int = 500
    ) -> None:
        self._target = target
        self._collections = frozenset(collections)
        self._forward_id = cdc_checkpoint_id(plan_name)
        self._marker_id = reverse_marker_id(plan_name)
        self._max_await_ms = max_await_ms

    def _db(self) -> Database[Any]:
        return self._target.client().get_database(self._target.database, codec_options=CODEC)

    def _pipeline(self) -> list[dict[str, Any]]:
        return [
            {
                "$match": {
                    "$or": [
                        {"ns.coll": {"$in": sorted(self._collections)}},
                        {
                            "ns.coll": STATE_COLLECTION,
                            "documentKey._id": {"$in": [self._forward_id, self._marker_id]},
                        },
                    ]
                }
            }
        ]

    def error(self, exc: mongo.PyMongoError) -> MigratorError:
        """A pymongo error of the stream as a typed error: history lost from the oplog and a fatal
        stream error say what they mean for reverse sync."""
        error = classify(exc, self._target.name, self._target.secrets)
        code = getattr(exc, "code", None)
        if code == HISTORY_LOST:
            return TargetError(
                f"{error.message}: the reverse sync checkpoint is no longer in the target's oplog, so "
                "changes since then cannot be read",
                hint="size the oplog for the longest reverse sync outage; then the source must be "
                "brought up to date from the target (verify --repair the other way) before reverse sync resumes",
            )
        if code == FATAL_STREAM:
            return TargetError(error.message, hint="the change stream cannot continue: see the server's log")
        return error

    def position_now(self) -> Token:
        """The stream's position now: a stream resumed after it reads every later write."""
        try:
            with self._db().watch(self._pipeline(), max_await_time_ms=self._max_await_ms) as stream:
                token = stream.resume_token
        except mongo.PyMongoError as exc:
            raise self.error(exc) from None
        if token is None:
            raise TerminalError(
                f"{self._target.name} gave no resume token for a new change stream",
                hint="reverse sync needs MongoDB 4.0.7 or newer",
            )
        return token

    def write_marker(self) -> int:
        """Write the caught-up marker; its cluster time (majority-committed, so the stream shows it)."""
        db = self._db()
        coll = db.get_collection(STATE_COLLECTION, write_concern=WriteConcern("majority"))
        try:
            with db.client.start_session(causal_consistency=True) as session:
                coll.update_one(
                    {"_id": self._marker_id},
                    {"$set": {"at": datetime.datetime.now(datetime.UTC)}},
                    upsert=True,
                    session=session,
                )
                written = timestamp_int(session.operation_time)
        except mongo.PyMongoError as exc:
            raise self.error(exc) from None
        if written is None:
            raise TargetError(f"{self._target.name} reported no operation time for a write")
        return written

    @contextmanager
    def follow(self, after: Token) -> Iterator[OpenStream]:
        """The stream resumed after `after`, open until the block ends. A driver error raised
        inside the block (reading the stream) comes out classified (`error`)."""
        try:
            with self._db().watch(
                self._pipeline(),
                start_after=after,
                max_await_time_ms=self._max_await_ms,
            ) as stream:
                yield OpenStream(stream, self._collections, self._marker_id)
        except mongo.PyMongoError as exc:
            raise self.error(exc) from None

    def current(self, documents: Sequence[Changed]) -> dict[bytes, Mapping[str, Any]]:
        """The documents as they are now, by `ChangedDocument.key` of the `_id` stored; a document
        that is gone is absent."""
        by_collection: dict[str, list[Any]] = {}
        for document in documents:
            by_collection.setdefault(document.collection, []).append(document.document_id)
        found: dict[bytes, Mapping[str, Any]] = {}
        db = self._db()
        try:
            for collection, ids in by_collection.items():
                # Majority reads: a state a failover could still roll back is never written back.
                coll = db.get_collection(collection, read_concern=ReadConcern("majority"))
                for start in range(0, len(ids), FETCH_IDS_PER_QUERY):
                    part = ids[start : start + FETCH_IDS_PER_QUERY]
                    for document in coll.find({"_id": {"$in": part}}):
                        found[document_key(collection, document["_id"])] = document
        except mongo.PyMongoError as exc:
            raise self.error(exc) from None
        return found

    @staticmethod
    def cluster_seconds(cluster_time: int) -> int:
        """The wall-clock second (Unix time) of a cluster time."""
        return cluster_seconds(cluster_time)

    @staticmethod
    def cluster_iso(cluster_time: int | None) -> str | None:
        """A cluster time as ISO 8601 UTC (to the second), None for none."""
        return cluster_iso(cluster_time)


class OpenStream:
    """An open change stream, read one event at a time and grouped into transactions."""

    def __init__(
        self, stream: change_stream.ChangeStream[Any], collections: frozenset[str], marker_id: str
    ) -> None:
        self._stream = stream
        self._collections = collections
        self._marker_id = marker_id
        self._open: Transaction | None = None  # a transaction whose events may go on
        self.marker_seen = 0  # cluster time of the last caught-up marker this stream read

    @property
    def in_transaction(self) -> bool:
        """Whether events of a transaction were read that the stream may still add to."""
        return self._open is not None

    @property
    def position(self) -> Token | None:
        """Where the stream stands now (its post-batch resume token, past events it filtered out)."""
        return self._stream.resume_token

    def confirm(self, token: Mapping[str, Any]) -> None:
        """Nothing to free: the oplog is the server's, kept by its own size."""

    def next(self) -> Step:
        """Read the next event: the transactions it completes (an event outside a transaction
        completes itself; one of another transaction completes the one open), or, when the
        stream has nothing more for now, the open transaction (complete: its events arrive
        together)."""
        if not self._stream.alive:
            raise TerminalError(
                "the target's change stream was invalidated (the database was dropped or renamed)",
                hint="reverse sync cannot continue; the source keeps what was applied up to the checkpoint",
            )
        change = self._stream.try_next()
        if change is None:
            done = () if self._open is None else (self._open,)
            self._open = None
            return Step(idle=True, transactions=done)
        completed: list[Transaction] = []
        txn = _transaction(change)
        if self._open is not None and (txn is None or txn != self._open.txn):
            completed.append(self._open)
            self._open = None
        group = self._open if self._open is not None else Transaction(txn)
        self._record(group, change)
        if txn is None:
            completed.append(group)
        else:
            self._open = group
        return Step(idle=False, transactions=tuple(completed))

    def _record(self, group: Transaction, change: Mapping[str, Any]) -> None:
        group.events += 1
        group.token = change["_id"]
        group.cluster_time = timestamp_int(change.get("clusterTime")) or group.cluster_time
        operation = change.get("operationType")
        collection = (change.get("ns") or {}).get("coll")
        if collection == STATE_COLLECTION:
            if change["documentKey"]["_id"] == self._marker_id:
                self.marker_seen = max(self.marker_seen, group.cluster_time or 0)
            else:
                group.echo = True  # the pipeline lets only these two `_migrator` documents through
        elif operation in DOCUMENT_OPS and collection in self._collections:
            group.documents.append(ChangedDocument(collection, change["documentKey"]["_id"]))
        elif operation in FATAL_OPS:
            raise TerminalError(
                f"{operation} of {collection or 'the database'} on the target while reverse sync runs: the "
                "source cannot follow it",
                hint="restore the collection on the target, or roll back to the source",
            )
        # Anything else (index builds and other DDL events) changes no document.


def _transaction(change: Mapping[str, Any]) -> tuple[bytes, int] | None:
    lsid, number = change.get("lsid"), change.get("txnNumber")
    if lsid is None or number is None:
        return None
    return bson.encode(dict(lsid), codec_options=CODEC), int(number)
