"""The PostgreSQL WAL position type: PostgreSQL's `%X/%X` text form <-> the 64-bit integer."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.adapters.postgres.lsn import Lsn

LSN = st.integers(0, 2**64 - 1)


@given(LSN)
def test_int_str_round_trip(value: int) -> None:
    text = str(Lsn(value))
    assert Lsn.parse(text).value == value
    high, low = text.split("/")
    assert high == high.upper() and low == low.upper()
    assert int(high, 16) < 2**32 and int(low, 16) < 2**32


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_str_int_round_trip(high: int, low: int) -> None:
    text = f"{high:X}/{low:X}"  # PostgreSQL's %X/%X form: upper case, no padding
    assert str(Lsn.parse(text)) == text
    assert Lsn.parse(text.lower()).value == (high << 32) | low


@pytest.mark.parametrize(
    ("text", "value"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("1/0", 2**32), ("FFFFFFFF/FFFFFFFF", 2**64 - 1)],
)
def test_known_values(text: str, value: int) -> None:
    assert Lsn.parse(text).value == value
    assert int(Lsn.parse(text)) == value
    assert str(Lsn(value)) == text
    assert f"{Lsn(value)}" == text


@given(LSN, LSN)
def test_ordered_as_the_wal(a: int, b: int) -> None:
    assert (Lsn(a) < Lsn(b)) == (a < b)
    assert (Lsn(a) == Lsn(b)) == (a == b)
    assert (Lsn.parse(str(Lsn(a))) <= Lsn.parse(str(Lsn(b)))) == (a <= b)
    assert max([str(Lsn(a)), str(Lsn(b))], key=Lsn.parse) == str(Lsn(max(a, b)))


def test_compares_by_value_not_text() -> None:
    # text order would put "9/0" after "10/0"
    assert Lsn.parse("9/0") < Lsn.parse("10/0")
    assert Lsn.parse("0/a") == Lsn.parse("0/A")
    assert hash(Lsn.parse("0/a")) == hash(Lsn(10))


def test_immutable() -> None:
    lsn = Lsn(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lsn.value = 2  # type: ignore[misc]


@pytest.mark.parametrize("text", ["", "16B3748", "x/0", "0/", "/0"])
def test_parse_refuses_what_is_not_an_lsn(text: str) -> None:
    with pytest.raises(ValueError):
        Lsn.parse(text)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_out_of_range_refused(value: int) -> None:
    with pytest.raises(ValueError):
        Lsn(value)
