"""Values a PostgreSQL target hands reverse sync, as the MySQL writer sends them (issue 16): a
TIME from an interval (ISO 8601 text or timedelta), JSON with its numbers' digits, and the
binlog's negative TIME with a fraction decoded right. Expectations written by hand."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from migrator.adapters.json_values import json_text, loads_exact
from migrator.adapters.mysql.binlog_values import binlog_time
from migrator.adapters.mysql.write_values import write_value
from migrator.errors import TerminalError
from tests.support.mariadb import column_info

TIME = column_info("t", "time without time zone", "base")
JSON = column_info("j", "json", "base")


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("PT-838H-59M-59S", "-838:59:59.000000"),
        ("PT838H59M59.999999S", "838:59:59.999999"),
        ("PT-0.000001S", "-0:00:00.000001"),
        ("P1DT2H", "26:00:00.000000"),
        ("P-19DT10H14M59.998755S", "-445:45:00.001245"),
        ("PT0S", "0:00:00.000000"),
        ("12:30:00", "12:30:00"),  # MySQL's own text (a MongoDB target's): as it is
        (-datetime.timedelta(seconds=1), "-0:00:01.000000"),
    ],
)
def test_an_interval_goes_back_into_a_time(given: object, sent: str) -> None:
    assert write_value(TIME, given) == sent


def test_an_interval_with_months_is_refused() -> None:
    with pytest.raises(TerminalError):
        write_value(TIME, "P1M")


def test_json_numbers_keep_their_digits() -> None:
    text = '{"big": 12345678901234567890.5, "f": 1.50, "a": [1, "x", null, true]}'
    assert write_value(JSON, loads_exact(text)) == (
        '{"big": 12345678901234567890.5, "f": 1.50, "a": [1, "x", null, true]}'
    )
    assert json_text({"k": [Decimal("0.10")]}) == '{"k":[0.10]}'


def test_a_negative_binlog_time_with_a_fraction() -> None:
    # mysql-replication gives -(s + (1 - f)) for -(s + f): -1:00:00.001021 as -1:00:00.998979.
    decoded = -datetime.timedelta(hours=1, microseconds=998_979)
    assert binlog_time(decoded) == -datetime.timedelta(hours=1, microseconds=1021)
    assert binlog_time(-datetime.timedelta(microseconds=999_999)) == -datetime.timedelta(microseconds=1)
    whole = -datetime.timedelta(hours=2)
    assert binlog_time(whole) == whole
    assert binlog_time(datetime.timedelta(seconds=5, microseconds=7)) == datetime.timedelta(
        seconds=5, microseconds=7
    )
