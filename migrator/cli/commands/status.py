"""`migrator status`: where a plan's migration stands."""

from __future__ import annotations

import sys

import click

from migrator.cli.contract import EXIT_FAILED, EXIT_OK, MigratorCommand, fail
from migrator.cli.options import json_option, state_option
from migrator.cli.render import make_console
from migrator.errors import MigratorError


@click.command("status", cls=MigratorCommand)
@click.argument("plan_file", type=click.Path(dir_okay=False))
@state_option
@json_option("Print one JSON object (with --watch: one a line).")
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
@click.option("--history", is_flag=True, help="Also list the run's checkpoints (what rollback can target).")
def status_command(plan_file: str, state_path: str | None, as_json: bool, watch: bool, history: bool) -> None:
    """Show where PLAN_FILE's migration stands.

    The current run and phase, snapshot progress per collection, the CDC position with its lag
    and the change log its slot retains (WAL, binlog), the last checkpoint, the last verify report, recent errors.

    Read-only. The target's checkpoint and the source's slot are read live; a database that
    cannot be reached is named (without its password) and the rest is still shown. Without
    --state, a run whose state file lies elsewhere on this host is found through the target's
    ownership record (which also names the owning run, host and state file).
    Exit 0; 1 when the plan has no run; 2 invalid plan; 3 the state store unreadable.

    \b
    Examples:
      migrator status plans/shop.yaml
      migrator status plans/shop.yaml --json | jq .cdc.lag_seconds
      migrator status plans/shop.yaml --watch
    """
    from migrator import api
    from migrator.cli.status import print_status, watch_status

    console = make_console()

    def fetch() -> api.StatusReport:
        return api.status(plan_file, state=state_path, history=history)

    try:
        report = fetch()
    except MigratorError as exc:
        fail(exc, as_json)
    if watch:
        report = watch_status(fetch, console, as_json=as_json) or report
    else:
        print_status(console, report, as_json)
    if report.run is None:
        if not as_json and not watch:
            make_console(stderr=True).print(f"no run: {report.message}", markup=False)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)
