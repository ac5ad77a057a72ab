"""Rendering of reports for people: rich on a terminal, plain text elsewhere (rich degrades)."""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from migrator import __version__
from migrator.findings import Severity
from migrator.redact import redact_text

if TYPE_CHECKING:
    from migrator.phases.preflight import PreflightReport

_MARK = {
    Severity.OK: "[green]ok  [/]",
    Severity.INFO: "[blue]info[/]",
    Severity.WARN: "[yellow]warn[/]",
    Severity.FAIL: "[bold red]FAIL[/]",
}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _shape_tree(tree: Tree, shape: dict[str, Any]) -> None:
    for name, value in shape.items():
        if isinstance(value, dict):
            _shape_tree(tree.add(f"[bold]{escape(name)}[/]: {{"), value)
        elif isinstance(value, list):
            branch = tree.add(f"[bold]{escape(name)}[/]: array of")
            if value and isinstance(value[0], dict):
                _shape_tree(branch, value[0])
        else:
            tree.add(f"{escape(name)}: [dim]{escape(str(value))}[/]")


# Wide enough for any line a command prints: tables take only the width they need.
UNBOUNDED_WIDTH = 100_000


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps for people on a terminal and never wraps for pipes and logs: text is
    not wrapped and tables are as wide as their longest row, so a script can grep a name whole.
    COLUMNS, where set, is the width either way (as on a terminal)."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.soft_wrap = True
        if not os.environ.get("COLUMNS", "").strip().isdigit():
            console.width = UNBOUNDED_WIDTH
    return console


def render_preflight(console: Console, report: PreflightReport) -> None:
    plan = report.plan
    console.print(f"[bold]plan[/] {escape(plan.name)}")
    if report.source:
        console.print(f"  source  {escape(report.source.server.endpoint)}")
    if report.target:
        database = plan.target.database or "of the URL"
        console.print(f"  target  {escape(report.target.endpoint)} database {escape(database)}")
    tables = report.source.tables if report.source else {}
    for collection in report.collections:
        rows = tables[collection.table].estimated_rows if collection.table in tables else 0
        tree = Tree(
            f"[bold cyan]{escape(collection.name)}[/] <- {escape(collection.table)} (~{rows:,} documents)"
        )
        _shape_tree(tree, collection.shape())
        for table in collection.tables()[1:]:
            if table in tables:
                tree.add(f"[dim]embeds {escape(table)}: ~{tables[table].estimated_rows:,} rows[/]")
        console.print(tree)
    if report.target_schema:
        console.print("[bold]target schema[/] (created before the copy)")
        for statement in report.target_schema:
            console.print(escape(statement) + ";")
    if report.post_copy.statements:
        console.print("[bold]target schema after the copy[/] (built in parallel, foreign keys last)")
        for built in report.post_copy.statements:
            console.print(escape(built.sql) + ";")
    console.print("[bold]preflight[/]")
    order = [Severity.FAIL, Severity.WARN, Severity.INFO, Severity.OK]
    for f in sorted(report.findings, key=lambda f: order.index(f.severity)):
        console.print(
            f"  {_MARK[f.severity]} {escape(f.check):<31} [bold]{escape(f.subject)}[/]: {escape(f.message)}"
        )
        if f.fix and f.severity in (Severity.FAIL, Severity.WARN):
            console.print(f"       {'':<31} [dim]fix: {escape(f.fix)}[/]")
    if report.source:
        console.print(
            f"estimate: {report.source_rows:,} source rows -> {report.documents:,} documents, "
            f"snapshot about {_duration(report.estimated_seconds)} (assumed {15_000:,} rows/s; "
            "`migrator run --dry-run` will measure)"
        )
    failures = len(report.failures)
    if failures:
        console.print(f"[bold red]not ready[/]: {failures} check(s) failed")
    else:
        console.print("[bold green]ready[/]")


_COUNTS = ("checked", "equal", "mismatched", "missing", "extra", "unsettled", "repaired")


def render_verify(console: Console, report: dict[str, Any]) -> None:
    """A verify report: counts per collection, then each explained mismatch, then the verdict."""
    table = Table(title=f"verify {report['plan']} ({report['mode']})")
    table.add_column("collection")
    for column in _COUNTS:
        table.add_column(column, justify="right")
    for name, counts in report["collections"].items():
        table.add_row(escape(name), *(f"{counts[c]:,}" for c in _COUNTS))
    console.print(table)
    for m in report["mismatches"]:
        line = f"[bold]{escape(m['collection'])}[/] _id {escape(json.dumps(m['id']))}: {m['kind']}"
        if m["position"]:
            line += f" (source read at {m['position']})"
        if m.get("reason"):
            line += f": {escape(m['reason'])}"
        console.print(line)
        for d in m["diffs"]:
            console.print(
                f"    {escape(d['path'])} ({d['kind']}): source {escape(d['source'] or '(absent)')}, "
                f"target {escape(d['target'] or '(absent)')}"
            )
    differing = sum(report[k] for k in ("mismatched", "missing", "extra", "unsettled"))
    if differing > len(report["mismatches"]):
        console.print(f"... and {differing - len(report['mismatches']):,} more (see --json)")
    positions = report.get("verified_positions") or {}
    verdict = {
        "equal": "[green]equal[/]",
        "different": "[bold red]DIFFERENT[/]",
        "incomplete": "[bold yellow]INCOMPLETE[/]",
    }[report["verdict"]]
    console.print(
        f"{verdict}: score {report['score']:.6f} ({report['equal']:,} of {report['checked']:,} equal) "
        f"in {report['seconds']:.1f} s; source read at {positions.get('first', '-')} .. "
        f"{positions.get('last', '-')}; target applied up to {report.get('applied_position') or '-'}"
    )
    if report.get("incomplete"):
        console.print(f"could not complete: {escape(report['incomplete'])}")


def describe_unexpected(exc: BaseException) -> str:
    """An exception that is no MigratorError, as its type and message: `KeyError: 'int'`, never a
    bare `'int'` (a str() alone says nothing of what failed)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def write_traceback(exc: BaseException, secrets: tuple[str, ...] = ()) -> Path | None:
    """Keep an unexpected error's traceback, redacted, in a file of its own (mode 0600, in the
    temp directory, or $MIGRATOR_LOG_DIR); its path, or None when it could not be written."""
    text = "".join(traceback.format_exception(exc))
    header = (
        f"migrator {__version__}, {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}\n"
        f"command: {' '.join(sys.argv)}\n\n"
    )
    directory = os.environ.get("MIGRATOR_LOG_DIR") or tempfile.gettempdir()
    try:
        fd, name = tempfile.mkstemp(prefix="migrator-error-", suffix=".log", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(redact_text(header + text, secrets))
    except OSError:
        return None
    return Path(name)


def render_unexpected(exc: BaseException, log: Path | None, secrets: tuple[str, ...] = ()) -> str:
    """The message an unexpected error ends a command with: what it was, and where to look."""
    where = f"; its traceback is in {log}" if log is not None else ""
    return (
        f"internal error: {redact_text(describe_unexpected(exc), secrets)} (a defect of migrator: "
        f"please report it with the traceback{where})"
    )
