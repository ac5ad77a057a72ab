"""The binlog connection: a replica's dump of the binlog from a position, read on a thread of its
own into a bounded queue (docs/architecture.md, "Change capture from the binlog").

mysql-replication (BinLogStreamReader) speaks COM_BINLOG_DUMP and decodes the events. It is used
with these precautions, each for something a probe showed:

- Its own reconnect is switched off. On a lost connection (errno 2013, 2006) it reconnects
  silently at the last event it read, forever, logging "Re-request the connection": in the middle
  of a transaction, after a server restart at a position that may no longer exist, and with no
  bound. Here a lost connection ends the stream with a TransientError; CDC reopens it at its
  durable checkpoint, the end of a committed transaction (engine/retry.py bounds the streak).
- A position by file and offset, never `is_mariadb=True` without a GTID: that flag makes it send a
  MariaDB GTID dump from `@slave_connect_state` (empty: the start of the oldest binlog), ignoring
  log_file and log_pos.
- A server heartbeat (MASTER_HEARTBEAT_PERIOD) once it has sent everything and HEARTBEAT_S passed
  with nothing new, and a read timeout well above it: a dead server is noticed, an idle one is not
  mistaken for dead. The heartbeat is also the server's word that it has sent all there is (what
  PostgreSQL's keepalive says): CDC applies a batch on it rather than waiting for the batch to age
  (docs/architecture.md, "Change capture from the binlog", batches and lag).
- A server_id of its own per connection (a replica id the server has not seen: the server refuses
  a second dump with an id in use, errno 4052, and never 0, which ends the dump at the binlog's end).

The thread decodes each event and hands (event, end position, arrival) triples through a queue of
QUEUE_EVENTS: the reader waits on it with a timeout (Idle, and the consumer's linger), and memory is
bounded whatever a transaction's size: a rows event holds about 8 KiB of rows (the server's
binlog_row_event_max_size), and the thread waits while the queue is full. `arrival` is the wall
time the event was read off the connection, or None when it may have waited there (the thread had
just waited for room in the queue): binlog_events.py dates a commit by it.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, RowsEvent, UpdateRowsEvent, WriteRowsEvent

from migrator.adapters.base import Idle
from migrator.adapters.mysql.binlog_link import (
    BINLOG_UNAVAILABLE,
    SAME_REPLICA_ID,
    BinlogEndpoint,
    classify,
    errno_of,
)
from migrator.adapters.mysql.connection import SESSION_SETUP
from migrator.adapters.mysql.positions import BinlogPositions, file_name, of_file, split_file, unpack
from migrator.errors import ConnectionFailed, MigratorError, SourceError, StreamLost

# The server's heartbeat once it has sent everything and nothing new came for this long: an idle
# stream stays known alive, and a transaction read alone is applied this soon (the heartbeat says
# nothing more is coming), not when its batch has aged (phases/follow_loop.py, BATCH_AGE_S).
HEARTBEAT_S = 0.02
# The server waits this long on a write to the stream before it drops the dump. The stream is not
# read while the engine applies a batch (the read-ahead queue is full), so the server's default
# (60 s) dropped it under a slow target: a reset connection, resumed from the last commit, again
# and again. A consumer that is gone is still seen at once (its socket closes).
DUMP_WRITE_TIMEOUT_S = 3600
READ_TIMEOUT_S = 30  # nothing at all (not even a heartbeat) for this long: the connection is dead
QUEUE_EVENTS = 64  # rows events of ~8 KiB of rows each, decoded: a few MiB read ahead
EVENTS = [
    MariadbGtidEvent,
    GtidEvent,
    QueryEvent,
    XidEvent,
    XAPrepareEvent,  # read to refuse two-phase XA on mapped tables (binlog_events.py)
    RotateEvent,
    HeartbeatLogEvent,
    WriteRowsEvent,
    UpdateRowsEvent,
    DeleteRowsEvent,
]
_LOST = frozenset({2006, 2013, 2055})


class DumpEnded(Exception):
    """The dump connection ended after it was established: a lost connection (its errno, one of
    _LOST) or the server's end of the dump (None). Not an OperationalError: mysql-replication
    would reconnect."""

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(errno, message)


class _DumpConnection(pymysql.connections.Connection):
    """PyMySQL's connection with a lost connection raised as DumpEnded, so that
    mysql-replication's silent reconnect (see the module's docstring) never runs."""

    def _read_packet(self, packet_type: Any = pymysql.protocol.MysqlPacket) -> Any:
        try:
            return super()._read_packet(packet_type)
        except pymysql.OperationalError as exc:
            if errno_of(exc) in _LOST:
                raise DumpEnded(errno_of(exc), str(exc.args[1]) if len(exc.args) > 1 else "") from exc
            raise


def replica_id() -> int:
    """A server_id for one dump connection: random in the upper half of the 32-bit range, where
    configured replicas (small numbers by habit) are not."""
    return random.randint(1 << 31, (1 << 32) - 2)


class BinlogFiles:
    """The server's binlog files (SHOW BINARY LOGS) and where it writes now."""

    def __init__(self, endpoint: BinlogEndpoint, conn: Any) -> None:
        rows = endpoint.query(conn, "SHOW BINARY LOGS")
        self.files: list[tuple[str, int]] = [(str(r[0]), int(r[1])) for r in rows]
        self.base = split_file(self.files[0][0])[0] if self.files else "binlog"

    def size(self, number: int) -> int | None:
        name = file_name(self.base, number)
        return next((size for file, size in self.files if file == name), None)

    def retained_from(self, position: int) -> int:
        """Bytes of binlog from `position` to the end of the last file."""
        number, offset = unpack(position)
        total = 0
        for file, size in self.files:
            n = split_file(file)[1]
            if n > number:
                total += size
            elif n == number:
                total += max(0, size - offset)
        return total

    def end(self) -> int:
        if not self.files:
            return 0
        name, size = self.files[-1]
        return of_file(name, size)


