"""`migrator plan` end to end: the installed command, in a subprocess, on the demo schema.

Runs exactly what a user runs (`migrator plan plans/demo.yaml` with the URLs in the environment)
and checks the exit codes, the rendered tree, `--json`, and that the source password given in
MIGRATOR_SOURCE_URL never reaches stdout or stderr. Each exit code (0, 1, 2) comes from a real
process once; the `--json` forms of the same plans run the same command in this process (click's
runner), which spares a Python start-up each and checks the same output.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from click.testing import CliRunner, Result

from migrator.cli.main import cli
from tests.support.cli_process import migrator_script
from tests.support.demo import CUSTOMERS, DEMO_PLAN, DEMO_TABLES, PASSWORD, demo_data, with_user
from tests.support.servers import (
    PgServer,
    create_pg_database,
    drop_pg_database,
    unique_name,
    with_database,
)

ROOT = Path(__file__).resolve().parents[2]


def run_plan(*args: str, source_url: str, target_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIGRATOR_SOURCE_URL": source_url, "MIGRATOR_TARGET_URL": target_url}
    result = subprocess.run(
        [migrator_script(), "plan", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Whatever the outcome, the password stays out of both streams.
    assert PASSWORD not in result.stdout
    assert PASSWORD not in result.stderr
    return result


def plan_json(*args: str, source_url: str, target_url: str) -> Result:
    """`migrator plan --json ARGS` in this process, with the URLs in its environment."""
    env = {"MIGRATOR_SOURCE_URL": source_url, "MIGRATOR_TARGET_URL": target_url}
    result = CliRunner().invoke(cli, ["plan", "--json", *args], env=env, catch_exceptions=False)
    assert PASSWORD not in result.stdout
    assert PASSWORD not in result.stderr
    return result


def test_demo_plan_is_ready_and_shows_the_tree(demo_url: str, mongo_url: str) -> None:
    result = run_plan(str(DEMO_PLAN), source_url=demo_url, target_url=mongo_url)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    lines = out.splitlines()
    assert lines[-1].strip() == "ready"
    assert "not ready" not in out and "FAIL" not in out
    assert f"customers <- public.customers (~{CUSTOMERS:,} documents)" in out
    assert "products <- public.products" in out
    for name in ("addresses: array of", "profile: {", "orders: array of", "items: array of"):
        assert name in out, name
    assert "embeds public.order_items" in out
    assert "password_hash:" not in out  # excluded by the plan: no such field in the tree
    # ... and kept in the source (publication column list).
    assert (
        "column password_hash of public.customers, which the plan does not read, stays in the source" in out
    )
    # The endpoint is shown, as user@host:port/db, without the password.
    role = urlsplit(demo_url).username
    assert f"postgresql://{role}@" in out
    # The demo holds sub-millisecond timestamps: warned, with the column named.
    assert "mapping.precision" in out and "public.orders.placed_at" in out


def test_demo_postgres_plan_is_ready(demo_url: str, pg_target_server: PgServer) -> None:
    """plans/demo-postgres.yaml (`scripts/demo --target postgres`): the demo tables as tables on a
    second cluster, whose database holds the source's enum type (as scripts/demo creates it)."""
    dbname = unique_name("demo_postgres", prefix="tgt")
    create_pg_database(pg_target_server.url, dbname)
    try:
        target_url = with_database(pg_target_server.url, dbname)
        with psycopg.connect(target_url, autocommit=True) as conn:
            conn.execute("CREATE TYPE public.customer_status AS ENUM ('active', 'suspended', 'closed')")
        result = run_plan(
            str(ROOT / "plans" / "demo-postgres.yaml"), source_url=demo_url, target_url=target_url
        )
    finally:
        drop_pg_database(pg_target_server.url, dbname)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].strip() == "ready"
    assert f"public.customers <- public.customers (~{CUSTOMERS:,} " in result.stdout
    for table in DEMO_TABLES:
        assert f"public.{table} <- public.{table} (" in result.stdout, table
    assert PASSWORD not in result.stdout + result.stderr


