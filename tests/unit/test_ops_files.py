"""ops/: the Grafana dashboard and Prometheus alert rules name only metrics the engine exposes,
the alerts carry what an operator needs, and `promtool` accepts the rules and fires them on the
series they are written for (where promtool is installed: Debian `prometheus`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from ruamel.yaml import YAML

from migrator.engine.events import (
    BatchApplied,
    CdcProgress,
    ChunkFinished,
    DocumentSkipped,
    ErrorRaised,
    PhaseStarted,
    ReverseBatchApplied,
    ReverseProgress,
    RowsCopied,
    RunStarted,
    TablePlanned,
    ThrottleProgress,
    VerifyFinished,
    WriteFreeze,
)
from migrator.engine.metrics import RunMetrics

OPS = Path(__file__).resolve().parents[2] / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "migrator.json"
FIVE_ALERTS = {
    "MigratorLagOverBudget",
    "MigratorRetainedWalNearBudget",
    "MigratorRunFailed",
    "MigratorVerifyDifferences",
    "MigratorWriteFreezeOverBudget",
}
METRIC = re.compile(r"\bmigrator_[a-z0-9_]+\b")


def _fed_metrics() -> RunMetrics:
    """A RunMetrics that has seen one event of each kind, so every labelled series exists."""
    m = RunMetrics()
    events = [
        RunStarted("r1", "demo", resumed=False),
        PhaseStarted("snapshot", resumed=False),
        TablePlanned("users", "users", 400, 4, 0, 0, 0),
        RowsCopied("users", 120, 100),
        ChunkFinished("users", "users", 0, None, 100, "0/1", 120, 100, 0, 1, 0.5),
        DocumentSkipped("users", "7", 17_000_000, "over 16 MB"),
        BatchApplied("0/2", 3, 5, 5, [10.0, 20.0, 30.0]),
        CdcProgress("0/2", 3, 5, lag_bytes=2048, lag_seconds=4.0, retained_wal_bytes=9000),
        ErrorRaised("cdc", "ConnectionFailed", "lost", retrying=True),
        ErrorRaised("cdc", "SourceError", "broken", retrying=False),
        VerifyFinished({"checked": 10, "equal": 7, "mismatched": 1, "missing": 1, "extra": 1}),
        ThrottleProgress("cdc", ["lag"], 3.0, 3.0),
        WriteFreeze("forward", 1500.0),
        ReverseBatchApplied(None, 2, 2, 2, [5.0]),
        ReverseProgress(None, 2, 2, 0, 0.5),
    ]
    for event in events:
        m.emit(event)
    m.set_budgets(5.0, 10_000.0, 2.0)
    return m


def _exposition() -> str:
    return generate_latest(_fed_metrics().registry).decode()


def _exposed_names(text: str) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }


def _rules() -> list[dict[str, Any]]:
    doc = YAML(typ="safe").load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_exposition_is_in_base_units_without_created_series() -> None:
    text = _exposition()
    assert "_created" not in text
    assert "migrator_write_freeze_ms" not in text
    assert 'migrator_write_freeze_seconds{direction="forward"} 1.5' in text
    assert 'migrator_snapshot_estimated_rows{collection="users"} 400.0' in text
    assert 'migrator_documents_written_total{collection="users"} 100.0' in text
    # Only the error that stopped the phase is a failure; both are errors.
    assert 'migrator_phase_failures_total{kind="SourceError",phase="cdc"} 1.0' in text
    assert 'migrator_phase_failures_total{kind="ConnectionFailed"' not in text
    assert 'migrator_errors_total{kind="ConnectionFailed",phase="cdc"} 1.0' in text
    assert "migrator_retained_wal_budget_bytes 10000.0" in text
    assert "migrator_write_freeze_budget_seconds 2.0" in text
    assert "migrator_cdc_lag_budget_seconds 5.0" in text


def test_budgets_are_nan_until_set() -> None:
    text = generate_latest(RunMetrics().registry).decode()
    for name in (
        "migrator_retained_wal_budget_bytes",
        "migrator_write_freeze_budget_seconds",
        "migrator_cdc_lag_budget_seconds",
    ):
        assert f"{name} NaN" in text


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_is_exposed(source: str) -> None:
    exprs = [r["expr"] for r in _rules()] if source == "alerts" else _dashboard_exprs()
    named = {n for e in exprs for n in METRIC.findall(e)}
    assert named, exprs
    missing = named - _exposed_names(_exposition())
    assert not missing, f"{source} names metrics the engine does not expose: {sorted(missing)}"


def test_the_five_alerts_say_what_and_wait() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} == FIVE_ALERTS
    for rule in rules:
        assert "for" in rule, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_dashboard_has_the_operators_panels() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = " ".join(_dashboard_exprs())
    copied = [p for p in dash["panels"] if "copied" in p["title"]]
    assert any(
        "migrator_documents_written_total / migrator_snapshot_estimated_rows" in t["expr"]
        for p in copied
        for t in p["targets"]
    )
    for name in (
        "migrator_cdc_lag_seconds",
        "migrator_cdc_lag_bytes",
        "migrator_changes_applied_total",
        "migrator_retained_wal_bytes",
        "migrator_retained_wal_budget_bytes",
        "migrator_write_freeze_seconds",
        "migrator_verify_documents",
        "migrator_errors_total",
    ):
        assert name in exprs, name
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: prometheus)")


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout, done.stdout


# Series an exporter would show, one sample a minute (promtool's notation "VALUExTIMES"): with
# `over` every alert must fire by minute 10, with `within` none may.
_SERIES = {
    "migrator_cdc_lag_seconds": ("60x15", "1x15"),
    "migrator_cdc_lag_budget_seconds": ("5x15", "5x15"),
    "migrator_retained_wal_bytes": ("900x15", "500x15"),
    "migrator_retained_wal_budget_bytes": ("1000x15", "1000x15"),
    'migrator_phase_failures_total{kind="SourceError",phase="cdc"}': ("0 0 0 1x12", "0x15"),
    'migrator_verify_documents{result="missing"}': ("3x15", "0x15"),
    'migrator_verify_documents{result="equal"}': ("7x15", "7x15"),
    'migrator_write_freeze_seconds{direction="forward"}': ("2.5x15", "1.5x15"),
    "migrator_write_freeze_budget_seconds": ("2x15", "2x15"),
}
# The summaries promtool must render from the series above (descriptions carry no template).
_FIRED_SUMMARIES = {
    "MigratorLagOverBudget": "CDC lag 1m 0s over the plan's max_lag on m",
    "MigratorRetainedWalNearBudget": "Retained WAL 900B is over 80% of max_retained_wal on m",
    "MigratorRunFailed": "migrator phase cdc stopped with SourceError on m",
    "MigratorVerifyDifferences": "verify found 3 missing documents on m",
    "MigratorWriteFreezeOverBudget": "write freeze (forward) of 2.5s over max_write_freeze on m",
}
_FIRED_LABELS = {
    "MigratorLagOverBudget": {"severity": "warning"},
    "MigratorRetainedWalNearBudget": {"severity": "critical"},
    "MigratorRunFailed": {"severity": "critical", "kind": "SourceError", "phase": "cdc"},
    "MigratorVerifyDifferences": {"severity": "warning", "result": "missing"},
    "MigratorWriteFreezeOverBudget": {"severity": "warning", "direction": "forward"},
}


def _labelled(series: str) -> str:
    # Every scraped series carries the target's instance label.
    name, _, rest = series.partition("{")
    return f'{name}{{instance="m",{rest}' if rest else f'{name}{{instance="m"}}'


def _group(which: int, expected: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": _labelled(k), "values": v[which]} for k, v in _SERIES.items()],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": name, "exp_alerts": alerts} for name, alerts in expected.items()
        ],
    }


@needs_promtool
def test_promtool_fires_each_alert_on_its_series(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    descriptions = {r["alert"]: r["annotations"]["description"] for r in _rules()}
    firing = {
        n: [
            {
                "exp_labels": {"instance": "m", **labels},
                "exp_annotations": {"summary": _FIRED_SUMMARIES[n], "description": descriptions[n]},
            }
        ]
        for n, labels in _FIRED_LABELS.items()
    }
    quiet: dict[str, list[dict[str, Any]]] = {n: [] for n in _FIRED_LABELS}
    spec = tmp_path / "alerts_test.yml"
    # JSON is YAML: promtool reads it as its unit-test file.
    spec.write_text(
        json.dumps(
            {
                "rule_files": [str(ALERTS)],
                "evaluation_interval": "1m",
                "tests": [_group(0, firing), _group(1, quiet)],
            }
        )
    )
    done = subprocess.run([PROMTOOL, "test", "rules", str(spec)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