def missing_position(endpoint: BinlogEndpoint, start: int, files: BinlogFiles) -> SourceError | None:
    """The error to raise when the binlog no longer (or never) holds `start`, else None."""
    text = BinlogPositions.text(start)
    number, offset = unpack(start)
    size = files.size(number)
    if size is None:
        oldest = BinlogPositions.text(of_file(files.files[0][0], 4)) if files.files else "none"
        return SourceError(
            f"{endpoint.name}: binlog position {text} is gone: file {file_name(files.base, number)} is not among "
            f"the server's binary logs (oldest {oldest}); the changes after it are lost to this run",
            hint="a new snapshot is needed: `migrator rollback`, then `migrator run`; keep binlogs longer "
            "(binlog_expire_logs_seconds) than a run may fall behind",
        )
    if offset > size:
        return SourceError(
            f"{endpoint.name}: binlog position {text} lies past the end of its file ({size} bytes)"
        )
    return None


# What the events must carry to be read as changes: every row whole, with its columns named.
REQUIRED = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
}


def unreadable(endpoint: BinlogEndpoint, conn: Any) -> SourceError | None:
    """The error to raise when the server's binlog cannot be read as changes, else None: without
    FULL row metadata mysql-replication names no column (UNKNOWN_COL0, ...), without FULL row
    images an update lacks the columns it did not change."""
    rows = endpoint.query(conn, "SHOW GLOBAL VARIABLES WHERE Variable_name IN %s", [tuple(REQUIRED)])
    found = {str(name).lower(): str(value).upper() for name, value in rows}
    wrong = [
        f"{name}={found.get(name, 'unknown')}" for name, want in REQUIRED.items() if found.get(name) != want
    ]
    if not wrong:
        return None
    return SourceError(
        f"{endpoint.name}: the binlog cannot be read as row changes: {', '.join(wrong)}",
        hint="set "
        + ", ".join(f"{k}={v}" for k, v in REQUIRED.items())
        + " on the source (binlog_row_metadata "
        "needs MariaDB 10.5 or MySQL 8.0.14), then start again",
    )


