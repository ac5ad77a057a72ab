"""An independent ENCODER for pgoutput messages (logical replication protocol v1 and v2).

Written from the PostgreSQL documentation, "Logical Replication Message Formats", not from
migrator's decoder, so that round-trip tests compare two readings of the specification. It imports
nothing from migrator.

Field types, all big-endian: Byte1 / Int8 (1 byte), Int16, Int32, Int64; String is UTF-8 ended by
a NUL byte. In protocol 2, the Relation (R), Type (Y), Insert (I), Update (U), Delete (D),
Truncate (T) and Message (M) messages carry an Int32 xid right after the type byte when they are
sent inside a streamed transaction (between Stream Start and Stream Stop); pass ``xid=None`` for
a message outside a stream.

TupleData values are given as ``(kind, data)`` pairs: ``("n", None)`` NULL, ``("u", None)``
unchanged TOASTed value, ``("t", b"...")`` text format, ``("b", b"...")`` binary format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

TupleValue = tuple[str, bytes | None]

# Column flag in a Relation message: the column is part of the key.
COLUMN_KEY_FLAG = 1
# Truncate option bits.
TRUNCATE_CASCADE = 1
TRUNCATE_RESTART_IDENTITY = 2
# Logical decoding message flag.
MESSAGE_TRANSACTIONAL = 1

NULL: TupleValue = ("n", None)
UNCHANGED_TOAST: TupleValue = ("u", None)


def text(data: bytes | str) -> TupleValue:
    return ("t", data.encode() if isinstance(data, str) else data)


def binary(data: bytes) -> TupleValue:
    return ("b", data)


# -- field encoders -------------------------------------------------------------------------


def _byte1(value: str) -> bytes:
    encoded = value.encode("ascii")
    if len(encoded) != 1:
        raise ValueError(f"Byte1 needs one ASCII character, got {value!r}")
    return encoded


def _int8(value: int) -> bytes:
    return struct.pack("!B", value)


def _int16(value: int) -> bytes:
    return struct.pack("!h", value)


def _int32(value: int) -> bytes:
    # TransactionId and Oid are unsigned 32-bit; atttypmod and lengths are signed.
    return struct.pack("!I" if value > 0x7FFFFFFF else "!i", value)


def _int64(value: int) -> bytes:
    # XLogRecPtr is unsigned; TimestampTz is signed.
    return struct.pack("!Q" if value > 0x7FFFFFFFFFFFFFFF else "!q", value)


def _string(value: str) -> bytes:
    encoded = value.encode("utf-8")
    if b"\x00" in encoded:
        raise ValueError("a protocol String cannot contain NUL")
    return encoded + b"\x00"


def _timestamp(value: int | datetime) -> bytes:
    """TimestampTz: microseconds since 2000-01-01 00:00 UTC."""
    if isinstance(value, datetime):
        value = (value - PG_EPOCH) // timedelta(microseconds=1)
    return _int64(value)


def _xid(xid: int | None) -> bytes:
    return b"" if xid is None else _int32(xid)


def tuple_data(values: Sequence[TupleValue]) -> bytes:
    """TupleData: Int16 column count, then per column a kind byte and, for 't'/'b', Int32 length + bytes."""
    out = [_int16(len(values))]
    for kind, data in values:
        out.append(_byte1(kind))
        if kind in ("t", "b"):
            assert data is not None
            out.append(_int32(len(data)))
            out.append(data)
        elif kind not in ("n", "u"):
            raise ValueError(f"unknown TupleData kind {kind!r}")
    return b"".join(out)


# -- messages -------------------------------------------------------------------------------


def begin(final_lsn: int, commit_time: int | datetime, xid: int) -> bytes:
    return _byte1("B") + _int64(final_lsn) + _timestamp(commit_time) + _int32(xid)


def commit(commit_lsn: int, end_lsn: int, commit_time: int | datetime, flags: int = 0) -> bytes:
    return _byte1("C") + _int8(flags) + _int64(commit_lsn) + _int64(end_lsn) + _timestamp(commit_time)


def origin(lsn: int, name: str) -> bytes:
    return _byte1("O") + _int64(lsn) + _string(name)


def relation(
    relation_id: int,
    namespace: str,
    name: str,
    replica_identity: str,
    columns: Iterable[tuple[str, int, int, bool]],
    *,
    xid: int | None = None,
) -> bytes:
    """columns: (name, type oid, type modifier, part of the key)."""
    cols = list(columns)
    out = [
        _byte1("R"),
        _xid(xid),
        _int32(relation_id),
        _string(namespace),
        _string(name),
        _byte1(replica_identity),
        _int16(len(cols)),
    ]
    for col_name, type_oid, type_modifier, is_key in cols:
        out += [
            _int8(COLUMN_KEY_FLAG if is_key else 0),
            _string(col_name),
            _int32(type_oid),
            _int32(type_modifier),
        ]
    return b"".join(out)


def type_info(type_oid: int, namespace: str, name: str, *, xid: int | None = None) -> bytes:
    return _byte1("Y") + _xid(xid) + _int32(type_oid) + _string(namespace) + _string(name)


def insert(relation_id: int, new: Sequence[TupleValue], *, xid: int | None = None) -> bytes:
    return _byte1("I") + _xid(xid) + _int32(relation_id) + _byte1("N") + tuple_data(new)


def update(
    relation_id: int,
    new: Sequence[TupleValue],
    *,
    old: Sequence[TupleValue] | None = None,
    old_kind: str = "K",
    xid: int | None = None,
) -> bytes:
    """old_kind: 'K' (old key columns) or 'O' (whole old row); ignored when old is None."""
    out = [_byte1("U"), _xid(xid), _int32(relation_id)]
    if old is not None:
        if old_kind not in ("K", "O"):
            raise ValueError(f"old tuple kind must be K or O, got {old_kind!r}")
        out += [_byte1(old_kind), tuple_data(old)]
    out += [_byte1("N"), tuple_data(new)]
    return b"".join(out)


def delete(
    relation_id: int, old: Sequence[TupleValue], *, old_kind: str = "K", xid: int | None = None
) -> bytes:
    if old_kind not in ("K", "O"):
        raise ValueError(f"old tuple kind must be K or O, got {old_kind!r}")
    return _byte1("D") + _xid(xid) + _int32(relation_id) + _byte1(old_kind) + tuple_data(old)


def truncate(
    relation_ids: Sequence[int],
    *,
    cascade: bool = False,
    restart_identity: bool = False,
    xid: int | None = None,
) -> bytes:
    options = (TRUNCATE_CASCADE if cascade else 0) | (TRUNCATE_RESTART_IDENTITY if restart_identity else 0)
    return (
        _byte1("T")
        + _xid(xid)
        + _int32(len(relation_ids))
        + _int8(options)
        + b"".join(_int32(r) for r in relation_ids)
    )


def message(lsn: int, prefix: str, content: bytes, *, transactional: bool, xid: int | None = None) -> bytes:
    return (
        _byte1("M")
        + _xid(xid)
        + _int8(MESSAGE_TRANSACTIONAL if transactional else 0)
        + _int64(lsn)
        + _string(prefix)
        + _int32(len(content))
        + content
    )


def stream_start(xid: int, first_segment: bool) -> bytes:
    return _byte1("S") + _int32(xid) + _int8(1 if first_segment else 0)


def stream_stop() -> bytes:
    return _byte1("E")


def stream_commit(
    xid: int, commit_lsn: int, end_lsn: int, commit_time: int | datetime, flags: int = 0
) -> bytes:
    return (
        _byte1("c")
        + _int32(xid)
        + _int8(flags)
        + _int64(commit_lsn)
        + _int64(end_lsn)
        + _timestamp(commit_time)
    )


def stream_abort(xid: int, subxid: int) -> bytes:
    """Protocol 2 layout (xid, subxid); protocol 4's abort LSN/time fields are not written."""
    return _byte1("A") + _int32(xid) + _int32(subxid)
