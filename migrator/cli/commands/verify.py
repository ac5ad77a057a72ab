"""`migrator verify`: compare source and target through the plan's mapping."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from migrator.cli.contract import VERDICT_EXIT, MigratorCommand, echo_result, exit_code_for, fail
from migrator.cli.options import (
    QUIET,
    json_lines_least,
    json_option,
    observe_options,
    state_option,
    verbosity,
)
from migrator.cli.render import make_console, render_verify
from migrator.errors import MigratorError, PlanError


@click.command("verify", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--mode",
    type=click.Choice(["full", "sample"]),
    default=None,
    help="Every document, or a share of them (default: phases.verify.mode).",
)
@click.option(
    "--sample",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="Share of keys checked in sample mode (implies --mode sample).",
)
@click.option(
    "--repair", is_flag=True, help="Re-copy differing documents from the source, then recheck them."
)
@state_option
@json_option("Print events as JSON lines, then the report as one `result` line.")
@observe_options
def verify_command(
    plan_file: str,
    mode: str | None,
    sample: float | None,
    repair: bool,
    state_path: str | None,
    as_json: bool,
    **observing: Any,
) -> None:
    """Compare source and target through PLAN_FILE's mapping.

    Safe while `migrator run` follows changes: a document is reported as different only once
    the target has applied the source position it was compared at. With nothing following, the
    target must be at rest at the source's position, or verify stops within seconds saying so
    (and naming CDC's recorded error). Read-only unless --repair. Exit 0 when equal, 1 when
    differences were found, 2 for an invalid plan, 3 when verify could not complete: a database
    unreachable, a timeout that retries did not outlast, CDC failed or not following, or documents
    that could not be pinned down (the report's `incomplete` says why). A timeout is never a
    difference.

    \b
    Examples:
      migrator verify plans/shop.yaml
      migrator verify plans/shop.yaml --sample 0.01 --json | tail -n 1
      migrator verify plans/shop.yaml --repair --metrics-port 9464 --log-format json
    """
    from migrator import api
    from migrator.cli.logs import Leveled
    from migrator.cli.observe import Observed
    from migrator.cli.progress import JsonLines, VerifyTicker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    console = make_console()
    least = verbosity()
    observed = Observed.of(plan_file, observing, least)
    try:
        sinks: list[Any] = observed.start()
        if as_json:
            sinks.append(Leveled(JsonLines(), json_lines_least(least)))
        if observed.log is None and least != QUIET:  # stderr holds only log lines under --log-format
            sinks.append(VerifyTicker(make_console(stderr=True)))
        report = api.verify(
            plan_file, mode=mode, sample=sample, repair=repair, state=state_path, stop=stop, sinks=sinks
        )
    except MigratorError as exc:
        if observed.failed(exc, "verify") and not as_json:
            sys.exit(exit_code_for(exc))
        fail(exc, as_json, incomplete=not isinstance(exc, PlanError))
    finally:
        observed.close()
    if as_json:
        echo_result(report.to_dict())
    else:
        render_verify(console, report.to_dict())
    sys.exit(VERDICT_EXIT[report.verdict])
