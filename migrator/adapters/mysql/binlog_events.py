"""The binlog read as typed change events in commit order (adapters/base.py ChangeEvents;
docs/architecture.md, "Change capture from the binlog").

A transaction in the binlog is written whole at its commit: a GTID event (MariaDB; MySQL: GTID
then a BEGIN query), its row events (each after the table map of its table), and an XID event
(a COMMIT query for a non-transactional engine). DDL is a GTID event and one query.

- TransactionBegun is handed over at the first change of a mapped table (or marker) in a
  transaction, with the position where the transaction starts: the binlog says where a
  transaction commits only at its end. A transaction with nothing mapped hands over nothing but,
  now and then, a Keepalive at its end (so that the consumer's work between messages runs and
  what it acknowledges moves on while the source writes only other tables).
- TransactionCommitted carries the XID event's start (commit_position) and end (end_position:
  where a resumed stream starts) and the commit time: the event's timestamp has whole seconds only,
  so a commit read within the second it names, straight off the connection, is dated by its
  arrival instead (committed_at; docs/architecture.md, "Change capture from the binlog").
- The server's heartbeat (it has sent everything, binlog.py) is a Keepalive; while only heartbeats
  come, an Idle after each `wait_s` too (the consumer's idle duties: its own heartbeat marker).
- Every row of a rows event is a Change of its own, as it arrives: nothing is held per
  transaction, so a transaction of any size streams in bounded memory (adapters/mysql/binlog.py).
- A row written to the markers table is a Marker (capture.py), never a Change.
- A transaction whose first row is reverse sync's mark naming `skip_origin` (reverse_checkpoint.py)
  is reverse sync's own: begun and committed as skipped, none of its changes handed over
  (docs/architecture.md, "Reverse sync and echo prevention").
- A query on a mapped table is asked of the schema checks: TRUNCATE is a Truncated event, other
  DDL stops the run naming table and statement (schema_watch.py).
- A two-phase XA transaction is written at its XA PREPARE (its rows, then an XA_PREPARE event) and
  decided later by an XA COMMIT or XA ROLLBACK query of its own: its changes may never happen, and
  nothing here holds them until they are decided. One that changed a mapped table stops the run,
  naming the XA and the tables (a terminal error). XA COMMIT ... ONE PHASE is an ordinary
  transaction (MariaDB: an XID event; MySQL: an XA_PREPARE event marked one-phase, a commit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent

from migrator.adapters.base import (
    Change,
    ChangeEvent,
    Idle,
    Keepalive,
    Marker,
    Received,
    TransactionBegun,
    TransactionCommitted,
    Truncated,
)
from migrator.adapters.mysql.binlog import BinlogStream
from migrator.adapters.mysql.binlog_values import RowConverter
from migrator.adapters.mysql.positions import BinlogPositions
from migrator.adapters.mysql.statements import logged_as_statement
from migrator.errors import SourceError

KEEPALIVE_EVERY_S = 0.5  # at most this often for transactions with nothing mapped
RECEIVED = Received()
# mysql-replication's none_sources for a column the row image left out (pymysqlreplication.constants.NONE_SOURCE).
_PARTIAL_IMAGE = frozenset({"cols bitmap", "same with before values"})
_TRANSACTION_CONTROL = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "XA START", "XA END", "XA PREPARE", "XA COMMIT"}
)


class Statements(Protocol):
    """What the schema checks make of a query event (schema_watch.py)."""

    def statement(self, schema: str, query: str) -> tuple[str, ...]:
        """The mapped tables a TRUNCATE empties; raises for other DDL on a mapped table."""
        ...


class BinlogReader:
    """Reads a BinlogStream as typed events (see the module's docstring). `tables`: the mapped
    tables (schema.table) and their rows' converters; `markers`: the markers table
    (schema.table); `applied`: the position before which everything is applied (transactions
    that began before it are skipped)."""

    def __init__(
        self,
        stream: BinlogStream,
        tables: Mapping[str, RowConverter],
        markers: str,
        statements: Statements,
        *,
        applied: Callable[[], int],
        reverse: str = "",
        skip_origin: str = "",
    ) -> None:
        self.stream = stream
        self._reverse = reverse  # reverse sync's mark table (schema.table)
        self._skip_origin = skip_origin
        self._tables = tables
        self._markers = markers
        self._statements = statements
        self._applied = applied
        self.in_transaction = False  # a TransactionBegun was handed over, its end not yet
        self._begin = stream.start  # where the transaction being read starts
        self._last = stream.start  # end of the last event read
        self._gtid_end = -1  # end of the last GTID event (a BEGIN right after it starts nothing new)
        self._skip = False
        self._last_keepalive = 0.0
        self._quiet_since = time.monotonic()  # the last event that was no heartbeat, or Idle
        self._touched: set[str] = set()  # the mapped tables the open transaction changed

    @property
    def in_stream(self) -> bool:
        return False  # the binlog holds committed transactions only

    @property
    def streams_pending(self) -> bool:
        return False

    def events(self, wait_s: float) -> Iterator[ChangeEvent]:
        for item in self.stream.items(wait_s):
            if isinstance(item, Idle):
                self._quiet_since = time.monotonic()
                yield item
                continue
            event, end, arrival = item
            if isinstance(event, HeartbeatLogEvent):
                # The server had nothing more to send: everything before is received.
                yield Keepalive(end)
                now = time.monotonic()
                if now - self._quiet_since >= wait_s:
                    self._quiet_since = now
                    yield Idle(end)
                continue
            self._quiet_since = time.monotonic()
            start, self._last = self._last, end
            if isinstance(event, RowsEvent):
                yield from self._rows(event)
            elif isinstance(event, XidEvent):
                yield self._commit(start, end, committed_at(event.timestamp, arrival))
            elif isinstance(event, XAPrepareEvent):
                yield self._xa_prepare(event, start, end, arrival)
            elif isinstance(event, MariadbGtidEvent | GtidEvent):
                self._begin, self._gtid_end = start, end
            elif isinstance(event, QueryEvent):
                yield from self._query(event, start, end, arrival)
            else:
                yield RECEIVED  # a rotation

    def _begun(self) -> TransactionBegun | None:
        if self.in_transaction:
            return None
        self.in_transaction = True
        self._skip = self._begin < self._applied()
        # A reader shows it once its snapshot stands past where it begins (readers.py).
        return TransactionBegun(self._begin, self._begin)

    def _rows(self, event: RowsEvent) -> Iterator[ChangeEvent]:
        table = f"{event.schema}.{event.table}"
        if table == self._markers:
            if isinstance(event, WriteRowsEvent):
                begun = self._begun()
                if begun is not None:
                    yield begun
                for row in event.rows:
                    values = row["values"]
                    content = values.get("content")
                    yield Marker(
                        str(values.get("prefix")), content.encode() if isinstance(content, str) else content
                    )
            return
        if table == self._reverse:
            yield from self._reverse_mark(event)
            return
        converter = self._tables.get(table)
        if converter is None:
            return
        begun = self._begun()
        if begun is not None:
            yield begun
        self._touched.add(table)
        if self._skip:
            yield RECEIVED
            return
        for row in event.rows:
            self._whole(table, row)
        if isinstance(event, WriteRowsEvent):
            for row in event.rows:
                yield Change(table, "insert", None, converter.row(row["values"], row.get("none_sources")))
        elif isinstance(event, UpdateRowsEvent):
            for row in event.rows:
                old = converter.row(row["before_values"], row.get("before_none_sources"))
                new = converter.row(row["after_values"], row.get("after_none_sources"))
                yield Change(table, "update", old, new)
        elif isinstance(event, DeleteRowsEvent):
            for row in event.rows:
                yield Change(table, "delete", converter.row(row["values"], row.get("none_sources")), None)

    def _whole(self, table: str, row: Mapping[str, Any]) -> None:
        """A row image without some columns (a session's binlog_row_image MINIMAL or NOBLOB, MySQL's
        partial JSON) leaves their values unknown: stop, naming them, rather than write NULLs."""
        missing: set[str] = set()
        for sources in ("none_sources", "before_none_sources", "after_none_sources"):
            found = row.get(sources) or {}
            missing.update(name for name, source in found.items() if source in _PARTIAL_IMAGE)
        if missing:
            raise SourceError(
                f"{table}: a row event at binlog position {BinlogPositions.text(self._begin)} lacks the values "
                f"of {', '.join(sorted(missing))} (the writing session's binlog_row_image is not FULL, or its "
                "JSON was logged as a partial update): change capture cannot know the whole row",
                hint="have every session that writes the mapped tables keep binlog_row_image=FULL (no `SET "
                "SESSION binlog_row_image`; MySQL: binlog_row_value_options=''), then start over: "
                "`migrator rollback`, then `migrator run` (a new snapshot)",
            )

    def _reverse_mark(self, event: RowsEvent) -> Iterator[ChangeEvent]:
        """Reverse sync writes its mark first in each of its transactions: one that names the
        origin to skip makes the whole transaction skipped (nothing of it was handed over yet).
        A mark later in a transaction is not reverse sync's doing: its changes stand."""
        if self.in_transaction or not self._skip_origin or not event.rows:
            return
        row = event.rows[0]
        values = row.get("after_values", row.get("values")) or {}
        if values.get("origin") != self._skip_origin:
            return
        begun = self._begun()
        self._skip = True
        if begun is not None:
            yield begun

    def _commit(self, start: int, end: int, commit_time: float) -> ChangeEvent:
        if not self.in_transaction:
            return self._between(end)
        self.in_transaction = False
        self._touched.clear()
        return TransactionCommitted(start, end, datetime.fromtimestamp(commit_time, UTC), self._skip)

    def _xa_prepare(self, event: XAPrepareEvent, start: int, end: int, arrival: float | None) -> ChangeEvent:
        """See the module's docstring: a one-phase XA commits; a prepared one on mapped tables stops."""
        if event.one_phase:
            return self._commit(start, end, committed_at(event.timestamp, arrival))
        if not self._touched:
            return self._between(end)
        xid = (event.xid_gtrid + event.xid_bqual).decode(
            errors="replace"
        )  # any bytes, as the server took them
        raise SourceError(
            f"XA transaction {xid!r} prepared changes to {', '.join(sorted(self._touched))} at binlog "
            f"position {BinlogPositions.text(self._begin)}: change capture cannot follow two-phase XA "
            "transactions (their changes are decided later by XA COMMIT or XA ROLLBACK)",
            hint="have the application write these tables in ordinary transactions (or XA COMMIT ... ONE "
            "PHASE), then start over: `migrator rollback`, then `migrator run` (a new snapshot)",
        )

    def _between(self, end: int) -> ChangeEvent:
        """The end of a transaction with nothing mapped."""
        now = time.monotonic()
        if now - self._last_keepalive >= KEEPALIVE_EVERY_S:
            self._last_keepalive = now
            return Keepalive(end)
        return RECEIVED

    def _query(self, event: QueryEvent, start: int, end: int, arrival: float | None) -> Iterator[ChangeEvent]:
        query = _text(event.query).strip()
        word = query.upper().rstrip(";")
        if word in _TRANSACTION_CONTROL or word.startswith("XA "):
            if word == "BEGIN" and self._gtid_end != start:
                self._begin = start  # a BEGIN without a GTID event before it starts the transaction
            elif word == "COMMIT":
                yield self._commit(start, end, committed_at(event.timestamp, arrival))
            return
        schema = _text(event.schema)
        if written := logged_as_statement(query, schema, self._tables):
            raise SourceError(
                f"{', '.join(written)}: a change was logged as the SQL statement {query[:300]!r} at binlog "
                f"position {BinlogPositions.text(start)} (the writing session's binlog_format is not ROW): "
                "change capture reads row events only and cannot follow it",
                hint="have every session that writes the mapped tables keep binlog_format=ROW (no `SET SESSION "
                "binlog_format`), then start over: `migrator rollback`, then `migrator run` (a new snapshot)",
            )
        truncated = self._statements.statement(schema, query)
        if not truncated:
            yield self._between(end)
            return
        begun = self._begun()
        if begun is not None:
            yield begun
        if not self._skip:
            yield Truncated(truncated)
        yield self._commit(start, end, committed_at(event.timestamp, arrival))


def committed_at(timestamp: int, arrival: float | None) -> float:
    """When a transaction committed (epoch seconds) from its commit event's `timestamp` (the
    server's clock, whole seconds: the commit lies in [timestamp, timestamp + 1)) and the wall time
    it was read off the connection (`arrival`, None when it may have waited there: binlog.py). A
    commit read within the second it names committed between its timestamp and its arrival; the
    arrival is then the nearer bound (a stream that keeps up delivers in milliseconds), the
    timestamp reading up to a second early. Otherwise (read a second or more later: CDC is
    behind, or the clocks differ) the timestamp: the lag reads at most a second high, never low."""
    if arrival is not None and timestamp <= arrival < timestamp + 1:
        return arrival
    return float(timestamp)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
