"""Findings: what a check found, how bad it is, and how to fix it.

Preflight, mapping resolution and (later) verification all report through this one
shape, so the CLI, `--json` and the runbook render them alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"  # the run can go ahead; the operator should know
    FAIL = "fail"  # the run must not start until this is fixed


@dataclass(frozen=True)
class Finding:
    check: str  # stable identifier, e.g. 'source.wal_level'
    severity: Severity
    subject: str  # the object concerned: a table, column, setting or endpoint
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data