def test_demo_plan_json(demo_url: str, mongo_url: str) -> None:
    result = plan_json(str(DEMO_PLAN), source_url=demo_url, target_url=mongo_url)
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["plan"] == "demo"
    assert report["ready"] is True
    assert not [f for f in report["findings"] if f["severity"] == "fail"]
    checks = {(f["check"], f["severity"]) for f in report["findings"]}
    assert {
        ("source.wal_level", "ok"),
        ("source.replication_privilege", "ok"),
        ("target.reachable", "ok"),
    } <= checks

    collections = {c["name"]: c for c in report["collections"]}
    assert list(collections) == ["customers", "products"]
    customers = collections["customers"]
    assert customers["estimated_documents"] == CUSTOMERS
    assert [t["table"] for t in customers["tables"]] == [
        "public.customers",
        "public.addresses",
        "public.customer_profiles",
        "public.orders",
        "public.order_items",
    ]
    shape = customers["shape"]
    assert shape["_id"] == "<id>"
    assert "id" not in shape and "password_hash" not in shape
    assert shape["status"] == "string"  # enum -> its label
    address = shape["addresses"][0]
    assert "customer_id" not in address  # the `on` column is left out of sub-documents
    assert isinstance(shape["profile"], dict)
    item = shape["orders"][0]["items"][0]
    assert "order_id" not in item and "line_no" in item
    assert collections["products"]["shape"]["title"] == "string"  # renamed by `fields`
    assert report["estimate"]["source_rows"] > CUSTOMERS


def test_plan_on_replica_cluster_exits_1_with_the_fix(
    pg_cluster_factory: Callable[..., PgServer], mongo_url: str
) -> None:
    server = pg_cluster_factory(settings={"wal_level": "replica"})
    demo_data.load_demo(server.url, customers=20, seed=7)
    # The throwaway cluster trusts local logins, so any password is accepted: it only has to stay hidden.
    source = with_user(server.url, "postgres", PASSWORD)

    result = run_plan(str(DEMO_PLAN), source_url=source, target_url=mongo_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "source.wal_level" in result.stdout
    assert "ALTER SYSTEM SET wal_level = logical" in result.stdout
    assert result.stdout.splitlines()[-1].strip() == "not ready: 1 check(s) failed"

    as_json = plan_json(str(DEMO_PLAN), source_url=source, target_url=mongo_url)
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ready"] is False
    failures = [f for f in report["findings"] if f["severity"] == "fail"]
    assert [(f["check"], f["subject"]) for f in failures] == [("source.wal_level", "wal_level")]
    assert "wal_level = logical" in failures[0]["fix"]


def test_invalid_plan_exits_2(tmp_path: Path, mongo_url: str) -> None:
    plan = tmp_path / "broken.yaml"
    plan.write_text(
        "version: 1\n"
        "source: {adapter: postgres, url: '${MIGRATOR_SOURCE_URL}'}\n"
        "target: {adapter: mongodb, url: '${MIGRATOR_TARGET_URL}', database: d}\n"
        "collections:\n"
        "  - name: t\n"
        "    from: t\n"
        "    key: id\n"
        "    embedd: []\n"
    )
    source = f"postgresql://app:{PASSWORD}@127.0.0.1:1/shop"

    result = run_plan(str(plan), source_url=source, target_url=mongo_url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{plan}:8:5" in result.stderr
    assert "collections[0].embedd" in result.stderr

    as_json = plan_json(str(plan), source_url=source, target_url=mongo_url)
    assert as_json.exit_code == 2
    payload = json.loads(as_json.stdout)
    assert payload["error"] == "PlanError"
    assert payload["problems"][0]["key"] == "collections[0].embedd"
    assert payload["problems"][0]["line"] == 8
