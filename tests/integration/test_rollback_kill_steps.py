"""kill -9 of `migrator rollback` after cutover once each of its steps is done and recorded (issue
17, defect 14(c)): the retry completes, the switch ends on the source, and both sides hold what the
application wrote in the window, nothing resurrected (tests/support/rollback_kill.py). The kills
between an action and its checkpoint are test_rollback_kill.py.

One cutover serves the steps up to the recheck: the rollback is killed after its first step, its
retry after the next, and so on, the application writing between them; the last retry completes.
Each retry resumes from what the kill before left: before the flip, a killed rollback goes through
its steps again (lifting a fence it left), so each retry comes to the next step, also when the kill
before landed a step late. From 'flipping' on, the steps follow each other within milliseconds: a
kill meant for one of them may land once the rollback is over, and the next `migrator rollback`
would then roll back the whole run (a run before cutover), with no step of this kind to be killed
at; so each of them has a cutover of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cutover import ROLLBACK_STEPS
from tests.support.docs import Migration
from tests.support.rollback_kill import kill_rollback_and_retry
from tests.support.shop import SCHEMA

# Killed once the step's event is out (the step done and recorded): one chain up to the recheck,
# then one cutover for each later step. 'sequences' does nothing on a MongoDB target (no
# sequences) and is over within milliseconds of the recheck, so a kill meant for the recheck may
# land past it: it is left out here; a PostgreSQL target's sequences are killed at in
# conformance/test_conformance_pg_target_kill.py.
STEPS = ("verify", *(step for step in ROLLBACK_STEPS if step != "sequences"))
FLIPPING = STEPS.index("flipping")
CHAINS = [STEPS[:FLIPPING], *((step,) for step in STEPS[FLIPPING:])]


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


@pytest.mark.parametrize("moments", CHAINS, ids=lambda moments: "-".join(moments))
def test_kill_9_at_each_step_of_rollback_after_cutover(
    mig: Migration, tmp_path: Path, moments: tuple[str, ...]
) -> None:
    kill_rollback_and_retry(mig, tmp_path, moments, between=False)
