"""`migrator plan`: validate a plan and run the preflight checks."""

from __future__ import annotations

import sys

import click

from migrator.cli.contract import EXIT_FAILED, EXIT_OK, MigratorCommand, echo_json, exit_code_for, fail
from migrator.cli.options import json_option
from migrator.cli.render import make_console, render_preflight
from migrator.errors import MigratorError


@click.command("plan", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@json_option("Print the report as one JSON object.")
def plan_command(plan_file: str, as_json: bool) -> None:
    """Validate PLAN_FILE, inspect both databases and run the preflight checks.

    Read-only. Exit 0 when ready, 1 when a preflight check failed, 2 when the plan is invalid,
    3 when a database cannot be reached.

    \b
    Examples:
      migrator plan plans/shop.yaml
      migrator plan plans/shop.yaml --json | jq '.findings[] | select(.severity == "fail")'
    """
    from migrator import api

    try:
        report = api.plan(plan_file)
    except MigratorError as exc:
        fail(exc, as_json)
    if as_json:
        echo_json(report.to_dict())
    else:
        render_preflight(make_console(), report)
    if report.unreached:  # a database could not be inspected: 3, whatever else failed
        sys.exit(max(exit_code_for(error) for error in report.unreached))
    sys.exit(EXIT_OK if report.ready else EXIT_FAILED)
