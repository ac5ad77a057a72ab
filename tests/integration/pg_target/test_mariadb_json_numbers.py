"""MariaDB -> PostgreSQL: JSON numbers that a double cannot hold exactly reach jsonb with their
own value, through the snapshot and through the binlog, and `migrator verify` finds them equal,
then names a target value changed beyond a double's precision.

The expectation is the source's own JSON text, read back from MariaDB and from PostgreSQL
(jsonb::text) and parsed here with every number a Decimal: equal data holds equal numbers
(jsonb keeps a number as numeric: 1.0 stays 1.0, -0.0 becomes 0.0, 1e400 prints with its
digits). Never migrator's mapping or readers.
"""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from migrator import api
from tests.support.mariadb import execute
from tests.support.runs import ApiRun, streaming

# JSON texts a double rounds (or cannot hold at all), and their neighbours that it keeps.
TEXTS = (
    "12345678901234567890123",
    "0.1000000000000000055511151231257827",
    "1e400",
    "-0.0",
    "1.0",
    "1",
    "-12345678901234567890.5",
    '[1.5, 1e-400, {"n": 99999999999999999999, "x": 2.000000000000000000000000001}]',
)
# The binlog's rows: five of each text in one transaction, enough for CDC to stage the table's
# step by COPY (32 rows or more) rather than write row by row.
CHANGED = [(100 * copy + i, t) for copy in range(1, 6) for i, t in enumerate(TEXTS, 1)]
ROWS = len(TEXTS) + len(CHANGED) + 1
PLAN = """\
version: 1
name: mariajson
source: {{adapter: mysql, url: "{source}"}}
target: {{adapter: postgres, url: "{target}"}}
tables:
  - {{from: {db}.nums, name: public.nums}}
phases: {{verify: {{settle_timeout: 120s}}}}
"""


def _numbers(text: str) -> Any:
    """A JSON text with every number a Decimal (the test's own reading of it)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _target(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(query).fetchall())  # type: ignore[call-overload]


def _same_numbers(source_url: str, target_url: str) -> None:
    source = {i: _numbers(t) for i, t in execute(source_url, ["SELECT id, CAST(j AS CHAR) FROM nums"])}
    target = {i: _numbers(t) for i, t in _target(target_url, "SELECT id, j::text FROM public.nums")}
    assert target == source
    assert len(source) == ROWS


def test_json_numbers_beyond_a_double_reach_jsonb_exactly_and_verify_equal(
    mariadb_pg_urls: tuple[str, str], tmp_path: Path
) -> None:
    source_url, target_url = mariadb_pg_urls
    insert = "INSERT INTO nums VALUES (%s, %s)"
    execute(
        source_url,
        ["CREATE TABLE nums (id INT PRIMARY KEY, j JSON)", *[insert] * len(TEXTS)],
        [(), *((i, t) for i, t in enumerate(TEXTS, 1))],
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        textwrap.dedent(PLAN).format(source=source_url, target=target_url, db=source_url.rsplit("/", 1)[1])
    )
    report = api.plan(plan, env={})
    assert report.ready, [(f.check, f.message) for f in report.failures]
    state = tmp_path / "state.db"
    api.run(plan, until="snapshot", state=state, env={})

    # The binlog: the same numbers inserted again, and an update.
    execute(
        source_url,
        [*[insert] * len(CHANGED), insert, "UPDATE nums SET j = '[-0.0, 3e-5]' WHERE id = 6"],
        [*CHANGED, (200, '{"a": 1e400}'), ()],
    )
    outcome = api.run(plan, until="caught-up", state=state, env={})
    assert outcome.cdc is not None and outcome.cdc.caught_up
    _same_numbers(source_url, target_url)

    report = api.verify(plan, state=state, env={}, mode="sample", sample=1.0)
    checked = ROWS
    assert (report.verdict, report.totals.equal) == ("equal", checked), report.to_dict()

    # Changed on the target beyond a double's precision (each double stays the same): different.
    follower = streaming(ApiRun("mariajson-follow", plan, "stopped", state, {}))
    try:
        _target(target_url, "UPDATE public.nums SET j = '12345678901234567890124' WHERE id = 1 RETURNING 1")
        _target(
            target_url,
            "UPDATE public.nums SET j = '0.1000000000000000055511151231257828' WHERE id = 102 RETURNING 1",
        )
        _target(target_url, "UPDATE public.nums SET j = '1e401' WHERE id = 3 RETURNING 1")
        report = api.verify(plan, state=state, env={})
    finally:
        follower.finish()
    assert report.verdict == "different"
    assert sorted(m.id for m in report.mismatches) == [1, 3, 102], report.to_dict()
