"""The library's entry points. The CLI calls these; so do tests and applications.

Nothing here prints or exits: results and errors are returned or raised, typed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from migrator.adapters.registry import source_for, target_for
from migrator.phases.preflight import PreflightReport, run_preflight
from migrator.plan import Plan, load_plan, plan_json_schema


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Plan:
    """Load and validate a plan file; raises PlanError naming file, line and key."""
    return load_plan(Path(path), env=env)


def plan(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> PreflightReport:
    """Validate the plan, inspect both databases and run the preflight checks (read-only)."""
    loaded = load(path, env)
    source = source_for(loaded.source.adapter, loaded.source.url.get_secret_value())
    target = target_for(loaded.target.adapter, loaded.target.url.get_secret_value(), loaded.target.database)
    with source, target:
        return run_preflight(loaded, source, target)


def schema() -> dict[str, Any]:
    """JSON Schema of plan format v1."""
    return plan_json_schema()
