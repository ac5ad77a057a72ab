"""`migrator runbook`: a Markdown runbook for operators."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from migrator.cli.contract import EXIT_OK, EXIT_OPERATIONAL, MigratorCommand, fail
from migrator.cli.render import make_console
from migrator.errors import MigratorError


@click.command("runbook", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the runbook to FILE (default: standard output).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Contact no database: values only the databases know read '(checked at run time)', and "
    "unset ${VAR} URLs are shown as written.",
)
def runbook_command(plan_file: str, output: str | None, offline: bool) -> None:
    """Write a Markdown runbook for PLAN_FILE's migration, for operators.

    Summary (endpoints without passwords, tables and estimated rows, document shapes, estimated
    durations), prerequisites as a checklist with the values preflight found, every step with its
    command, duration, signals, go / no-go and rollback, and on-call thresholds.

    By default runs the preflight checks against both databases, read-only, as `migrator plan`
    does; --offline contacts neither. The same inputs give the same runbook (Markdown, not JSON).
    Exit 0 written (a failed preflight check is shown in the runbook), 2 invalid plan, 3 a
    database or the output file could not be reached.

    \b
    Examples:
      migrator runbook plans/shop.yaml -o RUNBOOK.md
      migrator runbook plans/shop.yaml --offline | less
    """
    from migrator import api

    try:
        text = api.runbook(plan_file, offline=offline)
    except MigratorError as exc:
        fail(exc, False)
    if output is None:
        click.echo(text, nl=False)
        sys.exit(EXIT_OK)
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        make_console(stderr=True).print(
            f"[bold red]error:[/] cannot write {escape(output)}: {escape(str(exc))}"
        )
        sys.exit(EXIT_OPERATIONAL)
    make_console(stderr=True).print(f"runbook written to {escape(output)}", markup=False)
    sys.exit(EXIT_OK)
