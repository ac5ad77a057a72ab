"""`migrator run`: snapshot, then CDC replay (or resume the active run); `--dry-run` writes nothing."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from migrator.cli.contract import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    VERDICT_EXIT,
    MigratorCommand,
    echo_result,
    exit_code_for,
    fail,
)
from migrator.cli.options import (
    QUIET,
    json_lines_least,
    json_option,
    observe_options,
    state_option,
    verbosity,
)
from migrator.cli.render import make_console, render_verify
from migrator.cli.signals import stop_on_signals
from migrator.errors import MigratorError
from migrator.redact import redact_text


def event_sink(as_json: bool, least: str, *, rich: bool = True) -> Any:
    """The sink that shows events on stdout: JSON lines, rich bars on a terminal (`rich`), plain
    lines; each passing on the events the group's -q / -v let through (JSON lines: progress
    ticks unless -q, json_lines_least)."""
    from migrator.cli.logs import Leveled
    from migrator.cli.progress import JsonLines, PlainLines, RichProgress

    console = make_console()
    if as_json:
        return Leveled(JsonLines(), json_lines_least(least))
    if rich and console.is_terminal and least != QUIET:
        return RichProgress(console)
    return Leveled(PlainLines(console), least)


@click.command("run", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--until",
    type=click.Choice(["snapshot", "caught-up", "verified"]),
    default=None,
    help="Stop after the snapshot, once CDC has caught up (lag under phases.cdc.max_lag), or once "
    "caught up and verified (a verify pass of the live migration while CDC follows; exit 1 when it "
    "finds differences, 3 when documents could not be pinned down). Default: keep following changes until "
    "SIGINT/SIGTERM.",
)
@state_option
@json_option("Print events as JSON lines, then one `result` line.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write nothing: show each phase's actions in order, sample documents built from real source rows, "
    "key collisions in the sample and estimated durations, then exit (1 when preflight fails). With --json: "
    "one JSON object.",
)
@observe_options
def run_command(
    plan_file: str,
    until: str | None,
    state_path: str | None,
    as_json: bool,
    dry_run: bool = False,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
    log_format: str | None = None,
) -> None:
    """Run the migration of PLAN_FILE (snapshot, then CDC replay), or resume its active run.

    Runs preflight first and refuses to start where `migrator plan` fails. SIGINT or SIGTERM
    finishes the work in flight (chunks, or the current batch of changes), checkpoints it and
    exits 0, or 130 when it stopped short of --until; running again resumes. A second signal
    stops at once (still resumable). A resumed run takes the plan's current settings under
    `phases` (e.g. cdc.batch_changes); a changed mapping (collections, target database) is
    refused. --dry-run reads (inspection, a sample of source rows) and
    writes nothing: nothing on the source, no collection, no state. Once cut over, it follows both
    directions: forward CDC and reverse sync (target changes back to the source). Refuses at
    once while another process works on the run, or when another run of the plan owns the
    target's data (the target's ownership record names it, its host and its state file).
    Exit 0 done, 1 preflight failed or differences found, 2 invalid plan, 3 operational failure.

    \b
    Examples:
      migrator run plans/shop.yaml --dry-run
      migrator run plans/shop.yaml --until caught-up --json > run.jsonl
      migrator run plans/shop.yaml --metrics-port 9464 --log-format json
    """
    from migrator import api
    from migrator.cli.observe import Observed
    from migrator.cli.progress import RichProgress, summary
    from migrator.operations.run import Until, describe

    if dry_run:
        _dry_run(plan_file, as_json)
    console = make_console()
    least = verbosity()
    sink = event_sink(as_json, least)
    mode: Until = until if until in ("snapshot", "caught-up", "verified") else "stopped"  # type: ignore[assignment]
    observed = Observed(plan_file, log_format, metrics_port, metrics_addr, least=least)
    stop = stop_on_signals(observed)
    try:
        sinks = [sink, *observed.start()]
        if isinstance(sink, RichProgress):
            with sink:
                outcome = api.run(plan_file, until=mode, state=state_path, sinks=sinks, stop=stop)
        else:
            outcome = api.run(plan_file, until=mode, state=state_path, sinks=sinks, stop=stop)
    except KeyboardInterrupt:
        if not observed.interrupted():
            make_console(stderr=True).print("interrupted: `migrator run` resumes from the last checkpoint")
        sys.exit(EXIT_INTERRUPTED)
    except MigratorError as exc:
        if observed.failed(exc) and not as_json:
            sys.exit(exit_code_for(exc))
        fail(exc, as_json)
    finally:
        observed.close()
    data = describe(outcome)
    if as_json:
        echo_result(data)
    else:
        console.print(summary(data), markup=False)
        if outcome.verify is not None:
            render_verify(console, outcome.verify.to_dict())
    if outcome.verify is not None and not outcome.interrupted and not outcome.verify.equal:
        sys.exit(VERDICT_EXIT[outcome.verify.verdict])
    # A signal is how a run that follows changes ends (0); but one that stopped short of an
    # explicit --until must not look done (docs/cli.md: 130 interrupted), or
    # `migrator run --until snapshot && next-step` would go on with half a snapshot.
    sys.exit(EXIT_INTERRUPTED if outcome.interrupted and mode != "stopped" else EXIT_OK)


def _dry_run(plan_file: str, as_json: bool) -> NoReturn:
    """`run --dry-run`: reads and records only (migrator/operations/dry_run.py)."""
    import json

    from migrator import api
    from migrator.cli.dryrun import render_dry_run

    try:
        report = api.dry_run(plan_file)
    except MigratorError as exc:
        fail(exc, as_json)
    if as_json:
        click.echo(redact_text(json.dumps(report.to_dict(), default=str, ensure_ascii=False)))
    else:
        render_dry_run(make_console(), report.to_dict())
    if report.preflight.unreached:  # a database could not be inspected: 3 (cannot connect)
        sys.exit(max(exit_code_for(error) for error in report.preflight.unreached))
    sys.exit(EXIT_OK if report.ready else EXIT_FAILED)
