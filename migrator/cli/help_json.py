"""`--help` under `--json`: the group's or a command's help as one JSON object (docs/json.md,
"Help"), built from the same click objects as the text help, so the two cannot differ."""

from __future__ import annotations

import inspect
from typing import Any

import click

HELP_OPTIONS = ("-h", "--help")


def wants_json_help(args: list[str], *, group: bool) -> bool:
    """`--help` (or `-h`) and `--json` among the arguments. For the group, help must come before
    the command's name (its options are flags only), or it is the command's help."""
    if "--json" not in args:
        return False
    if group:
        leading: list[str] = []
        for arg in args:
            if not arg.startswith("-"):
                break
            leading.append(arg)
        args = leading
    return any(arg in HELP_OPTIONS for arg in args)


def help_object(ctx: click.Context) -> dict[str, Any]:
    """command, usage, summary, description, arguments, options, examples (and, for the group,
    its commands)."""
    command = ctx.command
    description, examples = _split_examples(command.help or "")
    found: dict[str, Any] = {
        "command": ctx.command_path,
        "usage": f"{ctx.command_path} {' '.join(command.collect_usage_pieces(ctx))}".strip(),
        "summary": command.get_short_help_str(limit=200),
        "description": description,
        "arguments": [_argument(p) for p in command.params if isinstance(p, click.Argument)],
        "options": [
            _option(p, ctx) for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden
        ],
        "examples": examples,
    }
    if isinstance(command, click.Group):
        found["commands"] = [
            {"name": name, "summary": sub.get_short_help_str(limit=200)}
            for name in command.list_commands(ctx)
            if (sub := command.get_command(ctx, name)) is not None and not sub.hidden
        ]
    return found


def _split_examples(text: str) -> tuple[str, list[str]]:
    """The help text as paragraphs (lines joined, as the text help rewraps them; a paragraph click
    keeps as written, after a `\\b` line, keeps its lines), and the lines of its `Examples:` block."""
    paragraphs: list[str] = []
    examples: list[str] = []
    for block in inspect.cleandoc(text).split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if lines and lines[0] == "\b":
            lines = lines[1:]
            if lines and lines[0] == "Examples:":
                examples += [line for line in lines[1:] if line]
                continue
            paragraphs.append("\n".join(lines))
        elif lines:
            paragraphs.append(" ".join(lines))
    return "\n\n".join(paragraphs), examples


def _argument(argument: click.Argument) -> dict[str, Any]:
    return {"name": argument.human_readable_name, "required": argument.required, "nargs": argument.nargs}


def _option(option: click.Option, ctx: click.Context) -> dict[str, Any]:
    found: dict[str, Any] = {
        "names": [*option.opts, *option.secondary_opts],
        "help": option.help or "",
        "type": "flag" if option.is_flag else option.type.name,
        "default": _jsonable(option.get_default(ctx, call=True)),
        "required": option.required,
        "multiple": option.multiple,
        "envvar": _envvar(option, ctx),
    }
    if isinstance(option.type, click.Choice):
        found["choices"] = [str(choice) for choice in option.type.choices]
    return found


def _envvar(option: click.Option, ctx: click.Context) -> str | None:
    """The variable the text help shows (`[env var: ...]`), or None where it shows none."""
    if isinstance(option.envvar, str):
        return option.envvar
    if option.show_envvar and option.allow_from_autoenv and ctx.auto_envvar_prefix and option.name:
        return f"{ctx.auto_envvar_prefix}_{option.name.upper()}"
    return None


def _jsonable(value: Any) -> Any:
    if type(value).__module__.startswith("click"):  # click's "no default" sentinel: none
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
