"""Reverse sync's change feed on a PostgreSQL target (docs/architecture.md, "Reverse sync from a
PostgreSQL target"): the target read as a PostgreSQL source is, through a logical slot and a
publication of the mapped tables on the target (reverse_objects.py), with the source adapter's
replication stream and pgoutput decoder, handed to phases/reverse.py as the TargetChanges it
reads from any target.

- **What a change gives.** Reverse sync is state-based (phases/reverse.py): a change only names
  the row, by its primary key, and the row is read as it is when the batch is applied. A key
  arrives as text (pgoutput's text format); it is typed by the target itself (the text cast to the
  key column's declared type and read back), so that `_id` is what the table reader gives.
  An update that moves a key names the old and the new row.
- **No echo.** A transaction whose Origin message (pgoutput sends one after Begin for a
  transaction committed under a replication origin) names forward CDC's origin
  (`forward_origin_name`, origin.py) is handed over as `echo`, its changes left out. This works
  from PostgreSQL 10 on; the `origin = none` option of pgoutput (PostgreSQL 16+) would drop every
  origin's transactions, not only migrator's, and does not exist on 15.
- **Positions.** A token is `{"lsn": end of a commit}`; the stream starts after the token it is
  given, and the slot is confirmed up to it (that token is reverse sync's durable checkpoint on
  the source; invariant 4). `cluster_time` is the commit time in microseconds since the epoch.
- **Markers.** `write_marker` emits a transactional logical message with the plan's prefix and a
  number that grows across processes (nanoseconds); seeing it means everything committed on the
  target before it has been read.
- **Handed over once the target shows it.** A commit is in the WAL (flushed, so decoded and sent)
  before the committing session takes its transaction out of the running ones; until then other
  sessions' snapshots do not show it, and reading a row it changed gives the row before it. A
  state-based reader would write that older state back and move past the change for good. So a
  decoded transaction whose rows are read is handed over only once a snapshot taken after its
  commit was decoded shows it (its xid neither at or past the snapshot's xmax nor among its
  running xids): the one read with its last key (`typed`), else one of its own, again after short
  pauses and in the next step. The ones after it wait behind it, in commit order; until then the
  feed counts as inside a transaction (a marker after it is not caught up). See
  docs/architecture.md, "Reverse sync from a PostgreSQL target".
- **TRUNCATE** of a mapped table on the target is refused (nothing silent: reverse sync would have
  to empty the source table, which it does not do behind the user's back).
"""

from __future__ import annotations

import contextlib
import datetime
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from psycopg import sql

from migrator.adapters.base import ChangedDocument, Idle, Keepalive
from migrator.adapters.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    Update,
    decode,
)
from migrator.adapters.postgres.replication import ReplicationStream
from migrator.adapters.postgres.visibility import SNAPSHOT, shown
from migrator.adapters.postgres_target import reverse_objects
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.reader import TableReader
from migrator.adapters.postgres_target.rows import decode as decode_row
from migrator.errors import TerminalError
from migrator.plan.names import forward_origin_name, reverse_feed_name

MARKER_PREFIX = "migrator_reverse_marker"
GROUPS_PER_STEP = 200  # completed transactions handed over by one step while more keep arriving
# Pauses between snapshots while a decoded transaction is not shown yet (normally it is, or is
# within microseconds); past them, the step ends without it and the next step looks again.
VISIBILITY_PAUSES_S = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032)
_SNAPSHOT = sql.SQL(SNAPSHOT)


class RowKey(NamedTuple):
    collection: str
    document_id: Any

    @property
    def key(self) -> bytes:
        return identity(self.collection, self.document_id)


def identity(collection: str, document_id: Any) -> bytes:
    """The same bytes for the same row whichever way its key was read: a bigint key is Int64 as
    the table reader gives it and a plain int as `typed` gives it, which pickle tells apart (and
    then `current` would find no row and the document would look deleted)."""
    if isinstance(document_id, Mapping):
        ordered: Any = tuple((k, _plain(v)) for k, v in document_id.items())
    else:
        ordered = _plain(document_id)
    return pickle.dumps((collection, ordered))


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass
class Group:
    """One target transaction: the rows it names (keys as text until typed at its commit)."""

    texts: list[tuple[str, tuple[str | None, ...]]] = field(default_factory=list)
    documents: list[RowKey] = field(default_factory=list)
    echo: bool = False
    events: int = 0
    token: Mapping[str, Any] | None = None
    cluster_time: int | None = None
    xid: int = 0  # the transaction's (32 bits, as pgoutput's Begin gives it)
    shown: bool = False  # a snapshot of the target taken after its commit was decoded showed it


@dataclass(frozen=True)
class Step:
    idle: bool
    transactions: tuple[Group, ...] = ()


@dataclass(frozen=True)
class _Table:
    name: str
    key_positions: tuple[int, ...]  # of the key columns in the relation's tuples


