"""`migrator cutover`: make the target primary."""

from __future__ import annotations

import sys

import click

from migrator.cli.contract import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    MigratorCommand,
    echo_result,
    exit_code_for,
    fail,
)
from migrator.cli.options import json_option, observe_options, state_option, verbosity
from migrator.cli.render import make_console
from migrator.cli.signals import stop_on_signals
from migrator.errors import MigratorError


@click.command("cutover", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--exit",
    "exit_after",
    is_flag=True,
    help="Return once the cutover is done (and the writes the fence held reached the target) instead "
    "of following both directions until SIGINT/SIGTERM.",
)
@state_option
@json_option("Print events as JSON lines, then one `result` line.")
@observe_options
def cutover_command(
    plan_file: str,
    exit_after: bool,
    state_path: str | None,
    as_json: bool,
    metrics_port: int | None,
    metrics_addr: str,
    log_format: str | None,
) -> None:
    """Make the target primary: gate (lag, a live verify, reverse path), fence source writes, drain
    CDC to a marker, check what changed, flip the switch, start reverse sync, lift the fence.

    Runs CDC itself: stop a following `migrator run` first. The write freeze is measured and
    bounded by phases.cutover.max_write_freeze (an attempt past it is abandoned and retried).
    Then follows both directions until SIGINT/SIGTERM (or returns, with --exit). Exit 0 cut
    over, 1 gate not passed, attempts abandoned or final check failed (the source stays
    primary), 2 invalid plan, 3 operational failure, 130 stopped by a signal before the switch
    flipped (the source stays primary).

    \b
    Examples:
      migrator cutover plans/shop.yaml --exit
      migrator cutover plans/shop.yaml --exit --json | tail -n 1
      migrator cutover plans/shop.yaml --metrics-port 9464 --log-format json
    """
    from migrator import api
    from migrator.cli.commands.run import event_sink
    from migrator.cli.observe import Observed

    console = make_console()
    least = verbosity()
    observed = Observed(plan_file, log_format, metrics_port, metrics_addr, least=least)
    stop = stop_on_signals(observed, exit_at_once=False)
    try:
        sinks = [event_sink(as_json, least, rich=False), *observed.start()]
        outcome = api.cutover(plan_file, follow=not exit_after, state=state_path, sinks=sinks, stop=stop)
    except KeyboardInterrupt:
        make_console(stderr=True).print("interrupted: `migrator cutover` resumes where it stood")
        sys.exit(EXIT_INTERRUPTED)
    except MigratorError as exc:
        if observed.failed(exc, "cutover") and not as_json:
            sys.exit(exit_code_for(exc))
        fail(exc, as_json)  # 130 when a signal stopped it before the flip
    finally:
        observed.close()
    data = outcome.to_dict()
    if as_json:
        echo_result(data)
    else:
        freeze = data["freeze_ms"]
        console.print(
            f"cut over to the target ({data['switch']}) in {data['attempts']} attempt(s); "
            f"write freeze {freeze:.0f} ms"
            if freeze is not None
            else "cut over (resumed after the flip)",
            markup=False,
        )
    sys.exit(EXIT_OK)
