"""Rendering of `migrator status`: a rich view for people, JSON for machines, and `--watch`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from migrator.cli.contract import error_line, exit_code_for
from migrator.errors import MigratorError
from migrator.operations.status import (
    CdcStatus,
    EndpointStatus,
    RunInfo,
    SnapshotStatus,
    StatusReport,
    ThrottleStatus,
)
from migrator.redact import redact_text

WATCH_INTERVAL_S = 1.0
_sleep = time.sleep  # a name of this module's own, for tests to replace


def _bytes(value: int | None) -> str:
    if value is None:
        return "?"
    size = float(value)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{value:,} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _endpoint(label: str, endpoint: EndpointStatus) -> str:
    line = f"  {label}  {escape(endpoint.endpoint)}"
    if endpoint.reachable is True:
        return line + "  [green]reachable[/]"
    if endpoint.reachable is False:
        return line + f"  [bold red]unreachable[/]: {escape(endpoint.error or '')}"
    return line


def _snapshot(snapshot: SnapshotStatus) -> RenderableType:
    title = f"[bold]snapshot[/] {escape(snapshot.status)}"
    if snapshot.position:
        title += f"  starts CDC at {escape(snapshot.position)}"
    if snapshot.consistent_after and snapshot.consistent_after != snapshot.position:
        title += f", consistent once CDC passes {escape(snapshot.consistent_after)}"
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in (
        ("collection", "left"),
        ("table", "left"),
        ("chunks", "right"),
        ("running", "right"),
        ("failed", "right"),
        ("rows", "right"),
        ("documents", "right"),
        ("in target", "right"),
    ):
        # Fold rather than elide on a narrow terminal: a name cut short is lost. A pipe or a log
        # is not folded (cli/render.py, make_console: no width limit there).
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for c in snapshot.collections:
        table.add_row(
            escape(c.collection),
            escape(c.table),
            f"{c.chunks_done}/{c.chunks_total}",
            str(c.chunks_running),
            str(c.chunks_failed) if not c.chunks_failed else f"[red]{c.chunks_failed}[/]",
            f"{c.rows:,}",
            f"{c.documents:,}",
            "?" if c.target_documents is None else f"{c.target_documents:,}",
        )
    if len(snapshot.collections) > 1:
        table.add_row(
            "[bold]total[/]",
            "",
            f"{snapshot.chunks_done}/{snapshot.chunks_total}",
            "",
            "",
            f"{snapshot.rows:,}",
            f"{snapshot.documents:,}",
            "",
        )
    return Group(Text.from_markup(title), table)


def _cdc(cdc: CdcStatus) -> list[str]:
    lines = [f"[bold]cdc[/] {escape(cdc.status)}"]
    if cdc.applied_position is None:
        lines.append("  applied   nothing yet")
    else:
        where = "target" if cdc.applied_from == "target" else "state store mirror; the target was not read"
        age = f", {_seconds(cdc.applied_age_seconds)} ago" if cdc.applied_age_seconds is not None else ""
        lines.append(
            f"  applied   {escape(cdc.applied_position)} ({escape(where)}) at {escape(cdc.applied_at or '?')}{age}"
        )
    if cdc.lag_bytes is not None:
        over = cdc.lag_seconds is not None and cdc.lag_seconds > cdc.max_lag_seconds
        style = "yellow" if over else "green"
        state = "caught up" if cdc.caught_up else f"newest applied commit {cdc.applied_commit_time or '?'}"
        lines.append(
            f"  lag       [{style}]{_seconds(cdc.lag_seconds)}[/], {_bytes(cdc.lag_bytes)} of "
            f"{escape(cdc.change_log)} "
            f"(max_lag {_seconds(cdc.max_lag_seconds)}; {escape(state)})"
        )
    slot = cdc.slot
    # The slot's line names it as the source does (CdcStatus.stream): "replication slot", ...
    named = f"  {escape(cdc.stream)} {escape(slot.name)}"
    if slot.exists is None:
        lines.append(f"{named}: unknown (the source was not read)")
    elif not slot.exists:
        lines.append(f"{named}: [yellow]does not exist[/]")
    else:
        retained = slot.retained_wal_bytes or 0
        style = "bold red" if retained > cdc.max_retained_wal_bytes else "green"
        holder = "held by a running stream" if slot.active else "idle (no `migrator run` streams it)"
        lines.append(
            f"{named} {holder}; retains [{style}]{_bytes(slot.retained_wal_bytes)}[/] "
            f"of {escape(cdc.change_log)} (max_retained_wal {_bytes(cdc.max_retained_wal_bytes)}); confirmed "
            f"{escape(slot.confirmed_position or '?')}, source at {escape(slot.current_position or '?')}"
        )
    return lines


def _throttle(throttle: ThrottleStatus) -> list[str]:
    if throttle.throttled:
        head = (
            f"[bold]throttle[/] [bold yellow]throttled[/] ({escape(throttle.phase or '-')}) since "
            f"{escape(throttle.since or '?')}"
        )
    else:
        head = "[bold]throttle[/] [green]not throttled[/]"
    head += f"; held {_seconds(throttle.throttled_seconds)} in all"
    lines = [head]
    lines += [f"  reason    {escape(reason)}" for reason in throttle.reasons]
    controls = []
    if throttle.paused:
        controls.append("[yellow]paused[/] (`migrator throttle --resume` lifts it)")
    if throttle.chunk_rows is not None:
        controls.append(f"chunk_rows {throttle.chunk_rows:,}")
    if throttle.max_lag_seconds is not None:
        controls.append(f"max_lag {_seconds(throttle.max_lag_seconds)}")
    if controls:
        lines.append(f"  controls  {', '.join(controls)} (set {escape(throttle.controls_updated_at or '?')})")
    if throttle.file:
        lines.append(f"  file      {escape(throttle.file)} (throttles while it exists)")
    return lines


def _verify(report: dict[str, Any]) -> str:
    verdict = str(report.get("verdict", "?"))
    style = {"equal": "green", "incomplete": "bold yellow"}.get(verdict, "bold red")
    counts = ", ".join(
        f"{name} {report[name]:,}"
        for name in ("checked", "equal", "mismatched", "missing", "extra", "unsettled", "repaired")
        if isinstance(report.get(name), int)
    )
    score = report.get("score")
    score_text = f", score {score}" if score is not None else ""
    mode = report.get("mode")
    return f"[{style}]{escape(verdict)}[/]{escape(score_text)} ({escape(str(mode))}): {escape(counts)}"


def status_renderable(report: StatusReport) -> RenderableType:
    """The report as people read it."""
    if report.run is None:
        head = f"[bold]plan[/] {escape(report.plan)}"
        return Group(Text.from_markup(head), Text(report.message or "no run", style="yellow"))
    parts: list[RenderableType] = [Text.from_markup("\n".join(_run_lines(report, report.run)))]
    for section in _SECTIONS:
        part = section(report)
        if part is not None:
            parts.append(part)
    return Group(*parts)


def _run_lines(report: StatusReport, run: RunInfo) -> list[str]:
    head = f"[bold]plan[/] {escape(report.plan)}"
    phase = run.phase or "-"
    phase_status = next((p.status for p in report.phases if p.name == run.phase), None)
    head += f"  run {escape(run.id)} [bold]{escape(run.status)}[/]  phase {escape(phase)}"
    if phase_status:
        head += f" ({escape(phase_status)})"
    head += f"  started {escape(run.started_at)}"
    if run.ended_at:
        head += f", ended {escape(run.ended_at)}"
    lines = [head, _endpoint("source", report.source), _endpoint("target", report.target)]
    if phase_status == "interrupted":
        lines.append(
            "  [bold yellow]interrupted[/] no process works on this run (it was killed or its machine "
            "lost); `migrator run PLAN` resumes it from its last checkpoint"
        )
    found = " (found through the target's ownership record)" if report.state_from == "owner record" else ""
    lines.append(f"  state   {escape(report.state)}{found}")
    owner = report.owner
    if owner is not None and owner.run_id != run.id:
        lines.append(
            f"  [bold yellow]owner[/]   the target's data belongs to run {escape(owner.run_id)} (host "
            f"{escape(owner.host)}, state file {escape(owner.state)}), not to this run"
        )
    return lines


def _snapshot_part(report: StatusReport) -> RenderableType | None:
    return _snapshot(report.snapshot) if report.snapshot is not None else None


def _cdc_part(report: StatusReport) -> RenderableType | None:
    return Text.from_markup("\n".join(_cdc(report.cdc))) if report.cdc is not None else None


def _throttle_part(report: StatusReport) -> RenderableType | None:
    t = report.throttle
    if t is not None and (
        t.throttled or t.throttled_seconds or t.paused or t.file or t.chunk_rows or t.max_lag_seconds
    ):
        return Text.from_markup("\n".join(_throttle(t)))
    return None


def _cutover_part(report: StatusReport) -> RenderableType | None:
    co = report.cutover
    if co is None or not (co.primary == "target" or co.last_freeze_ms or co.reverse_events is not None):
        return None
    line = f"[bold]primary[/] {escape(co.primary)}"
    if co.reverse_events is not None:
        line += (
            f"  reverse sync applied the target's changes until {escape(co.reverse_applied_until or '-')} "
            f"({co.reverse_events:,} events)"
        )
    for direction, ms in sorted(co.last_freeze_ms.items()):
        line += f"  last {escape(direction)} freeze {ms:.0f} ms"
    return Text.from_markup(line)


def _checkpoint_part(report: StatusReport) -> RenderableType | None:
    c = report.last_checkpoint
    if c is None:
        return None
    return Text.from_markup(
        f"[bold]last checkpoint[/] #{c.id} {escape(c.phase)} {escape(c.label)} "
        f"{escape(c.position or '')} at {escape(c.created_at)}"
    )


def _verify_part(report: StatusReport) -> RenderableType | None:
    if report.verify is None:
        return None
    return Text.from_markup(
        f"[bold]last verify[/] at {escape(report.verify.at)}: {_verify(report.verify.report)}"
    )


def _errors_part(report: StatusReport) -> RenderableType | None:
    if not report.errors:
        return None
    lines = ["[bold red]recent errors[/]"]
    for e in report.errors:
        retried = " (retried)" if e.retrying else ""
        origin = ", ".join(x for x in (e.cause, None if e.code is None else f"code {e.code}") if x)
        origin = f" ({escape(origin)})" if origin else ""
        lines.append(
            f"  {escape(e.at)} {escape(e.phase or '-')} {escape(e.error)}{origin}{retried}: {escape(e.message)}"
        )
        if e.hint:
            lines.append(f"      [dim]hint: {escape(e.hint)}[/]")
    return Text.from_markup("\n".join(lines))


def _warnings_part(report: StatusReport) -> RenderableType | None:
    if not report.warnings:
        return None
    lines = ["[bold yellow]recent warnings[/]"]
    lines += [f"  {escape(w.at)} {escape(w.message)}" for w in report.warnings]
    return Text.from_markup("\n".join(lines))


def _history_part(report: StatusReport) -> RenderableType | None:
    if report.history is None:
        return None
    table = Table(title=None, show_edge=False, box=None, header_style="bold", pad_edge=False)
    for name in ("id", "phase", "label", "position", "time"):
        table.add_column(name, justify="right" if name == "id" else "left", overflow="fold")
    for c in report.history:
        table.add_row(
            str(c.id), escape(c.phase), escape(c.label), escape(c.position or "-"), escape(c.created_at)
        )
    return Group(Text.from_markup("[bold]checkpoints[/] (rollback targets)"), table)


# The sections under the run's lines, in the order they are shown.
_SECTIONS: tuple[Callable[[StatusReport], RenderableType | None], ...] = (
    _snapshot_part,
    _cdc_part,
    _throttle_part,
    _cutover_part,
    _checkpoint_part,
    _verify_part,
    _errors_part,
    _warnings_part,
    _history_part,
)


def status_json(report: StatusReport) -> str:
    """One line: the report as one JSON object (docs/json.md)."""
    return json.dumps(report.to_dict(), default=str)


def print_status(console: Console, report: StatusReport, as_json: bool) -> None:
    if as_json:
        click.echo(status_json(report))
    else:
        console.print(status_renderable(report))


def watch_status(
    fetch: Callable[[], StatusReport],
    console: Console,
    *,
    as_json: bool,
    interval: float = WATCH_INTERVAL_S,
) -> StatusReport | None:
    """Refresh the report every `interval` seconds until Ctrl-C; returns the last report read.
    A failed read (the state file locked, say) is shown and retried, not fatal."""
    last: StatusReport | None = None

    def read() -> StatusReport | MigratorError:
        nonlocal last
        try:
            last = fetch()
        except MigratorError as exc:
            return exc
        return last

    def view() -> RenderableType:
        read_back = read()
        if isinstance(read_back, MigratorError):
            message = f"cannot read the status: {redact_text(read_back.message)} (retrying)"
            return Text(message, style="bold red")
        return status_renderable(read_back)

    try:
        if as_json:
            while True:
                read_back = read()
                if isinstance(read_back, MigratorError):
                    click.echo(json.dumps(_unreadable(read_back)))
                else:
                    click.echo(status_json(read_back))
                _sleep(interval)
        if not console.is_terminal:
            while True:
                console.print(view())
                console.rule()
                _sleep(interval)
        with Live(view(), console=console, auto_refresh=False) as live:
            while True:
                _sleep(interval)
                live.update(view(), refresh=True)
    except KeyboardInterrupt:
        pass
    return last


def _unreadable(error: MigratorError) -> dict[str, Any]:
    """`status --watch --json`: a read that failed is the contract's `failed` line (docs/json.md,
    "Errors") with `retrying: true`: the watch goes on, and the next status object follows."""
    return error_line(error, exit_code_for(error), redact_text(error.message)) | {"retrying": True}
