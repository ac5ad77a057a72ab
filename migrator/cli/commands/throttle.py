"""`migrator throttle`: pause, resume or override a running migration's settings."""

from __future__ import annotations

import sys
from typing import Any

import click

from migrator.cli.contract import EXIT_OK, MigratorCommand, echo_json, fail
from migrator.cli.options import json_option, state_option
from migrator.cli.render import make_console
from migrator.errors import MigratorError


class _Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        from migrator.plan.units import parse_duration

        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds <= 0:
            self.fail("must be over 0 (e.g. 500ms, 2s, 1m)", param, ctx)
        return seconds


@click.command("throttle", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--pause", "pause", flag_value=True, default=None, help="Hold the snapshot and CDC until --resume."
)
@click.option("--resume", "pause", flag_value=False, help="Lift a --pause.")
@click.option(
    "--chunk-rows",
    type=click.IntRange(1, 10_000_000),
    default=None,
    help="Snapshot copy step: root rows a worker copies between throttle checks (chunks already planned "
    "keep their bounds; chunks not yet planned are cut to this size).",
)
@click.option("--max-lag", type=_Duration(), default=None, help="Override phases.cdc.max_lag (e.g. 2s).")
@click.option("--reset", is_flag=True, help="Drop every override (and a pause) first: back to the plan.")
@state_option
@json_option("Print the controls in force as one JSON object.")
def throttle_command(
    plan_file: str,
    pause: bool | None,
    chunk_rows: int | None,
    max_lag: float | None,
    reset: bool,
    state_path: str | None,
    as_json: bool,
) -> None:
    """Change PLAN_FILE's running migration: pause or resume it, or override settings.

    Writes to the state store only; a running `migrator run` applies the change within
    phases.throttle.check_interval (1 s by default), and a run started later from its start.
    While paused (or throttled by the plan's throttle file, source load or replica lag) the
    snapshot stops between write batches and CDC between batches, keeping its replication
    connection alive. `migrator status` shows whether the run is throttled, why, and for how long.
    Exit 0 changed, 1 no active run, 2 usage or invalid plan, 3 the state store unreadable.

    \b
    Examples:
      migrator throttle plans/shop.yaml --pause
      migrator throttle plans/shop.yaml --chunk-rows 5000 --max-lag 5s --json
      migrator throttle plans/shop.yaml --reset
    """
    if pause is None and chunk_rows is None and max_lag is None and not reset:
        raise click.UsageError(
            "nothing to change: give --pause, --resume, --chunk-rows N, --max-lag or --reset"
        )
    from migrator import api

    try:
        result = api.throttle(
            plan_file, pause=pause, chunk_rows=chunk_rows, max_lag=max_lag, reset=reset, state=state_path
        )
    except MigratorError as exc:
        fail(exc, as_json)
    if as_json:
        echo_json(result.to_dict())
    else:
        controls = result.controls
        paused = "paused" if controls.get("paused") else "not paused"
        overrides = [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in controls.items() if k != "paused"
        ]
        make_console().print(
            f"run {result.run_id}: {paused}; overrides: {', '.join(overrides) or 'none (the plan applies)'}",
            markup=False,
        )
    sys.exit(EXIT_OK)
