"""What a phase's `run` performs is what `--dry-run` and the runbook list (docs/architecture.md,
"Executable actions"): for the same plan, the ids and descriptions of the steps a live run gave its
executor equal those the dry run recorded. The live executors are caught by wrapping
`Executor.live`, so the phases run exactly as `migrator run` runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator import api
from migrator.engine.executor import Executor
from tests.support.cutover import cutover_plan
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import SCHEMA

pytestmark = pytest.mark.usefixtures("stop_followers")


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


SHELVES = """
- name: shelves
  from: shelves
  key: id
  embed: [{as: books, from: books, on: {shelf_id: id}}]
"""


@pytest.fixture
def live_executors(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Executor]]:
    """Every live executor made while the test runs, in order."""
    made: list[Executor] = []

    def live(cls: type[Executor]) -> Executor:
        executor = cls("live")
        made.append(executor)
        return executor

    monkeypatch.setattr(Executor, "live", classmethod(live))
    yield made


def _listed(mig: Migration, plan: str, phase: str) -> list[tuple[str, str]]:
    report = api.dry_run(mig.tmp_path / f"{plan}.yaml", sample_rows=10, env=mig.env)
    return [(e.step, e.action.description) for e in report.journal if e.action.phase == phase]


def _performed(executors: list[Executor], phase: str) -> list[tuple[str, str]]:
    return [(e.step, e.action.description) for x in executors for e in x.journal if e.action.phase == phase]


def _done(executors: list[Executor], phase: str) -> list[bool]:
    """Which of the phase's steps performed their effect (the others are said, not done)."""
    return [e.performed for x in executors for e in x.journal if e.action.phase == phase]


def _shelves(mig: Migration, name: str) -> None:
    mig.sql(
        "CREATE TABLE shelves (id int PRIMARY KEY, label text)",
        "CREATE TABLE books (id int PRIMARY KEY, shelf_id int REFERENCES shelves, title text)",
        "INSERT INTO shelves SELECT g, 'shelf ' || g FROM generate_series(1, 20) g",
        "INSERT INTO books SELECT g, 1 + g % 20, 'book ' || g FROM generate_series(1, 60) g",
    )
    mig.plan(SHELVES, name=name, phases="snapshot: {parallel: 2, chunk_rows: 5}")


def test_the_snapshot_performs_the_steps_the_dry_run_lists(
    mig: Migration, live_executors: list[Executor]
) -> None:
    _shelves(mig, "steps-snapshot")
    listed = _listed(mig, "steps-snapshot", "snapshot")
    assert [s for s, _ in listed] == [
        "snapshot.record-before",
        "snapshot.create-publication",
        "snapshot.create-slot",
        "snapshot.split",
        "snapshot.copy-shelves",
    ]

    outcome, _ = mig.run(mig.tmp_path / "steps-snapshot.yaml")

    assert outcome.snapshot is not None and outcome.snapshot.documents == 20
    assert _performed(live_executors, "snapshot") == listed
    assert all(_done(live_executors, "snapshot"))


def test_cutover_performs_the_steps_the_dry_run_lists(
    mig: Migration, tmp_path: Path, live_executors: list[Executor]
) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "steps-cutover", switch, freeze="5s", reverse=True)
    run(mig, plan_file, "caught-up")
    listed = _listed(mig, "steps-cutover", "cutover")
    assert [s for s, _ in listed][-4:] == [
        "cutover.reverse-sync",
        "cutover.cancel-writes",
        "cutover.lift-fence",
        "cutover.retries",
    ]

    outcome = api.cutover(plan_file, state=mig.state_path, env=mig.env)

    assert switch.read_text() == "target\n" and outcome.report.attempts == 1
    assert _performed(live_executors, "cutover") == listed
    done = _done(live_executors, "cutover")
    assert done == [True] * (len(listed) - 1) + [False]  # the last one says how attempts are retried


def test_a_verify_pass_performs_the_steps_the_dry_run_lists(
    mig: Migration, live_executors: list[Executor]
) -> None:
    _shelves(mig, "steps-verify")
    mig.run(mig.tmp_path / "steps-verify.yaml")
    listed = _listed(mig, "steps-verify", "verify")
    assert [s for s, _ in listed] == [
        "verify.compare",
        "verify.recheck",
        "verify.extras",
        "verify.keep-report",
        "verify.repair",
    ]
    live_executors.clear()

    report = api.verify(mig.tmp_path / "steps-verify.yaml", state=mig.state_path, env=mig.env)

    assert report.verdict == "equal"
    assert _performed(live_executors, "verify") == listed
    # Said, not done by the pass itself: rechecks happen inside the compare and the look for
    # extras, the caller keeps the report.
    done = _done(live_executors, "verify")
    assert done == [True, False, True, False, True]


def test_cdc_performs_the_steps_the_dry_run_lists(mig: Migration, live_executors: list[Executor]) -> None:
    _shelves(mig, "steps-cdc")
    listed = _listed(mig, "steps-cdc", "cdc")
    assert [s for s, _ in listed] == [
        "cdc.stream",
        "cdc.apply",
        "cdc.acknowledge",
        "cdc.mirror",
        "cdc.heartbeat",
        "cdc.backfill",
        "cdc.stop",
    ]

    run(mig, mig.tmp_path / "steps-cdc.yaml", "caught-up")

    assert _performed(live_executors, "cdc") == listed
    # The apply step's effect is the follow loop; the others are what that loop does.
    done = _done(live_executors, "cdc")
    assert done == [False, True] + [False] * (len(listed) - 2)


def test_a_rollback_performs_the_steps_its_preview_lists(
    mig: Migration, live_executors: list[Executor]
) -> None:
    _shelves(mig, "steps-rollback")
    plan_file = mig.tmp_path / "steps-rollback.yaml"
    mig.run(plan_file)
    preview = api.rollback(plan_file, preview=True, state=mig.state_path, env=mig.env)
    assert isinstance(preview, list)
    listed = [(f"rollback.{s.name}", s.description) for s in preview]
    live_executors.clear()

    api.rollback(plan_file, state=mig.state_path, env=mig.env)

    assert _performed(live_executors, "rollback") == listed
    assert all(_done(live_executors, "rollback"))
    assert mig.slots() == []


def test_a_switch_back_performs_the_steps_its_preview_lists(
    mig: Migration, tmp_path: Path, live_executors: list[Executor]
) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "steps-back", switch, freeze="5s", reverse=True)
    run(mig, plan_file, "caught-up")
    api.cutover(plan_file, state=mig.state_path, env=mig.env)
    preview = api.rollback(plan_file, preview=True, state=mig.state_path, env=mig.env)
    assert isinstance(preview, list)
    listed = [(f"switchback.{s.name}", s.description) for s in preview]
    live_executors.clear()

    api.rollback(plan_file, to="cutover", state=mig.state_path, env=mig.env)

    assert switch.read_text() == "source\n"
    assert _performed(live_executors, "switchback") == listed
    # The attempts (the 'lag' step's effect) take the fence, drain, recheck, sequences and flip.
    said = {"fence", "drain", "recheck", "sequences", "flipping"}
    done = _done(live_executors, "switchback")
    assert done == [s.name not in said for s in preview]
