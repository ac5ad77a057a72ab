"""`phases.snapshot.stall_timeout` (migrator/plan/models.py): how long a PostgreSQL source's
chunk COPY may get nothing from the server before it is abandoned (ReadStalled) and copied again.
A duration with a unit or a number of seconds, above zero, 600 s when left out, refused for a
MySQL source (whose reads have their connection's read timeout); it reaches the PostgreSQL source
adapter as its read timeout (`Plan.source_options`)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from migrator.adapters.postgres import PostgresSource
from migrator.adapters.registry import source_for
from migrator.plan import Plan

_POSTGRES = {"adapter": "postgres", "url": "postgresql://app@h:5432/shop"}
_MYSQL = {"adapter": "mysql", "url": "mysql://app@h:3306/shop"}


def _plan(source: dict[str, str], snapshot: dict[str, Any] | None = None) -> Plan:
    document: dict[str, Any] = {
        "version": 1,
        "name": "stall",
        "source": source,
        "target": {"adapter": "mongodb", "url": "mongodb://h/", "database": "app"},
        "collections": [{"name": "t", "from": "shop.t", "key": "id"}],
    }
    if snapshot is not None:
        document["phases"] = {"snapshot": snapshot}
    return Plan.model_validate(document)


def test_left_out_it_is_ten_minutes_and_reaches_the_postgres_source() -> None:
    plan = _plan(_POSTGRES)
    assert plan.phases.snapshot.stall_timeout == 600.0
    assert plan.source_options == {"read_timeout_s": 600.0}
    assert _plan(_MYSQL).source_options == {"zero_dates": "refuse"}  # a MySQL source takes none


@pytest.mark.parametrize(("given", "seconds"), [("90s", 90.0), ("2m", 120.0), ("250ms", 0.25), (30, 30.0)])
def test_a_duration_or_seconds_is_taken(given: object, seconds: float) -> None:
    plan = _plan(_POSTGRES, {"stall_timeout": given})
    assert plan.phases.snapshot.stall_timeout == seconds
    source = source_for("postgres", _POSTGRES["url"], **plan.source_options)
    assert isinstance(source, PostgresSource)
    assert source._read_timeout_s == seconds  # what each snapshot reader's COPY waits at most


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0s", "greater than 0"),
        (0, "greater than 0"),
        (-5, "greater than 0"),
        ("10 parsecs", "is not a duration"),
        (True, "a duration is a number with a unit"),
        ("", "is not a duration"),
    ],
)
def test_a_value_that_is_no_positive_duration_is_refused(given: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _plan(_POSTGRES, {"stall_timeout": given})
    assert message in str(caught.value)
    assert "stall_timeout" in str(caught.value)


def test_a_mysql_source_refuses_it_only_where_the_plan_gives_it() -> None:
    with pytest.raises(ValidationError) as caught:
        _plan(_MYSQL, {"stall_timeout": "90s"})
    assert "'snapshot.stall_timeout' applies to a postgres source only" in str(caught.value)
    assert _plan(_MYSQL, {"parallel": 4}).phases.snapshot.stall_timeout == 600.0
