"""`migrator rollback`: back to before cutover, or back to before the run."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from migrator.cli.contract import EXIT_OK, EXIT_USAGE, MigratorCommand, echo_result, exit_code_for, fail
from migrator.cli.options import json_option, observe_options, state_option, verbosity
from migrator.cli.render import make_console
from migrator.errors import MigratorError


@click.command("rollback", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--to",
    "to",
    type=click.Choice(["cutover", "start"]),
    help="cutover: make the source primary again, the migration going on as before `migrator cutover` "
    "(the default once cut over). start: back to before `migrator run` (the default before cutover; "
    "after cutover it switches back first).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Also drop target collections that held documents before the run (their earlier data is lost).",
)
@state_option
@json_option("Print each step as a JSON line, then one `result` line.")
@observe_options
def rollback_command(
    plan_file: str,
    to: str | None,
    yes: bool,
    force: bool,
    state_path: str | None,
    as_json: bool,
    **observing: Any,
) -> None:
    """Roll PLAN_FILE's run back to a checkpoint (`migrator status --history` lists them).

    After cutover (--to cutover): verify source against target while writes go on, fence writes
    on the target, drain reverse sync, recheck at rest what changed meanwhile, set the source's
    sequences past the target's, flip the switch back to the source, lift the fence (the freeze
    is measured); forward CDC goes on.
    Before cutover (--to start): drop the run's slot on the source (a PostgreSQL replication
    slot, a MySQL binlog stream) and what change capture created there (a publication, the
    markers table), the target collections the run created, its checkpoints and its ownership record,
    and mark the run rolled back; `migrator run` then starts afresh. Nothing the run did not
    create is dropped. Stop a following `migrator run` or `migrator cutover` first.
    Shows the steps and asks unless --yes. A rollback cut short is finished by running it
    again. Exit 0 rolled back, 1 no run to roll back or a check failed, 2 usage or nothing
    confirmed, 3 operational failure.

    \b
    Examples:
      migrator status plans/shop.yaml --history
      migrator rollback plans/shop.yaml --to cutover --yes --json
      migrator rollback plans/shop.yaml --to start --yes --log-format json
    """
    from migrator import api
    from migrator.cli.commands.run import event_sink
    from migrator.cli.observe import Observed

    console = make_console()
    chosen: Any = to
    least = verbosity()
    observed = Observed.of(plan_file, observing, least)
    if not yes and not sys.stdin.isatty():
        raise click.UsageError("not a terminal: pass --yes to roll back without confirmation")
    try:
        steps = api.rollback(plan_file, to=chosen, force=force, preview=True, state=state_path)
        assert isinstance(steps, list)
        if not yes:
            console.print("[bold]migrator rollback[/] would:")
            for step in steps:
                console.print(f"  - {escape(step.description)}")
            if not click.confirm("Roll back?", default=False):
                sys.exit(EXIT_USAGE)
        sinks = [event_sink(as_json, least, rich=False), *observed.start()]
        result = api.rollback(plan_file, to=chosen, force=force, state=state_path, sinks=sinks)
    except MigratorError as exc:
        if observed.failed(exc, "rollback") and not as_json:
            sys.exit(exit_code_for(exc))
        fail(exc, as_json)
    finally:
        observed.close()
    assert not isinstance(result, list)
    data = result.to_dict()
    if as_json:
        echo_result(data)
    elif data.get("to") == "before cutover":
        freeze = data.get("freeze_ms")
        console.print(
            f"[green]run {result.run_id}: the source is primary again[/]"
            + (f"; target write freeze {freeze:.0f} ms" if freeze is not None else "")
            + "; forward CDC goes on (`migrator rollback` again removes the migration)"
        )
    else:
        console.print(f"[green]run {result.run_id} rolled back[/]")
    sys.exit(EXIT_OK)
