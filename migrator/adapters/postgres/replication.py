"""The streaming replication connection: START_REPLICATION on the slot, XLogData in,
standby status updates out (DESIGN.md section 5).

psycopg 3 has no replication API, so this speaks the CopyBoth sub-protocol through
`conn.pgconn`. Feedback acknowledges only the durable checkpoint (invariant 3): the slot
keeps everything after it until the target holds it.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import pq

from migrator.adapters.base import Idle, Keepalive
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.lsn import Lsn
from migrator.adapters.postgres.pgoutput import PG_EPOCH
from migrator.adapters.postgres.values import REPLICATION_OPTIONS
from migrator.errors import ConnectionFailed, MigratorError, SourceError, StreamLost, TransientError
from migrator.redact import redact_text

FEEDBACK_INTERVAL_S = 10.0
OBJECT_IN_USE = "55006"  # SQLSTATE: the replication slot is active for another process
_WAL_END = struct.Struct("!Q")  # in an XLogData header ('w', start, WAL end, send time) at byte 9
_XLOG_HEADER = 25
_KEEPALIVE = struct.Struct("!QqB")  # the server's wal_sender_timeout defaults to 60 s
# SQLSTATEs with which the server ends a walsender: pg_terminate_backend or a fast shutdown
# (57P01 admin_shutdown), a crash of another backend (57P02), a restart (57P03); class 08, the link.
_ENDED = frozenset({"57P01", "57P02", "57P03"})
_LOST_HINT = (
    "check that the server runs and that nothing ends migrator's walsender (pg_terminate_backend, a restart, "
    "wal_sender_timeout, a proxy's idle timeout): change capture reconnects and resumes from its last checkpoint"
)


def _now_us() -> int:
    return int((time.time() - PG_EPOCH.timestamp()) * 1_000_000)


class ReplicationStream:
    def __init__(
        self,
        endpoint: PgEndpoint,
        slot: str,
        publication: str,
        start_lsn: int,
        *,
        protocol: int = 2,
        streaming: bool = True,
    ) -> None:
        self._endpoint = endpoint
        self._slot = slot
        self._acked = start_lsn
        self._wal_end = start_lsn
        self._last_xlog: bytes | None = None  # the last XLogData, whose WAL end is not read yet
        self._last_feedback = 0.0
        # When set, the next wait for data lasts at most this long before Idle (a consumer
        # lingering to batch more transactions, see phases/follow_loop.py); None: `wait_s`.
        self.linger: float | None = None
        self._conn = endpoint.connect(replication="database", options=REPLICATION_OPTIONS)
        version = self._conn.info.server_version
        options = [f"proto_version '{protocol}'", f"publication_names '{publication}'"]
        if version >= 140000:
            options.append("messages 'true'")
        if streaming and protocol >= 2 and version >= 140000:
            options.append("streaming 'on'")
        command = f"START_REPLICATION SLOT {slot} LOGICAL {Lsn(start_lsn)} ({', '.join(options)})"
        pgconn = self._conn.pgconn
        pgconn.send_query(command.encode())
        result = pgconn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            message = result.error_message.decode(errors="replace").strip() if result is not None else ""
            state = result.error_field(pq.DiagnosticField.SQLSTATE) if result is not None else None
            self._conn.close()
            if state is not None and state.decode() == "42704":
                raise SourceError(
                    f"replication slot {slot} does not exist on {endpoint.name}: the changes it kept are lost",
                    hint="a new snapshot is needed: `migrator rollback`, then `migrator run`",
                )
            raise SourceError(f"{endpoint.name}: START_REPLICATION failed: {message}")
        self.streaming = "streaming 'on'" in options

    @property
    def wal_end(self) -> int:
        """The server's end of WAL as it last reported it."""
        last = self._last_xlog
        if last is not None:
            self._last_xlog = None
            self._wal_end = max(self._wal_end, _WAL_END.unpack_from(last, 9)[0])
        return self._wal_end

    def messages(self, wait_s: float = 1.0) -> Iterator[bytes | Idle | Keepalive]:
        """Yield the pgoutput message of each XLogData as it arrives, Keepalive for the server's
        keepalives, and Idle after `wait_s` without either.

        This loop runs for every change, so an XLogData costs one copy out of libpq's buffer, one
        slice and no object of its own; its header's WAL end is read only when asked for. Every
        message libpq holds is taken before the socket is waited on (select) and read again."""
        pgconn = self._conn.pgconn
        while True:
            try:
                nbytes, data = pgconn.get_copy_data(1)
            except psycopg.Error as exc:
                raise self._error(exc) from None
            if nbytes > 0:
                chunk = bytes(data)
                kind = chunk[0]
                if kind == 119:  # 'w' XLogData
                    self._last_xlog = chunk
                    yield chunk[_XLOG_HEADER:]
                elif kind == 107:  # 'k' keepalive
                    wal_end, _, reply = _KEEPALIVE.unpack_from(chunk, 1)
                    self._wal_end = max(self.wal_end, wal_end)
                    yield Keepalive(wal_end)  # the reply below carries what the consumer acknowledged
                    if reply:
                        self.feedback(force=True)
            elif nbytes == 0:
                self._maybe_feedback()
                wait = wait_s if self.linger is None else min(wait_s, self.linger)
                ready, _, _ = select.select([pgconn.socket], [], [], wait)
                if not ready:
                    yield Idle(self.wal_end)
                    continue
                try:
                    pgconn.consume_input()
                except psycopg.Error as exc:
                    raise self._error(exc) from None
            else:  # -1: the server ended the copy, with an error (its result) or without
                result = pgconn.get_result()
                if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
                    raise self._error(psycopg.errors.error_from_result(result, self._conn.info.encoding))
                raise StreamLost(
                    self._endpoint.name, "replication stream", "the server ended it", hint=_LOST_HINT
                )

    def _error(self, exc: psycopg.Error) -> MigratorError:
        """An error of the established stream, by SQLSTATE: the server ending the walsender (or the
        link failing, no SQLSTATE) is a lost stream, retried; any other error is classified as usual."""
        state = exc.sqlstate
        ended = state in _ENDED or (state or "")[:2] == "08"
        if not ended and not (state is None and isinstance(exc, psycopg.OperationalError)):
            return classify(exc, self._endpoint.name, self._endpoint.secrets)
        text = str(exc).strip()
        reason = redact_text(text.splitlines()[0] if text else "connection closed", self._endpoint.secrets)
        said = f"{reason} (SQLSTATE {state})" if state else reason
        return StreamLost(self._endpoint.name, "replication stream", said, hint=_LOST_HINT).caused_by(
            exc, state
        )

    def acknowledge(self, lsn: int) -> None:
        """Record that everything up to `lsn` is durable on the target; sent with the next feedback."""
        self._acked = max(self._acked, lsn)
        self._maybe_feedback()

    def keepalive(self, interval: float = FEEDBACK_INTERVAL_S) -> None:
        """A status update (of the durable position only) if the last one is `interval` seconds
        old: for a consumer busy applying, or held by throttling, and not reading (so that the
        server's keepalive requests go unanswered), so that wal_sender_timeout does not end the
        connection."""
        self._maybe_feedback(interval)

    def _maybe_feedback(self, interval: float = FEEDBACK_INTERVAL_S) -> None:
        if time.monotonic() - self._last_feedback >= interval:
            self.feedback()

    def feedback(self, *, force: bool = False) -> None:
        lsn = self._acked
        message = struct.pack("!cQQQqB", b"r", lsn, lsn, lsn, _now_us(), 0)
        pgconn = self._conn.pgconn
        try:
            sent = pgconn.put_copy_data(message) == 1 and pgconn.flush() == 0
        except psycopg.Error as exc:  # the server ended the connection: a lost stream
            raise self._error(exc) from None
        if not sent:
            raise ConnectionFailed(self._endpoint.name, "could not send standby status update")
        self._last_feedback = time.monotonic()

    def close(self) -> None:
        try:
            if not self._conn.closed:
                self.feedback()
        except Exception:  # noqa: BLE001 - closing after a failure: the connection may be gone
            pass
        self._conn.close()


