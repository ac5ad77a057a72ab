"""The source's changes, read from a pgoutput stream: typed events in commit order.

Decodes what the replication connection (or SQL polling) delivers, keeps the relations'
state (how to read each mapped table's rows), spools streamed transactions (protocol 2) until
their commit (adapters/postgres/spool.py), skips the transactions reverse sync wrote (their
replication origin) and those at or before the applied position, and groups the rest into
transactions: Begin ... Commit as they arrive, or one Replayed at the commit of a streamed one.

One event per message received (Received for those that carry nothing to apply), so that the
consumer's own work between messages runs as often as the stream delivers; a Replayed
transaction's changes are read from its spool while the consumer handles the one event.
What the consumer makes of a Relation message (the table's columns, the mapping's checks) is
its own: TableDescribed hands it over, and the consumer registers the relation's state in the
Relations this reader decodes with (adapters/postgres/relations.py). The events are the
adapter-neutral ones of adapters/base.py, which phases read.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator

from migrator.adapters.base import (
    Change,
    ChangeEvent,
    Marker,
    Received,
    Replayed,
    TableDescribed,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
)
from migrator.adapters.postgres.partitions import Partitions
from migrator.adapters.postgres.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    Origin,
    Relation,
    RowChange,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Update,
    decode,
)
from migrator.adapters.postgres.relations import Relations
from migrator.adapters.postgres.replication import PollingStream, ReplicationStream
from migrator.adapters.postgres.spool import StreamedTransactions
from migrator.errors import SourceError, TerminalError

# pgoutput's change kinds, as a change's kind says them.
KINDS = {"I": "insert", "U": "update", "D": "delete"}


RECEIVED = Received()
IN_PROGRESS = Received(behind=True)

# The typed events (adapters/base.py), as this module has always named them.
Event = ChangeEvent
Stream = ReplicationStream | PollingStream


class ChangeReader:
    """Reads `stream` as typed events (see the module's docstring). `relations` is filled by
    the consumer on each TableDescribed; `applied` gives the position everything before which
    is applied (transactions committed before it are skipped); `skip_origin` names the
    replication origin whose transactions never reach the consumer (reverse sync's own,
    so that they never echo back)."""

    def __init__(
        self,
        stream: Stream,
        relations: Relations,
        partitions: Partitions,
        *,
        applied: Callable[[], int],
        skip_origin: str,
    ) -> None:
        self.stream = stream
        self.relations = relations
        self._partitions = partitions
        self._applied = applied
        self._skip_origin = skip_origin
        self._streamed = StreamedTransactions(skip_origin)
        self.in_transaction = False  # between Begin and Commit
        self._skip = False  # the transaction being read is not handed over

    @property
    def in_stream(self) -> bool:
        """Inside a block of a streamed transaction."""
        return self._streamed.active

    @property
    def streams_pending(self) -> bool:
        """A streamed transaction has been received in part and not committed or aborted yet."""
        return self._streamed.pending

    def events(self, wait_s: float) -> Iterator[Event]:
        # The loop every change takes: what it reads held in locals (Relations keeps its dicts).
        streamed, states, readers = self._streamed, self.relations.states, self.relations.readers
        for item in self.stream.messages(wait_s=wait_s):
            if not isinstance(item, bytes):  # Keepalive, Idle: the consumer's to handle
                yield item
                continue
            in_stream = streamed.current is not None
            # Changes of announced relations come as RowChanges, their values parsed while
            # decoding; inside a stream they are only spooled, so read raw until replayed.
            message = decode(item, in_stream=in_stream, readers=None if in_stream else readers)
            if type(message) is RowChange:  # nearly every message: the shortest way through
                relation = states.get(message.relation_id)
                if self._skip:
                    yield RECEIVED
                elif relation is None or relation.unsure:
                    yield self.change(message)
                else:
                    yield Change(relation.table, KINDS[message.kind], message.old, message.new)
            elif in_stream or isinstance(message, StreamStart | StreamStop | StreamAbort | StreamCommit):
                yield self._streaming(message, item)
            else:
                yield self._live(message)

    def _streaming(self, message: Message, payload: bytes) -> Event:
        """A message of protocol 2's streamed transactions (a block, its start and stop, the
        commit or abort)."""
        if isinstance(message, StreamStart):
            self._streamed.start(message.xid)
            return IN_PROGRESS
        if isinstance(message, StreamStop):
            self._streamed.stop()
            return RECEIVED
        if self._streamed.active:
            origin = message.name if isinstance(message, Origin) else None
            self._streamed.add(getattr(message, "xid", None), payload, origin)
            return TableDescribed(message, spooled=True) if isinstance(message, Relation) else RECEIVED
        if isinstance(message, StreamAbort):
            self._streamed.abort(message.xid, message.subxid)
            return RECEIVED
        assert isinstance(message, StreamCommit)
        return self._replayed(message)

    def _replayed(self, message: StreamCommit) -> Replayed:
        committed = self._streamed.commit(message.xid)
        skipped = message.commit_lsn < self._applied() or committed.echo  # echo: reverse sync's own
        spool = committed.spool
        if spool is not None and skipped:
            spool.close()
        replay = spool.replay(committed.dropped) if spool is not None and not skipped else iter(())
        changes = self._replay(replay, spool.close if spool is not None and not skipped else None)
        return Replayed(
            message.commit_lsn, message.end_lsn, message.commit_time, skipped, changes, message.xid
        )

    def _replay(
        self, payloads: Iterator[bytes], close: Callable[[], None] | None
    ) -> Generator[Change | Truncated | TableDescribed, None, None]:
        try:
            for payload in payloads:
                message = decode(payload, in_stream=True, readers=self.relations.readers)
                if isinstance(message, Relation):
                    yield TableDescribed(message)
                elif isinstance(message, RowChange | Insert | Update | Delete):
                    yield self.change(message)
                elif isinstance(message, Truncate):
                    yield self.truncated(message)
                # Type, Origin and logical messages carry nothing to apply.
        finally:
            if close is not None:
                close()

    def _live(self, message: Message) -> Event:
        """A message outside streamed transactions."""
        if isinstance(message, Begin):
            self.in_transaction = True
            self._skip = message.final_lsn < self._applied()
            return TransactionBegun(message.final_lsn, message.xid)  # a reader waits to show its xid
        if isinstance(message, Commit):
            self.in_transaction = False
            return TransactionCommitted(message.commit_lsn, message.end_lsn, message.commit_time, self._skip)
        if isinstance(message, LogicalMessage):
            return Marker(message.prefix, message.content)
        if isinstance(message, Origin):
            # Sent after Begin when the transaction was committed under a replication origin.
            # Reverse sync's own (its rows came from the target) is skipped like an applied one,
            # so nothing echoes; other origins (the source may itself subscribe to another
            # database) are applied as usual.
            if message.name == self._skip_origin:
                self._skip = True
            return RECEIVED
        if isinstance(message, Relation):
            return TableDescribed(message)
        if self._skip:
            return RECEIVED
        if isinstance(message, Insert | Update | Delete):
            return self.change(message)
        if isinstance(message, Truncate):
            return self.truncated(message)
        return RECEIVED  # a Type message: nothing to apply

    def change(self, message: RowChange | Insert | Update | Delete) -> Change:
        """The Change of a decoded row change. Decoding with the readers gives a RowChange for
        every relation found there; a raw Insert, Update or Delete is one whose generated columns
        are computed (read raw), or one never announced."""
        relation = self.relations.states.get(message.relation_id)
        if type(message) is RowChange and relation is not None:  # the hot path
            if relation.unsure and message.kind != "I":
                relation.check_placeable(message.kind, message.old)
            return Change(relation.table, KINDS[message.kind], message.old, message.new)
        if relation is None or relation.computed is None or isinstance(message, RowChange):
            raise SourceError(
                f"change for unknown relation {message.relation_id} (no Relation message first)"
            )
        texts = None if isinstance(message, Delete) else relation.computed.texts(message)
        change = relation.row_change(message)
        if relation.unsure and change.kind != "I":
            relation.check_placeable(change.kind, change.old)
        if texts is None:
            return Change(relation.table, KINDS[change.kind], change.old, change.new)
        return Change(relation.table, KINDS[change.kind], change.old, change.new, relation.computed, texts)

    def truncated(self, message: Truncate) -> Truncated:
        tables: list[str] = []
        leaves: dict[str, dict[int, str]] = {}  # root -> the truncated leaves, by relation id
        for relation_id in message.relation_ids:
            relation = self.relations.states.get(relation_id)
            if relation is None:
                continue
            if relation.leaf is not None:
                leaves.setdefault(relation.table, {})[relation_id] = relation.leaf
            else:
                tables.append(relation.table)
        for root, truncated in leaves.items():
            # TRUNCATE of a partitioned table names every leaf: that is the root's TRUNCATE.
            if self._partitions.leaves(root) <= set(truncated):
                tables.append(root)
                continue
            # Which documents held rows of one partition is not known here: never empty more.
            raise TerminalError(
                f"TRUNCATE of partition {', '.join(sorted(truncated.values()))} of {root} on the source: "
                f"the documents of its rows cannot be told from the other documents of {root}, so the "
                "migration stops (whatever phases.cdc.on_truncate says)",
                hint="roll back (`migrator rollback`) and run again: a new snapshot leaves the truncated rows out",
            )
        return Truncated(tuple(tables))
