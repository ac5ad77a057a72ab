"""The error that stops a phase is the one the state store keeps and `status` shows: its class,
its message and the server's code (SQLSTATE or MongoDB error code) with the driver's class,
never a wrapper or an error met while recording it (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator import api
from migrator.errors import SourceError, StateDiskFull, TargetError
from migrator.state import SQLiteStateStore
from migrator.state.sqlite import SQLiteStateStore as Store
from tests.support.docs import Migration
from tests.support.runs import run
from tests.support.shop import SCHEMA, plan

DUPLICATE_KEY = "11000"  # https://www.mongodb.com/docs/manual/reference/error-codes/


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def break_apply(m: Migration, name: str) -> Path:
    """A run whose CDC the target refuses: a unique index someone made on the target, and two
    source rows that come to share the indexed value."""
    plan_file = plan(m, name)
    run(m, plan_file, "snapshot")
    m.client[m.database]["customers"].create_index("name", unique=True)
    m.sql("UPDATE customers SET name = 'same' WHERE id IN (1, 2)")
    return plan_file


def test_status_keeps_the_error_that_stopped_cdc_with_its_server_code(mig: Migration) -> None:
    plan_file = break_apply(mig, "fail-dup")
    with pytest.raises(TargetError) as raised:
        run(mig, plan_file, "caught-up")
    assert f"code {DUPLICATE_KEY}" in raised.value.message

    report = api.status(plan_file, state=mig.state_path, env=mig.env, live=False)
    assert report.run is not None
    assert {p.name: p.status for p in report.phases}["cdc"] == "failed"
    last = report.errors[0]  # the newest first
    assert (last.phase, last.error, last.retrying) == ("cdc", "TargetError", False)
    assert last.code == DUPLICATE_KEY and last.cause is not None and "Error" in last.cause
    assert last.message == raised.value.message
    # Exactly one record of it: nothing recorded after it (a cleanup's error) hides it.
    assert [e.error for e in report.errors if not e.retrying] == ["TargetError"]


def test_a_state_store_that_fails_while_recording_does_not_replace_the_error(
    mig: Migration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan_file = break_apply(mig, "fail-dup-disk")

    def disk_full(self: SQLiteStateStore, run_id: str, phase: str, status: str) -> None:
        if status == "failed":
            raise StateDiskFull(f"the disk holding state file {self.path} is full: (simulated)")
        return original(self, run_id, phase, status)  # type: ignore[arg-type]

    original = Store.set_phase
    monkeypatch.setattr(Store, "set_phase", disk_full)
    with pytest.raises(TargetError) as raised:
        run(mig, plan_file, "caught-up")
    assert f"code {DUPLICATE_KEY}" in raised.value.message
    assert any("not recorded in the state store" in n for n in getattr(raised.value, "__notes__", []))


def test_a_snapshot_stopped_by_a_value_keeps_the_driver_error_behind_it(mig: Migration) -> None:
    """The snapshot restates the error with the rows it was reading; the record keeps what the
    driver raised (a value it cannot represent: no server code, its class)."""
    mig.sql(
        "CREATE TABLE events (id integer PRIMARY KEY, at timestamptz NOT NULL)",
        "INSERT INTO events VALUES (1, now()), (2, 'infinity')",
    )
    plan_file = mig.plan("- {name: events, from: events, key: id}", name="fail-value")
    with pytest.raises(SourceError) as raised:
        api.run(plan_file, until="snapshot", state=mig.state_path, env=mig.env)
    assert "reading public.events" in raised.value.message

    report = api.status(plan_file, state=mig.state_path, env=mig.env, live=False)
    last = report.errors[0]
    assert (last.phase, last.error, last.message) == ("snapshot", "SourceError", raised.value.message)
    assert last.cause == "DataError", last
    assert {p.name: p.status for p in report.phases}["snapshot"] == "failed"
