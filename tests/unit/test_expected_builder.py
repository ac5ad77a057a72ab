"""The corpus's independent expected-document builder (tests/support/expected.py): its value
conversions and its BSON ordering, checked against docs/plan.md's type table by hand."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from tests.support.expected import Coll, Embed, bson_order, convert

UTC = datetime.UTC


def test_numbers_keep_their_bson_types_and_scale() -> None:
    assert convert("int32", 7) == 7 and type(convert("int32", 7)) is int
    assert isinstance(convert("int64", 7), Int64)
    assert str(convert("decimal", Decimal("1.10"))) == "1.10"
    assert str(convert("money", Decimal("12.34"))) == "12.34"
    assert str(convert("decimal", Decimal("NaN"))) == "NaN"
    assert convert("float4", 1.1) == 1.100000023841858  # the IEEE single 1.1, widened
    assert convert("double", 0.1) == 0.1


def test_times_are_utc_milliseconds() -> None:
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    assert convert("timestamptz", datetime.datetime(2024, 2, 29, 13, 0, 0, 789999, tzinfo=berlin)) == (
        datetime.datetime(2024, 2, 29, 12, 0, 0, 789000, tzinfo=UTC)
    )
    assert convert("timestamp", datetime.datetime(2024, 1, 1, 0, 0, 0, 1999)) == datetime.datetime(
        2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC
    )
    assert convert("date", datetime.date(2024, 2, 29)) == datetime.datetime(2024, 2, 29, tzinfo=UTC)


def test_json_integers_by_size_and_arrays_element_wise() -> None:
    value = convert("jsonb", {"b": 1, "a": [2**40, 1.5, None]})
    assert list(value) == ["b", "a"]
    assert isinstance(value["a"][0], Int64) and type(value["b"]) is int
    assert convert("int32", [1, None, [3]]) == [1, None, [3]]


def test_bson_order_is_mongodb_s() -> None:
    assert sorted(["b", "B", "a", "Ä", "é", "Z"], key=bson_order) == ["B", "Z", "a", "b", "Ä", "é"]
    assert sorted([b"\x00\x00", b"\xff", b"\x01"], key=bson_order) == [b"\x01", b"\xff", b"\x00\x00"]
    assert sorted([2, None, Decimal128("1.50"), 1.25, Int64(3)], key=bson_order) == [
        None, 1.25, Decimal128("1.50"), 2, Int64(3),
    ]  # fmt: skip
    assert bson_order(float("nan")) < bson_order(-1e300)
    assert bson_order(uuid.UUID(int=0)) > bson_order("z")


def test_plan_entries_state_the_description() -> None:
    coll = Coll(
        "films",
        "film",
        ("film_id",),
        exclude=("fulltext",),
        embeds=(
            Embed("actors", "film_actor", {"film_id": "film_id"}, key=("actor_id",), order_by=("actor_id",)),
        ),
    )
    assert coll.plan_entry() == {
        "name": "films",
        "from": "film",
        "key": "film_id",
        "exclude": ["fulltext"],
        "embed": [
            {"as": "actors", "from": "film_actor", "on": {"film_id": "film_id"}, "many": True, "key": "actor_id",
             "order_by": "actor_id"},
        ],
    }  # fmt: skip
