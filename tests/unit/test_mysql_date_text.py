"""The readers' parsers of DATETIME, TIMESTAMP and DATE text (adapters/mysql/values.py) give what
PyMySQL's own parsers give: datetimes for what the server prints, the text itself for a zero date
or a day the calendar has not (what the plan's zero-date handling then sees)."""

from __future__ import annotations

import datetime

import pymysql.converters
import pytest
from pymysql.constants import FIELD_TYPE

from migrator.adapters.mysql.values import CONVERSIONS

DATETIME = CONVERSIONS[FIELD_TYPE.DATETIME]
DATE = CONVERSIONS[FIELD_TYPE.DATE]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02 03:04:05", datetime.datetime(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02 03:04:05.5", datetime.datetime(2024, 1, 2, 3, 4, 5, 500000)),
        ("2024-01-02 03:04:05.123", datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)),
        ("1000-01-01 00:00:00.000001", datetime.datetime(1000, 1, 1, 0, 0, 0, 1)),
        ("9999-12-31 23:59:59.999999", datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        ("0000-00-00 00:00:00", "0000-00-00 00:00:00"),
        ("2024-02-30 00:00:00", "2024-02-30 00:00:00"),
        (b"2024-01-02 03:04:05", datetime.datetime(2024, 1, 2, 3, 4, 5)),
    ],
)
def test_datetime_text(text: str | bytes, expected: object) -> None:
    assert DATETIME(text) == expected
    assert type(DATETIME(text)) is type(expected)
    assert DATETIME(text) == pymysql.converters.convert_datetime(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-02-29", datetime.date(2024, 2, 29)),
        ("0001-01-01", datetime.date(1, 1, 1)),
        ("0000-00-00", "0000-00-00"),
        ("2023-02-29", "2023-02-29"),
    ],
)
def test_date_text(text: str, expected: object) -> None:
    assert DATE(text) == expected
    assert DATE(text) == pymysql.converters.convert_date(text)


def test_timestamps_parse_as_datetimes_and_the_rest_as_pymysql_does() -> None:
    assert CONVERSIONS[FIELD_TYPE.TIMESTAMP] is DATETIME
    for field_type in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.LONGLONG, FIELD_TYPE.DOUBLE, FIELD_TYPE.TIME):
        assert CONVERSIONS[field_type] is pymysql.converters.conversions[field_type]
