"""What a command leaves on disk when it does nothing (issue 17, item "refused at preflight").

A run that preflight refuses, and the commands that find a run rather than begin one (verify,
cutover, rollback, status), leave no state file, no side file and no lock file where there was
none; a run refused because another process holds the plan's lease adds no file either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli
from migrator.errors import MigratorError, PreflightFailed, RunInUse
from migrator.state import SQLiteStateStore
from tests.support.docs import Migration
from tests.support.shop import COLLECTIONS, SCHEMA, plan


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory no command has made yet: whatever appears in it, a command made."""
    yield tmp_path / "state"


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_a_run_refused_at_preflight_leaves_no_state_file(mig: Migration, state_dir: Path) -> None:
    refused = mig.plan("- {name: ghosts, from: public.no_such_table, key: id}", name="refused")
    state = state_dir / "refused.db"
    with pytest.raises(PreflightFailed, match="no_such_table"):
        api.run(refused, until="snapshot", state=state, env=mig.env)
    assert not state_dir.exists(), files(state_dir)

    result = CliRunner().invoke(
        cli, ["run", str(refused), "--until", "snapshot", "--state", str(state)], env=mig.env
    )
    assert result.exit_code != 0 and "no_such_table" in result.output, result.output
    assert not state_dir.exists(), files(state_dir)


def test_commands_that_find_a_run_create_no_state_file(mig: Migration, state_dir: Path) -> None:
    # A switch, so that cutover gets as far as looking for the run (without one it is refused first).
    plan_file = mig.plan(
        COLLECTIONS,
        name="no-run",
        phases=f"verify: {{chunk_rows: 100}}\ncdc: {{heartbeat_interval: 1s}}\n"
        f"cutover: {{switch: {{kind: file, path: {state_dir.parent / 'routing'}}}}}",
    )
    state = state_dir / "no-run.db"
    report = api.verify(plan_file, state=state, env=mig.env)  # verify works without a run
    assert report.verdict == "different"  # nothing was copied: every document is missing
    for command in (
        lambda: api.cutover(plan_file, state=state, env=mig.env),
        lambda: api.rollback(plan_file, state=state, env=mig.env),
    ):
        with pytest.raises(MigratorError, match="no active"):
            command()
    api.status(plan_file, state=state, env=mig.env)
    assert not state_dir.exists(), files(state_dir)


def test_a_run_refused_for_a_held_lease_adds_no_file(mig: Migration, state_dir: Path) -> None:
    plan_file = plan(mig, "leased")
    state = state_dir / "leased.db"
    with SQLiteStateStore(state) as holder:
        holder.hold("leased", "another migrator run")
        before = files(state_dir)
        with pytest.raises(RunInUse, match="another migrator run"):
            api.run(plan_file, until="snapshot", state=state, env=mig.env)
        assert files(state_dir) == before
        assert holder.runs("leased") == []  # refused before anything was begun