class BinlogStream:
    """The binlog from `start` (a packed position: the end of a committed transaction, or a
    snapshot's position) as (event, end position) pairs, or Idle after a wait with nothing.
    CaptureStream (adapters/base.py): acknowledging only records the position (a binlog keeps
    no state for its readers: retention is the server's binlog_expire_logs_seconds)."""

    def __init__(
        self,
        endpoint: BinlogEndpoint,
        start: int,
        *,
        on_acknowledge: Any = None,
    ) -> None:
        self._endpoint = endpoint
        self.start = start
        self.linger: float | None = None
        self._acked = start
        self._on_acknowledge = on_acknowledge
        self._received = start  # end of the last event received
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[Any, int, float | None] | BaseException] = queue.Queue(QUEUE_EVENTS)
        self._pressed = False  # the reading thread last waited for room in the queue
        conn = endpoint.connect()
        try:
            problem = unreadable(endpoint, conn)
            files = BinlogFiles(endpoint, conn)
            problem = problem or missing_position(endpoint, start, files)
        finally:
            conn.close()
        if problem is not None:
            raise problem
        self._file = file_name(files.base, unpack(start)[0])
        self._reader: BinLogStreamReader | None = None
        self._thread: threading.Thread | None = None

    def restrict(self, tables: Sequence[str]) -> None:
        """Decode the rows of these tables (schema.table) only: mysql-replication skips the others'
        rows unread (their transactions' GTID and XID events still come). Before the first read."""
        self._tables = tuple(tables)

    def _open(self) -> None:
        tables = getattr(self, "_tables", ())
        self._reader = BinLogStreamReader(
            connection_settings=self._endpoint.settings(
                read_timeout=READ_TIMEOUT_S,
                init_command=f"{SESSION_SETUP}, net_write_timeout = {DUMP_WRITE_TIMEOUT_S}",
            ),
            server_id=replica_id(),
            log_file=self._file,
            log_pos=unpack(self.start)[1],
            resume_stream=True,
            blocking=True,
            slave_heartbeat=HEARTBEAT_S,
            only_events=EVENTS,
            only_schemas=sorted({t.split(".", 1)[0] for t in tables}) or None,
            only_tables=sorted({t.split(".", 1)[1] for t in tables}) or None,
            pymysql_wrapper=_DumpConnection,
            enable_logging=False,
        )
        self._thread = threading.Thread(target=self._pump, name="migrator-binlog", daemon=True)
        self._thread.start()

    # -- the reading thread -------------------------------------------------------------------------

    def _put(self, item: tuple[Any, int, float | None] | BaseException) -> bool:
        try:
            self._queue.put_nowait(item)
            # Pressed until the consumer has taken all but this one: what the server sent while
            # this thread waited is read from the connection's buffers meanwhile.
            self._pressed = self._pressed and self._queue.qsize() > 1
            return True
        except queue.Full:
            self._pressed = True
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        reader = self._reader
        assert reader is not None
        position = self.start
        try:
            while not self._stop.is_set():
                event = reader.fetchone()
                # Read as the server sent it unless the events waited on the connection while
                # this thread waited for the consumer.
                arrival = None if self._pressed else time.time()
                if event is None:  # the server ended the dump (it is shutting down)
                    raise DumpEnded(None, "the server ended the binlog dump")
                if isinstance(event, RotateEvent):
                    position = of_file(event.next_binlog, event.position)
                elif not isinstance(event, HeartbeatLogEvent):  # a heartbeat: still where it was
                    position = of_file(reader.log_file, reader.log_pos)
                if isinstance(event, RowsEvent):
                    # Decoded here, not by the consumer: mysql-replication publishes a table map
                    # event's table before it has named its columns (TableMapEvent.__init__), so
                    # rows decoded on another thread meanwhile came out as UNKNOWN_COL0, ...
                    _ = event.rows
                # mysql-replication's event and its packet refer to each other: left to the cycle
                # collector, the packets of a large transaction pile up between its runs (a probe's
                # peak: 44 MB for 50,000 rows of 400 bytes, 0.7 MB of them live). Freed once read.
                event.packet = None
                if not self._put((event, position, arrival)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, which raises it typed
            if not self._stop.is_set():
                self._put(exc)

    # -- the consumer's side ------------------------------------------------------------------------

    def items(self, wait_s: float) -> Iterator[tuple[Any, int, float | None] | Idle]:
        """Each event with its end position and arrival (see the module's docstring) as it
        arrives; Idle after `wait_s` (or the linger) without."""
        if self._thread is None:
            self._open()
        get = self._queue.get
        while True:
            wait = wait_s if self.linger is None else min(wait_s, self.linger)
            try:
                item = get(timeout=wait)
            except queue.Empty:
                yield Idle(self._received)
                continue
            if isinstance(item, BaseException):
                raise self._error(item)
            self._received = item[1]
            yield item

    def _error(self, exc: BaseException) -> MigratorError:
        if isinstance(exc, MigratorError):
            return exc
        if isinstance(exc, DumpEnded):
            errno, reason = exc.args
            said = f"{reason or 'connection closed'} (error {errno})" if errno else reason
            lost = StreamLost(
                self._endpoint.name,
                "binlog stream",
                said,
                hint="check that the server runs and that nothing ends migrator's binlog dump (a KILL, a proxy's "
                "idle timeout): change capture reconnects and resumes from its last checkpoint",
            )
            # The driver's error behind it, where there is one (not where the server ended the dump).
            return lost if exc.__cause__ is None else lost.caused_by(exc.__cause__, errno)
        if isinstance(exc, pymysql.Error) and errno_of(exc) == BINLOG_UNAVAILABLE:
            return SourceError(
                f"{self._endpoint.name}: the server cannot send the binlog from "
                f"{BinlogPositions.text(self._received)} (errno {BINLOG_UNAVAILABLE}: {exc.args[1]}); the changes "
                "after it are lost to this run",
                hint="a new snapshot is needed: `migrator rollback`, then `migrator run`",
            ).caused_by(exc, BINLOG_UNAVAILABLE)
        if isinstance(exc, pymysql.Error) and errno_of(exc) == SAME_REPLICA_ID:
            # Another dump with this random id, or this one's last, not yet noticed gone: retried.
            return ConnectionFailed(self._endpoint.name, f"binlog dump refused for now: {exc.args[1]}")
        if isinstance(exc, pymysql.Error | OSError):
            return classify(exc, self._endpoint.name, self._endpoint.secrets)
        return SourceError(f"{self._endpoint.name}: binlog decoding failed: {type(exc).__name__}: {exc}")

    @property
    def received(self) -> int:
        return self._received

    def keepalive(self, interval: float = 0.0, /) -> None:
        """Nothing to send: the server's heartbeat keeps the dump alive while the consumer applies."""

    def acknowledge(self, position: int, /) -> None:
        if position > self._acked:
            self._acked = position
            if self._on_acknowledge is not None:
                self._on_acknowledge(position)

    def close(self) -> None:
        self._stop.set()
        if self._reader is None or self._thread is None:
            return
        connection = getattr(self._reader, "_stream_connection", None)
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            # Wake the thread's blocking read: it sees the stop and ends.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):  # closing after a failure: the connection may be gone
            self._reader.close()
