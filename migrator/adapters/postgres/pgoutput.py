"""Decoder for the pgoutput logical replication protocol, versions 1 and 2.

Pure functions on bytes, no I/O. Message formats: PostgreSQL documentation, "Logical
Replication Message Formats". In protocol 2, changes inside a streamed (in-progress)
transaction carry the transaction's xid after the message type; the caller says whether
a message is inside such a stream (between Stream Start and Stream Stop).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from migrator.errors import SourceError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# A column value in a tuple: None for NULL, UNCHANGED for an unchanged TOASTed value
# (leave the field out of the update), bytes for text or binary data.
UNCHANGED = object()


def pg_time(microseconds: int) -> datetime:
    try:
        return PG_EPOCH + timedelta(microseconds=microseconds)
    except OverflowError:
        raise SourceError(
            f"pgoutput timestamp out of range: {microseconds} microseconds since 2000-01-01"
        ) from None


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class Relation:
    xid: int | None
    relation_id: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]

    @property
    def table(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class TypeInfo:
    xid: int | None
    type_oid: int
    namespace: str
    name: str


Tuple = tuple[object, ...]
Row = dict[str, Any]  # column name -> parsed value, None, or UNCHANGED (as mapping.changes.Row)


@dataclass(slots=True)
class Insert:  # not frozen: frozen dataclasses are slow to build, and this is per change
    xid: int | None
    relation_id: int
    new: Tuple


@dataclass(slots=True)
class Update:  # not frozen: frozen dataclasses are slow to build, and this is per change
    xid: int | None
    relation_id: int
    old: Tuple | None  # key columns ('K') or the whole old row ('O'); None when the key did not change
    old_is_key: bool
    new: Tuple


@dataclass(slots=True)
class Delete:  # not frozen: frozen dataclasses are slow to build, and this is per change
    xid: int | None
    relation_id: int
    old: Tuple
    old_is_key: bool


@dataclass(slots=True)
class RowChange:  # not frozen: built for every change
    """An Insert ('I'), Update ('U') or Delete ('D') decoded with its relation's RowReader:
    the tuples arrive as Rows of parsed values. `old` of a Delete is the key columns ('K', the
    other columns left out) or the whole old row ('O'); of an Update, also None when the key
    did not change."""

    kind: str
    xid: int | None
    relation_id: int
    old: Row | None
    old_is_key: bool
    new: Row | None  # None for a Delete


@dataclass(frozen=True)
class Truncate:
    xid: int | None
    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    xid: int | None
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True)
class StreamStop:
    pass


@dataclass(frozen=True)
class StreamCommit:
    xid: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class StreamAbort:
    xid: int
    subxid: int


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | RowChange
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0:
            raise SourceError(f"pgoutput message malformed: negative length {n} at offset {self.pos}")
        end = self.pos + n
        if end > len(self.data):
            raise SourceError(f"pgoutput message truncated: needed {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self._take(1)[0]

    def char(self) -> str:
        return chr(self.byte())

    def int16(self) -> int:
        return int(struct.unpack("!h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self._take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack("!I", self._take(4))[0])

    def count(self, value: int) -> int:
        if value < 0:
            raise SourceError(f"pgoutput message malformed: negative count {value} at offset {self.pos}")
        return value

    def int64(self) -> int:
        return int(struct.unpack("!q", self._take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack("!Q", self._take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise SourceError("pgoutput message truncated: unterminated string")
        try:
            text = self.data[self.pos : end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"pgoutput string is not valid UTF-8 at offset {self.pos}: {exc}") from None
        self.pos = end + 1
        return text


_I16 = struct.Struct("!h")
_U32 = struct.Struct("!I")
# A value's length, read unsigned: a negative length then lies beyond the end of any message,
# so the one bounds check per value also refuses it.
_LENGTH = _U32


def _tuple_at(data: bytes, pos: int) -> tuple[Tuple, int]:
    """TupleData at `pos`: the hot path of decoding (every change), so a tight loop over
    precompiled structs rather than reader method calls."""
    size = len(data)
    length_at = _LENGTH.unpack_from
    try:
        (count,) = _I16.unpack_from(data, pos)
        pos += 2
        if count < 0:
            raise SourceError(f"pgoutput tuple has a negative column count ({count})")
        values: list[object] = []
        append = values.append
        for _ in range(count):
            kind = data[pos]
            if kind == 116 or kind == 98:  # 't' text, 'b' binary
                (length,) = length_at(data, pos + 1)
                start = pos + 5
                pos = start + length
                if pos > size:
                    raise _truncated_value(length, start)
                append(data[start:pos])
            elif kind == 110:  # 'n' NULL
                append(None)
                pos += 1
            elif kind == 117:  # 'u' unchanged TOASTed value
                append(UNCHANGED)
                pos += 1
            else:
                raise SourceError(f"pgoutput tuple has an unknown column kind {chr(kind)!r}")
    except (struct.error, IndexError):
        raise SourceError(f"pgoutput message truncated inside tuple data at offset {pos}") from None
    return tuple(values), pos


def _truncated_value(length: int, pos: int) -> SourceError:
    if length >= 2**31:
        return SourceError(f"pgoutput message malformed: negative length {length - 2**32} at offset {pos}")
    return SourceError(f"pgoutput message truncated: column value of {length} bytes at offset {pos}")


Parse = Callable[[bytes], Any]


class RowReader:
    """Reads one relation's TupleData straight into a Row, parsing each value on the way.

    CDC spends most of its time here (every column of every change), so this is one pass over
    the bytes: no tuple of raw values in between, no per-column objects but the value itself,
    and each column's parser is a single call chosen when the Relation message arrived.
    A column whose parser is None is left out of the rows (it is not mapped).
    """

    __slots__ = ("_columns", "_keys", "_left_out", "_width")

    def __init__(self, names: Sequence[str], parsers: Sequence[Parse | None], is_key: Sequence[bool]) -> None:
        if not len(names) == len(parsers) == len(is_key):
            raise ValueError("one name, parser and key flag per column")
        # Left-out columns are parsed as the bytes they are, then deleted from the row: cheaper
        # than a test per column on the path every column takes.
        self._columns = tuple((name, parse or bytes) for name, parse in zip(names, parsers, strict=True))
        self._width = len(names)
        self._left_out = tuple(name for name, parse in zip(names, parsers, strict=True) if parse is None)
        self._keys = frozenset(
            name for name, parse, key in zip(names, parsers, is_key, strict=True) if key and parse
        )

    def read(self, data: bytes, pos: int) -> tuple[Row, int]:
        """The Row of the TupleData at `pos`, and the position after it."""
        size = len(data)
        length_at = _LENGTH.unpack_from
        row: Row = {}
        try:
            (count,) = _I16.unpack_from(data, pos)
            if count != self._width:
                raise SourceError(f"pgoutput tuple has {count} columns, its Relation message {self._width}")
            pos += 2
            for name, parse in self._columns:
                kind = data[pos]
                if kind == 116 or kind == 98:  # 't' text ('b' binary is never requested)
                    (length,) = length_at(data, pos + 1)
                    start = pos + 5
                    pos = start + length
                    if pos > size:
                        raise _truncated_value(length, start)
                    row[name] = parse(data[start:pos])
                elif kind == 110:  # 'n' NULL
                    row[name] = None
                    pos += 1
                elif kind == 117:  # 'u' unchanged TOASTed value
                    row[name] = UNCHANGED
                    pos += 1
                else:
                    raise SourceError(f"pgoutput tuple has an unknown column kind {chr(kind)!r}")
        except (struct.error, IndexError):
            raise SourceError(f"pgoutput message truncated inside tuple data at offset {pos}") from None
        for name in self._left_out:
            del row[name]
        return row, pos

    def read_key(self, data: bytes, pos: int) -> tuple[Row, int]:
        """An old 'K' tuple: only the replica identity columns. The others arrive as NULL and
        are left out, so that they are not taken for values."""
        row, pos = self.read(data, pos)
        return {name: value for name, value in row.items() if name in self._keys}, pos


def _change_header(payload: bytes, in_stream: bool) -> tuple[int | None, int, int, int]:
    """xid (inside a stream), relation id, the first tuple marker and the position after it."""
    try:
        pos = 1
        xid: int | None = None
        if in_stream:
            (xid,) = _U32.unpack_from(payload, pos)
            pos += 4
        (relation_id,) = _U32.unpack_from(payload, pos)
        return xid, relation_id, payload[pos + 4], pos + 5
    except (struct.error, IndexError):
        raise SourceError("pgoutput message truncated in its header") from None


def _decode_change(payload: bytes, kind: int, in_stream: bool) -> Message:
    """Insert, Update, Delete without the general reader: they are nearly every message."""
    xid, relation_id, marker, pos = _change_header(payload, in_stream)
    if kind == 73:  # 'I'
        if marker != 78:
            raise SourceError("pgoutput Insert without a new tuple")
        new, _ = _tuple_at(payload, pos)
        return Insert(xid, relation_id, new)
    if kind == 85:  # 'U'
        old: Tuple | None = None
        old_is_key = False
        if marker in (75, 79):  # 'K', 'O'
            old_is_key = marker == 75
            old, pos = _tuple_at(payload, pos)
            if pos >= len(payload):
                raise SourceError("pgoutput message truncated: Update without a new tuple")
            marker = payload[pos]
            pos += 1
        if marker != 78:
            raise SourceError(f"pgoutput Update: expected a new tuple, found {chr(marker)!r}")
        new, _ = _tuple_at(payload, pos)
        return Update(xid, relation_id, old, old_is_key, new)
    if marker not in (75, 79):
        raise SourceError(f"pgoutput Delete: expected an old tuple, found {chr(marker)!r}")
    old_row, _ = _tuple_at(payload, pos)
    return Delete(xid, relation_id, old_row, marker == 75)


def _decode_row_change(
    payload: bytes, kind: int, in_stream: bool, readers: Mapping[int, RowReader]
) -> Message:
    """Insert, Update, Delete as a RowChange, when `readers` holds a reader for the relation
    (otherwise as the raw-value messages)."""
    xid, relation_id, marker, pos = _change_header(payload, in_stream)
    reader = readers.get(relation_id)
    if reader is None:
        return _decode_change(payload, kind, in_stream)
    if kind == 73:  # 'I': by far the most common, so first and without detours
        if marker != 78:
            raise SourceError("pgoutput Insert without a new tuple")
        return RowChange("I", xid, relation_id, None, False, reader.read(payload, pos)[0])
    old: Row | None = None
    old_is_key = marker == 75  # 'K'
    if old_is_key or marker == 79:  # 'O'
        old, pos = reader.read_key(payload, pos) if old_is_key else reader.read(payload, pos)
        if kind == 68:  # 'D'
            return RowChange("D", xid, relation_id, old, old_is_key, None)
        if pos >= len(payload):
            raise SourceError("pgoutput message truncated: Update without a new tuple")
        marker = payload[pos]
        pos += 1
    elif kind == 68:
        raise SourceError(f"pgoutput Delete: expected an old tuple, found {chr(marker)!r}")
    if marker != 78:
        raise SourceError(f"pgoutput Update: expected a new tuple, found {chr(marker)!r}")
    return RowChange("U", xid, relation_id, old, old_is_key, reader.read(payload, pos)[0])


def decode(
    payload: bytes, *, in_stream: bool = False, readers: Mapping[int, RowReader] | None = None
) -> Message:
    """Decode one pgoutput message. `in_stream`: between Stream Start and Stream Stop (v2).
    `readers`, by relation id: an Insert, Update or Delete of a relation found there is
    decoded as a RowChange of parsed values; without a reader, with its raw values."""
    if not payload:
        raise SourceError("empty pgoutput message")
    first = payload[0]
    if first == 73 or first == 85 or first == 68:  # 'I' 'U' 'D'
        if readers is not None:
            return _decode_row_change(payload, first, in_stream, readers)
        return _decode_change(payload, first, in_stream)
    decoder = _DECODERS.get(first)
    if decoder is None:
        raise SourceError(f"unknown pgoutput message type {chr(first)!r}")
    r = _Reader(payload)
    r.byte()  # the message type
    return decoder(r, in_stream)


# The other message types, by their type byte; each decoder reads what follows that byte.
# ('I', 'U', 'D' never come here: decode() takes them first, as the CDC hot path.)


def _begin(r: _Reader, in_stream: bool) -> Message:
    return Begin(r.uint64(), pg_time(r.int64()), r.uint32())


def _commit(r: _Reader, in_stream: bool) -> Message:
    r.byte()  # flags, unused
    return Commit(r.uint64(), r.uint64(), pg_time(r.int64()))


def _origin(r: _Reader, in_stream: bool) -> Message:
    return Origin(r.uint64(), r.string())


def _relation(r: _Reader, in_stream: bool) -> Message:
    x = r.uint32() if in_stream else None
    relation_id, namespace, name = r.uint32(), r.string(), r.string()
    identity = r.char()
    columns = []
    for _ in range(r.count(r.int16())):
        flags = r.byte()
        columns.append(Column(r.string(), r.uint32(), r.int32(), bool(flags & 1)))
    return Relation(x, relation_id, namespace, name, identity, tuple(columns))


def _type(r: _Reader, in_stream: bool) -> Message:
    x = r.uint32() if in_stream else None
    return TypeInfo(x, r.uint32(), r.string(), r.string())


def _truncate(r: _Reader, in_stream: bool) -> Message:
    x = r.uint32() if in_stream else None
    count = r.count(r.int32())
    options = r.byte()
    relation_ids = tuple(r.uint32() for _ in range(count))
    return Truncate(x, relation_ids, bool(options & 1), bool(options & 2))


def _logical_message(r: _Reader, in_stream: bool) -> Message:
    x = r.uint32() if in_stream else None
    flags = r.byte()
    lsn = r.uint64()
    prefix = r.string()
    content = r._take(r.int32())
    return LogicalMessage(x, bool(flags & 1), lsn, prefix, content)


def _stream_start(r: _Reader, in_stream: bool) -> Message:
    return StreamStart(r.uint32(), bool(r.byte()))


def _stream_stop(r: _Reader, in_stream: bool) -> Message:
    return StreamStop()


def _stream_commit(r: _Reader, in_stream: bool) -> Message:
    x = r.uint32()
    r.byte()
    return StreamCommit(x, r.uint64(), r.uint64(), pg_time(r.int64()))


def _stream_abort(r: _Reader, in_stream: bool) -> Message:
    return StreamAbort(r.uint32(), r.uint32())


_DECODERS: dict[int, Callable[[_Reader, bool], Message]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("T"): _truncate,
    ord("M"): _logical_message,
    ord("S"): _stream_start,
    ord("E"): _stream_stop,
    ord("c"): _stream_commit,
    ord("A"): _stream_abort,
}
