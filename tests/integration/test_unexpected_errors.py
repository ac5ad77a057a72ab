"""An unexpected error (no MigratorError: a defect) is rendered by its type and message, never bare.

Issue 17 (defect 14b): one CDC trial ended `error: target: int`, nothing else; an exception whose
str() says nothing (KeyError(...), an int) was shown raw, or as a Python traceback. Here a defect is
planted in the snapshot's target write of a real run (the one thing a test cannot get from the
servers themselves), and the CLI, the state store (`migrator status`) and the traceback file are
read back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from pymongo import errors as mongo

from migrator.adapters.mongodb.errors import classify
from migrator.adapters.mongodb.writer import DocumentWriter
from migrator.cli.main import cli
from migrator.engine.events import ErrorRaised
from tests.support import json_output

PASSWORD = "Unexp-Pw-41x"


def _defect(self: DocumentWriter, batch: object) -> None:
    raise KeyError(7)  # str() is "7": alone it says nothing


def test_defect_in_a_run_is_named_with_its_type_and_traceback(
    pg_url: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "version: 1\nsource: {adapter: postgres, url: '${SRC}'}\n"
        f"target: {{adapter: mongodb, url: '${{TGT}}', database: {mongo_db_name}}}\n"
        "collections: [{name: items, from: public.items, key: id}]\n"
    )
    host = pg_url.split("://", 1)[1].split("@")[-1]
    env = {
        "SRC": f"postgresql://postgres:{PASSWORD}@{host}",
        "TGT": mongo_url,
        "MIGRATOR_LOG_DIR": str(tmp_path),
    }
    state = str(tmp_path / "state.db")
    monkeypatch.setattr(DocumentWriter, "write", _defect)

    result = CliRunner().invoke(cli, ["run", "--until", "snapshot", "--state", state, str(plan)], env=env)

    assert result.exit_code == 3, (result.output, result.exception)  # docs/json.md: a defect exits 3
    assert "Traceback" not in result.stderr
    assert "internal error: KeyError: 7" in result.stderr, result.stderr
    found = re.search(r"its traceback is in (\S+\.log)", result.stderr)
    assert found is not None, result.stderr
    log = Path(found.group(1))
    assert log.parent == tmp_path and log.stat().st_mode & 0o077 == 0
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "KeyError: 7" in text and "_defect" in text
    assert PASSWORD not in text + result.stderr + result.stdout

    monkeypatch.undo()
    status = CliRunner().invoke(cli, ["status", "--json", "--state", state, str(plan)], env=env)
    errors = json.loads(status.stdout)["errors"]
    assert any(e["error"] == "KeyError" and e["message"] == "KeyError: 7" for e in errors), errors


def test_cli_json_reports_the_defect_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise KeyError("int")

    monkeypatch.setattr("migrator.api.plan", boom)
    plan = tmp_path / "p.yaml"
    plan.write_text("version: 1\n")
    result = CliRunner().invoke(cli, ["plan", "--json", str(plan)], env={"MIGRATOR_LOG_DIR": str(tmp_path)})
    assert result.exit_code == 3
    payload = json_output.error(result.stdout, 3)
    assert payload["error"] == "InternalError" and "KeyError: 'int'" in payload["message"]


def test_unclassified_driver_error_keeps_its_class() -> None:
    # The path `error: target: int` came through: the applier names its endpoint "target" and
    # classify() gave any PyMongoError outside its known classes as "<endpoint>: <str(exc)>".
    error = classify(mongo.InvalidOperation("int"), "target")
    assert error.message == "target: InvalidOperation: int"
    assert ErrorRaised.of("cdc", KeyError(7), retrying=False).message == "KeyError: 7"
    assert ErrorRaised.of("cdc", ValueError(), retrying=False).message == "ValueError"
