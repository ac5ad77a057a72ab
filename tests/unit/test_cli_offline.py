"""CLI behaviour that needs no database: exit codes, JSON, schema, masking."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from click.testing import CliRunner

from migrator.cli.main import cli

PLANS = Path(__file__).parent.parent / "plans"


def test_invalid_plan_exits_2_naming_file_line_key() -> None:
    path = PLANS / "invalid" / "unknown_embed_key.yaml"
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 2
    assert f"{path}:13:9" in result.output
    assert "collections[0].embed[0].many_to_one" in result.output


def test_invalid_plan_json() -> None:
    path = PLANS / "invalid" / "unset_env.yaml"
    result = CliRunner().invoke(cli, ["plan", "--json", str(path)])
    assert result.exit_code == 2
    payload = json.loads(result.output)
    assert payload["error"] == "PlanError"
    assert payload["problems"][0]["line"] == 3
    assert payload["problems"][0]["key"] == "source.url"


def test_missing_file_exits_2() -> None:
    result = CliRunner().invoke(cli, ["plan", "does/not/exist.yaml"])
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_schema_command_prints_json_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["properties"]["version"]["const"] == 1


def test_unreachable_source_names_endpoint_without_password(tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text(
        "version: 1\n"
        "source: {adapter: postgres, url: 'postgresql://app:Sup3rSecret@127.0.0.1:1/shop?connect_timeout=2'}\n"
        "target: {adapter: mongodb, url: 'mongodb://app:Sup3rSecret@127.0.0.1:1/?serverSelectionTimeoutMS=500',"
        " database: d}\n"
        "collections: [{name: t, from: t, key: id}]\n"
    )
    for args in (["plan", str(plan)], ["plan", "--json", str(plan)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 3, result.output  # cannot connect (docs/json.md)
        assert "Sup3rSecret" not in result.output
        assert "postgresql://app@127.0.0.1:1/shop" in result.output
        assert "127.0.0.1:1" in result.output


def test_a_command_run_in_process_gives_back_the_signal_handlers_it_installed(tmp_path: Path) -> None:
    """`run` stops on SIGINT/SIGTERM while it works; once it returns (here: the source is
    unreachable) the process's own handlers are back, so Ctrl-C raises KeyboardInterrupt again."""
    plan = tmp_path / "p.yaml"
    plan.write_text(
        "version: 1\n"
        "source: {adapter: postgres, url: 'postgresql://app@127.0.0.1:1/shop?connect_timeout=2'}\n"
        "target: {adapter: mongodb, url: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500', database: d}\n"
        "collections: [{name: t, from: t, key: id}]\n"
    )
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    result = CliRunner().invoke(cli, ["run", str(plan), "--state", str(tmp_path / "s.db")])
    assert result.exit_code == 3, result.output  # cannot connect (docs/json.md)
    assert {s: signal.getsignal(s) for s in before} == before
