"""kill -9 of `migrator rollback` after cutover once each of its steps is done and recorded (issue
17, defect 14(c)): the retry completes, the switch ends on the source, and both sides hold what the
application wrote in the window, nothing resurrected (tests/support/rollback_kill.py). The kills
between an action and its checkpoint are test_rollback_kill.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cutover import ROLLBACK_STEPS
from tests.support.docs import Migration
from tests.support.rollback_kill import kill_rollback_and_retry
from tests.support.servers import ExternalServer, MongoServer
from tests.support.shop import SCHEMA

# Killed once the step's event is out (the step done and recorded).
STEPS = ["verify", *ROLLBACK_STEPS]


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


@pytest.mark.parametrize("moment", STEPS)
def test_kill_9_at_each_step_of_rollback_after_cutover(
    mig: Migration, mongo_server: MongoServer | ExternalServer, tmp_path: Path, moment: str
) -> None:
    kill_rollback_and_retry(mig, mongo_server, tmp_path, moment, between=False)
