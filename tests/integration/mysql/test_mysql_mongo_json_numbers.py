"""MariaDB -> MongoDB: JSON numbers that a double rounds, or cannot hold at all, through the
snapshot and the binlog. docs/plan.md's promise: a number stays a double where the double prints
back as the same number, else a Decimal128, and one beyond Decimal128's 34 digits stops the run
naming the document (never rounded in silence). `migrator verify` finds the copy equal and names a
value changed at the target.

Also reverse sync's character sets: a latin1 text column cannot take back every string a document
may hold, so `plan` refuses a cutover with reverse sync naming the column, and the ALTER it gives
is accepted by MariaDB, after which `plan` is ready.

The expectation is the source's own JSON text (read back from MariaDB, every number a Decimal)
and the BSON type written here by hand per value; never migrator's mapping.
"""

from __future__ import annotations

import math
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymongo
import pytest
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128

from migrator import api
from migrator.errors import MigratorError
from tests.support.mariadb import execute
from tests.support.runs import ApiRun, streaming

# (JSON text, the BSON type MongoDB must hold its number as)
NUMBERS = (
    ("12345678901234567890123", Decimal128),  # no int64
    ("0.1000000000000000055511151231257827", Decimal128),  # the double is 0.1
    ("1e400", Decimal128),  # no double
    ("-12345678901234567890.5", Decimal128),
    ("-0.0", float),  # the double -0.0 prints back as -0.0
    ("1.0", float),
    ("2.5e-300", float),
    ("1", int),
)
PLAN = """\
version: 1
source: {{adapter: mysql, url: "{source}"}}
target: {{adapter: mongodb, url: "{target}", database: {db}}}
collections:
  - {{name: nums, from: {schema}.nums, key: id}}
phases: {{verify: {{settle_timeout: 120s}}{phases}}}
"""


def _plan(tmp_path: Path, source: str, target: str, db: str, phases: str = "") -> Path:
    path = tmp_path / "plan.yaml"
    schema = source.rsplit("/", 1)[1]
    path.write_text(
        textwrap.dedent(PLAN).format(source=source, target=target, db=db, schema=schema, phases=phases)
    )
    return path


def _number(value: Any) -> Decimal:
    """A stored BSON number as the number it is."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def _documents(mongo_url: str, db: str) -> dict[int, Any]:
    with pymongo.MongoClient(mongo_url) as client:
        found = client[db].get_collection("nums", codec_options=CodecOptions()).find()
        return {d["_id"]: d["j"] for d in found}


def test_json_numbers_beyond_a_double_reach_mongodb_as_decimal128_and_verify_equal(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    insert = "INSERT INTO nums VALUES (%s, %s)"
    rows = [(i, text) for i, (text, _) in enumerate(NUMBERS, 1)]
    execute(mysql_url, ["CREATE TABLE nums (id INT PRIMARY KEY, j JSON)", *[insert] * len(rows)], [(), *rows])
    plan = _plan(tmp_path, mysql_url, mongo_url, mongo_db_name)
    state = tmp_path / "state.db"
    api.run(plan, until="snapshot", state=state, env={})
    cdc_rows = [(100 + i, text) for i, text in rows]
    execute(mysql_url, [insert] * len(cdc_rows), cdc_rows)
    outcome = api.run(plan, until="caught-up", state=state, env={})
    assert outcome.cdc is not None and outcome.cdc.caught_up

    source = {i: Decimal(t) for i, t in execute(mysql_url, ["SELECT id, CAST(j AS CHAR) FROM nums"])}
    kinds = {i: kind for i, (_, kind) in enumerate(NUMBERS, 1)}
    stored = _documents(mongo_url, mongo_db_name)
    assert {i: _number(v) for i, v in stored.items()} == source
    assert {i: type(v) for i, v in stored.items()} == {i: kinds[i % 100] for i in source}
    assert math.copysign(1.0, stored[5]) == -1.0 and math.copysign(1.0, stored[105]) == -1.0

    report = api.verify(plan, state=state, env={}, mode="sample", sample=1.0)
    assert (report.verdict, report.totals.equal) == ("equal", 2 * len(NUMBERS)), report.to_dict()

    follower = streaming(ApiRun("json-mongo-follow", plan, "stopped", state, {}))
    try:
        with pymongo.MongoClient(mongo_url) as client:
            nums = client[mongo_db_name]["nums"]
            nums.update_one({"_id": 1}, {"$set": {"j": Decimal128("12345678901234567890124")}})
            nums.update_one({"_id": 105}, {"$set": {"j": 0.0}})  # -0.0 lost its sign
        report = api.verify(plan, state=state, env={})
    finally:
        follower.finish()
    assert report.verdict == "different"
    assert sorted(m.id for m in report.mismatches) == [1, 105], report.to_dict()


def test_a_json_number_beyond_decimal128_stops_the_run_naming_the_document(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    execute(
        mysql_url,
        ["CREATE TABLE nums (id INT PRIMARY KEY, j JSON)", "INSERT INTO nums VALUES (7, %s)"],
        [(), ('{"n": [1.00000000000000000000000000000000001]}',)],  # 36 significant digits
    )
    plan = _plan(tmp_path, mysql_url, mongo_url, mongo_db_name)
    with pytest.raises(MigratorError) as raised:
        api.run(plan, until="snapshot", state=tmp_path / "state.db", env={})
    assert "document 7 of nums" in raised.value.message and "36 significant digits" in raised.value.message
    assert _documents(mongo_url, mongo_db_name) == {}


def test_a_latin1_text_column_is_refused_for_a_cutover_with_reverse_sync_and_its_fix_is_accepted(
    mysql_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    execute(
        mysql_url,
        [
            "CREATE TABLE nums (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1 NOT NULL, "
            "note TEXT CHARACTER SET utf8mb3, j JSON)",
            "INSERT INTO nums VALUES (1, 'café', 'ok', '1')",
        ],
    )
    routing = tmp_path / "routing"
    cutover = f', cutover: {{switch: {{kind: file, path: "{routing}"}}}}'
    schema = mysql_url.rsplit("/", 1)[1]

    # No cutover, or one without reverse sync: nothing goes back, nothing to refuse.
    for phases in ("", cutover.replace("switch:", "reverse_sync: false, switch:")):
        report = api.plan(_plan(tmp_path, mysql_url, mongo_url, mongo_db_name, phases), env={})
        assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]

    plan = _plan(tmp_path, mysql_url, mongo_url, mongo_db_name, cutover)
    report = api.plan(plan, env={})
    refused = [f for f in report.failures if f.check == "target.cutover"]
    assert sorted(f.subject for f in refused) == [f"{schema}.nums.name", f"{schema}.nums.note"], refused
    for finding in refused:
        assert finding.fix is not None and "CHARACTER SET utf8mb4" in finding.fix
        execute(mysql_url, [finding.fix.split(" (repeat", 1)[0]])
    report = api.plan(plan, env={})
    assert report.ready, [(f.check, f.subject, f.message) for f in report.failures]
    assert execute(
        mysql_url,
        [
            "SELECT COLUMN_NAME, CHARACTER_SET_NAME, IS_NULLABLE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'nums' AND COLUMN_NAME IN ('name', 'note') "
            "ORDER BY COLUMN_NAME"
        ],
    ) == [("name", "utf8mb4", "NO"), ("note", "utf8mb4", "YES")]
    assert execute(mysql_url, ["SELECT name FROM nums"]) == [("café",)]
