"""The output contract every command keeps (docs/json.md): exit codes mapped from the typed
errors, and under `--json` machine output only: JSON lines (events, then one `result` line) for
the streaming commands, one object for the others, and an error as one line with `error`,
`hint` and `exit_code`; `--help` is one object too (cli/help_json.py). `MigratorCommand` renders whatever escapes a command by these rules."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from rich.markup import escape

from migrator.cli.help_json import help_object, wants_json_help
from migrator.cli.render import make_console, render_unexpected, write_traceback
from migrator.errors import MigratorError, PlanError
from migrator.redact import redact_text, url_passwords
from migrator.timestamps import now_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OPERATIONAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# verify's verdicts
VERDICT_EXIT = {"equal": EXIT_OK, "different": EXIT_FAILED, "incomplete": EXIT_OPERATIONAL}


def exit_code_for(error: BaseException) -> int:
    """The exit code of an error, from its type (errors.MigratorError.exit_code), never its text:
    1 checks failed, 2 usage or invalid plan, 3 cannot connect or another operational failure
    (a defect of migrator too), 130 a signal stopped the command short."""
    if isinstance(error, click.UsageError):
        return EXIT_USAGE
    if isinstance(error, MigratorError):
        return int(error.exit_code)
    return EXIT_OPERATIONAL


def echo_json(data: Any) -> None:
    """One JSON value on one line of standard output."""
    click.echo(json.dumps(data, default=str, ensure_ascii=False))


def echo_result(data: dict[str, Any]) -> None:
    """The last line of a streaming command's `--json` output."""
    echo_json({"event": "result", "ts": now_text(), **data})


def error_line(error: BaseException, code: int, message: str) -> dict[str, Any]:
    """The one-line error object (docs/json.md, "Errors")."""
    hint = error.hint if isinstance(error, MigratorError) else None
    name = "UsageError" if isinstance(error, click.UsageError) else type(error).__name__
    payload: dict[str, Any] = {
        "event": "failed",
        "ts": now_text(),
        "error": name,
        "message": message,
        "hint": hint,
        "exit_code": code,
    }
    if isinstance(error, PlanError):
        payload["problems"] = [
            {"file": p.file, "line": p.line, "column": p.column, "key": p.key_path, "message": p.message}
            for p in error.problems
        ]
    return payload


def fail(error: MigratorError, as_json: bool, *, incomplete: bool = False) -> NoReturn:
    """Print the error (`incomplete`: as verify's "could not complete") and exit with its code."""
    code = exit_code_for(error)
    if as_json:
        payload = error_line(error, code, redact_text(error.message))
        if incomplete:
            payload["verdict"] = "incomplete"
        echo_json(payload)
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


class MigratorCommand(click.Command):
    """Every command: an error that escapes it is rendered, never a Python traceback. A
    MigratorError as `fail` renders it; anything else (a defect) by its type and message, with
    its traceback kept in a file named on stderr (docs/architecture.md, "Unexpected errors").
    Under `--json` a usage error is the same one error line. Each option can be set by an
    environment variable named after the command and the option's long name
    (MIGRATOR_RUN_METRICS_PORT, MIGRATOR_VERIFY_JSON), shown in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = [param.name for param in self.params]
        for param in self.params:
            if not isinstance(param, click.Option):
                continue
            if names.count(param.name) == 1:
                param.show_envvar = True
                param.envvar = param.envvar or self._envvar(param)
            else:  # throttle's --pause / --resume: one value, which a variable could not name
                param.allow_from_autoenv = False

    def _envvar(self, option: click.Option) -> str | None:
        """MIGRATOR_<COMMAND>_<LONG OPTION>."""
        longs = [opt for opt in option.opts if opt.startswith("--")]
        if not longs or not self.name:
            return None
        name = f"{self.name}_{longs[0][2:]}"
        return "MIGRATOR_" + name.upper().replace("-", "_")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        as_json = "--json" in args
        if wants_json_help(args, group=False):  # every command, with a --json option or not
            echo_json(help_object(ctx))
            ctx.exit(EXIT_OK)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if not as_json:
                raise
            echo_json(error_line(exc, EXIT_USAGE, exc.format_message()))
            ctx.exit(EXIT_USAGE)

    def invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.params.get("as_json"))
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if not as_json:
                raise
            echo_json(error_line(exc, EXIT_USAGE, exc.format_message()))
            sys.exit(EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except MigratorError as exc:
            fail(exc, as_json)
        except Exception as exc:  # noqa: BLE001 - a defect: shown by type and message, never raw
            secrets = _plan_secrets(ctx.params)
            message = render_unexpected(exc, write_traceback(exc, secrets), secrets)
            if as_json:
                echo_json(error_line(exc, EXIT_OPERATIONAL, message) | {"error": "InternalError"})
            make_console(stderr=True).print(f"[bold red]error:[/] {escape(message)}")
            sys.exit(EXIT_OPERATIONAL)


_JSON_IN_ARGV = "migrator.json_in_argv"


def _usage_error_as_json(ctx: click.Context, error: click.UsageError) -> None:
    """A usage error met before a command is chosen (a bad group option, an unknown command, -q
    with -v): under `--json` anywhere in argv, the one `failed` line and exit 2 (docs/json.md);
    otherwise click's text, as for every command."""
    if ctx.meta.get(_JSON_IN_ARGV):
        echo_json(error_line(error, EXIT_USAGE, error.format_message()))
        ctx.exit(EXIT_USAGE)


class MigratorGroup(click.Group):
    """The `migrator` group: a usage error of its own (before a command parses its options) keeps
    the `--json` contract too."""

    command_class = MigratorCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_JSON_IN_ARGV] = "--json" in args
        if wants_json_help(args, group=True):
            echo_json(help_object(ctx))
            ctx.exit(EXIT_OK)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage_error_as_json(ctx, exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # an unknown command, or the group's -q with -v
            _usage_error_as_json(ctx, exc)
            raise
