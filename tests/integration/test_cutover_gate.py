"""How a cutover that does not happen ends (issue 17, defect 13): a gate that times out is a
typed error the CLI renders with what the gate measured and what to do, never a traceback, and
the state store records the phase failed with that error; Ctrl-C before the flip stops it
cleanly and records 'stopped'. Against real servers; CDC is made to lag by a test that asks
the applied position for a marker far beyond the one committed (a deliberately delayed apply)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli
from migrator.phases import cutover as cutover_phase
from migrator.phases.cutover import GateNotPassed
from migrator.state.labels import CutoverLabel
from tests.support import cli_process
from tests.support.cutover import cutover_plan
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import SCHEMA


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def lagging_cdc(monkeypatch: pytest.MonkeyPatch, seconds: float = 1.0) -> None:
    """CDC never applies the gate's markers: each wait polls the real target's checkpoint for a
    position it will not reach, for at most `seconds` (the gate's own budget is 60 s or more)."""
    real = cutover_phase.wait_until_applied

    def delayed(target: Any, plan: str, marker: int, deadline: float, **kw: Any) -> bool:
        return real(target, plan, marker + (1 << 40), min(deadline, time.monotonic() + seconds), **kw)

    monkeypatch.setattr(cutover_phase, "wait_until_applied", delayed)
    # The backlog before the first marker is waited for while CDC applies something: nothing here.
    monkeypatch.setattr(cutover_phase, "CATCH_UP_IDLE_S", seconds)


def cutover_phase_of(m: Migration, plan_file: Path) -> tuple[str | None, list[Any]]:
    report = api.status(plan_file, state=m.state_path, env=m.env)
    status = next((p.status for p in report.phases if p.name == "cutover"), None)
    return status, report.errors


def test_a_gate_that_times_out_is_a_typed_error_recorded_as_failed(
    mig: Migration,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    switch = tmp_path / "routing"
    plan_file = cutover_plan(mig, "co-gate", switch)
    run(mig, plan_file, "caught-up")
    lagging_cdc(monkeypatch)
    with pytest.raises(GateNotPassed) as raised:
        api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert raised.value.measured["waited_s"] >= 1.0
    assert "`migrator cutover` again" in (raised.value.hint or "")
    assert not switch.exists()
    status, errors = cutover_phase_of(mig, plan_file)
    assert status == "failed"
    assert errors and errors[0].phase == "cutover" and errors[0].error == "GateNotPassed"

    # The CLI renders it: the measurement and the hint, exit 1, no traceback.
    result = CliRunner().invoke(
        cli, ["cutover", str(plan_file), "--exit", "--state", str(mig.state_path)], env=mig.env
    )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "cutover gate not passed" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_before_the_flip_stops_cleanly_and_records_stopped(
    mig: Migration,
    tmp_path: Path,
) -> None:
    switch = tmp_path / "routing"
    postpone = tmp_path / "postpone"
    postpone.touch()
    plan_file = cutover_plan(mig, "co-ctrl-c", switch, f", postpone_file: '{postpone}'")
    run(mig, plan_file, "caught-up")
    process = cli_process.start(
        ["cutover", str(plan_file), "--exit"], {**mig.env, "MIGRATOR_STATE": str(mig.state_path)}
    )
    cli_process.signal_when(process, cli_process.step_is("cutover.step", "postponed"), signal.SIGINT)
    code, out, err = cli_process.finish(process, timeout=120)
    assert code == 130, (out, err)
    assert "Traceback" not in err and "stopped by a signal before the switch flipped" in out + err
    assert not switch.exists()
    status, _ = cutover_phase_of(mig, plan_file)
    assert status == "pending"
    report = api.status(plan_file, state=mig.state_path, env=mig.env, history=True)
    assert any(c.phase == "cutover" and c.label == CutoverLabel.STOPPED for c in report.history or [])
    # And it starts over once the postpone file is gone.
    postpone.unlink()
    api.cutover(plan_file, state=mig.state_path, env=mig.env)
    assert switch.read_text() == "target\n"
