"""`migrator runbook` against real servers: the values in it are the ones preflight found live
(wal_level, the server's version, row estimates, document shapes with BSON types), and the
password of the source URL never appears, in the API's text nor in the command's output."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli
from tests.support.demo import DEMO_PLAN, PASSWORD

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 120


@pytest.fixture
def demo_customers() -> int:
    return CUSTOMERS


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
