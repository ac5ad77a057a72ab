"""The sessions a killed process left on a MongoDB target, ended by the next one
(docs/architecture.md, "Transactions a killed process left open"): what `killSessions` is sent,
what is forgotten, and how its errors are classified (by code) and reported. The server is a
stand-in that answers as MongoDB does; the path through a real server is
tests/integration/test_cdc_abandoned_transaction.py."""

from __future__ import annotations

from typing import Any

import pytest
from bson.binary import Binary
from pymongo import errors as mongo

from migrator.adapters.base import Abandoned
from migrator.adapters.mongodb.sessions import SessionLog
from migrator.engine.events import Collector, EventBus, Notice
from migrator.errors import TargetError, TransientError
from migrator.operations.abandoned import end_abandoned

IDS = [Binary(bytes([1]) * 16, 4), Binary(bytes([2]) * 16, 4)]


class _Result:
    def __init__(self, matched: int) -> None:
        self.matched_count = matched


class _Records:
    """`_migrator` holding one ownership record (or none)."""

    def __init__(self, record: dict[str, Any] | None) -> None:
        self.record = record

    def find_one(self, filter: dict[str, Any], projection: Any = None) -> dict[str, Any] | None:
        if self.record is None or any(self.record.get(k) != v for k, v in filter.items()):
            return None
        return self.record

    def update_one(self, filter: dict[str, Any], update: dict[str, Any]) -> _Result:
        found = self.find_one(filter)
        if found is None:
            return _Result(0)
        for name, value in update.get("$addToSet", {}).items():
            if value not in found.setdefault(name, []):
                found[name].append(value)
        for name, values in update.get("$pullAll", {}).items():
            found[name] = [v for v in found.get(name, []) if v not in values]
        return _Result(1)


class _Admin:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.commands: list[dict[str, Any]] = []

    def command(self, command: dict[str, Any]) -> dict[str, Any]:
        self.commands.append(command)
        if self.error is not None:
            raise self.error
        return {"ok": 1.0}


class _Client:
    def __init__(self, admin: _Admin) -> None:
        self.admin = admin


class _Database:
    def __init__(self, records: _Records, admin: _Admin) -> None:
        self.records = records
        self.client = _Client(admin)

    def get_collection(self, name: str, **options: Any) -> _Records:
        assert name == "_migrator"
        return self.records


def _log(record: dict[str, Any] | None, error: Exception | None = None) -> tuple[SessionLog, _Database]:
    db = _Database(_Records(record), _Admin(error))
    return SessionLog(db, "p", "run-1", "target", ()), db  # type: ignore[arg-type]


def _owner(sessions: list[Any] | None = None, run_id: str = "run-1") -> dict[str, Any]:
    return {
        "_id": "owner:p",
        "run_id": run_id,
        **({"sessions": list(sessions)} if sessions is not None else {}),
    }


def _failure(code: int, *labels: str) -> mongo.OperationFailure:
    details: dict[str, Any] = {"ok": 0, "errmsg": "some server text", "code": code}
    if labels:
        details["errorLabels"] = list(labels)
    return mongo.OperationFailure("some server text", code, details)


def test_the_recorded_sessions_are_killed_and_forgotten() -> None:
    log, db = _log(_owner(IDS))
    assert log.end_recorded() == Abandoned(ended=2)
    assert db.client.admin.commands == [{"killSessions": [{"id": IDS[0]}, {"id": IDS[1]}]}]
    assert db.records.record is not None and db.records.record["sessions"] == []


@pytest.mark.parametrize("record", [None, _owner(), _owner([]), _owner(IDS, run_id="another run")])
def test_nothing_recorded_for_the_run_sends_nothing(record: dict[str, Any] | None) -> None:
    log, db = _log(record)
    assert log.end_recorded() == Abandoned()
    assert db.client.admin.commands == []


@pytest.mark.parametrize("code", [13, 59, 115, 8000])
def test_a_server_that_refuses_the_command_leaves_them_to_it_and_says_so(code: int) -> None:
    log, db = _log(_owner(IDS), _failure(code))
    found = log.end_recorded()
    assert found.ended == 0 and f"code {code}" in found.refused
    assert "transactionLifetimeLimitSeconds" in found.refused
    assert db.records.record is not None and db.records.record["sessions"] == []  # forgotten all the same


def test_a_transient_error_is_raised_as_one_and_the_ids_are_kept() -> None:
    log, db = _log(_owner(IDS), _failure(91))  # ShutdownInProgress
    with pytest.raises(TransientError):
        log.end_recorded()
    assert db.records.record is not None and db.records.record["sessions"] == IDS


def test_another_error_stops() -> None:
    log, _ = _log(_owner(IDS), _failure(2))  # BadValue
    with pytest.raises(TargetError) as raised:
        log.end_recorded()
    assert not isinstance(raised.value, TransientError)


def test_a_session_is_recorded_once_and_only_in_the_runs_own_record() -> None:
    log, db = _log(_owner())
    log.record({"id": IDS[0]})
    log.record({"id": IDS[0]})
    assert db.records.record is not None and db.records.record["sessions"] == [IDS[0]]
    # Never ended by the process that recorded it; the earlier process's one is.
    db.records.record["sessions"].append(IDS[1])
    assert log.end_recorded() == Abandoned(ended=1)
    assert db.client.admin.commands == [{"killSessions": [{"id": IDS[1]}]}]
    assert db.records.record["sessions"] == [IDS[0]]
    other, _ = _log(_owner(run_id="another run"))
    with pytest.raises(TargetError):
        other.record({"id": IDS[0]})


class _Target:
    def __init__(self, *outcomes: Abandoned | Exception) -> None:
        self.outcomes = list(outcomes)

    def end_abandoned(self, plan_name: str, run_id: str) -> Abandoned:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_ended_sessions_are_a_notice_and_a_transient_error_is_retried() -> None:
    collector = Collector()
    target = _Target(TransientError("target: not now (code 91)"), Abandoned(ended=1))
    assert end_abandoned(target, "p", "run-1", EventBus(collector)) == 1  # type: ignore[arg-type]
    notices = collector.of(Notice)
    assert [n.level for n in notices] == ["warn", "info"]  # the retry, then what was ended
    assert notices[1].message.startswith("ended 1 target session(s)")


def test_a_refusal_is_a_warning_and_the_run_goes_on() -> None:
    collector = Collector()
    refused = Abandoned(refused="target refused killSessions (Unauthorized, code 13): ...")
    assert end_abandoned(_Target(refused), "p", "run-1", EventBus(collector)) == 0  # type: ignore[arg-type]
    assert [(n.level, n.message) for n in collector.of(Notice)] == [("warn", refused.refused)]


def test_nothing_to_end_says_nothing() -> None:
    collector = Collector()
    assert end_abandoned(_Target(Abandoned()), "p", "run-1", EventBus(collector)) == 0  # type: ignore[arg-type]
    assert collector.events == []


def test_sessions_ended_cleanly_leave_the_record_and_a_crash_leaves_them() -> None:
    log, db = _log(_owner([IDS[0]]))  # IDS[0]: an earlier process's, left by a crash
    log.record({"id": IDS[1]})
    assert db.records.record is not None and db.records.record["sessions"] == IDS
    log.forget_own()  # this process closed its sessions: only the crashed one's stays
    assert db.records.record["sessions"] == [IDS[0]]
    nxt = SessionLog(db, "p", "run-1", "target", ())  # type: ignore[arg-type]  # the next process
    assert nxt.end_recorded() == Abandoned(ended=1)
    assert db.client.admin.commands == [{"killSessions": [{"id": IDS[0]}]}]
