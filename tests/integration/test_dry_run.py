"""`migrator run --dry-run` against real servers: it shows every phase's actions, sample
documents equal to what the mapping makes of the source rows, key collisions and estimates,
and writes nothing on either side nor in the state store."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymongo
import pytest
from click.testing import CliRunner, Result

from migrator.cli.main import cli
from migrator.plan.names import publication_name, slot_name_pattern
from tests.support.demo import DEMO_PLAN, PASSWORD

PHASES = ["snapshot", "cdc", "verify", "cutover", "finish"]


def written(pg_url: str, client: pymongo.MongoClient[dict[str, Any]]) -> dict[str, Any]:
    """Everything a run could have left: slots and publications on the source, databases on the target."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        slots = [r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()]
        publications = [r[0] for r in conn.execute("SELECT pubname FROM pg_publication").fetchall()]
    databases = {name: sorted(client[name].list_collection_names()) for name in client.list_database_names()}
    return {"slots": sorted(slots), "publications": sorted(publications), "databases": databases}


def dry_run(*args: str, source_url: str, target_url: str, cwd: Path) -> Result:
    env = {"MIGRATOR_SOURCE_URL": source_url, "MIGRATOR_TARGET_URL": target_url, "MIGRATOR_STATE": None}
    runner = CliRunner()
    before = Path.cwd()
    os.chdir(cwd)  # the default state file (.migrator/<plan>.db) would land here
    try:
        result = runner.invoke(cli, ["run", *args, "--dry-run"], env=env, catch_exceptions=False)
    finally:
        os.chdir(before)
    assert PASSWORD not in result.output
    return result


@pytest.fixture
def client(mongo_url: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    c: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url, tz_aware=True)
    try:
        yield c
    finally:
        c.close()


