"""The executor is the one place that decides "do it or record it" (DESIGN.md: dry-run lives in one
place); and the dry-run's collision check tells _ids apart as the target's _id index does."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable

import pytest
from bson.int64 import Int64

from migrator.adapters.documents import id_identity
from migrator.engine.executor import Action, Executor

READ = Action("preflight", "inspect", "none")
WRITES = [Action("snapshot", f"write the {side}", side) for side in ("source", "target", "state", "external")]


def test_recording_runs_reads_and_only_records_writes() -> None:
    executor = Executor.recording()
    done: list[str] = []

    def reading() -> int:
        done.append("read")
        return 42

    def writer(action: Action) -> Callable[[], None]:
        return lambda: done.append(action.writes)

    assert executor.read(READ, reading) == 42
    for action in WRITES:
        assert executor.perform(action, writer(action)) is None
    executor.perform(Action("cdc", "described only", "target"))
    assert done == ["read"]  # no write effect ran
    assert executor.performed() == [READ]
    assert executor.recorded() == [*WRITES, Action("cdc", "described only", "target")]
    assert executor.recorded("cdc") == [Action("cdc", "described only", "target")]
    assert [e.performed for e in executor.journal] == [True, False, False, False, False, False]


def test_live_runs_every_effect_in_order() -> None:
    executor = Executor.live()
    done: list[str] = []

    def writer(action: Action) -> Callable[[], None]:
        return lambda: done.append(action.writes)

    for action in WRITES:
        executor.perform(action, writer(action))
    assert done == ["source", "target", "state", "external"]
    assert executor.performed() == WRITES and executor.recorded() == []


def test_a_read_that_writes_is_refused_in_either_mode() -> None:
    ran: list[str] = []
    for executor in (Executor.live(), Executor.recording()):
        with pytest.raises(ValueError, match="not a read"):
            executor.read(WRITES[0], lambda: ran.append("ran"))
        assert executor.journal == []
    assert ran == []


def test_an_action_names_what_it_writes() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        Action("snapshot", "typo", "targets")


def test_id_identity_follows_the_target_index() -> None:
    utc = datetime.UTC
    a = datetime.datetime(2024, 5, 1, 10, 0, 0, 123001, tzinfo=utc)
    b = datetime.datetime(2024, 5, 1, 10, 0, 0, 123999, tzinfo=utc)
    c = datetime.datetime(2024, 5, 1, 10, 0, 0, 124000, tzinfo=utc)
    assert id_identity(a) == id_identity(b)  # BSON dates hold milliseconds
    assert id_identity(a) != id_identity(c)
    assert id_identity(1) == id_identity(Int64(1)) == id_identity(decimal.Decimal("1.00"))  # by value
    assert id_identity(1) != id_identity("1") and id_identity(1) != id_identity(2)
    assert id_identity({"a": 1, "b": a}) == id_identity({"a": Int64(1), "b": b})
    assert id_identity({"a": 1, "b": 2}) != id_identity({"b": 2, "a": 1})  # field order counts


def test_steps_are_listed_and_performed_as_the_same_objects() -> None:
    from migrator.engine.executor import Step, actions

    done: list[str] = []
    steps = [
        Step.of("snapshot", "inspect", "read the tables", "none", lambda: done.append("inspect") or 1),
        Step.of("snapshot", "create-slot", "create slot s", "source", lambda: done.append("slot") or 2),
        Step.of("snapshot", "described", "said, no effect", "state"),
    ]
    assert [s.id for s in steps] == ["snapshot.inspect", "snapshot.create-slot", "snapshot.described"]
    assert actions(steps) == [
        Action("snapshot", "read the tables", "none"),
        Action("snapshot", "create slot s", "source"),
        Action("snapshot", "said, no effect", "state"),
    ]
    recording = Executor.recording()
    assert recording.perform_steps(steps) == [1, None, None]
    assert done == ["inspect"]
    assert recording.recorded() == actions(steps)[1:]
    live = Executor.live()
    assert live.perform_steps(steps) == [1, 2, None]
    assert done == ["inspect", "inspect", "slot"]


def test_the_journal_names_the_steps_performed() -> None:
    from migrator.engine.executor import Step

    steps = [
        Step.of("cdc", "stream", "follow", "none", lambda: 1),
        Step.of("cdc", "apply", "said, done by the loop", "target"),
    ]
    live = Executor.live()
    live.perform(Action("verify", "a plain action", "none"), lambda: 0)
    live.perform_steps(steps)
    assert live.steps() == ["cdc.stream", "cdc.apply"]
    assert live.steps("verify") == []
    assert [e.performed for e in live.journal] == [True, True, False]