class SlotMonitor:
    """Slot facts for lag reporting and the WAL budget, and the heartbeat that moves an idle slot."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._endpoint.connect()
        return self._conn

    def state(self, slot: str) -> dict[str, Any] | None:
        """retained_bytes (WAL kept for the slot), confirmed position, whether active; None if gone."""
        try:
            row = (
                self._connection()
                .execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, confirmed_flush_lsn::text, "
                    "active, pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = %s",
                    [slot],
                )
                .fetchone()
            )
        except psycopg.Error as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        if row is None:
            return None
        return {
            "retained_bytes": int(row[0] or 0),
            "confirmed": row[1],
            "active": bool(row[2]),
            "current": row[3],
        }

    def unapplied_changes(self, slot: str, publication: str, applied: str, upto: str) -> int | None:
        """Row changes of transactions committed after `applied` and up to `upto` that the slot
        still holds, without consuming anything (invariant 4: peek, never get). None when no
        process can be asked otherwise: the slot is in use by a stream (then wait for the
        stream instead) or gone.

        pgoutput tags each message with its type byte: a transaction counts when it holds an
        Insert, Update, Delete or Truncate ('I' 'U' 'D' 'T'); its Commit message carries the
        commit's end position at bytes 10-17 (after flags and commit LSN), big-endian."""
        query = """
            SELECT count(*) FROM (
                SELECT xid,
                       bool_or(get_byte(data, 0) IN (73, 85, 68, 84)) AS changes,
                       max(CASE WHEN get_byte(data, 0) = 67
                           THEN ('x' || encode(substring(data FROM 11 FOR 8), 'hex'))::bit(64)::bigint
                       END) AS end_lsn
                FROM pg_logical_slot_peek_binary_changes(
                    %(slot)s, %(upto)s::pg_lsn, NULL,
                    'proto_version', '1', 'publication_names', %(publication)s)
                GROUP BY xid) t
            WHERE changes AND end_lsn > (%(applied)s::pg_lsn - '0/0'::pg_lsn)::bigint
        """
        try:
            conn = self._connection()
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
            if row is None or row[0]:
                return None
            counted = conn.execute(
                query, {"slot": slot, "upto": upto, "publication": publication, "applied": applied}
            ).fetchone()
        except psycopg.Error as exc:
            self.close()
            if exc.sqlstate == OBJECT_IN_USE:
                return None  # a stream took the slot between the two statements
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        assert counted is not None
        return int(counted[0])

    def heartbeat(self, prefix: str, content: str) -> str:
        """Emit a transactional logical message: an idle source still produces a commit we can
        acknowledge, so the slot advances and releases WAL."""
        try:
            row = (
                self._connection()
                .execute("SELECT pg_logical_emit_message(true, %s, %s)::text", [prefix, content])
                .fetchone()
            )
        except psycopg.Error as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        assert row is not None
        return str(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PollingStream:
    """The fallback where a replication connection is not allowed (`cdc: {mode: poll}`).

    Reads with pg_logical_slot_peek_binary_changes and moves the slot with
    pg_replication_slot_advance only past what is durable on the target (invariant 4:
    never consume what is not applied). Each peek re-decodes from the slot's restart
    point, so batches are large; whole transactions are buffered between Begin and Commit.

    It starts by advancing the slot to `start_lsn`, the target's durable checkpoint, where a
    process that ended between applying a batch and advancing the slot past it left the slot
    behind. Without that, each poll would begin with transactions already applied, dropped
    here; they carry the Relation messages that pgoutput sends once per decoding session (a
    poll is one), so a later change of the same table would come without its Relation; and once
    they filled a poll (`batch` changes) no poll would reach anything new.
    """

    def __init__(
        self, endpoint: PgEndpoint, slot: str, publication: str, start_lsn: int, *, batch: int = 10_000
    ) -> None:
        self._endpoint = endpoint
        self._slot = slot
        self._publication = publication
        self._batch = batch
        self._yielded = start_lsn  # end of the last transaction handed out
        self.linger: float | None = None  # the streaming interface's; a poll batches by itself
        self._acked = start_lsn
        self._wal_end = start_lsn
        self._conn = endpoint.connect(options=REPLICATION_OPTIONS)
        self.streaming = False
        version = self._conn.info.server_version
        self._options: list[str] = ["proto_version", "1", "publication_names", publication]
        if version >= 140000:
            self._options += ["messages", "true"]
        try:
            row = self._conn.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
        except psycopg.Error as exc:
            self._conn.close()
            raise self._error(exc) from None
        # (Never backwards: pg_replication_slot_advance refuses a position before the slot's.)
        self._advanced = Lsn.parse(str(row[0])).value if row is not None and row[0] is not None else 0
        try:
            self._advance()
        except MigratorError:
            self._conn.close()
            raise

    def _error(self, exc: psycopg.Error) -> MigratorError:
        if exc.sqlstate == OBJECT_IN_USE:
            # Another process holds the slot: most often the backend of a client that died
            # during a poll, which runs on until the poll's end; or a monitor's peek. Retried.
            return TransientError(
                f"{self._endpoint.name}: replication slot {self._slot} is in use by another process "
                f"(SQLSTATE {OBJECT_IN_USE})"
            )
        return classify(exc, self._endpoint.name, self._endpoint.secrets)

    @property
    def wal_end(self) -> int:
        return self._wal_end

    def _peek(self) -> list[tuple[int, bytes]]:
        try:
            rows = self._conn.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, VARIADIC %s::text[])",
                [self._slot, self._batch, self._options],
            ).fetchall()
        except psycopg.Error as exc:
            raise self._error(exc) from None
        return [(Lsn.parse(str(lsn)).value, bytes(data)) for lsn, data in rows]

    def _flushed(self) -> int:
        try:
            row = self._conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        except psycopg.Error as exc:
            raise self._error(exc) from None
        assert row is not None
        return Lsn.parse(str(row[0])).value

    def messages(self, wait_s: float = 1.0) -> Iterator[bytes | Idle]:
        while True:
            # A peek decodes up to the WAL flushed when it starts, at least this position: a peek
            # that returns no new transaction, and was not cut short by the change limit, has
            # read everything up to it. That, not the last row's position, is where the source
            # stood (phases/lag.py: caught up only at the source's position; the WAL past the last
            # row, such as other databases' or unpublished tables' records, is never decoded).
            flushed = self._flushed()
            rows = self._peek()
            fresh = False
            transaction: list[tuple[int, bytes]] = []
            for lsn, payload in rows:
                kind = payload[:1]
                if kind == b"B":
                    transaction = [(lsn, payload)]
                elif transaction:
                    transaction.append((lsn, payload))
                    if kind == b"C":
                        end = struct.unpack_from("!QQ", payload, 2)[1]
                        if end > self._yielded:
                            for _, data in transaction:
                                yield data
                            self._yielded = end
                            fresh = True
                        transaction = []
                elif lsn > self._yielded:
                    yield payload  # a non-transactional logical message
            if rows:
                self._wal_end = max(self._wal_end, rows[-1][0])
            if not fresh:
                whole = len(rows) < self._batch
                yield Idle(max(self._wal_end, flushed) if whole else self._wal_end)
                time.sleep(wait_s)

    def keepalive(self, interval: float = 0.0) -> None:
        """Nothing to keep alive: each poll is a query of its own."""

    def acknowledge(self, lsn: int) -> None:
        self._acked = max(self._acked, lsn)
        self._advance()

    def _advance(self) -> None:
        if self._acked > self._advanced:
            try:
                self._conn.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                    [self._slot, str(Lsn(self._acked))],
                )
            except psycopg.Error as exc:
                raise self._error(exc) from None
            self._advanced = self._acked

    def close(self) -> None:
        self._conn.close()
