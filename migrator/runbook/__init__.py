"""`migrator runbook`: a Markdown runbook for operators, from the plan and preflight results.

`facts.gather` collects what the runbook states (masked, ordered); `markdown.render` writes it.
Both are pure: api.runbook runs preflight (read-only) first, or nothing at all offline.
"""

from __future__ import annotations

from migrator.phases.preflight import PreflightReport
from migrator.plan.models import Plan
from migrator.runbook.facts import UNCHECKED, Facts, gather
from migrator.runbook.markdown import render


def build_runbook(plan: Plan, plan_file: str, report: PreflightReport | None) -> str:
    """The runbook of `plan` as Markdown. `plan_file` is repeated in its commands as given;
    `report` is the preflight report, or None offline (values then read UNCHECKED)."""
    return render(gather(plan, plan_file, report))


__all__ = ["UNCHECKED", "Facts", "build_runbook", "gather", "render"]