def demo_plan(tmp_path: Path, database: str) -> Path:
    """The demo plan, writing to this test's own target database."""
    text = DEMO_PLAN.read_text().replace("  database: demo\n", f"  database: {database}\n")
    assert f"database: {database}" in text
    path = tmp_path / "plans" / "demo.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_dry_run_shows_the_plan_and_writes_nothing(
    demo_url: str,
    mongo_url: str,
    mongo_db_name: str,
    client: pymongo.MongoClient[dict[str, Any]],
    tmp_path: Path,
) -> None:
    plan_file = demo_plan(tmp_path, mongo_db_name)
    state = tmp_path / "state" / "demo.db"
    before = written(demo_url, client)
    assert mongo_db_name not in before["databases"]

    # Text output, default state path.
    text = dry_run(str(plan_file), source_url=demo_url, target_url=mongo_url, cwd=tmp_path)
    assert text.exit_code == 0, text.output
    out = text.output
    for phase in PHASES:
        assert f"phase {phase}" in out
    assert f"create publication {publication_name('demo')} FOR TABLE public.customers" in out
    assert f"create logical replication slot {slot_name_pattern('demo')}" in out
    assert "nothing was written" in out
    assert "key collisions: none in the sample" in out
    # An estimate from the measured pace: its value depends on the machine's load, its form does not.
    assert "estimated durations" in out
    assert re.search(r"^\s*snapshot\s+(under 1 s|about [\d.,]+ (s|min|h))", out, re.MULTILINE), out
    assert "password_hash" not in out  # excluded by the plan: never shown
    assert "ready" in out.splitlines()[-1]

    # JSON output, explicit state path.
    result = dry_run(
        str(plan_file),
        "--json",
        "--state",
        str(state),
        source_url=demo_url,
        target_url=mongo_url,
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["dry_run"] is True and report["ready"] is True
    assert [p["phase"] for p in report["phases"]] == PHASES
    snapshot = report["phases"][0]["actions"]
    assert [a["writes"] for a in snapshot[:4]] == ["state", "source", "source", "state"]
    assert all(a["writes"] == "target" for a in snapshot[4:]) and len(snapshot) == 6
    # The reads are all that was performed.
    assert [r["writes"] for r in report["reads"]] == ["none"] * 3

    # A sample document equals what the mapping makes of the source rows.
    samples = {s["collection"]: s for s in report["samples"]}
    customers = samples["customers"]
    assert customers["documents"] == 300  # fewer than the sample size: the whole table
    assert customers["rows"] > customers["documents"]  # embedded rows read too
    assert customers["collisions"] == 0
    doc = customers["examples"][0]
    with psycopg.connect(demo_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT id, email, full_name, password_hash FROM public.customers ORDER BY id LIMIT 1"
        ).fetchone()
        assert row is not None
        addresses = conn.execute(
            "SELECT id, city FROM public.addresses WHERE customer_id = %s ORDER BY id", [row[0]]
        ).fetchall()
        orders = conn.execute(
            "SELECT count(*) FROM public.orders WHERE customer_id = %s", [row[0]]
        ).fetchone()
    assert doc["_id"] == row[0]
    assert doc["email"] == row[1] and doc["full_name"] == row[2]
    assert "password_hash" not in doc and row[3] not in result.output
    assert [(a["id"], a["city"]) for a in doc["addresses"]] == [tuple(a) for a in addresses]
    assert orders is not None and len(doc["orders"]) == orders[0]
    assert row[1] in out  # the text form shows it as well
    product = samples["products"]["examples"][0]
    assert set(product) == {
        "_id",
        "sku",
        "title",
        "price",
        "weight",
        "dimensions_mm",
        "tags",
        "attributes",
        "active",
        "created_at",
    }
    assert "$numberDecimal" in product["price"]  # Decimal128, as the target would hold it

    estimates = {e["phase"]: e for e in report["estimates"]}
    assert list(estimates) == PHASES
    assert estimates["snapshot"]["seconds"] is not None and estimates["snapshot"]["seconds"] > 0
    assert "estimate" in estimates["snapshot"]["basis"] and "measured" in estimates["snapshot"]["basis"]
    assert estimates["cdc"]["seconds"] is None
    # Cutover: the gate's verify pass, then at most the freeze budget (the demo plan's is 2 s).
    assert estimates["cutover"]["seconds"] >= estimates["verify"]["seconds"] + 2.0

    # Nothing written: no slot, no publication, no database or collection, no state file.
    assert written(demo_url, client) == before
    assert not state.exists() and not state.parent.exists()
    assert not (tmp_path / ".migrator").exists()


def test_keys_that_collide_in_the_target_are_reported(
    pg_url: str,
    mongo_url: str,
    mongo_db_name: str,
    client: pymongo.MongoClient[dict[str, Any]],
    tmp_path: Path,
) -> None:
    # Distinct in PostgreSQL (microseconds), one _id in MongoDB (dates hold milliseconds).
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (at timestamptz PRIMARY KEY, value int NOT NULL)")
        conn.execute(
            "INSERT INTO readings VALUES ('2024-05-01 10:00:00.123001+00', 1), "
            "('2024-05-01 10:00:00.123002+00', 2), ('2024-05-01 10:00:01+00', 3)"
        )
    plan_file = tmp_path / "readings.yaml"
    plan_file.write_text(
        "version: 1\n"
        "source: {adapter: postgres, url: '${MIGRATOR_SOURCE_URL}'}\n"
        f"target: {{adapter: mongodb, url: '${{MIGRATOR_TARGET_URL}}', database: {mongo_db_name}}}\n"
        "collections:\n"
        "  - {name: readings, from: public.readings, key: at}\n"
    )
    before = written(pg_url, client)
    result = dry_run(str(plan_file), "--json", source_url=pg_url, target_url=mongo_url, cwd=tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["collisions"] == 1
    (sample,) = report["samples"]
    assert sample["documents"] == 3
    (collision,) = sample["collision_examples"]
    assert collision["id"] == {"$date": "2024-05-01T10:00:00.123Z"}
    assert collision["source_keys"] == [
        ["2024-05-01T10:00:00.123001+00:00"],
        ["2024-05-01T10:00:00.123002+00:00"],
    ]
    text = dry_run(str(plan_file), source_url=pg_url, target_url=mongo_url, cwd=tmp_path)
    assert "key collisions" in text.output and "2024-05-01T10:00:00.123002+00:00" in text.output
    assert written(pg_url, client) == before
