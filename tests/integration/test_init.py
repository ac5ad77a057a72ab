"""`migrator init` on a real throwaway PostgreSQL: the plan it writes for a schema with a root, a
1:N child, a 1:1 child, a many-to-many join table, a large fan-out, an unconvertible column and a
table without a key; `migrator plan` and `run --dry-run` accept that plan as written; no password
reaches it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner, Result

from migrator.cli.main import cli
from migrator.plan import load_plan
from tests.support.demo import with_user

PASSWORD = "Init-Pw-7hQ2-never-written"
ROOT = Path(__file__).resolve().parents[2]
BUSY_EVENTS = 1500  # events of customer 1: over init's 1,000 elements in one array

SCHEMA = f"""
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, search tsvector);
CREATE TABLE customer_profiles (customer_id bigint PRIMARY KEY REFERENCES customers (id), bio text);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), total numeric(10, 2));
CREATE TABLE tags (id integer PRIMARY KEY, label text NOT NULL);
CREATE TABLE customer_tags (
  customer_id bigint REFERENCES customers (id), tag_id integer REFERENCES tags (id),
  PRIMARY KEY (customer_id, tag_id));
CREATE TABLE events (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), kind text);
CREATE TABLE audit_log (at timestamptz, message text);
INSERT INTO customers SELECT i, 'c' || i, to_tsvector('c' || i) FROM generate_series(1, 40) i;
INSERT INTO customer_profiles SELECT i, 'bio ' || i FROM generate_series(1, 20) i;
INSERT INTO orders SELECT i, 1 + i % 40, i FROM generate_series(1, 120) i;
INSERT INTO tags SELECT i, 't' || i FROM generate_series(1, 5) i;
INSERT INTO customer_tags SELECT c, t FROM generate_series(1, 40) c, generate_series(1, 2) t;
INSERT INTO events SELECT i, CASE WHEN i <= {BUSY_EVENTS} THEN 1 ELSE 2 + i % 39 END, 'k'
  FROM generate_series(1, {BUSY_EVENTS + 80}) i;
INSERT INTO audit_log VALUES (now(), 'x');
ANALYZE;
"""
TABLES = ("customers", "customer_profiles", "orders", "tags", "customer_tags", "events", "audit_log")


@pytest.fixture
def shop_url(pg_url: str) -> Iterator[str]:
    """The schema above, owned by a role that may replicate; its URL carries PASSWORD."""
    role = f"init_{uuid.uuid4().hex[:10]}"
    dbname = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        conn.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO {role}')
        for table in TABLES:
            conn.execute(f"ALTER TABLE public.{table} OWNER TO {role}")
    try:
        yield with_user(pg_url, role, PASSWORD)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _invoke(args: list[str], env: dict[str, Any], cwd: Path) -> Result:
    before = Path.cwd()
    os.chdir(cwd)  # `run --dry-run` reads the default state path beside the plan
    try:
        return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    finally:
        os.chdir(before)


def _embeds(collection: Any) -> dict[str, tuple[str, dict[str, str], bool]]:
    return {e.as_: (e.table, e.on, e.many) for e in collection.embed}


def test_init_writes_a_plan_that_plan_and_dry_run_accept(
    shop_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plans" / "shop.yaml"
    plan_file.parent.mkdir()
    env = {"MIGRATOR_SOURCE_URL": shop_url, "MIGRATOR_TARGET_URL": mongo_url, "MIGRATOR_STATE": None}

    written = _invoke(["init", "-o", str(plan_file), "--database", mongo_db_name], env, tmp_path)
    assert written.exit_code == 0, written.output
    text = plan_file.read_text()
    assert PASSWORD not in text and PASSWORD not in written.output

    # What the plan holds, read back through the loader.
    plan = load_plan(plan_file, env=env)
    collections = {c.name: c for c in plan.collections}
    assert set(collections) == {"customers", "tags", "customer_tags", "events"}
    customers = collections["customers"]
    assert customers.key_columns == ("id",)
    assert customers.exclude == ["search"]  # tsvector: no conversion
    assert _embeds(customers) == {
        "customer_profiles": ("public.customer_profiles", {"customer_id": "id"}, False),  # 1:1
        "orders": ("public.orders", {"customer_id": "id"}, True),  # 1:N
    }
    assert collections["customer_tags"].key_columns == ("customer_id", "tag_id")
    assert not collections["customer_tags"].embed and not collections["tags"].embed
    assert not collections["events"].embed

    # ... and why, as comments; the unambiguous link spelling, the modeline, the URLs by reference.
    role = urlsplit(shop_url).username
    # No schema/ above tmp_path: the modeline names a file beside the plan (`migrator schema` writes it).
    assert text.startswith("# yaml-language-server: $schema=plan-v1.json\n")
    assert f"url: '${{MIGRATOR_SOURCE_URL:-postgresql://{role}@" in text
    assert "url: '${MIGRATOR_TARGET_URL}'" in text
    assert "join: {customer_id: id}" in text and " on: " not in text
    assert "many-to-many: it joins public.customers and public.tags" in text
    assert f"large fan-out: up to ~{BUSY_EVENTS:,} rows for one public.customers row" in text.replace(
        "\n", " "
    )
    assert "full-text vectors are derived data" in text
    assert "public.audit_log: no primary key" in text

    # `migrator plan` and `run --dry-run` take it as written.
    checked = _invoke(["plan", str(plan_file)], env, tmp_path)
    assert checked.exit_code == 0, checked.output
    assert PASSWORD not in checked.output
    dry = _invoke(["run", str(plan_file), "--dry-run"], env, tmp_path)
    assert dry.exit_code == 0, dry.output


def test_init_writes_the_schema_path_from_the_plan_to_the_repository_copy(
    shop_url: str, tmp_path: Path
) -> None:
    # Inside the repository (plans/ here), the modeline reaches the committed schema; one table asked.
    result = _invoke(
        ["init", shop_url, "--tables", "customers", "--target-url", "mongodb://u:Tgt-Pw-1@h:27017/"],
        {},
        ROOT / "plans",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# yaml-language-server: $schema=../schema/plan-v1.json\n")
    assert "url: '${MIGRATOR_TARGET_URL:-mongodb://u@h:27017}'" in result.output
    assert PASSWORD not in result.output and "Tgt-Pw-1" not in result.output
    assert "from: public.customers" in result.output and "public.orders" not in result.output

    unknown = _invoke(["init", shop_url, "--tables", "nosuch"], {}, tmp_path)
    assert unknown.exit_code == 2  # usage (docs/json.md)
    assert "--tables nosuch: no such table" in unknown.output
