"""`migrator plan` on a MariaDB source, end to end: the installed command in a subprocess runs the
source's real preflight, prints its findings (and the mapping's refusal of a spatial column), says
and never shows the password; `run` refuses what the plan cannot migrate before it changes anything."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from migrator.cli.main import cli
from migrator.plan import load_plan
from tests.support.cli_process import migrator_script
from tests.support.mariadb import connect, mysql_user

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Plan-pw-H15x"

PLAN = """\
version: 1
name: shop
source: {adapter: mysql, url: "${MIGRATOR_SOURCE_URL}"}
target: {adapter: mongodb, url: "${MIGRATOR_TARGET_URL}", database: shop}
collections:
  - name: customers
    from: DB.customers
    key: id
    embed:
      - {as: orders, from: DB.orders, on: {customer_id: id}, many: true, key: id}
"""


@pytest.fixture
def shop_url(mysql_url: str) -> Iterator[str]:
    """A shop schema, read by a user with a password and the privileges a source needs."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, vip TINYINT(1), "
            "home POINT, joined DATE)"
        )
        cur.execute(
            "CREATE TABLE orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id INT NOT NULL, "
            "total DECIMAL(12, 2), placed TIMESTAMP(3) NULL, KEY (customer_id))"
        )
        cur.execute("INSERT INTO customers VALUES (1, 'Ada', 1, POINT(1, 2), '2024-01-01')")
        cur.execute("INSERT INTO orders VALUES (18446744073709551615, 1, 9.50, '2024-01-02 03:04:05.678')")
    with mysql_user(
        mysql_url,
        "shop",
        PASSWORD,
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, LOCK TABLES, TRIGGER ON {db}.* TO {user}",
        "GRANT REPLICATION SLAVE, BINLOG MONITOR, PROCESS, CONNECTION ADMIN ON *.* TO {user}",
    ) as url:
        yield url


def _plan(
    tmp_path: Path, source_url: str, mongo_url: str, *args: str, command: str = "plan"
) -> subprocess.CompletedProcess[str]:
    plan = tmp_path / "shop.yaml"
    plan.write_text(PLAN.replace("DB.", urlsplit(source_url).path.lstrip("/") + "."))
    env = {**os.environ, "MIGRATOR_SOURCE_URL": source_url, "MIGRATOR_TARGET_URL": mongo_url}
    result = subprocess.run(
        [migrator_script(), command, *args, str(plan)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
    return result


def test_plan_runs_the_mysql_preflight(tmp_path: Path, shop_url: str, mongo_url: str) -> None:
    db = urlsplit(shop_url).path.lstrip("/")
    result = _plan(tmp_path, shop_url, mongo_url, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ready"] is False
    findings = {(f["check"], f["subject"]): f for f in report["findings"]}
    severities = {key: f["severity"] for key, f in findings.items()}
    assert severities[("source.reachable", report["source"])] == "ok"
    assert (
        report["source"] == f"mysql://{urlsplit(shop_url).username}@127.0.0.1:{urlsplit(shop_url).port}/{db}"
    )
    for check in (
        "source.log_bin",
        "source.binlog_format",
        "source.binlog_row_image",
        "source.binlog_row_metadata",
    ):
        assert severities[(check, check.removeprefix("source."))] == "ok"
    assert severities[("source.privilege", "REPLICATION SLAVE")] == "ok"
    assert severities[("source.tinyint1", f"{db}.customers.vip")] == "info"
    # What stops the run: the spatial column (the type table's hint).
    failed = {key for key, s in severities.items() if s == "fail"}
    spatial = [f for key, f in findings.items() if key in failed and "home" in f["subject"]]
    assert spatial and "ST_AsText" in spatial[0]["message"] + (spatial[0]["fix"] or "")
    assert len(failed) == 1, failed
    estimates = {c["name"]: c for c in report["collections"]}
    assert estimates["customers"]["estimated_documents"] == 1


def test_plan_prints_the_findings(tmp_path: Path, shop_url: str, mongo_url: str) -> None:
    result = _plan(tmp_path, shop_url, mongo_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ST_AsText" in result.stdout
    assert "not ready" in result.stdout


def test_run_is_refused_cleanly(tmp_path: Path, shop_url: str, mongo_url: str) -> None:
    """A spatial column stops `run` at preflight, with the type table's hint."""
    result = _plan(tmp_path, shop_url, mongo_url, "--state", str(tmp_path / "state.db"), command="run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ST_AsText" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "NotImplementedError" not in result.stdout + result.stderr


def test_init_proposes_a_plan_that_plan_accepts(
    tmp_path: Path, shop_url: str, mysql_url: str, mongo_url: str
) -> None:
    """`migrator init` on the same schema: orders embedded in customers along the foreign key,
    the spatial column excluded with the type table's reason; `migrator plan` is then ready."""
    db = urlsplit(shop_url).path.lstrip("/")
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id)")
        cur.execute("ANALYZE TABLE customers, orders")
    plan = tmp_path / "shop.yaml"
    env = {"MIGRATOR_SOURCE_URL": shop_url, "MIGRATOR_TARGET_URL": mongo_url}
    written = CliRunner().invoke(cli, ["init", "-o", str(plan)], env=env, catch_exceptions=False)
    assert written.exit_code == 0, written.output
    text = plan.read_text()
    assert PASSWORD not in text
    assert f"url: '${{MIGRATOR_SOURCE_URL:-mysql://{urlsplit(shop_url).username}@" in text
    assert "ST_AsText" in text  # the reason `home` is excluded
    loaded = load_plan(plan, env=env)
    [customers] = loaded.collections
    assert (customers.table, customers.exclude) == (f"{db}.customers", ["home"])
    assert [(e.table, e.on, e.many) for e in customers.embed] == [
        (f"{db}.orders", {"customer_id": "id"}, True)
    ]

    checked = CliRunner().invoke(cli, ["plan", "--json", str(plan)], env=env, catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["ready"] is True and PASSWORD not in checked.output
