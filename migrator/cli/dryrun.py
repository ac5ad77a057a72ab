"""Rendering of `migrator run --dry-run` for people (the JSON form is the report's dict as is)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from migrator.redact import redact_text

_WRITES = {
    "source": "[yellow]source[/]",
    "target": "[yellow]target[/]",
    "state": "[yellow]state[/] ",
    "external": "[magenta]extern[/]",
    "none": "[dim]read[/]  ",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return "under 1 s"
    if seconds < 60:
        return f"about {seconds:.0f} s"
    if seconds < 3600:
        return f"about {seconds / 60:.1f} min"
    return f"about {seconds / 3600:.1f} h"


def _bytes(n: int) -> str:
    return (
        f"{n:,} B" if n < 1024 else f"{n / 1024:,.1f} kB" if n < 1024 * 1024 else f"{n / 1024 / 1024:,.1f} MB"
    )


def render_dry_run(console: Console, report: dict[str, Any], *, examples: int = 1) -> None:
    """Actions per phase, sample documents (pretty JSON), collisions, estimates, readiness."""
    console.print(
        f"[bold]dry run[/] of plan {escape(report['plan'])}: nothing was written "
        "(nothing on the source, no collection, no state)"
    )
    console.print(f"  source  {escape(str(report['source']))}")
    console.print(f"  target  {escape(str(report['target']))} database {escape(report['target_database'])}")
    console.print("[bold]read[/] (all that a dry-run does)")
    for read in report["reads"]:
        console.print(f"  - {escape(read['description'])}")
    for phase in report["phases"]:
        console.print(f"[bold]phase {escape(phase['phase'])}[/] [dim]({escape(phase['command'])})[/] would:")
        for i, action in enumerate(phase["actions"], 1):
            console.print(
                f"  {i:>2}. {_WRITES.get(action['writes'], action['writes'])} {escape(action['description'])}"
            )
    console.print("[bold]sample documents[/] (built from real source rows through the plan's mapping)")
    for sample in report["samples"]:
        rate = sample["rows_per_second"]
        console.print(
            f"  [bold cyan]{escape(sample['collection'])}[/] <- {escape(sample['table'])}: "
            f"{sample['documents']:,} document(s) from {sample['rows']:,} row(s) in {sample['seconds']:.3f} s"
            + (f" ({rate:,} rows/s)" if rate else "")
            + f"; average {_bytes(sample['average_bytes'])}, largest {_bytes(sample['largest_bytes'])}"
        )
        for document in sample["examples"][:examples]:
            console.print(redact_text(json.dumps(document, indent=2, ensure_ascii=False)), markup=False)
        shown = min(examples, len(sample["examples"]))
        if sample["documents"] > shown:
            console.print(
                f"  [dim]... {sample['documents'] - shown:,} more in the sample (--json shows a few)[/]"
            )
    collisions = [c for s in report["samples"] for c in s["collision_examples"]]
    if report["collisions"]:
        console.print(
            f"[bold red]key collisions[/]: {report['collisions']:,} source row(s) would share a document _id "
            "with another: the target cannot hold both as separate documents"
        )
        for c in collisions:
            keys = "; ".join(", ".join(k) for k in c["source_keys"])
            console.print(
                f"  {escape(c['collection'])} _id {escape(json.dumps(c['id']))} <- source keys {escape(keys)}"
            )
    else:
        console.print("key collisions: none in the sample")
    console.print("[bold]estimated durations[/] (estimates from the sample, not measurements of the run)")
    for e in report["estimates"]:
        console.print(f"  {escape(e['phase']):<9} {_duration(e['seconds']):<16} [dim]{escape(e['basis'])}[/]")
    failures = [f for f in report["findings"] if f["severity"] == "fail"]
    for f in report["findings"]:
        if f["severity"] in ("fail", "warn"):
            console.print(
                f"  {f['severity']:<4} {escape(f['check'])} {escape(f['subject'])}: {escape(f['message'])}"
            )
    if failures:
        console.print(
            f"[bold red]not ready[/]: {len(failures)} preflight check(s) failed; `migrator run` would refuse"
        )
    else:
        console.print("[bold green]ready[/]: `migrator run` would start")
