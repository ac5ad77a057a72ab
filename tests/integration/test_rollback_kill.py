"""kill -9 of `migrator rollback` after cutover between an action and its checkpoint
(MIGRATOR_TEST_KILL_AT, migrator/operations/rollback_after_cutover/crash.py): the fence taken and
not recorded, the switch flipped and not recorded, the fence lifted and not recorded, reverse
sync's checkpoint forgotten and not recorded. The retry completes, the switch ends on the source,
and both sides hold what the application wrote in the window, nothing resurrected
(tests/support/rollback_kill.py; the kills after each step are test_rollback_kill_steps.py).

One cutover serves the four: the rollback dies at the first point, its retry at the second, and so
on (each process kills itself at the point its MIGRATOR_TEST_KILL_AT names, and passes the
others), each retry resuming from what the crash before left, the application writing between
them; the last retry completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs import Migration
from tests.support.rollback_kill import kill_rollback_and_retry
from tests.support.shop import SCHEMA

BETWEEN = ("fence-engaged", "flipped", "unfenced", "forgotten")  # in the order a rollback comes to them


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def test_kill_9_between_an_action_of_rollback_after_cutover_and_its_checkpoint(
    mig: Migration, tmp_path: Path
) -> None:
    kill_rollback_and_retry(mig, tmp_path, BETWEEN, between=True)
