"""The PostgreSQL target's comparison (migrator/adapters/postgres_target/comparison.py): a MySQL
source's forms of bigint unsigned, TIME and CHAR equal the PostgreSQL column's values they hold,
and only those; every other pair still compares type for type. Expectations written by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from bson.int64 import Int64

from migrator.adapters.json_values import JsonText, JsonTexts
from migrator.adapters.postgres_target.comparison import Padded, same, same_value
from migrator.adapters.postgres_target.rows import decode, encode

SAME = [
    (Int64(0), Decimal("0")),
    (Decimal("18446744073709551615"), Decimal("18446744073709551615")),
    ("-838:59:59.000000", "PT-838H-59M-59S"),
    ("838:59:59.999999", "PT838H59M59.999999S"),
    ("-00:00:00.000001", "PT-0.000001S"),
    ("-12:00:00.500000", "PT-12H-0.5S"),
    ("00:00:00", "PT0S"),
    ("ab", Padded("ab   ")),  # a character(n) column's padding (the target reader's Padded)
    ("", Padded("     ")),
    ("ab   ", Padded("ab   ")),  # a PostgreSQL source reads character(n) padded too
    ({"s": ["a", "c"], "t": "13:14:15"}, {"t": "PT13H14M15S", "s": ["a", "c"]}),
    # A json[] as its elements' text (the source's JsonTexts, the target reader's list).
    (
        JsonTexts([JsonText('{"b": 1, "a": 2}'), None, JsonText("null")]),
        [JsonText('{"b": 1, "a": 2}'), None, JsonText("null")],
    ),
    (JsonTexts([JsonTexts([JsonText("1.50")])]), [[JsonText("1.50")]]),
]
DIFFERENT = [
    (Int64(1), Decimal("1.0")),  # a numeric keeps its scale
    (Int64(1), Decimal("2")),
    (True, Decimal("1")),  # a bool is not an integer
    (Int64(1), 1.0),
    ("13:14:15", "PT13H14M16S"),
    ("13:14:15", "13:14:15.000001"),
    ("PT1H", "01:00:00"),  # the target's ISO form stands only on the target's side
    ("ab", Padded("zz   ")),
    ("ab ", Padded("ab")),
    ("ab", Padded("ab\t")),
    ("ab", "ab   "),  # a varchar or text value with blanks added is another value
    ("", " "),
    ("ab", "ab "),
    ({"s": ["a", "c"]}, {"s": ["a"]}),
    ({"a": 1}, {"a": 1, "b": 2}),
    (JsonTexts([JsonText('{"b": 1, "a": 2}')]), [JsonText('{"a": 2, "b": 1}')]),  # key order
    (JsonTexts([JsonText("1.50")]), [JsonText("1.5")]),  # a number's scale
    (JsonTexts([JsonText("[1,  2]")]), [JsonText("[1, 2]")]),  # json keeps whitespace
    (JsonTexts([None]), [JsonText("null")]),  # SQL NULL element, JSON null element
    (JsonTexts([JsonText("null")]), [None]),
    (JsonTexts([]), None),  # an empty array is not SQL NULL
]


@pytest.mark.parametrize(("source", "target"), SAME)
def test_the_same_value_in_either_form_is_equal(source: Any, target: Any) -> None:
    assert same_value(source, target)


@pytest.mark.parametrize(("source", "target"), DIFFERENT)
def test_a_different_value_is_not_equal(source: Any, target: Any) -> None:
    assert not same_value(source, target)


def test_a_padded_value_keeps_its_kind_through_encoding() -> None:
    source, plain, padded = encode({"c": "ab"}), encode({"c": "ab  "}), encode({"c": Padded("ab  ")})
    assert type(decode(padded)["c"]) is Padded
    assert decode(padded) == {"c": "ab  "}
    assert same(source, padded)
    assert not same(source, plain)


def test_an_array_of_json_texts_keeps_its_kind_through_encoding() -> None:
    value = JsonTexts([JsonTexts([JsonText("1.50"), None])])
    back = decode(encode({"a": value}))["a"]
    assert type(back) is JsonTexts and type(back[0]) is JsonTexts and type(back[0][0]) is JsonText
    assert back == [["1.50", None]]
