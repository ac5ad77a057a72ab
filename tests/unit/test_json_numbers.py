"""JSON numbers read exactly (json_values.loads_numbers), compared as numbers (same_number), and
stored in BSON as a double only where the double prints back as the same number
(adapters/documents.py). Expectations written by hand."""

from __future__ import annotations

import math
from decimal import Decimal

import bson
import pytest
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument

from migrator.adapters.documents import CODEC
from migrator.adapters.json_values import JsonNumber, loads_numbers, same_number
from migrator.adapters.postgres_target.comparison import same_value


def _stored(text: str) -> object:
    return bson.decode(bson.encode({"v": loads_numbers(text)}, codec_options=CODEC), codec_options=CODEC)["v"]


def test_numbers_are_read_with_their_digits() -> None:
    read = loads_numbers("[1, 9223372036854775808, 0.1000000000000000055511151231257827, 1e400, -0.0, true]")
    assert read[0] == 1 and type(read[0]) is int
    assert [type(v) for v in read[1:5]] == [JsonNumber] * 4
    assert [str(v) for v in read[1:5]] == [
        "9223372036854775808",
        "0.1000000000000000055511151231257827",
        "1E+400",
        "-0.0",
    ]
    assert read[5] is True


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("12345678901234567890123", Decimal128("12345678901234567890123")),
        ("0.1000000000000000055511151231257827", Decimal128("0.1000000000000000055511151231257827")),
        ("1e400", Decimal128("1E+400")),
        ("1.5", 1.5),
        ("1.0", 1.0),
        ("0.1", 0.1),
    ],
)
def test_bson_holds_a_double_only_where_it_prints_back_the_number(text: str, stored: object) -> None:
    got = _stored(text)
    assert type(got) is type(stored) and got == stored


def test_negative_zero_stays_a_signed_double_and_too_many_digits_are_refused() -> None:
    zero = _stored("-0.0")
    assert isinstance(zero, float) and math.copysign(1.0, zero) == -1.0
    with pytest.raises(InvalidDocument):
        _stored("1.00000000000000000000000000000000001")


def test_json_numbers_compare_as_numbers() -> None:
    assert same_number(JsonNumber("1E+400"), JsonNumber("1" + "0" * 400))
    assert same_number(JsonNumber("-0.0"), JsonNumber("0.0")) and same_number(JsonNumber("1.0"), 1)
    assert not same_number(JsonNumber("12345678901234567890123"), JsonNumber("12345678901234567890124"))
    assert same_number(0.1, JsonNumber("0.1000000000000000055511151231257827"))  # a float at its precision
    assert not same_number(JsonNumber("1"), True) and not same_number(JsonNumber("1"), "1")
    assert same_value({"a": [JsonNumber("2.50")]}, {"a": [JsonNumber("2.5")]})
    assert not same_value(Decimal("2.50"), Decimal("2.5"))  # a numeric column keeps its scale
