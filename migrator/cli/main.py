"""`migrator`: the group, its global options, and the commands (one module each under
migrator/cli/commands/). Exit codes and `--json` output follow one contract (docs/json.md,
migrator/cli/contract.py): 0 ok, 1 differences found or checks failed, 2 usage or invalid plan,
3 cannot connect or another operational failure, 130 stopped by a signal short of its goal."""

from __future__ import annotations

import click

from migrator import __version__
from migrator.cli.commands.cutover import cutover_command
from migrator.cli.commands.finish import finish_command
from migrator.cli.commands.init import init_command
from migrator.cli.commands.plan import plan_command
from migrator.cli.commands.rollback import rollback_command
from migrator.cli.commands.run import run_command
from migrator.cli.commands.runbook import runbook_command
from migrator.cli.commands.schema import schema_command
from migrator.cli.commands.status import status_command
from migrator.cli.commands.throttle import throttle_command
from migrator.cli.commands.verify import verify_command
from migrator.cli.contract import MigratorGroup

# The shared option decorators live in migrator/cli/options.py (observe_options: --metrics-port,
# --metrics-addr, --log-format on every long-running command), re-exported here by name.
from migrator.cli.options import observe_options, state_option

# The CLI loads what a command runs inside the command: `migrator --help`, a command's --help
# and shell completion start without the plan models, the engine or any driver
# (docs/architecture.md, "Start-up imports"; tests/unit/test_cli_imports.py).

__all__ = ["cli", "main", "observe_options", "state_option"]


@click.group(
    cls=MigratorGroup,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "MIGRATOR"},
)
@click.version_option(__version__, prog_name="migrator")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    show_envvar=True,
    help="Only results and errors: no progress or event lines (log lines: errors only).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    show_envvar=True,
    help="Debug events too (progress ticks, each batch) in event and log lines (--json event lines "
    "carry them without -v).",
)
def cli(quiet: bool, verbose: bool) -> None:
    """Zero-downtime migrations from PostgreSQL or MySQL/MariaDB tables to MongoDB documents or
    PostgreSQL tables.

    A migration is a plan (YAML) executed in phases: snapshot, CDC replay,
    verification, cutover, each checkpointed and each with an undo. `migrator init SOURCE_URL
    -o plan.yaml` proposes a first plan from a live source.

    Connection strings come from the plan (use ${VAR}); one that is malformed is refused without
    being shown. Every option can also be set by an environment variable, MIGRATOR_<COMMAND>_<OPTION>
    (shown in each command's --help). --json output and exit codes follow one contract
    (docs/json.md): 0 ok, 1 differences or checks failed, 2 usage or invalid plan, 3 cannot connect
    or operational failure. An unexpected error (a defect) exits 3 with its type and message and
    the path of a file holding its traceback ($MIGRATOR_LOG_DIR, else the temp directory).

    \b
    Examples:
      migrator init "$MIGRATOR_SOURCE_URL" -o plan.yaml
      migrator plan plan.yaml
      migrator run plan.yaml --until caught-up --json
      migrator -q verify plan.yaml --json
    """
    if quiet and verbose:
        raise click.UsageError("-q and -v exclude each other")


for _command in (
    plan_command,
    run_command,
    verify_command,
    rollback_command,
    cutover_command,
    finish_command,
    runbook_command,
    init_command,
    schema_command,
    status_command,
    throttle_command,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="migrator")
