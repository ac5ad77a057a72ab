"""`--help` under `--json` (docs/json.md, "Help"): one JSON object, for the group and every
command, holding what the text help shows. The expectation is read from the text help itself
(its option names, its Examples block, its commands), and a few values are written here by hand."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner

from migrator.cli.main import cli
from tests.support.json_output import COMMANDS


def _invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, prog_name="migrator")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _json_help(args: list[str]) -> dict[str, Any]:
    code, out, err = _invoke(args)
    assert code == 0 and err == "", (args, err)
    lines = out.splitlines()
    assert len(lines) == 1, out  # one object on one line
    found = json.loads(lines[0])
    assert isinstance(found, dict)
    return found


def _text_option_names(text: str) -> set[str]:
    """Every option name in the text help's Options section."""
    section = text.split("Options:", 1)[1]
    names: set[str] = set()
    for line in section.splitlines():
        match = re.match(r"\s{2}(-[^ ,]+(?:, -[^ ,]+)*(?: / -[^ ,]+)?)", line)
        if match:
            names |= {name.strip(",") for name in re.split(r"[ ,/]+", match.group(1)) if name.startswith("-")}
    return names


def _text_examples(text: str) -> list[str]:
    if "Examples:" not in text:
        return []
    block = text.split("Examples:", 1)[1].split("Options:", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_as_json_names_what_the_text_help_shows(command: str) -> None:
    code, text, _ = _invoke([command, "--help"])
    assert code == 0
    found = _json_help([command, "--help", "--json"])
    assert found["command"] == f"migrator {command}"
    assert text.startswith(f"Usage: {found['usage']}")
    names = {name for option in found["options"] for name in option["names"]}
    assert names == _text_option_names(text)
    assert found["examples"] == _text_examples(text) and found["examples"]
    assert found["summary"] and found["summary"] in " ".join(text.split())
    assert "\b" not in found["description"] and "Examples:" not in found["description"]
    # --json before --help: the same object.
    assert _json_help([command, "--json", "--help"]) == found


def test_the_groups_help_as_json_lists_its_commands_and_options() -> None:
    _code, text, _ = _invoke(["--help"])
    found = _json_help(["--help", "--json"])
    assert found["command"] == "migrator" and found["usage"] == "migrator [OPTIONS] COMMAND [ARGS]..."
    assert sorted(c["name"] for c in found["commands"]) == sorted(COMMANDS)
    assert {name for option in found["options"] for name in option["names"]} == _text_option_names(text)
    quiet = next(o for o in found["options"] if "--quiet" in o["names"])
    assert (quiet["type"], quiet["default"], quiet["envvar"]) == ("flag", False, "MIGRATOR_QUIET")
    assert found["examples"][0] == 'migrator init "$MIGRATOR_SOURCE_URL" -o plan.yaml'
    assert _json_help(["-q", "--json", "-h"])["command"] == "migrator"


def test_option_types_defaults_choices_and_variables_by_hand() -> None:
    options = {o["names"][0]: o for o in _json_help(["run", "--help", "--json"])["options"]}
    until = options["--until"]
    assert (until["type"], until["default"], until["choices"]) == (
        "choice",
        None,
        ["snapshot", "caught-up", "verified"],
    )
    assert (options["--metrics-addr"]["default"], options["--metrics-addr"]["envvar"]) == (
        "127.0.0.1",
        "MIGRATOR_RUN_METRICS_ADDR",
    )
    assert options["--state"]["default"] is None and options["--json"]["default"] is False
    assert _json_help(["run", "--help", "--json"])["arguments"] == [
        {"name": "PLAN_FILE", "required": True, "nargs": 1}
    ]


def test_help_of_a_command_is_its_own_not_the_groups() -> None:
    assert _json_help(["-v", "verify", "-h", "--json"])["command"] == "migrator verify"


def test_without_json_help_stays_text() -> None:
    code, out, _ = _invoke(["run", "--help"])
    assert code == 0 and out.startswith("Usage: migrator run")
