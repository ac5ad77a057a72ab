"""Values as reverse sync sends them to MySQL/MariaDB columns (the type contract's inverse);
expected values written by hand."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from bson.int64 import Int64

from migrator.adapters.base import ColumnInfo
from migrator.adapters.mysql.write_values import write_value


def _column(type_name: str, kind: str = "base") -> ColumnInfo:
    element = "text" if kind == "array" else None
    return ColumnInfo("c", type_name, kind, element, "base" if element else None, True, None, None, 1)


@pytest.mark.parametrize(
    ("type_name", "kind", "value", "expected"),
    [
        ("bigint", "base", Int64(7), 7),
        ("bigint unsigned", "base", Decimal(18446744073709551615), 18446744073709551615),
        ("numeric", "base", Decimal("1.50"), Decimal("1.50")),
        (
            "timestamp with time zone",
            "base",
            datetime.datetime(2024, 1, 1, 1, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
            datetime.datetime(2024, 1, 1, 0, 0),
        ),
        (
            "timestamp without time zone",
            "base",
            datetime.datetime(2024, 1, 1, 0, 0, 0, 5000),
            datetime.datetime(2024, 1, 1, 0, 0, 0, 5000),
        ),
        ("bit", "base", "101", 5),
        ("bit", "base", "0000", 0),
        ("text[]", "array", ["a", "c"], "a,c"),
        ("text[]", "array", [], ""),
        ("json", "base", {"a": [1, "é"]}, '{"a": [1, "é"]}'),
        ("json", "base", "x", '"x"'),
        ("enum", "enum", "large", "large"),
        ("time without time zone", "base", "-01:00:00", "-01:00:00"),
        ("bytea", "base", b"\x00", b"\x00"),
        ("integer", "base", None, None),
    ],
)
def test_write_value(type_name: str, kind: str, value: Any, expected: Any) -> None:
    got = write_value(_column(type_name, kind), value)
    assert got == expected and type(got) is type(expected)
