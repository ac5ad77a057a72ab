"""`migrator runbook` against real servers: the values in it are the ones preflight found live
(wal_level, the server's version, row estimates, document shapes with BSON types), and the
password of the source URL never appears, in the API's text nor in the command's output."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DEMO_PLAN = ROOT / "plans" / "demo.yaml"
CUSTOMERS = 120
PASSWORD = "Rb-Pw-6tLq1-never-shown"
DEMO_TABLES = ("products", "customers", "addresses", "customer_profiles", "orders", "order_items")


def _import_demo_data() -> ModuleType:
    # scripts/ is not a package (it must run before migrator is installed), so import it by path.
    path = ROOT / "scripts" / "lib" / "demo_data.py"
    spec = importlib.util.spec_from_file_location("migrator_demo_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


demo_data = _import_demo_data()


@pytest.fixture
def demo_url(pg_url: str) -> Iterator[str]:
    """The demo schema in pg_url, owned by a replication role whose URL carries PASSWORD."""
    demo_data.load_demo(pg_url, customers=CUSTOMERS, seed=7)
    role = f"rb_{uuid.uuid4().hex[:10]}"
    dbname = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        conn.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO {role}')
        for table in DEMO_TABLES:
            conn.execute(f"ALTER TABLE public.{table} OWNER TO {role}")
    parts = urlsplit(pg_url)
    host = parts.netloc.rpartition("@")[2]
    try:
        yield urlunsplit((parts.scheme, f"{role}:{PASSWORD}@{host}", parts.path, parts.query, parts.fragment))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_runbook_shows_live_preflight_values_and_never_the_password(
    demo_url: str, mongo_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(demo_url) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    assert row is not None
    version = str(row[0])
    env = {"MIGRATOR_SOURCE_URL": demo_url, "MIGRATOR_TARGET_URL": mongo_url}

    text = api.runbook(DEMO_PLAN, env=env)

    assert PASSWORD not in text
    role = urlsplit(demo_url).username
    assert f"`postgresql://{role}:***@" in text
    assert "(checked at run time)" not in text  # online: every value was looked up
    assert "- [x] wal_level = logical (`source.wal_level`): found: wal_level = logical" in text
    assert f"(`source.version`): found: PostgreSQL {version}" in text
    assert (
        "- [x] the plan's role may replicate (REPLICATION or superuser) (`source.replication_privilege`)"
        in text
    )
    assert "REPLICA IDENTITY DEFAULT, primary key (id)" in text
    assert "(`target.reachable`): found: MongoDB " in text
    assert "ready: no preflight check failed" in text
    # Row estimates from the live statistics, and shapes resolved with BSON types.
    assert f"| `public.customers` | `customers` | documents (`_id` <- id) | {CUSTOMERS:,} |" in text
    assert "Shapes resolved against the source schema" in text
    assert '"status": "string"' in text
    assert "password_hash" not in text.split("### Collections and document shape")[1].split("###")[0]
    # With rows known, the snapshot has an estimate rather than a placeholder.
    assert "| snapshot | under a minute |" in text

    # The command writes the same text, and its output streams hold no password either.
    out = tmp_path / "runbook.md"
    result = CliRunner().invoke(cli, ["runbook", str(DEMO_PLAN), "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert out.read_text(encoding="utf-8") == text