class PgReverseFeed:
    """TargetChanges of a PostgreSQL target (see the module doc)."""

    def __init__(
        self, connections: Connections, plan_name: str, collections: Iterable[str], *, max_await_ms: int
    ) -> None:
        self._connections = connections
        self._plan = plan_name
        self._tables = list(collections)
        self._wait_s = max(0.05, max_await_ms / 1000)
        database = connections.endpoint.database
        self.name = reverse_feed_name(plan_name, database)
        self.skip_origin = forward_origin_name(plan_name, database)
        self.marker_prefix = f"{MARKER_PREFIX}:{plan_name}"

    def position_now(self) -> Mapping[str, Any]:
        """The slot's position, the publication and the slot created where missing."""

        def work(conn: Any) -> int:
            reverse_objects.ensure_publication(conn, self.name, self._tables)
            return 0

        self._connections.run(work)
        conn = self._connections.endpoint.connect()  # autocommit: a slot is created outside a transaction
        try:
            return {"lsn": reverse_objects.ensure_slot(conn, self.name)}
        finally:
            conn.close()

    def write_marker(self) -> int:
        number = time.time_ns()
        self._connections.run(
            lambda conn: conn.execute(
                "SELECT pg_logical_emit_message(true, %s, %s)", [self.marker_prefix, str(number)]
            )
        )
        return number

    @contextlib.contextmanager
    def follow(self, after: Mapping[str, Any]) -> Iterator[OpenFeed]:
        start = int(after["lsn"])
        stream = ReplicationStream(
            self._connections.endpoint.pg, self.name, self.name, start, protocol=1, streaming=False
        )
        try:
            stream.acknowledge(start)  # reverse sync's durable checkpoint: the target may free before it
            yield OpenFeed(self, stream, start)
        finally:
            stream.close()

    def current(self, documents: Sequence[ChangedDocument]) -> dict[bytes, Mapping[str, Any]]:
        wanted: dict[str, list[Any]] = {}
        for document in documents:
            wanted.setdefault(document.collection, []).append(document.document_id)
        found: dict[bytes, Mapping[str, Any]] = {}
        for collection, ids in wanted.items():
            for doc_id, raw in TableReader(self._connections, collection, padding=False).fetch(ids):
                found[identity(collection, doc_id)] = decode_row(raw)
        return found

    @staticmethod
    def cluster_seconds(cluster_time: int) -> int:
        return cluster_time // 1_000_000

    @staticmethod
    def cluster_iso(cluster_time: int | None) -> str | None:
        if cluster_time is None:
            return None
        return datetime.datetime.fromtimestamp(cluster_time / 1_000_000, datetime.UTC).isoformat()

    def running(self, xids: Iterable[int]) -> set[int]:
        """Which of `xids` (decoded commits) a snapshot taken now does not show yet (see the module
        doc); a snapshot taken after one that shows a transaction shows it too."""
        wanted = set(xids)
        if not wanted:
            return set()
        snapshot = self._connections.outside_transaction(
            _fetch_one(sql.SQL("SELECT {}").format(_SNAPSHOT), [])
        )
        return {x for x in wanted if not shown(x, str(snapshot[0]))}

    def key_of(self, collection: str) -> tuple[str, ...]:
        return self._connections.table(collection).key

    def typed(self, group: Group) -> None:
        """The group's keys typed by the target: each text cast to its key column's type; the last
        key's statement reads a snapshot too, which tells whether the target shows the group's
        transaction already (as it nearly always does: then it costs no statement of its own)."""
        last = len(group.texts) - 1
        for n, (collection, values) in enumerate(group.texts):
            table = self._connections.table(collection)
            columns = [table.placeholder(k) for k in table.key]
            if n == last:
                columns.append(_SNAPSHOT)
            row = self._connections.run(
                _fetch_one(sql.SQL("SELECT {}").format(sql.SQL(", ").join(columns)), values)
            )
            if n == last:
                group.shown = shown(group.xid, str(row[-1]))
                row = row[:-1]
            doc_id = row[0] if len(table.key) == 1 else dict(zip(table.key, row, strict=True))
            group.documents.append(RowKey(collection, doc_id))
        group.texts.clear()


