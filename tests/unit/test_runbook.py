"""`migrator runbook` without a database: the golden runbook of the demo plan (offline), masking,
determinism, `-o FILE`, and that every command, option, metric, status field and plan key the
runbook names is real.

Regenerate the golden file after an intended change to the runbook, then review its diff:

    MIGRATOR_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_runbook.py -k golden
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import types
import typing
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from migrator import api
from migrator.cli.main import cli
from migrator.engine.metrics import RunMetrics
from migrator.findings import Finding, Severity
from migrator.operations.status import StatusReport
from migrator.phases.preflight import PreflightReport
from migrator.phases.verify import VerifyReport
from migrator.plan.models import Plan
from migrator.runbook import build_runbook

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "runbook_demo.md"
UPDATE_ENV = "MIGRATOR_UPDATE_GOLDEN"
SOURCE_PASSWORD = "Src-Pw-9qZt2-never-shown"
TARGET_PASSWORD = "Tgt-Pw-4mWx8-never-shown"
ENV = {
    "MIGRATOR_SOURCE_URL": f"postgresql://migrator:{SOURCE_PASSWORD}@db.internal:5432/shop",
    "MIGRATOR_TARGET_URL": f"mongodb://app:{TARGET_PASSWORD}@mongo.internal:27017/?replicaSet=rs0",
}


@pytest.fixture
def demo_runbook(monkeypatch: pytest.MonkeyPatch) -> str:
    # The plan path is repeated in the runbook's commands as given: relative to the repository.
    monkeypatch.chdir(ROOT)
    return api.runbook("plans/demo.yaml", offline=True, env=ENV)


def test_golden_demo_runbook(demo_runbook: str) -> None:
    if os.environ.get(UPDATE_ENV):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(demo_runbook, encoding="utf-8")
    assert GOLDEN.exists(), f"no golden file: run with {UPDATE_ENV}=1 to write {GOLDEN}"
    expected = GOLDEN.read_text(encoding="utf-8")
    assert demo_runbook == expected, (
        f"runbook differs from {GOLDEN}: regenerate with {UPDATE_ENV}=1 and review"
    )


def test_runbook_is_deterministic_and_masked(demo_runbook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert api.runbook("plans/demo.yaml", offline=True, env=ENV) == demo_runbook
    assert SOURCE_PASSWORD not in demo_runbook and TARGET_PASSWORD not in demo_runbook
    assert "`postgresql://migrator:***@db.internal:5432/shop`" in demo_runbook
    assert "`mongodb://app:***@mongo.internal:27017/?replicaSet=rs0`" in demo_runbook
    # Offline: what only the databases know is marked, never guessed.
    assert "- [ ] wal_level = logical (`source.wal_level`): found: (checked at run time)" in demo_runbook
    # The demo plan's switch is a routing file, ticked with where it is.
    assert "- [x] a switch tells applications which side is primary" in demo_runbook
    assert "file .migrator/demo-routing" in demo_runbook


def test_offline_without_the_environment_shows_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    text = api.runbook("plans/demo.yaml", offline=True, env={})
    assert "postgres `${MIGRATOR_SOURCE_URL}` (variable not set when generated)" in text
    assert "mongodb `${MIGRATOR_TARGET_URL}` (variable not set when generated)" in text


def test_failed_preflight_is_unticked_with_its_fix_and_masked() -> None:
    plan = Plan.model_validate(
        {
            "version": 1,
            "name": "shop",
            "source": {"adapter": "postgres", "url": f"postgresql://u:{SOURCE_PASSWORD}@h/db"},
            "target": {"adapter": "mongodb", "url": "mongodb://h/", "database": "d"},
            "collections": [{"name": "users", "from": "users", "key": "id"}],
            "phases": {"verify": {"tolerance": 0.001}, "cutover": {"switch": {"kind": "file", "path": "/r"}}},
        }
    )
    report = PreflightReport(
        plan,
        findings=[
            Finding(
                "source.wal_level", Severity.FAIL, "wal_level", "wal_level is 'replica'", "ALTER SYSTEM ..."
            ),
            Finding(
                "mapping.precision",
                Severity.WARN,
                "public.users.seen",
                f"via postgresql://u:{SOURCE_PASSWORD}@h/db: microseconds are lost",
            ),
        ],
    )
    text = build_runbook(plan, "shop.yaml", report)
    assert "**NOT READY**: 1 preflight check(s) failed" in text
    assert "- [ ] **FAIL** wal_level = logical (`source.wal_level`): found: wal_level is 'replica'" in text
    assert "  fix: ALTER SYSTEM ..." in text
    # A finding the checklist does not cover is listed, not dropped; its password masked.
    assert "| warn | `mapping.precision` | public.users.seen |" in text
    assert SOURCE_PASSWORD not in text
    # The source was not inspected: its other checks say so rather than pass.
    assert "found: (not checked: the database was not reached)" in text
    assert "- [x] a switch tells applications which side is primary" in text
    assert "a score of at least 0.999" in text


def test_output_option_writes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_runbook: str
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "runbook.md"
    result = CliRunner().invoke(cli, ["runbook", "plans/demo.yaml", "--offline", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == demo_runbook
    assert "# Runbook" not in result.stdout  # the file, not stdout, holds it

    printed = CliRunner().invoke(cli, ["runbook", "plans/demo.yaml", "--offline"])
    assert printed.exit_code == 0
    assert printed.stdout == demo_runbook


def test_invalid_plan_exits_2() -> None:
    result = CliRunner().invoke(
        cli, ["runbook", "--offline", str(ROOT / "tests/plans/invalid/unknown_embed_key.yaml")]
    )
    assert result.exit_code == 2, result.output


# -- every name in the runbook is real ---------------------------------------------------------------


def _commands(text: str) -> list[list[str]]:
    found = re.findall(r"`(migrator [^`]+)`", text)
    found += [line for line in text.splitlines() if line.startswith("migrator ")]
    return [shlex.split(c.split("#")[0]) for c in found]


def test_every_command_and_option_exists(demo_runbook: str) -> None:
    commands = _commands(demo_runbook)
    named = {args[1] for args in commands}
    assert {"plan", "run", "status", "verify", "cutover", "rollback", "runbook"} <= named
    for args in commands:
        command = cli.commands.get(args[1])
        assert isinstance(command, click.Command), f"no command `migrator {args[1]}`"
        options = {
            o for p in command.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)
        }
        for token in args[2:]:
            if token.startswith("-"):
                assert token in options, f"`migrator {args[1]}` has no option {token}"
    assert ["migrator", "run", "plans/demo.yaml", "--dry-run"] in commands
    assert ["migrator", "rollback", "plans/demo.yaml", "--yes"] in commands
    assert ["migrator", "status", "plans/demo.yaml", "--history"] in commands


def test_every_metric_exists(demo_runbook: str) -> None:
    registry = RunMetrics().registry
    names = set()
    for family in registry.collect():
        names |= {family.name, f"{family.name}_total"}
    used = set(re.findall(r"`(migrator_[a-z_]+)(?:\{[^}`]*\})?`", demo_runbook))
    assert {"migrator_cdc_lag_seconds", "migrator_retained_wal_bytes", "migrator_errors_total"} <= used
    assert used <= names, f"not metrics: {sorted(used - names)}"


def _unwrap(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return args[0]
    return annotation


def test_every_status_field_exists(demo_runbook: str) -> None:
    verify_keys = set(VerifyReport("p", "full", None, "t").to_dict())
    used = set(re.findall(r"`((?:run|snapshot|cdc|verify|last_checkpoint)\.[a-z_.]+)`", demo_runbook))
    assert {"cdc.lag_seconds", "cdc.slot.retained_wal_bytes", "verify.report.score"} <= used
    for path in sorted(used):
        kind: Any = StatusReport
        parts = path.split(".")
        for i, part in enumerate(parts):
            if kind is dict:  # verify.report: the report as `migrator verify --json` prints it
                assert part in verify_keys and i == len(parts) - 1, path
                break
            assert dataclasses.is_dataclass(kind), path
            hints = typing.get_type_hints(kind)
            assert part in hints, f"status has no field {path}"
            kind = _unwrap(hints[part])
            kind = typing.get_origin(kind) or kind


def test_every_plan_key_exists(demo_runbook: str) -> None:
    used = set(re.findall(r"`(phases\.[a-z_.]+)", demo_runbook))
    assert {"phases.cdc.max_lag", "phases.verify.tolerance", "phases.cutover.max_write_freeze"} <= used
    for path in sorted(used):
        model: Any = Plan
        for part in path.split("."):
            assert isinstance(model, type) and issubclass(model, BaseModel), path
            assert part in model.model_fields, f"plan has no key {path}"
            model = _unwrap(model.model_fields[part].annotation)
