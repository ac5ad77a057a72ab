"""`migrator finish`: end a migration that has cut over, keeping the target."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from migrator.cli.contract import EXIT_OK, EXIT_USAGE, MigratorCommand, echo_result, exit_code_for, fail
from migrator.cli.options import json_option, observe_options, state_option, verbosity
from migrator.cli.render import make_console
from migrator.errors import MigratorError


@click.command("finish", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@state_option
@json_option("Print each step as a JSON line, then one `result` line.")
@observe_options
def finish_command(
    plan_file: str,
    yes: bool,
    state_path: str | None,
    as_json: bool,
    **observing: Any,
) -> None:
    """End PLAN_FILE's migration after cutover, keeping the target: the way back closes.

    Stops reverse sync for good (`migrator rollback` is refused afterwards), drops forward CDC's
    slot on the source (a PostgreSQL replication slot retains WAL while it exists) and what
    change capture created there (a publication, the markers table), removes reverse sync's
    checkpoint and replication origin from the source, drops reverse sync's slot and publication
    and forward CDC's replication origin on a PostgreSQL target, deletes the run's records and
    ownership record from the target, and marks the run finished (`migrator status` shows it
    `succeeded`). Every target collection and its data stay; nothing the run did not create is
    dropped. Refused before cutover (`migrator rollback --to start` ends a migration keeping the
    source) and while a migrator process follows the plan: stop `migrator cutover` (or `run`)
    first. Afterwards `migrator run` of the plan refuses in this state file (a new run would copy
    the source over the target). Shows the steps and asks unless --yes. A finish cut short is
    completed by running it again; a finished run is reported as such. Exit 0 finished, 1 not
    cut over or no run to finish, 2 usage or nothing confirmed, 3 a process still works on the
    plan, or an operational failure.

    \b
    Examples:
      migrator status plans/shop.yaml --history
      migrator finish plans/shop.yaml
      migrator finish plans/shop.yaml --yes --json
    """
    from migrator import api
    from migrator.cli.commands.run import event_sink
    from migrator.cli.observe import Observed

    console = make_console()
    least = verbosity()
    observed = Observed.of(plan_file, observing, least)
    if not yes and not sys.stdin.isatty():
        raise click.UsageError("not a terminal: pass --yes to finish without confirmation")
    try:
        steps = api.finish(plan_file, preview=True, state=state_path)
        assert isinstance(steps, list)
        if not yes and steps:
            console.print("[bold]migrator finish[/] would (the target stays primary, with all its data):")
            for step in steps:
                console.print(f"  - {escape(step.description)}")
            if not click.confirm("Finish the migration? Rollback will no longer be possible", default=False):
                sys.exit(EXIT_USAGE)
        sinks = [event_sink(as_json, least, rich=False), *observed.start()]
        result = api.finish(plan_file, state=state_path, sinks=sinks)
    except MigratorError as exc:
        if observed.failed(exc, "finish") and not as_json:
            sys.exit(exit_code_for(exc))
        fail(exc, as_json)
    finally:
        observed.close()
    assert not isinstance(result, list)
    if as_json:
        echo_result(result.to_dict())
    elif result.already:
        console.print(f"[green]run {result.run_id} was finished before: nothing left to do[/]")
    else:
        console.print(f"[green]run {result.run_id} finished: the target is primary, the migration is over[/]")
    sys.exit(EXIT_OK)
