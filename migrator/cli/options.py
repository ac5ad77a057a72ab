"""Options shared by several commands, and the group's verbosity (-q/-v)."""

from __future__ import annotations

from typing import Any

import click

# The same --state option on every command that reads or writes the run's state.
state_option = click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False),
    help="State file (default: $MIGRATOR_STATE, else .migrator/<plan name>.db beside the plan file).",
)


def json_option(help_text: str) -> Any:
    return click.option("--json", "as_json", is_flag=True, help=help_text + " See docs/json.md.")


def _keep_http_port(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    # Observed (cli/observe.py) reads it from the context: the commands' signatures stay as they are.
    ctx.meta["migrator.http_port"] = value


def observe_options(command: Any) -> Any:
    """--metrics-port, --metrics-addr, --http-port and --log-format: for the long-running commands
    (run, cutover, verify, rollback)."""
    command = click.option(
        "--http-port",
        type=click.IntRange(0, 65535),
        default=None,
        expose_value=False,
        callback=_keep_http_port,
        help="Serve a live dashboard at http://ADDR:PORT/ and its JSON at /api/v1/progress while the "
        "command lasts (ADDR: --metrics-addr; 0: a free port, announced on stderr). See docs/dashboard.md.",
    )(command)
    command = click.option(
        "--log-format",
        type=click.Choice(["json", "text"]),
        default=None,
        help="Structured logs on stderr, one line per event: json (ts, level, event, fields) or text.",
    )(command)
    command = click.option(
        "--metrics-addr",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics endpoint listens on (0.0.0.0: every interface).",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus metrics at http://ADDR:PORT/metrics while the command lasts (0: a free "
        "port, announced on stderr).",
    )(command)


# Verbosity, from the group's -q / -v: the least level of event shown (logs.level_of).
QUIET, NORMAL, VERBOSE = "error", "info", "debug"


def verbosity() -> str:
    """QUIET (only results and errors), NORMAL, or VERBOSE (debug events too: progress ticks)."""
    context = click.get_current_context(silent=True)
    if context is None:
        return NORMAL
    params = context.find_root().params
    if params.get("quiet"):
        return QUIET
    return VERBOSE if params.get("verbose") else NORMAL


def json_lines_least(least: str) -> str:
    """The least level of the `--json` event lines: progress ticks by default (a machine reads
    them: dashboards, CI logs), only results and errors with -q (docs/json.md, "Which events")."""
    return QUIET if least == QUIET else VERBOSE
