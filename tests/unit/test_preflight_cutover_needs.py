"""What preflight hands the source adapter of the plan's cutover (phases/preflight.py
cutover_needs), and the throttle setting a source cannot read refused by name: run over the
memory adapters, one of them declaring, as a MySQL primary does, that it cannot read replica lag."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from migrator.adapters.inspection import Capabilities, CutoverNeeds
from migrator.adapters.memory import MemorySource, MemoryTarget
from migrator.findings import Severity
from migrator.phases.preflight import cutover_needs, run_preflight
from migrator.plan.models import Plan, Switch
from tests.support.memory import MemoryMigration, items_table, memory_migration


@pytest.fixture
def mig(tmp_path: Path) -> Iterator[MemoryMigration]:
    yield from memory_migration(tmp_path)


def _with(plan: Plan, phase: str, **values: Any) -> Plan:
    settings = getattr(plan.phases, phase).model_copy(update=values)
    return plan.model_copy(update={"phases": plan.phases.model_copy(update={phase: settings})})


class _Blind(MemorySource):
    """A source whose load probe cannot read its replicas' lag (a MySQL primary's case)."""

    capabilities: ClassVar[Capabilities] = dataclasses.replace(MemorySource.capabilities, replica_lag=False)


def test_the_plans_cutover_is_handed_over(mig: MemoryMigration) -> None:
    # The test plan: one-way cutover, the default lock fence, a file switch.
    assert cutover_needs(mig.plan) == CutoverNeeds(
        reverse_sync=False, fence="lock", switch="file", plan_name="items"
    )
    fence = mig.plan.phases.cutover.fence.model_copy(
        update={"kind": "command", "pause": ["p"], "resume": ["r"]}
    )
    plan = _with(mig.plan, "cutover", reverse_sync=True, fence=fence, switch=None)
    assert cutover_needs(plan) == CutoverNeeds(
        reverse_sync=True, fence="command", switch=None, plan_name="items"
    )
    # A routing table on the source: its name is handed over, for its privileges.
    routed = _with(plan, "cutover", switch=Switch(kind="postgres", name="app_routing"))
    assert cutover_needs(routed) == CutoverNeeds(
        reverse_sync=True, fence="command", switch="postgres", routing_table="app_routing", plan_name="items"
    )


def _throttle_findings(mig: MemoryMigration, source: MemorySource, plan: Plan) -> list[tuple[Severity, str]]:
    report = run_preflight(plan, source, MemoryTarget(mig.url, plan.target.database))
    return [(f.severity, f.subject) for f in report.findings if f.check == "plan.throttle"]


def test_max_replica_lag_is_refused_where_the_source_cannot_read_it(mig: MemoryMigration) -> None:
    items_table(mig.db, 3)
    lagging = _with(mig.plan, "throttle", max_replica_lag=10.0)
    refused = run_preflight(lagging, _Blind(mig.url), MemoryTarget(mig.url, lagging.target.database))
    [finding] = [f for f in refused.findings if f.check == "plan.throttle"]
    assert (finding.severity, finding.subject) == (Severity.FAIL, "phases.throttle.max_replica_lag")
    assert finding.fix is not None
    assert "remove phases.throttle.max_replica_lag" in finding.fix
    assert "phases.throttle.file" in finding.fix and "max_active_sessions" in finding.fix
    assert not refused.ready
    # Without the setting, or with a source that reads the lag: nothing said.
    assert _throttle_findings(mig, _Blind(mig.url), mig.plan) == []
    assert _throttle_findings(mig, MemorySource(mig.url), lagging) == []