class OpenFeed:
    """An open reverse feed, read one step at a time (OpenChanges)."""

    def __init__(self, feed: PgReverseFeed, stream: ReplicationStream, start: int) -> None:
        self._feed = feed
        self._stream = stream
        self._messages = stream.messages(wait_s=feed._wait_s)
        self._start = start
        self._relations: dict[int, _Table | None] = {}
        self._group: Group | None = None
        self._decoded: list[Group] = []  # completed, not handed over yet (the target may not show them)
        self._position: int = start
        self.marker_seen = 0

    @property
    def in_transaction(self) -> bool:
        """A transaction is being read, or read and not handed over yet."""
        return self._group is not None or bool(self._decoded)

    @property
    def waiting(self) -> int:
        """Transactions decoded and held back: the target does not show the first yet."""
        return len(self._decoded)

    @property
    def position(self) -> Mapping[str, Any] | None:
        return {"lsn": self._position}

    def confirm(self, token: Mapping[str, Any]) -> None:
        """Reverse sync's checkpoint is durable up to `token`: the slot may free the WAL before it."""
        self._stream.acknowledge(int(token["lsn"]))

    def next(self) -> Step:
        completed = 0
        for item in self._messages:
            if isinstance(item, Idle | Keepalive):
                if self._group is None:
                    return Step(True, self._shown())
                continue
            group = self._message(decode(item, in_stream=False, readers=None))
            if group is not None:
                self._decoded.append(group)
                completed += 1
                if completed >= GROUPS_PER_STEP:
                    return Step(False, self._shown())
        return Step(True, self._shown())  # not reached: the stream ends by an error

    def _shown(self) -> tuple[Group, ...]:
        """The decoded transactions up to the first whose rows are read and which the target does
        not show yet (see the module doc), handed over in commit order; that one is looked for
        again after short pauses, then in the next step."""
        pauses = iter(VISIBILITY_PAUSES_S)
        ready = self._ready()
        while ready == 0 and self._decoded:
            pause = next(pauses, None)
            if pause is None:
                break
            time.sleep(pause)
            ready = self._ready()
        handed, self._decoded = tuple(self._decoded[:ready]), self._decoded[ready:]
        if handed and handed[-1].token is not None:
            self._position = int(handed[-1].token["lsn"])
        return handed

    def _ready(self) -> int:
        """How many decoded transactions, from the first, the target shows (or whose rows are not read)."""
        unsure = [g for g in self._decoded if g.documents and not g.shown]
        running = self._feed.running(g.xid for g in unsure)
        for group in unsure:
            group.shown = group.xid not in running
        return next(
            (n for n, g in enumerate(self._decoded) if g.documents and not g.shown), len(self._decoded)
        )

    def _message(self, message: Any) -> Group | None:
        group = self._group
        if isinstance(message, Begin):
            self._group = Group(cluster_time=_micros(message.commit_time), xid=message.xid)
        elif isinstance(message, Commit):
            return self._commit(message)
        elif isinstance(message, Relation):
            self._relation(message)
        elif group is None:
            return None
        elif isinstance(message, Origin):
            group.echo = group.echo or message.name == self._feed.skip_origin
        elif isinstance(message, Insert | Update | Delete):
            self._row(group, message)
        elif isinstance(message, LogicalMessage) and message.prefix == self._feed.marker_prefix:
            self.marker_seen = max(self.marker_seen, int(message.content.decode()))
        elif isinstance(message, Truncate) and not group.echo:
            raise TerminalError(
                "a mapped table was truncated on the target after cutover: reverse sync does not empty "
                "the source's table",
                hint="empty the source table by hand if that is meant, or restore the target's rows; "
                "then run reverse sync again",
            )
        return None

    def _commit(self, message: Commit) -> Group | None:
        group, self._group = self._group, None
        if group is None or message.end_lsn <= self._start:
            return None
        group.token = {"lsn": message.end_lsn}
        if group.echo:
            group.texts.clear()
        else:
            self._feed.typed(group)
        group.events = max(group.events, 1)
        return group

    def _relation(self, message: Relation) -> None:
        if message.table not in self._feed._tables:
            self._relations[message.relation_id] = None
            return
        # In the order of the table's primary key, as `typed` reads them.
        names = [c.name for c in message.columns]
        key = self._feed.key_of(message.table)
        self._relations[message.relation_id] = _Table(message.table, tuple(names.index(k) for k in key))

    def _row(self, group: Group, message: Insert | Update | Delete) -> None:
        group.events += 1
        table = self._relations.get(message.relation_id)
        if table is None or group.echo:
            return
        tuples: list[tuple[object, ...] | None] = (
            [message.new] if isinstance(message, Insert) else [message.old, getattr(message, "new", None)]
        )
        for values in tuples:
            # A 'K' tuple (the old key) carries every column, those outside the key as nulls.
            if values is not None:
                group.texts.append((table.name, tuple(_text(values[i]) for i in table.key_positions)))


def _fetch_one(query: sql.Composable, values: Sequence[str | None]) -> Callable[[Any], tuple[Any, ...]]:
    def work(conn: Any) -> tuple[Any, ...]:
        row = conn.execute(query, list(values)).fetchone()
        assert row is not None
        return tuple(row)

    return work


def _text(value: object) -> str | None:
    if value is None or value is UNCHANGED:
        return None
    assert isinstance(value, bytes)
    return value.decode()


def _micros(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
