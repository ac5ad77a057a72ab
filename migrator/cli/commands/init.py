"""`migrator init`: propose a commented plan from a live source."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from migrator.cli.contract import EXIT_OK, EXIT_OPERATIONAL, MigratorCommand, echo_json
from migrator.cli.options import json_option
from migrator.cli.render import make_console

if TYPE_CHECKING:
    from migrator.operations.init import InitResult
    from migrator.operations.propose import Level


@click.command("init", cls=MigratorCommand)
@click.argument("source_url", envvar="MIGRATOR_SOURCE_URL", metavar="SOURCE_URL")
@click.option(
    "--tables",
    multiple=True,
    help="Only these tables (repeat it, or separate with commas; schema.table, or a name found once). "
    "Default: every table of the URL's database.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the plan to FILE (default: standard output). An existing file is kept unless --force.",
)
@click.option("--force", is_flag=True, help="Overwrite the --output file.")
@click.option(
    "--target-url",
    default=None,
    help="MongoDB URL written (without its password) as the default of ${MIGRATOR_TARGET_URL}.",
)
@click.option("--database", default=None, help="Target database (default: the source database's name).")
@json_option("Print one JSON object: the plan text, its collections and the tables left out.")
def init_command(
    source_url: str,
    tables: tuple[str, ...],
    output: str | None,
    force: bool,
    target_url: str | None,
    database: str | None,
    as_json: bool = False,
) -> None:
    """Inspect a live source and write a commented plan for it.

    Read-only. One collection per root table; a child table (its foreign key to a parent's key) is
    embedded in the parent's documents: one sub-document when the link is also its own key (1:1),
    an array otherwise (1:N), unless the estimated document would grow past 4 MB (a quarter of
    MongoDB's 16 MB) or one parent holds over 1,000 of its rows; join tables (many-to-many) and
    such large fan-outs stay collections of their own. Columns of a type with no conversion are
    excluded. Comments in the plan say why. SOURCE_URL defaults to $MIGRATOR_SOURCE_URL (which
    keeps the password off the command line); the plan names its URLs as ${MIGRATOR_SOURCE_URL}
    and ${MIGRATOR_TARGET_URL}, never with a password. Exit 0 written, 2 usage (a malformed URL,
    a table that does not exist), 3 the source could not be read.

    \b
    Examples:
      export MIGRATOR_SOURCE_URL='postgresql://app:PASSWORD@db:5432/shop'
      migrator init --tables customers,orders,order_items -o plans/shop.yaml
      export MIGRATOR_TARGET_URL='mongodb://mongo:27017/?replicaSet=rs0'
      migrator plan plans/shop.yaml
      migrator init --json | jq -r .plan > plans/shop.yaml
    """
    from migrator import api

    if output is not None and os.path.exists(output) and not force:
        raise click.UsageError(f"{output} exists: pass --force to overwrite it")
    names = [name.strip() for entry in tables for name in entry.split(",") if name.strip()]
    _warn_when_the_environment_differs(source_url)
    plan_dir = os.path.dirname(os.path.abspath(output)) if output is not None else "."
    result = api.init(source_url, tables=names, target_url=target_url, database=database, plan_dir=plan_dir)
    if output is None and not as_json:
        click.echo(result.text, nl=False)
    elif output is not None:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(result.text)
        except OSError as exc:
            make_console(stderr=True).print(
                f"error: cannot write {output}: {exc.strerror or exc}", markup=False
            )
            sys.exit(EXIT_OPERATIONAL)
    if as_json:
        echo_json(_summary(result, output))
    else:
        proposal = result.proposal
        make_console(stderr=True).print(
            f"{output or 'plan'}: {len(result.tables)} table(s) inspected, {len(proposal.roots)} collection(s), "
            f"{len(proposal.skipped)} table(s) left out (see the comments)",
            markup=False,
        )
    sys.exit(EXIT_OK)


def _warn_when_the_environment_differs(source_url: str) -> None:
    """The plan reads ${MIGRATOR_SOURCE_URL:-<this URL>}: a variable set to another URL wins over
    the SOURCE_URL given here, so `migrator plan` would inspect that other database. Said on
    stderr (no URL shown: it may hold a password); the plan is still written."""
    environment = os.environ.get("MIGRATOR_SOURCE_URL")
    if environment and environment != source_url:
        make_console(stderr=True).print(
            "warning: $MIGRATOR_SOURCE_URL is set to another URL than SOURCE_URL; the plan reads "
            "${MIGRATOR_SOURCE_URL} first, so export MIGRATOR_SOURCE_URL=SOURCE_URL before `migrator plan`",
            markup=False,
        )


def _embeds(level: Level) -> list[dict[str, Any]]:
    return [{"table": child.table, "one": child.one, "embeds": _embeds(child)} for child in level.children]


def _summary(result: InitResult, output: str | None) -> dict[str, Any]:
    """`init --json`: what was written (or the plan text, without --output) and why."""
    return {
        "output": output,
        "plan": result.text,
        "tables": list(result.tables),
        "collections": [{"table": root.table, "embeds": _embeds(root)} for root in result.proposal.roots],
        "skipped": dict(result.proposal.skipped),
    }
