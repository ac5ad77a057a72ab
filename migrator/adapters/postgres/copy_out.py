"""A key range streamed undecoded (docs/architecture.md, "Undecoded copy"): `COPY (SELECT the
mapped columns ...) TO STDOUT (FORMAT binary)`, in the copy worker's imported snapshot. Only the
columns named leave the source (an excluded column stays there), and the blocks are PostgreSQL's
binary COPY format, which a PostgreSQL target takes as they are: no value is parsed.

The server sends one CopyData message a row; psycopg's `Copy` iteration spends several Python
calls on each (a wait loop, a generator), which was most of a snapshot's client CPU (1.8 s per
million rows of 6 columns, measured here, against 0.27 s for the loop below). So the stream is
read at the libpq level, every row a single call, and handed on in blocks of about
`BLOCK_BYTES` (docs/architecture.md, "Undecoded copy").

Every wait for the server is bounded by the reader's `timeout_s`: a server that hangs mid-COPY (a
stopped backend, a network dropping packets without a reset) would otherwise hold a copy worker
forever. `Stalled` says so; the reader names the chunk and the endpoint (snapshot.py), and the
snapshot's chunk retry redoes the chunk on a new connection.
"""

from __future__ import annotations

import select
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.errors import error_from_result

from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.reading import key_range_condition

# The one format a PostgreSQL source streams and a PostgreSQL target takes undecoded.
BINARY = "postgresql-binary"
# The size of the blocks handed to the target: a few hundred rows each, few enough calls.
BLOCK_BYTES = 1 << 20


class Stalled(Exception):
    """The server sent nothing for `seconds` while the COPY waited for it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the server sent nothing for {seconds:g} s")


def copy_statement(
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
) -> tuple[sql.Composed, list[Any]]:
    condition, params = key_range_condition("t", key, key_types, lo, hi)
    query = sql.SQL("COPY (SELECT {cols} FROM {t} t WHERE {cond}) TO STDOUT (FORMAT binary)").format(
        cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns),
        t=table_identifier(table),
        cond=condition,
    )
    return query, params


def blocks(
    conn: psycopg.Connection[Any], query: sql.Composed, params: Sequence[Any], timeout_s: float
) -> Iterator[bytes]:
    """The COPY's output, rows gathered into blocks of about BLOCK_BYTES (driver errors raised as
    psycopg's, with their SQLSTATE: the caller classifies them; `Stalled` after `timeout_s` without
    a byte from the server).

    Abandoned before its end (the consumer failed), the connection is closed: it is mid-COPY and
    the snapshot's worker opens a new reader for its next attempt."""
    text = psycopg.ClientCursor(conn).mogrify(query, params)
    pgconn = conn.pgconn
    finished = False
    try:
        pgconn.send_query(text.encode(conn.info.encoding))
        _started(pgconn, conn.info.encoding, timeout_s)
        yield from _rows_in_blocks(pgconn, timeout_s)
        _ended(pgconn, conn.info.encoding, timeout_s)
        finished = True
    finally:
        if not finished:
            conn.close()


def _started(pgconn: pq.abc.PGconn, encoding: str, timeout_s: float) -> None:
    result = _result(pgconn, timeout_s)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _raise_for(pgconn, result, encoding)


def _rows_in_blocks(pgconn: pq.abc.PGconn, timeout_s: float) -> Iterator[bytes]:
    block = bytearray()
    get = pgconn.get_copy_data
    while True:
        size, data = get(1)  # one row, or 0 when none is buffered yet: never blocks
        if size > 0:
            block += data
            if len(block) >= BLOCK_BYTES:
                yield bytes(block)
                block.clear()
        elif size == 0:
            _wait_readable(pgconn, timeout_s)
        elif size == -1:  # the end of the COPY's data
            break
        else:
            raise psycopg.OperationalError(_message(pgconn))
    if block:
        yield bytes(block)


def _ended(pgconn: pq.abc.PGconn, encoding: str, timeout_s: float) -> None:
    """The COPY's final result (its command status or its error), then the end of the results."""
    failure: pq.abc.PGresult | None = None
    while (result := _result(pgconn, timeout_s)) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK and failure is None:
            failure = result
    if failure is not None:
        _raise_for(pgconn, failure, encoding)


def _result(pgconn: pq.abc.PGconn, timeout_s: float) -> pq.abc.PGresult | None:
    while pgconn.is_busy():
        _wait_readable(pgconn, timeout_s)
    return pgconn.get_result()


def _wait_readable(pgconn: pq.abc.PGconn, timeout_s: float) -> None:
    readable, _, _ = select.select([pgconn.socket], [], [], timeout_s)
    if not readable:
        raise Stalled(timeout_s)
    pgconn.consume_input()


def _raise_for(pgconn: pq.abc.PGconn, result: pq.abc.PGresult | None, encoding: str) -> None:
    if result is not None and result.status == pq.ExecStatus.FATAL_ERROR:
        while pgconn.get_result() is not None:  # the connection ready for the next command
            pass
        raise error_from_result(result, encoding=encoding)
    raise psycopg.OperationalError(_message(pgconn))


def _message(pgconn: pq.abc.PGconn) -> str:
    return str(pgconn.get_error_message()).strip() or "the COPY stream broke"
