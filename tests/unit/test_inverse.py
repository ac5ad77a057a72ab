"""The inverse mapping without servers: BSON values back to column values, documents to row trees."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator.adapters.base import ColumnInfo
from migrator.mapping.inverse import DocumentInverse, InverseError, _Refused, column_converter, equivalence
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping, FieldMapping
from migrator.mapping.types import conversion_for

UTC = datetime.UTC


def col(
    name: str,
    type_name: str,
    kind: str = "base",
    element: str | None = None,
    *,
    nullable: bool = True,
) -> ColumnInfo:
    return ColumnInfo(name, type_name, kind, element, "base" if element else None, nullable, None, None, 0)


def convert(type_name: str, value: Any, kind: str = "base", element: str | None = None) -> Any:
    return column_converter(col("c", type_name, kind, element))(value)


def refused(type_name: str, value: Any, kind: str = "base", element: str | None = None) -> str:
    with pytest.raises(_Refused) as caught:
        convert(type_name, value, kind, element)
    return str(caught.value)


def test_integers_come_back_exactly_and_in_range() -> None:
    assert convert("integer", 5) == 5
    assert convert("bigint", Int64(2**40)) == 2**40
    assert convert("smallint", 5.0) == 5  # what a JavaScript client writes
    assert convert("bigint", Decimal128("7")) == 7
    assert "expected an integer" in refused("integer", 5.5)
    assert "expected an integer" in refused("integer", True)
    assert "expected an integer" in refused("integer", "5")
    assert "out of range for smallint" in refused("smallint", 40000)
    assert "out of range for oid" in refused("oid", -1)


def test_decimals_floats_and_strings() -> None:
    assert str(convert("numeric", Decimal128("1234.5600"))) == "1234.5600"  # the scale is kept
    assert convert("numeric", 3) == Decimal(3)
    assert convert("numeric", 0.1) == Decimal("0.1")
    assert convert("numeric", Decimal128("NaN")).is_nan()
    assert convert("money", Decimal128("-1.25")) == Decimal("-1.25")
    assert convert("real", 0.10000000149011612) == 0.10000000149011612
    assert convert("double precision", 2) == 2.0
    assert "expected a double" in refused("double precision", Decimal128("1"))
    assert convert("character", "ab  ") == "ab  "
    assert convert("interval", "P1Y2M") == "P1Y2M"  # text forms go to the column's input function
    assert convert("customer_status", "active", kind="enum") == "active"
    assert "expected a string" in refused("text", 1)


def test_dates_uuids_binaries_and_booleans() -> None:
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert convert("timestamp with time zone", moment) == moment
    assert convert("timestamp with time zone", moment.replace(tzinfo=None)) == moment  # BSON dates are UTC
    assert convert("timestamp without time zone", moment) == moment.replace(tzinfo=None)
    assert convert("date", datetime.datetime(2024, 1, 2, tzinfo=UTC)) == datetime.date(2024, 1, 2)
    assert "not midnight UTC" in refused("date", moment)
    value = uuid.uuid4()
    assert convert("uuid", value) == value
    assert convert("uuid", Binary(value.bytes, 4)) == value
    assert "UUID" in refused("uuid", str(value))
    assert convert("bytea", b"\x00\x01") == b"\x00\x01"
    assert convert("bytea", Binary(b"\x02", 0)) == b"\x02"
    assert "binData subtype 0" in refused("bytea", Binary(b"\x02", 5))
    assert convert("boolean", False) is False
    assert "expected a bool" in refused("boolean", 0)


def test_json_holds_json_values_only() -> None:
    document = {"a": [1, Int64(2), 2.5, None, {"b": True}], "c": Decimal128("3")}
    assert convert("jsonb", document) == {"a": [1, 2, 2.5, None, {"b": True}], "c": 3}
    assert type(convert("jsonb", {"n": Int64(5)})["n"]) is int
    assert convert("json", "text") == "text"
    assert "JSON cannot hold date" in refused("jsonb", {"at": datetime.datetime.now(UTC)})
    assert "JSON has no" in refused("json", float("inf"))


def test_arrays_element_by_element_nested_with_nulls() -> None:
    assert convert("numeric[]", [[Decimal128("1.5"), 2], [3, None]], "array", "numeric") == [
        [Decimal("1.5"), Decimal(2)],
        [Decimal(3), None],
    ]
    assert convert("text[]", [], "array", "text") == []
    assert "element 1" in refused("integer[]", [1, "x"], "array", "integer")
    assert "expected an array" in refused("integer[]", 1, "array", "integer")


def test_lossy_conversions_are_named() -> None:
    assert equivalence(col("c", "timestamp with time zone")) == "milliseconds"
    assert equivalence(col("c", "timestamp without time zone[]", "array", "timestamp without time zone")) == (
        "milliseconds"
    )
    assert equivalence(col("c", "json")) == "json"
    assert equivalence(col("c", "jsonb")) == "json"
    assert equivalence(col("c", "jsonb[]", "array", "jsonb")) is None
    assert equivalence(col("c", "numeric")) == "numeric"
    assert equivalence(col("c", "numeric[]", "array", "numeric")) is None
    assert equivalence(col("c", "money")) is None


# -- documents ----------------------------------------------------------------------------------


def level(
    table: str,
    key: tuple[str, ...],
    columns: list[ColumnInfo],
    fields: list[str],
    embeds: tuple[EmbedMapping, ...] = (),
) -> DocumentMapping:
    by_name = {c.name: c for c in columns}
    mapped = tuple(FieldMapping(f, by_name[f], conversion_for(by_name[f])) for f in fields)
    return DocumentMapping(table, key, mapped, embeds, tuple(columns))


def shop() -> CollectionMapping:
    items = level(
        "public.items",
        ("order_id", "line"),
        [
            col("order_id", "bigint", nullable=False),
            col("line", "integer", nullable=False),
            col("qty", "integer"),
        ],
        ["line", "qty"],
    )
    orders = level(
        "public.orders",
        ("id",),
        [col("id", "bigint", nullable=False), col("customer_id", "bigint"), col("total", "numeric")],
        ["id", "total"],
        (EmbedMapping("items", True, (("order_id", "id"),), ("line",), items),),
    )
    profile = level(
        "public.profiles",
        ("customer_id",),
        [col("customer_id", "bigint", nullable=False), col("bio", "text")],
        ["bio"],
    )
    root = level(
        "public.customers",
        ("id",),
        [col("id", "bigint", nullable=False), col("name", "text", nullable=False), col("secret", "text")],
        ["name"],
        (
            EmbedMapping("orders", True, (("customer_id", "id"),), ("id",), orders),
            EmbedMapping("profile", False, (("customer_id", "id"),), (), profile),
        ),
    )
    return CollectionMapping("customers", root)


def test_a_document_becomes_a_tree_of_rows_linked_by_on() -> None:
    inverse = DocumentInverse(shop())
    assert [lvl.table for lvl in inverse.levels] == [
        "public.customers",
        "public.orders",
        "public.items",
        "public.profiles",
    ]
    assert [lvl.parent for lvl in inverse.levels] == [-1, 0, 1, 0]
    rows = inverse.rows(
        {
            "_id": Int64(1),
            "name": "Ann",
            "orders": [
                {"id": Int64(10), "total": Decimal128("1.50"), "items": [{"line": 1, "qty": 2}]},
                {"id": Int64(11), "total": Decimal128("0")},  # no `items`: its items stay as stored
            ],
            "profile": None,
        }
    )
    assert rows.root_key == {"id": 1} and not rows.deleted
    assert rows.state is not None
    customers, orders, items, profiles = rows.state
    assert customers.rows == [{"id": 1, "name": "Ann"}]  # `secret` is not carried, so never written
    assert orders.rows == [
        {"customer_id": 1, "id": 10, "total": Decimal("1.50")},
        {"customer_id": 1, "id": 11, "total": Decimal("0")},
    ]
    assert orders.carried == [(1,)] and orders.exempt == []
    assert items.rows == [{"order_id": 10, "line": 1, "qty": 2}]
    assert items.carried == [(10,)] and items.exempt == [(11,)]
    assert profiles.rows == [] and profiles.carried == [(1,)]  # null: its row goes
    # A document without `profile` leaves the profile alone.
    partial = inverse.rows({"_id": Int64(1), "name": "Ann", "orders": []})
    assert partial.state is not None and partial.state[3].exempt == [(1,)]
    gone = inverse.deletion(Int64(1))
    assert gone.deleted and gone.root_key == {"id": 1}


def test_compound_ids_and_errors_name_the_field() -> None:
    stock = level(
        "public.stock",
        ("warehouse", "sku"),
        [
            col("warehouse", "integer", nullable=False),
            col("sku", "text", nullable=False),
            col("qty", "integer"),
        ],
        ["qty"],
    )
    inverse = DocumentInverse(CollectionMapping("stock", stock))
    rows = inverse.rows({"_id": {"warehouse": 1, "sku": "a"}, "qty": 3})
    assert rows.state is not None and rows.state[0].rows == [{"warehouse": 1, "sku": "a", "qty": 3}]
    for document, field in (
        ({"_id": 1, "qty": 3}, "_id"),
        ({"_id": {"warehouse": 1}, "qty": 3}, "_id.sku"),
        ({"_id": {"warehouse": 1, "sku": "a", "x": 1}}, "_id.x"),
        ({"_id": {"warehouse": 1, "sku": "a"}, "qty": "3"}, "qty"),
        ({"qty": 3}, "_id"),
    ):
        with pytest.raises(InverseError) as caught:
            inverse.rows(document)
        assert caught.value.field == field and caught.value.collection == "stock"
    with pytest.raises(InverseError) as caught:
        DocumentInverse(shop()).rows({"_id": Int64(1), "name": "A", "orders": [{"total": 1}]})
    assert caught.value.field == "orders.0" and "key column id" in caught.value.message


def test_a_mapping_whose_keys_cannot_be_rebuilt_is_refused() -> None:
    orders = level(
        "public.orders",
        ("id",),
        [col("id", "bigint", nullable=False), col("customer_id", "bigint")],
        [],  # the element key is not a field
    )
    root = level(
        "public.customers",
        ("id",),
        [col("id", "bigint", nullable=False)],
        [],
        (EmbedMapping("orders", True, (("customer_id", "id"),), ("id",), orders),),
    )
    with pytest.raises(InverseError) as caught:
        DocumentInverse(CollectionMapping("customers", root))
    assert caught.value.field == "orders" and "key column id" in caught.value.message


def test_a_lookup_is_a_copy_that_is_never_written_back() -> None:
    """A sub-document many documents embed (a lookup: the parent holds the link) is not this
    document's row: reverse sync writes the link back, and never writes or deletes the row."""
    address = level(
        "public.address", ("address_id",), [col("address_id", "bigint"), col("street", "text")], ["street"]
    )
    customer = level(
        "public.customers",
        ("id",),
        [col("id", "bigint"), col("name", "text"), col("address_id", "bigint")],
        ["name", "address_id"],
    )
    lookup = EmbedMapping("address", False, (("address_id", "address_id"),), (), address, lookup=True)
    inverse = DocumentInverse(CollectionMapping("customers", replace(customer, embeds=(lookup,))))
    assert [lvl.table for lvl in inverse.levels] == ["public.customers"]
    for value in (None, {"street": "edited copy"}):
        rows = inverse.rows({"_id": Int64(1), "name": "Ann", "address_id": Int64(7), "address": value})
        assert rows.state is not None
        assert [state.rows for state in rows.state] == [[{"id": 1, "name": "Ann", "address_id": 7}]]
