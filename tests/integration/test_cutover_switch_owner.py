"""A switch that another run left naming the target is refused by name (issue 17, defect 11):
before, `migrator cutover` took it for its own flip, "resumed", and failed with a developer's
hint ("call prepare() before the switch flips"). Each flip records the run that made it
(docs/architecture.md, "One owner")."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator import api
from migrator.errors import OwnedByAnotherRun
from tests.support.cutover import cutover_plan
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import SCHEMA


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


@pytest.mark.parametrize("left", ["another run", "no owner recorded"])
def test_a_routing_file_left_by_another_run_is_refused_by_name(
    mig: Migration,
    tmp_path: Path,
    left: str,
) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "co-foreign", switch, reverse=True)
    run(mig, plan_file, "caught-up")
    switch.write_text("target\n")
    if left == "another run":
        Path(f"{switch}.owner").write_text("run-of-yesterday\n")
    with pytest.raises(OwnedByAnotherRun) as raised:
        api.cutover(plan_file, state=mig.state_path, env=mig.env)
    message = str(raised.value)
    assert str(switch) in message and "prepare()" not in message
    assert ("run run-of-yesterday" in message) == (left == "another run")
    assert f"rm {switch}" in (raised.value.hint or "")
    assert switch.read_text() == "target\n"  # left as it was

    # Removed as the hint says, the cutover goes ahead and records this run as the owner.
    switch.unlink()
    Path(f"{switch}.owner").unlink(missing_ok=True)
    outcome = api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert switch.read_text() == "target\n"
    assert Path(f"{switch}.owner").read_text().strip() == outcome.run_id
