"""Pure pieces of the MySQL source's readers: positions, key text and parameters, key-range SQL,
value conversions (the servers' side is tests/integration/mysql/)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from bson.int64 import Int64

from migrator.adapters.mysql.reading import key_param, key_range_condition, key_text, table_sql
from migrator.adapters.mysql.snapshot import position_text, position_value
from migrator.adapters.mysql.values import bits_text, converter

UTC = datetime.UTC


def test_positions_are_file_number_and_offset() -> None:
    assert position_text("binlog.000012", 4567) == "000012:4567"
    assert position_text("mysql-bin.1234567", 4) == "1234567:4"
    assert position_value("000012:4567") == 12 << 32 | 4567
    # A later file orders after any offset of an earlier one.
    assert position_value("000013:4") > position_value("000012:4294967295")


@pytest.mark.parametrize(
    ("value", "type_name", "text", "param"),
    [
        (Int64(7), "bigint", "7", 7),
        (Decimal("-1.50"), "numeric", "-1.50", Decimal("-1.50")),
        (b"\x00\xff", "bytea", "00ff", b"\x00\xff"),
        (
            datetime.datetime(2020, 1, 2, 8, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
            "timestamp with time zone",
            "2020-01-02 03:04:05.000006",
            datetime.datetime(2020, 1, 2, 3, 4, 5, 6),
        ),
        ("x'y", "character varying", "x'y", "x'y"),
    ],
)
def test_key_text_reads_back_as_the_parameter_of_its_type(
    value: object, type_name: str, text: str, param: object
) -> None:
    assert key_text(value) == text
    assert key_param(text, type_name) == param


def test_key_parameters_take_other_spellings_of_a_key() -> None:
    assert key_param("\\x00ff", "bytea") == b"\x00\xff"  # PostgreSQL's bytea text
    assert key_param("2020-01-02T03:04:05+00:00", "timestamp with time zone") == datetime.datetime(
        2020, 1, 2, 3, 4, 5
    )
    assert key_param("2020-01-02T00:00:00", "date") == datetime.date(2020, 1, 2)


def test_a_compound_key_range_is_spelled_out_column_by_column() -> None:
    sql, params = key_range_condition("r", ["a", "b"], ["integer", "integer"], ["1", "2"], ["3", "4"])
    assert sql == (
        "`r`.`a` >= %s AND ((`r`.`a` > %s) OR (`r`.`a` = %s AND `r`.`b` > %s)) AND "
        "`r`.`a` <= %s AND ((`r`.`a` < %s) OR (`r`.`a` = %s AND `r`.`b` <= %s))"
    )
    assert params == [1, 1, 1, 2, 3, 3, 3, 4]
    assert key_range_condition("r", ["a"], ["integer"], None, None) == ("TRUE", [])
    assert key_range_condition("", ["a"], ["integer"], ["5"], None) == ("(`a` > %s)", [5])


def test_names_are_quoted() -> None:
    assert table_sql("shop.order`s") == "`shop`.`order``s`"
    assert table_sql("items") == "`items`"


def test_values_convert_as_the_contract_says() -> None:
    bigint = converter("bigint")
    unsigned = converter("bigint unsigned")
    assert bigint is not None and unsigned is not None
    assert type(bigint(5)) is Int64
    assert type(unsigned(2**63 - 1)) is Int64
    assert unsigned(2**63) == Decimal(2**63) and type(unsigned(2**63)) is Decimal
    members = converter("text[]", "array")
    assert members is not None and members("a,c") == ["a", "c"] and members("") == []
    bits = converter("bit", "base", 10)
    assert bits is not None and bits(b"\x01\x03") == "0100000011"
    assert bits_text(b"\x00", 1) == "0"
    stamp = converter("timestamp with time zone")
    assert stamp is not None
    assert stamp(datetime.datetime(2020, 1, 1)) == datetime.datetime(2020, 1, 1, tzinfo=UTC)
    json_value = converter("json")
    assert json_value is not None and json_value('{"b": 1, "a": [1.5]}') == {"b": 1, "a": [1.5]}
    assert converter("integer") is None and converter("character varying") is None
