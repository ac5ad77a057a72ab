"""pgoutput decoder against an independent encoder (tests/support/pgoutput_encode.py).

Round trips: random messages of every type (B C O R Y I U D T M S E c A), protocol v1 and v2 (xid
inside a stream), tuples mixing NULL, unchanged TOAST, text and binary values, non-ASCII names.
Robustness: every truncation of a valid message, corrupted messages and arbitrary bytes either
decode or raise SourceError, never IndexError / struct.error / UnicodeDecodeError / OverflowError.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrator.adapters.postgres import pgoutput as pgo
from migrator.errors import SourceError
from tests.support import pgoutput_encode as enc

# -- strategies -----------------------------------------------------------------------------

U32 = st.integers(0, 2**32 - 1)
LSN = st.integers(0, 2**64 - 1)
# TimestampTz values a Python datetime can hold (years 1..9999).
_MIN_US = (datetime(1, 1, 2, tzinfo=UTC) - pgo.PG_EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 30, tzinfo=UTC) - pgo.PG_EPOCH) // timedelta(microseconds=1)
TIMESTAMP_US = st.one_of(st.integers(_MIN_US, _MAX_US), st.sampled_from([0, -1, 1, _MIN_US, _MAX_US]))
# Identifiers: any UTF-8 text without NUL (the protocol's String terminator); includes non-ASCII.
NAME = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
STREAM_XID = st.one_of(st.none(), U32)  # None: outside a stream (v1, or v2 outside S..E)

VALUE = st.one_of(
    st.just(enc.NULL),
    st.just(enc.UNCHANGED_TOAST),
    st.binary(max_size=40).map(enc.text),
    st.binary(max_size=40).map(enc.binary),
)
TUPLE = st.lists(VALUE, max_size=8)


def expected_tuple(values: list[enc.TupleValue]) -> tuple[object, ...]:
    """What the decoder should return for these encoded TupleData values."""
    out: list[object] = []
    for kind, data in values:
        out.append({"n": None, "u": pgo.UNCHANGED}.get(kind, data))
    return tuple(out)


Case = tuple[bytes, pgo.Message, bool]  # (payload, expected message, in_stream)


@st.composite
def begin_case(draw: st.DrawFn) -> Case:
    lsn, ts, xid = draw(LSN), draw(TIMESTAMP_US), draw(U32)
    return enc.begin(lsn, ts, xid), pgo.Begin(lsn, pgo.pg_time(ts), xid), draw(st.booleans())


@st.composite
def commit_case(draw: st.DrawFn) -> Case:
    commit_lsn, end_lsn, ts = draw(LSN), draw(LSN), draw(TIMESTAMP_US)
    return (
        enc.commit(commit_lsn, end_lsn, ts),
        pgo.Commit(commit_lsn, end_lsn, pgo.pg_time(ts)),
        draw(st.booleans()),
    )


@st.composite
def origin_case(draw: st.DrawFn) -> Case:
    lsn, name = draw(LSN), draw(NAME)
    return enc.origin(lsn, name), pgo.Origin(lsn, name), draw(st.booleans())


@st.composite
def relation_case(draw: st.DrawFn) -> Case:
    xid = draw(STREAM_XID)
    rel_id, namespace, name = draw(U32), draw(NAME), draw(NAME)
    identity = draw(st.sampled_from("dnfi"))
    cols = draw(st.lists(st.tuples(NAME, U32, st.integers(-(2**31), 2**31 - 1), st.booleans()), max_size=6))
    expected = pgo.Relation(xid, rel_id, namespace, name, identity, tuple(pgo.Column(*c) for c in cols))
    return enc.relation(rel_id, namespace, name, identity, cols, xid=xid), expected, xid is not None


@st.composite
def type_case(draw: st.DrawFn) -> Case:
    xid, oid, namespace, name = draw(STREAM_XID), draw(U32), draw(NAME), draw(NAME)
    return (
        enc.type_info(oid, namespace, name, xid=xid),
        pgo.TypeInfo(xid, oid, namespace, name),
        xid is not None,
    )


@st.composite
def insert_case(draw: st.DrawFn) -> Case:
    xid, rel_id, new = draw(STREAM_XID), draw(U32), draw(TUPLE)
    return (
        enc.insert(rel_id, new, xid=xid),
        pgo.Insert(xid, rel_id, expected_tuple(new)),
        xid is not None,
    )


@st.composite
def update_case(draw: st.DrawFn) -> Case:
    xid, rel_id, new = draw(STREAM_XID), draw(U32), draw(TUPLE)
    old = draw(st.one_of(st.none(), TUPLE))
    kind = draw(st.sampled_from("KO"))
    expected = pgo.Update(
        xid,
        rel_id,
        None if old is None else expected_tuple(old),
        old is not None and kind == "K",
        expected_tuple(new),
    )
    return enc.update(rel_id, new, old=old, old_kind=kind, xid=xid), expected, xid is not None


@st.composite
def delete_case(draw: st.DrawFn) -> Case:
    xid, rel_id, old = draw(STREAM_XID), draw(U32), draw(TUPLE)
    kind = draw(st.sampled_from("KO"))
    return (
        enc.delete(rel_id, old, old_kind=kind, xid=xid),
        pgo.Delete(xid, rel_id, expected_tuple(old), kind == "K"),
        xid is not None,
    )


@st.composite
def truncate_case(draw: st.DrawFn) -> Case:
    xid, rel_ids = draw(STREAM_XID), draw(st.lists(U32, max_size=6))
    cascade, restart = draw(st.booleans()), draw(st.booleans())
    return (
        enc.truncate(rel_ids, cascade=cascade, restart_identity=restart, xid=xid),
        pgo.Truncate(xid, tuple(rel_ids), cascade, restart),
        xid is not None,
    )


@st.composite
def message_case(draw: st.DrawFn) -> Case:
    xid, lsn, prefix = draw(STREAM_XID), draw(LSN), draw(NAME)
    content, transactional = draw(st.binary(max_size=64)), draw(st.booleans())
    return (
        enc.message(lsn, prefix, content, transactional=transactional, xid=xid),
        pgo.LogicalMessage(xid, transactional, lsn, prefix, content),
        xid is not None,
    )


@st.composite
def stream_start_case(draw: st.DrawFn) -> Case:
    xid, first = draw(U32), draw(st.booleans())
    return enc.stream_start(xid, first), pgo.StreamStart(xid, first), draw(st.booleans())


@st.composite
def stream_stop_case(draw: st.DrawFn) -> Case:
    return enc.stream_stop(), pgo.StreamStop(), draw(st.booleans())


@st.composite
def stream_commit_case(draw: st.DrawFn) -> Case:
    xid, commit_lsn, end_lsn, ts = draw(U32), draw(LSN), draw(LSN), draw(TIMESTAMP_US)
    return (
        enc.stream_commit(xid, commit_lsn, end_lsn, ts),
        pgo.StreamCommit(xid, commit_lsn, end_lsn, pgo.pg_time(ts)),
        draw(st.booleans()),
    )


@st.composite
def stream_abort_case(draw: st.DrawFn) -> Case:
    xid = draw(U32)
    subxid = draw(st.one_of(st.just(xid), U32))
    return enc.stream_abort(xid, subxid), pgo.StreamAbort(xid, subxid), draw(st.booleans())


CASES = {
    "B": begin_case(),
    "C": commit_case(),
    "O": origin_case(),
    "R": relation_case(),
    "Y": type_case(),
    "I": insert_case(),
    "U": update_case(),
    "D": delete_case(),
    "T": truncate_case(),
    "M": message_case(),
    "S": stream_start_case(),
    "E": stream_stop_case(),
    "c": stream_commit_case(),
    "A": stream_abort_case(),
}
ANY_CASE = st.one_of(*CASES.values())


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CASES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip(kind: str, data: st.DataObject) -> None:
    payload, expected, in_stream = data.draw(CASES[kind])
    assert payload[:1] == kind.encode()
    assert pgo.decode(payload, in_stream=in_stream) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_CASE, min_size=1, max_size=10))
def test_round_trip_sequence(cases: list[Case]) -> None:
    # Messages of all kinds back to back, each decoded from its own payload, in any mix of modes.
    decoded = [pgo.decode(payload, in_stream=in_stream) for payload, _, in_stream in cases]
    assert decoded == [expected for _, expected, _ in cases]


def test_known_bytes_insert_in_stream() -> None:
    # Written out by hand from the documented layout, so the encoder itself is checked too.
    payload = (
        b"I"
        + b"\x00\x00\x02\xd2"  # xid 722 (streamed, protocol 2)
        + b"\x00\x00\x40\x00"  # relation oid 16384
        + b"N"
        + b"\x00\x04"  # 4 columns
        + b"t\x00\x00\x00\x0242"
        + b"n"
        + b"u"
        + b"b\x00\x00\x00\x03\x00\xff\x01"
    )
    assert (
        enc.insert(
            16384, [enc.text("42"), enc.NULL, enc.UNCHANGED_TOAST, enc.binary(b"\x00\xff\x01")], xid=722
        )
        == payload
    )
    message = pgo.decode(payload, in_stream=True)
    assert message == pgo.Insert(722, 16384, (b"42", None, pgo.UNCHANGED, b"\x00\xff\x01"))
    assert isinstance(message, pgo.Insert)
    assert message.new[2] is pgo.UNCHANGED


def test_known_bytes_relation_and_commit() -> None:
    relation = (
        b"R\x00\x00\x40\x00public\x00caf\xc3\xa9\x00d\x00\x02"
        + b"\x01id\x00\x00\x00\x00\x17\xff\xff\xff\xff"  # key column "id" int4, typmod -1
        + b"\x00n\xc3\xb6m\x00\x00\x00\x04\x13\x00\x00\x00\x2a"  # "nöm" varchar(38): typmod 42
    )
    assert (
        enc.relation(16384, "public", "café", "d", [("id", 23, -1, True), ("nöm", 1043, 42, False)])
        == relation
    )
    decoded = pgo.decode(relation)
    assert decoded == pgo.Relation(
        None,
        16384,
        "public",
        "café",
        "d",
        (pgo.Column("id", 23, -1, True), pgo.Column("nöm", 1043, 42, False)),
    )
    assert isinstance(decoded, pgo.Relation)
    assert decoded.table == "public.café"

    commit = (
        b"C\x00" + (0x16B3748).to_bytes(8, "big") + (0x16B3780).to_bytes(8, "big") + (1).to_bytes(8, "big")
    )
    assert pgo.decode(commit) == pgo.Commit(
        0x16B3748, 0x16B3780, datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    )


def test_stream_abort_top_level_and_subtransaction() -> None:
    assert pgo.decode(enc.stream_abort(900, 900)) == pgo.StreamAbort(900, 900)
    assert pgo.decode(enc.stream_abort(900, 901)) == pgo.StreamAbort(900, 901)


def test_unsigned_fields_keep_their_high_bit() -> None:
    # xids, OIDs and LSNs are unsigned on the wire: the high bit must not make them negative.
    top = 2**32 - 1
    assert pgo.decode(enc.begin(2**64 - 1, 0, top)) == pgo.Begin(2**64 - 1, pgo.PG_EPOCH, top)
    assert pgo.decode(enc.insert(top, [], xid=top), in_stream=True) == pgo.Insert(top, top, ())
    assert pgo.decode(enc.truncate([top, 1])) == pgo.Truncate(None, (top, 1), False, False)


def test_negative_timestamps_before_the_pg_epoch() -> None:
    assert pgo.decode(enc.begin(1, -1, 5)) == pgo.Begin(
        1, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 5
    )


# -- truncated and malformed input ----------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_CASE)
def test_every_truncation_raises_source_error(case: Case) -> None:
    payload, _, in_stream = case
    for cut in range(len(payload)):
        with pytest.raises(SourceError):
            pgo.decode(payload[:cut], in_stream=in_stream)


def _decode_or_source_error(payload: bytes, in_stream: bool) -> None:
    try:
        message = pgo.decode(payload, in_stream=in_stream)
    except SourceError:
        return
    assert isinstance(message, pgo.Message)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64), st.booleans())
@example(b"", False)
@example(b"Z", False)
@example(b"M\x01" + b"\x00" * 8 + b"p\x00\xff\xff\xff\xff", False)  # negative content length
@example(b"B" + b"\x00" * 8 + b"\x7f" + b"\xff" * 7 + b"\x00\x00\x00\x01", False)  # timestamp overflow
@example(b"O" + b"\x00" * 8 + b"\xff\xfe\x00", False)  # invalid UTF-8 name
def test_arbitrary_bytes_decode_or_raise_source_error(payload: bytes, in_stream: bool) -> None:
    _decode_or_source_error(payload, in_stream)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(sorted(CASES)), st.binary(max_size=80), st.booleans())
def test_known_type_byte_then_arbitrary_bytes(kind: str, body: bytes, in_stream: bool) -> None:
    # A valid type byte gets the fuzzer past the dispatch into every message's field parsing.
    _decode_or_source_error(kind.encode() + body, in_stream)


@settings(max_examples=1000, deadline=None)
@given(ANY_CASE, st.data())
def test_corrupted_valid_messages(case: Case, data: st.DataObject) -> None:
    payload, _, in_stream = case
    corrupted = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        if not corrupted:
            break
        index = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[index] = data.draw(st.integers(0, 255))
    _decode_or_source_error(bytes(corrupted), in_stream)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"Z", "unknown pgoutput message type"),
        (b"I\x00\x00\x00\x01X\x00\x00", "Insert without a new tuple"),
        (b"U\x00\x00\x00\x01X\x00\x00", "Update"),
        (b"D\x00\x00\x00\x01N\x00\x00", "Delete"),
        (b"I\x00\x00\x00\x01N\x00\x01x", "unknown column kind"),
    ],
)
def test_malformed_messages_raise_source_error(payload: bytes, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        pgo.decode(payload)


@pytest.mark.parametrize(
    "payload",
    [
        # A negative length must not be read as an empty value (or move the reader backwards).
        b"I\x00\x00\x00\x01N\x00\x02t\xff\xff\xff\xfet\x00\x00\x00\x01a",
        # ... -11 steps back onto the first value: the old decoder returned (b"a", b"", b"a").
        b"I\x00\x00\x00\x01N\x00\x03t\x00\x00\x00\x01at\xff\xff\xff\xf5",
        b"M\x00" + b"\x00" * 8 + b"p\x00\xff\xff\xff\xff",
        # Negative column / relation counts are not "zero columns".
        b"I\x00\x00\x00\x01N\xff\xff",
        b"R\x00\x00\x00\x01s\x00t\x00d\xff\xff",
        b"T\xff\xff\xff\xff\x00",
        # Names that are not UTF-8.
        b"O" + b"\x00" * 8 + b"\xc3\x28\x00",
        b"Y\x00\x00\x00\x01\xff\x00t\x00",
        # A commit time no datetime can hold.
        b"C\x00" + b"\x00" * 16 + b"\x7f\xff\xff\xff\xff\xff\xff\xff",
        b"B" + b"\x00" * 8 + b"\x80" + b"\x00" * 7 + b"\x00\x00\x00\x01",
    ],
)
def test_invalid_fields_raise_source_error(payload: bytes) -> None:
    with pytest.raises(SourceError):
        pgo.decode(payload)


def test_streamed_message_decoded_outside_a_stream_is_not_silently_accepted() -> None:
    # An Insert carrying an xid read as v1 would take the xid for the relation id; here the byte
    # after it is not 'N', so the decoder must refuse rather than invent a message.
    payload = enc.insert(16384, [enc.text("1")], xid=0x01020304)
    assert pgo.decode(payload, in_stream=True) == pgo.Insert(0x01020304, 16384, (b"1",))
    with pytest.raises(SourceError):
        pgo.decode(payload, in_stream=False)


# -- rows: changes decoded with a RowReader, as CDC decodes them ----------------------------


def _reference_row(
    names: list[str],
    parsers: list[pgo.Parse | None],
    is_key: list[bool],
    values: tuple[object, ...],
    key_only: bool,
) -> pgo.Row:
    """What CDC built from a raw tuple before RowReader existed: unparsed columns and, for a 'K'
    tuple, non-key columns left out; NULL and UNCHANGED kept as they are."""
    row: pgo.Row = {}
    for name, parse, value, key in zip(names, parsers, values, is_key, strict=True):
        if parse is None or (key_only and not key):
            continue
        row[name] = value if value is None or value is pgo.UNCHANGED else parse(value)  # type: ignore[arg-type]
    return row


def _tagged(data: bytes) -> tuple[str, bytes]:
    return ("parsed", data)


@st.composite
def row_case(draw: st.DrawFn) -> tuple[bytes, pgo.Message, pgo.RowReader, int, bool]:
    """A change of a relation with a reader: (payload, expected RowChange, reader, relation id,
    in_stream). Parsers tag what they were given; some columns have none (not mapped)."""
    width = draw(st.integers(0, 6))
    names = [f"c{i}" for i in range(width)]
    parsers: list[pgo.Parse | None] = [draw(st.sampled_from([_tagged, None])) for _ in names]
    is_key = [draw(st.booleans()) for _ in names]
    values = st.lists(VALUE, min_size=width, max_size=width)
    xid, rel_id, kind = draw(STREAM_XID), draw(U32), draw(st.sampled_from("IUD"))
    new, old = draw(values), draw(values)
    old_kind = draw(st.sampled_from("KO"))

    def row(encoded: list[enc.TupleValue], key_only: bool = False) -> pgo.Row:
        return _reference_row(names, parsers, is_key, expected_tuple(encoded), key_only)

    if kind == "I":
        payload = enc.insert(rel_id, new, xid=xid)
        expected = pgo.RowChange("I", xid, rel_id, None, False, row(new))
    elif kind == "U":
        has_old = draw(st.booleans())
        payload = enc.update(rel_id, new, old=old if has_old else None, old_kind=old_kind, xid=xid)
        old_is_key = has_old and old_kind == "K"
        expected = pgo.RowChange(
            "U", xid, rel_id, row(old, old_is_key) if has_old else None, old_is_key, row(new)
        )
    else:
        payload = enc.delete(rel_id, old, old_kind=old_kind, xid=xid)
        expected = pgo.RowChange("D", xid, rel_id, row(old, old_kind == "K"), old_kind == "K", None)
    return payload, expected, pgo.RowReader(names, parsers, is_key), rel_id, xid is not None


@settings(max_examples=500, deadline=None)
@given(row_case())
def test_changes_decode_into_rows_as_cdc_built_them(
    case: tuple[bytes, pgo.Message, pgo.RowReader, int, bool],
) -> None:
    payload, expected, reader, rel_id, in_stream = case
    decoded = pgo.decode(payload, in_stream=in_stream, readers={rel_id: reader})
    assert decoded == expected
    assert isinstance(decoded, pgo.RowChange)
    for row in (decoded.old, decoded.new):
        for value in (row or {}).values():  # the markers themselves, not copies
            assert value is None or value is pgo.UNCHANGED or value[0] == "parsed"  # type: ignore[index]
    # A relation without a reader still decodes into raw values.
    assert not isinstance(pgo.decode(payload, in_stream=in_stream, readers={}), pgo.RowChange)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_case())
def test_every_truncation_of_a_row_change_raises_source_error(
    case: tuple[bytes, pgo.Message, pgo.RowReader, int, bool],
) -> None:
    payload, _, reader, rel_id, in_stream = case
    for cut in range(len(payload)):
        with pytest.raises(SourceError):
            pgo.decode(payload[:cut], in_stream=in_stream, readers={rel_id: reader})


@settings(max_examples=1000, deadline=None)
@given(row_case(), st.data())
def test_corrupted_row_changes_decode_or_raise_source_error(
    case: tuple[bytes, pgo.Message, pgo.RowReader, int, bool], data: st.DataObject
) -> None:
    payload, _, reader, rel_id, in_stream = case
    corrupted = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(SourceError):
        pgo.decode(bytes(corrupted), in_stream=in_stream, readers={rel_id: reader})


def test_a_tuple_wider_or_narrower_than_its_relation_raises_source_error() -> None:
    reader = pgo.RowReader(["id", "name"], [bytes, bytes], [True, False])
    for values in ([enc.text("1")], [enc.text("1"), enc.NULL, enc.NULL]):
        with pytest.raises(SourceError, match="columns"):
            pgo.decode(enc.insert(7, values), readers={7: reader})


@pytest.mark.parametrize(
    "payload",
    [
        b"I\x00\x00\x00\x07N\x00\x02t\xff\xff\xff\xfet\x00\x00\x00\x01a",  # negative length
        b"I\x00\x00\x00\x07N\x00\x02t\x00\x00\x00\x01at\xff\xff\xff\xf5",  # ... stepping back
        b"I\x00\x00\x00\x07N\x00\x02t\x00\x00\x00\x01ax",  # unknown column kind
        b"D\x00\x00\x00\x07N\x00\x00",  # a Delete needs an old tuple
        b"U\x00\x00\x00\x07K\x00\x02t\x00\x00\x00\x01an",  # an Update needs a new tuple
    ],
)
def test_invalid_row_changes_raise_source_error(payload: bytes) -> None:
    reader = pgo.RowReader(["id", "name"], [bytes, bytes], [True, False])
    with pytest.raises(SourceError):
        pgo.decode(payload, readers={7: reader})
