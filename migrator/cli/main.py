"""`migrator` commands. Exit codes: 0 success/ready, 1 checks failed (verify: differences found),
2 invalid plan or usage, 3 verify could not complete (a database unreachable, a timeout, CDC not
following), 130 stopped before `run --until`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.markup import escape

from migrator import __version__
from migrator.cli.render import (
    make_console,
    render_preflight,
    render_unexpected,
    render_verify,
    write_traceback,
)
from migrator.errors import MigratorError, PlanError
from migrator.redact import redact_text, url_passwords

# The CLI loads what a command runs inside the command: `migrator --help`, a command's --help
# and shell completion start without the plan models, the engine or any driver
# (docs/architecture.md, "Start-up imports"; tests/unit/test_cli_imports.py).
if TYPE_CHECKING:
    from migrator import api
    from migrator.cli.observe import Observed

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
# verify's verdicts
VERDICT_EXIT = {"equal": EXIT_OK, "different": EXIT_FAILED, "incomplete": EXIT_INCOMPLETE}


def _fail(
    error: MigratorError, as_json: bool, *, code: int | None = None, incomplete: bool = False
) -> NoReturn:
    """Print the error (`incomplete`: as verify's "could not complete") and exit."""
    if code is None:
        code = EXIT_USAGE if isinstance(error, PlanError) else EXIT_FAILED
    if as_json:
        payload: dict[str, Any] = {"error": type(error).__name__, "message": redact_text(error.message)}
        if incomplete:
            payload = {"verdict": "incomplete", "incomplete": payload["message"], **payload}
        if error.hint:
            payload["hint"] = error.hint
        if isinstance(error, PlanError):
            payload["problems"] = [
                {"file": p.file, "line": p.line, "column": p.column, "key": p.key_path, "message": p.message}
                for p in error.problems
            ]
        click.echo(json.dumps(payload, indent=2))
    else:
        label = "could not complete" if incomplete else "error"
        make_console(stderr=True).print(f"[bold red]{label}:[/] {escape(redact_text(str(error)))}")
    sys.exit(code)


def _plan_secrets(params: dict[str, Any]) -> tuple[str, ...]:
    """The passwords of the command's plan, to mask as literals in what an unexpected error shows."""
    plan_file = params.get("plan_file")
    if not plan_file:
        return ()
    try:
        from migrator import api

        plan = api.load(plan_file)
        return url_passwords(plan.source.url.get_secret_value(), plan.target.url.get_secret_value())
    except Exception:  # noqa: BLE001 - best effort: the generic masking still applies
        return ()


class _Command(click.Command):
    """Every command: an error that escapes it is rendered, never a Python traceback. A
    MigratorError as `_fail` renders it; anything else (a defect) by its type and message, with
    its traceback kept in a file named on stderr (docs/architecture.md, "Unexpected errors")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except MigratorError as exc:
            _fail(exc, bool(ctx.params.get("as_json")))
        except Exception as exc:  # noqa: BLE001 - a defect: shown by type and message, never raw
            secrets = _plan_secrets(ctx.params)
            message = render_unexpected(exc, write_traceback(exc, secrets), secrets)
            if ctx.params.get("as_json"):
                click.echo(json.dumps({"error": "InternalError", "message": message}, indent=2))
            make_console(stderr=True).print(f"[bold red]error:[/] {escape(message)}")
            sys.exit(EXIT_FAILED)


class _Group(click.Group):
    command_class = _Command


# The same --state option on every command that reads or writes the run's state.
state_option = click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False),
    help="State file (default: $MIGRATOR_STATE, else .migrator/<plan name>.db beside the plan file).",
)


def _stop_on_signals(observed: Observed | None = None, *, exit_at_once: bool = True) -> threading.Event:
    """SIGINT/SIGTERM set the event (finish the work in flight, checkpoint, return); a second
    signal stops the process at once (`exit_at_once`), or raises KeyboardInterrupt so that the
    command's own clean-up runs (cutover: a fence must be lifted). Each is announced on stderr
    (as a log line under `--log-format`, where stderr holds log lines only)."""
    stop = threading.Event()

    def announce(kind: str, message: str) -> None:
        with contextlib.suppress(Exception):
            if observed is None or not observed.announce(kind, message):
                sys.stderr.write(message + "\n")
                sys.stderr.flush()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set() and not exit_at_once:
            raise KeyboardInterrupt
        if stop.is_set():
            # Exit now, without waiting for the chunk or batch in flight (a KeyboardInterrupt
            # waited for them: a chunk copy, or a target transaction retried for up to two
            # minutes). As safe as kill -9, which every step survives: checkpoints commit with
            # their data, so the next run redoes what was in flight.
            announce(
                "run.interrupted",
                "stopped at once: running the command again resumes from the last checkpoint",
            )
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            os._exit(130)
        stop.set()
        announce("run.stopping", "stopping: finishing the work in flight (a second signal stops at once)")

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        # The command has returned: the handlers it installed go with it (a process that runs
        # commands in-process, as a test with CliRunner, keeps Ctrl-C as it was).
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(restore)
    return stop


def _keep_http_port(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    # Observed (cli/observe.py) reads it from the context: the commands' signatures stay as they are.
    ctx.meta["migrator.http_port"] = value


def observe_options(command: Any) -> Any:
    """--metrics-port, --metrics-addr, --http-port and --log-format: for the commands that follow changes."""
    command = click.option(
        "--http-port",
        type=click.IntRange(0, 65535),
        default=None,
        expose_value=False,
        callback=_keep_http_port,
        help="Serve a live dashboard at http://ADDR:PORT/ and its JSON at /api/v1/progress while the "
        "command lasts (ADDR: --metrics-addr; 0: a free port, announced on stderr). See docs/dashboard.md.",
    )(command)
    command = click.option(
        "--log-format",
        type=click.Choice(["json", "text"]),
        default=None,
        help="Structured logs on stderr, one line per event: json (ts, level, event, fields) or text.",
    )(command)
    command = click.option(
        "--metrics-addr",
        default="127.0.0.1",
        show_default=True,
        help="Address the metrics endpoint listens on (0.0.0.0: every interface).",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus metrics at http://ADDR:PORT/metrics while the command lasts (0: a free "
        "port, announced on stderr).",
    )(command)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="migrator")
def cli() -> None:
    """Zero-downtime migrations from PostgreSQL or MySQL/MariaDB tables to MongoDB documents or
    PostgreSQL tables.

    A migration is a plan (YAML) executed in phases: snapshot, CDC replay,
    verification, cutover, each checkpointed and each with an undo. `migrator init SOURCE_URL
    -o plan.yaml` proposes a first plan from a live source.

    Connection strings come from the plan (use ${VAR}); one that is malformed is refused without
    being shown. An unexpected error (a defect) exits 1 with its type and message and the path of
    a file holding its traceback ($MIGRATOR_LOG_DIR, else the temp directory).
    """


@cli.command("plan")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def plan_command(plan_file: str, as_json: bool) -> None:
    """Validate PLAN_FILE, inspect both databases and run the preflight checks.

    Read-only. Exit 0 when ready, 1 when a preflight check failed, 2 when the plan is invalid.
    """
    from migrator import api

    try:
        report = api.plan(plan_file)
    except MigratorError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        render_preflight(make_console(), report)
    sys.exit(EXIT_OK if report.ready else EXIT_FAILED)


@cli.command("run")
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
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
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
    """
    from migrator import api
    from migrator.cli.observe import Observed
    from migrator.cli.progress import JsonLines, PlainLines, RichProgress, summary
    from migrator.operations.run import Until, describe

    if dry_run:
        _dry_run(plan_file, as_json)
    console = make_console()
    sink: Any
    if as_json:
        sink = JsonLines()
    elif console.is_terminal:
        sink = RichProgress(console)
    else:
        sink = PlainLines(console)
    mode: Until = until if until in ("snapshot", "caught-up", "verified") else "stopped"  # type: ignore[assignment]
    observed = Observed(plan_file, log_format, metrics_port, metrics_addr)
    stop = _stop_on_signals(observed)
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
        sys.exit(130)
    except MigratorError as exc:
        if observed.failed(exc) and not as_json:
            sys.exit(EXIT_USAGE if isinstance(exc, PlanError) else EXIT_FAILED)
        _fail(exc, as_json)
    finally:
        observed.close()
    data = describe(outcome)
    if as_json:
        click.echo(json.dumps({"event": "result", **data}, default=str))
    else:
        console.print(summary(data), markup=False)
        if outcome.verify is not None:
            render_verify(console, outcome.verify.to_dict())
    if outcome.verify is not None and not outcome.interrupted and not outcome.verify.equal:
        sys.exit(VERDICT_EXIT[outcome.verify.verdict])
    # A signal is how a run that follows changes ends (0); but one that stopped short of an
    # explicit --until must not look done (docs/cli.md: 130 interrupted), or
    # `migrator run --until snapshot && next-step` would go on with half a snapshot.
    sys.exit(130 if outcome.interrupted and mode != "stopped" else EXIT_OK)


def _dry_run(plan_file: str, as_json: bool) -> NoReturn:
    """`run --dry-run`: reads and records only (migrator/operations/dry_run.py)."""
    from migrator import api
    from migrator.cli.dryrun import render_dry_run

    try:
        report = api.dry_run(plan_file)
    except MigratorError as exc:
        _fail(exc, as_json)
    if as_json:
        click.echo(redact_text(json.dumps(report.to_dict(), indent=2, default=str, ensure_ascii=False)))
    else:
        render_dry_run(make_console(), report.to_dict())
    sys.exit(EXIT_OK if report.ready else EXIT_FAILED)


@cli.command("verify")
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(
    plan_file: str,
    mode: str | None,
    sample: float | None,
    repair: bool,
    state_path: str | None,
    as_json: bool,
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
    """
    from migrator import api
    from migrator.cli.progress import VerifyTicker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    console = make_console()
    try:
        ticker = VerifyTicker(make_console(stderr=True))
        report = api.verify(
            plan_file, mode=mode, sample=sample, repair=repair, state=state_path, stop=stop, sinks=[ticker]
        )
    except PlanError as exc:
        _fail(exc, as_json)
    except MigratorError as exc:
        _fail(exc, as_json, code=EXIT_INCOMPLETE, incomplete=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        render_verify(console, report.to_dict())
    sys.exit(VERDICT_EXIT[report.verdict])


@cli.command("rollback")
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
@click.option("--json", "as_json", is_flag=True, help="Print each step as a JSON line, then the result.")
def rollback_command(
    plan_file: str, to: str | None, yes: bool, force: bool, state_path: str | None, as_json: bool
) -> None:
    """Roll PLAN_FILE's run back to a checkpoint (`migrator status --history` lists them).

    After cutover (--to cutover): verify source against target while writes go on, fence writes
    on the target, drain reverse sync, recheck at rest what changed meanwhile, flip the switch
    back to the source, lift the fence (the freeze is measured); forward CDC goes on.
    Before cutover (--to start): drop the run's slot on the source (a PostgreSQL replication
    slot, a MySQL binlog stream) and what change capture created there (a publication, the
    markers table), the target collections the run created, its checkpoints and its ownership record,
    and mark the run rolled back; `migrator run` then starts afresh. Nothing the run did not
    create is dropped. Stop a following `migrator run` or `migrator cutover` first.
    Shows the steps and asks unless --yes. A rollback cut short is finished by running it
    again. Exit 0 rolled back, 1 failed, 2 usage or nothing confirmed.
    """
    from migrator import api
    from migrator.cli.progress import JsonLines, PlainLines

    console = make_console()
    chosen: Any = to
    try:
        steps = api.rollback(plan_file, to=chosen, force=force, preview=True, state=state_path)
        assert isinstance(steps, list)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError("not a terminal: pass --yes to roll back without confirmation")
            console.print("[bold]migrator rollback[/] would:")
            for step in steps:
                console.print(f"  - {escape(step.description)}")
            if not click.confirm("Roll back?", default=False):
                sys.exit(EXIT_USAGE)
        sink: Any = JsonLines() if as_json else PlainLines(console)
        result = api.rollback(plan_file, to=chosen, force=force, state=state_path, sinks=[sink])
    except MigratorError as exc:
        _fail(exc, as_json)
    assert not isinstance(result, list)
    data = result.to_dict()
    if as_json:
        click.echo(json.dumps({"event": "result", **data}, default=str))
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


@cli.command("cutover")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--exit",
    "exit_after",
    is_flag=True,
    help="Return once the cutover is done (and the writes the fence held reached the target) instead "
    "of following both directions until SIGINT/SIGTERM.",
)
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines and the report as JSON.")
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
    over, 1 failed, gate not passed or abandoned (the source stays primary), 2 invalid plan,
    130 stopped by a signal before the switch flipped (the source stays primary).
    """
    from migrator import api
    from migrator.cli.observe import Observed
    from migrator.cli.progress import JsonLines, PlainLines

    console = make_console()
    sink: Any = JsonLines() if as_json else PlainLines(console)
    observed = Observed(plan_file, log_format, metrics_port, metrics_addr)
    stop = _stop_on_signals(observed, exit_at_once=False)
    try:
        sinks = [sink, *observed.start()]
        outcome = api.cutover(plan_file, follow=not exit_after, state=state_path, sinks=sinks, stop=stop)
    except KeyboardInterrupt:
        make_console(stderr=True).print("interrupted: `migrator cutover` resumes where it stood")
        sys.exit(130)
    except MigratorError as exc:
        if observed.failed(exc) and not as_json:
            sys.exit(exc.exit_code)
        _fail(exc, as_json, code=exc.exit_code)  # 130 when a signal stopped it before the flip
    finally:
        observed.close()
    data = outcome.to_dict()
    if as_json:
        click.echo(json.dumps({"event": "result", **data}, default=str))
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


@cli.command("runbook")
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
    does; --offline contacts neither. The same inputs give the same runbook. Exit 0 written (a
    failed preflight check is shown in the runbook), 1 error, 2 invalid plan.
    """
    from migrator import api

    try:
        text = api.runbook(plan_file, offline=offline)
    except MigratorError as exc:
        _fail(exc, False)
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
        sys.exit(EXIT_FAILED)
    make_console(stderr=True).print(f"runbook written to {escape(output)}", markup=False)
    sys.exit(EXIT_OK)


@cli.command("init")
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
def init_command(
    source_url: str,
    tables: tuple[str, ...],
    output: str | None,
    force: bool,
    target_url: str | None,
    database: str | None,
) -> None:
    """Inspect a live source and write a commented plan for it.

    Read-only. One collection per root table; a child table (its foreign key to a parent's key) is
    embedded in the parent's documents: one sub-document when the link is also its own key (1:1),
    an array otherwise (1:N), unless the estimated document would grow past 4 MB (a quarter of
    MongoDB's 16 MB) or one parent holds over 1,000 of its rows; join tables (many-to-many) and
    such large fan-outs stay collections of their own. Columns of a type with no conversion are
    excluded. Comments in the plan say why. SOURCE_URL defaults to $MIGRATOR_SOURCE_URL (which
    keeps the password off the command line); the plan names its URLs as ${MIGRATOR_SOURCE_URL}
    and ${MIGRATOR_TARGET_URL}, never with a password. Exit 0 written, 1 the source could not be
    read, 2 usage.

    \b
    Example:
      export MIGRATOR_SOURCE_URL='postgresql://app:PASSWORD@db:5432/shop'
      migrator init --tables customers,orders,order_items -o plans/shop.yaml
      export MIGRATOR_TARGET_URL='mongodb://mongo:27017/?replicaSet=rs0'
      migrator plan plans/shop.yaml
    """
    from migrator import api

    if output is not None and os.path.exists(output) and not force:
        raise click.UsageError(f"{output} exists: pass --force to overwrite it")
    names = [name.strip() for entry in tables for name in entry.split(",") if name.strip()]
    plan_dir = os.path.dirname(os.path.abspath(output)) if output is not None else "."
    result = api.init(source_url, tables=names, target_url=target_url, database=database, plan_dir=plan_dir)
    if output is None:
        click.echo(result.text, nl=False)
    else:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(result.text)
        except OSError as exc:
            make_console(stderr=True).print(
                f"error: cannot write {output}: {exc.strerror or exc}", markup=False
            )
            sys.exit(EXIT_FAILED)
    proposal = result.proposal
    make_console(stderr=True).print(
        f"{output or 'plan'}: {len(result.tables)} table(s) inspected, {len(proposal.roots)} collection(s), "
        f"{len(proposal.skipped)} table(s) left out (see the comments)",
        markup=False,
    )
    sys.exit(EXIT_OK)


@cli.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of plan format v1."""
    from migrator import api

    click.echo(json.dumps(api.schema(), indent=2))


@cli.command("status")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with --watch: one a line).")
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
    Exit 0; 1 when the plan has no run.
    """
    from migrator import api
    from migrator.cli.status import print_status, watch_status

    console = make_console()

    def fetch() -> api.StatusReport:
        return api.status(plan_file, state=state_path, history=history)

    try:
        report = fetch()
    except MigratorError as exc:
        _fail(exc, as_json)
    if watch:
        report = watch_status(fetch, console, as_json=as_json) or report
    else:
        print_status(console, report, as_json)
    if report.run is None:
        if not as_json and not watch:
            make_console(stderr=True).print(f"no run: {report.message}", markup=False)
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)


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


@cli.command("throttle")
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
@click.option("--json", "as_json", is_flag=True, help="Print the controls in force as JSON.")
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
    Exit 0 changed, 1 no active run, 2 usage or invalid plan.
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
        _fail(exc, as_json)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
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


def main() -> None:
    cli(prog_name="migrator")
