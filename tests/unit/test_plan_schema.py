"""Plan files against the JSON Schema `migrator schema` prints, as editors and check-jsonschema read
them: raw YAML, before ${VAR} expansion. Durations and sizes are numbers or strings with a unit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from migrator.cli.main import cli
from migrator.plan.units import parse_duration, parse_size

ROOT = Path(__file__).parent.parent.parent
VALID = sorted([*(ROOT / "plans").glob("*.yaml"), *(ROOT / "tests" / "plans" / "valid").glob("*.yaml")])
INVALID = ROOT / "tests" / "plans" / "invalid"


def _printed_schema() -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.output)
    Draft202012Validator.check_schema(schema)
    return schema


SCHEMA = _printed_schema()
VALIDATOR = Draft202012Validator(SCHEMA)


# The loader expands ${VAR} into string values only, and before it parses the YAML, which lets
# plans write ${VAR} unquoted in a flow mapping (tests/plans/valid/full.yaml). A placeholder
# word stands for each reference here: a string, in a file any YAML parser reads.
_REFERENCE = re.compile(r"\$?\$\{[^}\n]*\}")


def _yaml(path: Path, *, references: str = "kept") -> object:
    text = path.read_text()
    if references == "hidden":
        text = _REFERENCE.sub("VAR", text)
    return YAML(typ="safe", pure=True).load(text)


def _errors(document: object) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_plans_to_check_include_the_demos() -> None:
    assert {"demo.yaml", "demo-mariadb.yaml", "full.yaml", "minimal.yaml"} <= {p.name for p in VALID}


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_valid_plan_passes_the_schema(path: Path) -> None:
    assert _errors(_yaml(path, references="hidden")) == []


@pytest.mark.parametrize("path", sorted((ROOT / "plans").glob("*.yaml")), ids=lambda p: p.stem)
def test_demo_plans_pass_the_schema_as_written(path: Path) -> None:
    # As check-jsonschema and editors read them: the file itself, ${VAR} and all.
    assert _errors(_yaml(path)) == []


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("duration_unit.yaml", ["phases", "cutover", "max_write_freeze"]),  # 2 parsecs
        ("duration_unit_case.yaml", ["phases", "cdc", "max_lag"]),  # 2S: duration units are lower case
        ("size_unit.yaml", ["phases", "cdc", "max_retained_wal"]),  # 10GiB
    ],
)
def test_wrong_unit_string_fails_the_schema_at_its_field(name: str, where: list[str]) -> None:
    errors = list(VALIDATOR.iter_errors(_yaml(INVALID / name)))
    assert [list(e.absolute_path) for e in errors] == [where]


def _field(settings_model: str, field: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMA["$defs"][settings_model]["properties"][field])


DURATION = _field("CutoverSettings", "retry_pause")  # ge=0: every duration the loader parses
SIZE = _field("CdcSettings", "max_retained_wal")


@pytest.mark.parametrize("text", ["500ms", "2s", "1m", "1h", " 1.5 m ", "0.25s", "3 h", 2, 2.5, 0])
def test_durations_the_loader_reads_pass(text: object) -> None:
    assert DURATION.is_valid(text)


@pytest.mark.parametrize("text", ["2 parsecs", "2S", "2sec", "1.5", "2", "-1s", ".5s", "s", "1d", "٢s", True])
def test_durations_the_loader_refuses_fail(text: object) -> None:
    assert not DURATION.is_valid(text)


@pytest.mark.parametrize("text", ["10GB", "512MB", "512mb", "1Kb", "7 B", "1.5TB", 1024])
def test_sizes_the_loader_reads_pass(text: object) -> None:
    assert SIZE.is_valid(text)


@pytest.mark.parametrize("text", ["10GiB", "10G", "10", "1.5", "-1GB", "GB", 1.5, True])
def test_sizes_the_loader_refuses_fail(text: object) -> None:
    assert not SIZE.is_valid(text)


def _reads(parse: Any, value: object) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


_UNIT_TEXT = st.text(alphabet="0123456789. \tsmhKkMmGgTtBbx-", max_size=10)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(_UNIT_TEXT, st.booleans(), st.integers(min_value=0), st.floats(min_value=0, allow_nan=False))
)
def test_schema_takes_the_durations_the_loader_reads(value: object) -> None:
    assert DURATION.is_valid(value) == _reads(parse_duration, value), value


# Not floats: JSON Schema's integer takes 10.0, which the loader refuses (a size is whole bytes).
@settings(max_examples=400, deadline=None)
@given(st.one_of(_UNIT_TEXT, st.booleans(), st.integers(min_value=1)))
def test_schema_takes_the_sizes_the_loader_reads(value: object) -> None:
    assert SIZE.is_valid(value) == _reads(parse_size, value), value


# -- the committed schema, the modelines and the `join` spelling --------------------------------

SCHEMA_FILE = ROOT / "schema" / "plan-v1.json"
_MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")


def test_committed_schema_is_what_migrator_schema_prints() -> None:
    printed = CliRunner().invoke(cli, ["schema"]).output
    assert SCHEMA_FILE.read_text() == printed, "run: migrator schema > schema/plan-v1.json"


def test_schema_id_is_a_name_not_a_url_nobody_serves() -> None:
    assert SCHEMA["$id"].startswith("urn:")


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_plan_names_the_committed_schema_in_its_modeline(path: Path) -> None:
    found = _MODELINE.match(path.read_text())
    assert found, f"{path} does not start with a yaml-language-server modeline"
    assert (path.parent / found.group(1)).resolve() == SCHEMA_FILE.resolve()


def _with_link(link: str) -> object:
    text = f"""version: 1
source: {{adapter: postgres, url: "postgresql://h/db"}}
target: {{adapter: mongodb, url: "mongodb://h/", database: app}}
collections:
  - name: users
    from: users
    key: id
    embed: [{{as: addresses, from: addresses, {link}}}]
"""
    return YAML(typ="safe", pure=True).load(text)


@pytest.mark.parametrize(
    ("link", "valid"),
    [
        ("join: {user_id: id}", True),
        ("on: {user_id: id}", True),
        ("'on': {user_id: id}", True),
        ("on: {user_id: id}, join: {user_id: id}", False),  # both spellings
        ("many: true", False),  # neither
        ("join: {}", False),
        ("join: null", False),
    ],
)
def test_schema_takes_one_link_spelling(link: str, valid: bool) -> None:
    assert (_errors(_with_link(link)) == []) is valid


def _keys(node: object) -> set[object]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


@pytest.mark.parametrize("path", sorted((ROOT / "plans").glob("*.yaml")), ids=lambda p: p.stem)
def test_demo_plans_read_alike_under_yaml_1_1(path: Path) -> None:
    # As PyYAML and yamllint read them (YAML 1.1, where a bare `on` key is the boolean true).
    old = YAML(typ="safe", pure=True)
    old.version = (1, 1)
    keys = _keys(old.load(path.read_text()))
    assert all(isinstance(k, str) for k in keys), keys
    if "embed" in keys:  # a plan that links tables spells the link `join`
        assert "join" in keys and "on" not in keys
