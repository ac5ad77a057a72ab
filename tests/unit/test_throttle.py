"""Live throttling without a database: the pure decision, the Throttler on fake clocks and
collectors, the state store's controls, `migrator throttle`, status and metrics from events."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.adapters.postgres.load import LoadSample
from migrator.cli.main import cli
from migrator.engine.events import (
    Collector,
    ControlsChanged,
    EventBus,
    Notice,
    RunStarted,
    Throttled,
    ThrottleLifted,
    ThrottleProgress,
)
from migrator.engine.metrics import RunMetrics
from migrator.engine.throttle import (
    CHUNK_ROWS,
    MAX_LAG,
    PAUSED,
    ThrottleDecision,
    ThrottleMetrics,
    Throttler,
    ThrottleSettings,
    control_changes,
    decide,
)
from migrator.errors import ConnectionFailed, PlanError, StateError, TerminalError, TransientError
from migrator.operations.run import plan_digest
from migrator.plan import parse_plan
from migrator.state import SQLiteStateStore, schema
from tests.support.plans import OFFLINE_PLAN

NOW = 1_000_000.0
PLAN = OFFLINE_PLAN

# -- decide: the pure function -------------------------------------------------------------------


def _fresh(**kwargs: Any) -> ThrottleMetrics:
    return ThrottleMetrics(measured_at=NOW - 1.0, **kwargs)


def test_nothing_measured_and_nothing_set_is_not_throttled() -> None:
    assert decide(ThrottleMetrics(), ThrottleSettings(), NOW) == ThrottleDecision(False, ())


def test_operator_pause_throttles_whatever_else_holds() -> None:
    decision = decide(ThrottleMetrics(paused=True), ThrottleSettings(), NOW)
    assert decision.throttled
    assert decision.reasons == ("paused by the operator (`migrator throttle --resume` lifts it)",)


@pytest.mark.parametrize(
    ("file", "exists", "throttled"),
    [("/run/throttle", True, True), ("/run/throttle", False, False), (None, True, False)],
)
def test_throttle_file(file: str | None, exists: bool, throttled: bool) -> None:
    decision = decide(ThrottleMetrics(file_exists=exists), ThrottleSettings(file=file), NOW)
    assert decision.throttled is throttled
    if throttled:
        assert decision.reasons == ("throttle file /run/throttle exists",)


@pytest.mark.parametrize(
    ("sessions", "limit", "throttled"),
    [(11, 10, True), (10, 10, False), (3, 10, False), (500, None, False), (None, 10, False)],
)
def test_active_sessions_over_the_limit(sessions: int | None, limit: int | None, throttled: bool) -> None:
    decision = decide(_fresh(active_sessions=sessions), ThrottleSettings(max_active_sessions=limit), NOW)
    assert decision.throttled is throttled
    if throttled:
        assert decision.reasons == ("source load: 11 active sessions, over max_active_sessions 10",)


@pytest.mark.parametrize(
    ("lag", "limit", "throttled"),
    [(12.5, 10.0, True), (10.0, 10.0, False), (0.0, 10.0, False), (None, 10.0, False), (99.0, None, False)],
)
def test_replica_lag_over_the_limit(lag: float | None, limit: float | None, throttled: bool) -> None:
    decision = decide(_fresh(replica_lag_seconds=lag), ThrottleSettings(max_replica_lag=limit), NOW)
    assert decision.throttled is throttled
    if throttled:
        assert decision.reasons == ("replica lag 12.5 s, over max_replica_lag 10.0 s",)


@pytest.mark.parametrize(
    ("lag", "limit", "throttled"),
    [(7.0, 5.0, True), (5.0, 5.0, False), (None, 5.0, False), (700.0, None, False)],
)
def test_cdc_lag_over_max_lag(lag: float | None, limit: float | None, throttled: bool) -> None:
    decision = decide(ThrottleMetrics(cdc_lag_seconds=lag), ThrottleSettings(max_lag=limit), NOW)
    assert decision.throttled is throttled
    if throttled:
        assert decision.reasons == ("CDC lag 7.0 s, over max_lag 5.0 s",)


def test_stale_or_undated_load_is_unknown_and_no_reason() -> None:
    settings = ThrottleSettings(max_active_sessions=1, max_replica_lag=1.0, stale_after=3.0)
    heavy = {"active_sessions": 50, "replica_lag_seconds": 60.0}
    assert decide(ThrottleMetrics(measured_at=NOW - 3.0, **heavy), settings, NOW).throttled
    assert not decide(ThrottleMetrics(measured_at=NOW - 3.1, **heavy), settings, NOW).throttled
    assert not decide(ThrottleMetrics(measured_at=None, **heavy), settings, NOW).throttled
    # Staleness concerns load only: a pause or the file still hold.
    assert decide(ThrottleMetrics(measured_at=NOW - 60, paused=True, **heavy), settings, NOW).throttled


def test_every_reason_is_listed_in_a_fixed_order() -> None:
    metrics = ThrottleMetrics(
        paused=True,
        file_exists=True,
        active_sessions=20,
        replica_lag_seconds=200.0,
        cdc_lag_seconds=9.0,
        measured_at=NOW,
    )
    settings = ThrottleSettings(file="f", max_active_sessions=5, max_replica_lag=100.0, max_lag=2.0)
    reasons = decide(metrics, settings, NOW).reasons
    assert [r.split()[0] for r in reasons] == ["paused", "throttle", "source", "replica", "CDC"]
    assert "200 s" in reasons[3]  # long durations without decimals


# -- the Throttler ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeLoad:
    def __init__(self) -> None:
        self.sample_value = LoadSample(0, 0, None)
        self.calls: list[tuple[bool, bool]] = []
        self.fail = False
        self.closed = False

    def sample(self, *, sessions: bool, replicas: bool) -> LoadSample:
        self.calls.append((sessions, replicas))
        if self.fail:
            raise ConnectionFailed("postgresql://app@db/shop", "gone")
        return self.sample_value

    def close(self) -> None:
        self.closed = True


class Rig:
    """A Throttler wired to a fake clock, controls, file system and load, events collected."""

    def __init__(self, *, interval: float = 1.0, **settings: Any) -> None:
        self.clock = Clock()
        self.controls: dict[str, Any] = {}
        self.reads = 0
        self.files: set[str] = set()
        self.load = FakeLoad()
        self.collector = Collector()
        self.controls_error: Exception | None = None
        options: dict[str, Any] = {"file": None, "max_active_sessions": None, "max_replica_lag": None}
        options.update(settings)
        self.throttler = Throttler(
            **options,
            check_interval=interval,
            max_lag=5.0,
            chunk_rows=10_000,
            events=EventBus(self.collector),
            controls=self._controls,
            load=self.load,
            clock=self.clock,
            wall=lambda: NOW + self.clock.t,
            exists=lambda path: path in self.files,
        )

    def _controls(self) -> Mapping[str, Any]:
        self.reads += 1
        if self.controls_error is not None:
            raise self.controls_error
        return dict(self.controls)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def kinds(self) -> list[str]:
        return [e.kind for e in self.collector.events]


def test_poll_measures_at_most_once_per_interval() -> None:
    rig = Rig()
    assert not rig.throttler.poll("cdc").throttled
    rig.controls[PAUSED] = True
    rig.advance(0.5)
    assert not rig.throttler.poll("cdc").throttled  # cached: the pause is not seen yet
    assert rig.reads == 1
    rig.advance(0.5)
    assert rig.throttler.poll("cdc").throttled
    assert rig.reads == 2


def test_pause_then_resume_emits_events_and_counts_the_time() -> None:
    rig = Rig()
    rig.controls[PAUSED] = True
    assert rig.throttler.poll("cdc").throttled
    started = rig.collector.of(Throttled)
    assert len(started) == 1 and started[0].phase == "cdc" and started[0].since == NOW + 100.0
    assert "paused" in started[0].reasons[0]
    for _ in range(3):
        rig.advance(1.0)
        assert rig.throttler.poll("cdc").throttled
    assert len(rig.collector.of(Throttled)) == 1  # same reasons: not announced again
    progress = rig.collector.of(ThrottleProgress)
    assert [p.seconds for p in progress] == [0.0, 1.0, 2.0, 3.0]
    assert rig.throttler.total_seconds == pytest.approx(3.0)

    del rig.controls[PAUSED]
    rig.advance(1.0)
    assert not rig.throttler.poll("cdc").throttled
    (lifted,) = rig.collector.of(ThrottleLifted)
    assert lifted.phase == "cdc" and lifted.seconds == 4.0 and lifted.total_seconds == 4.0
    assert rig.throttler.total_seconds == pytest.approx(4.0)

    # A second hold adds to the total.
    rig.files.add("x")
    rig.controls[PAUSED] = True
    rig.advance(1.0)
    rig.throttler.poll("cdc")
    rig.advance(2.5)
    rig.controls.clear()
    rig.throttler.poll("cdc")
    assert rig.collector.of(ThrottleLifted)[-1].total_seconds == 6.5


def test_changed_reasons_are_announced_again_without_restarting_the_hold() -> None:
    rig = Rig(file="/tmp/hold")
    rig.files.add("/tmp/hold")
    rig.throttler.poll("snapshot")
    rig.controls[PAUSED] = True
    rig.advance(1.0)
    rig.throttler.poll("snapshot")
    first, second = rig.collector.of(Throttled)
    assert first.reasons == ["throttle file /tmp/hold exists"]
    assert len(second.reasons) == 2 and second.since == first.since
    assert rig.collector.of(ThrottleLifted) == []


def test_release_closes_the_hold_and_a_new_phase_measures_anew() -> None:
    rig = Rig()
    rig.controls[PAUSED] = True
    rig.throttler.poll("snapshot")
    rig.advance(2.0)
    rig.throttler.release("snapshot")
    (lifted,) = rig.collector.of(ThrottleLifted)
    assert lifted.phase == "snapshot" and lifted.seconds == 2.0
    assert not rig.throttler.throttled
    reads = rig.reads
    assert rig.throttler.poll("cdc").throttled  # measured at once for the next phase
    assert rig.reads == reads + 1
    assert rig.collector.of(Throttled)[-1].phase == "cdc"


def test_close_lifts_a_hold_and_closes_the_load_connection() -> None:
    rig = Rig(max_active_sessions=3)
    rig.controls[PAUSED] = True
    rig.throttler.poll("cdc")
    rig.advance(1.5)
    rig.throttler.close()
    assert rig.collector.of(ThrottleLifted)[-1].seconds == 1.5
    assert rig.load.closed


def test_overrides_for_max_lag_and_chunk_rows() -> None:
    rig = Rig()
    rig.throttler.poll("cdc")
    assert rig.throttler.max_lag == 5.0 and rig.throttler.chunk_rows == 10_000
    rig.controls.update({MAX_LAG: 2.0, CHUNK_ROWS: 250})
    rig.advance(1.0)
    rig.throttler.poll("cdc")
    assert rig.throttler.max_lag == 2.0 and rig.throttler.chunk_rows == 250
    assert rig.throttler.settings.max_lag == 2.0
    # The lag condition uses the override (from copy work beside CDC).
    rig.advance(1.0)
    decision = rig.throttler.poll("snapshot", lag_seconds=3.0)
    assert decision.reasons == ("CDC lag 3.0 s, over max_lag 2.0 s",)


def test_load_is_sampled_only_for_configured_conditions() -> None:
    rig = Rig()
    rig.throttler.poll("cdc")
    assert rig.load.calls == []
    rig = Rig(max_replica_lag=10.0)
    rig.throttler.poll("cdc")
    assert rig.load.calls == [(False, True)]
    rig = Rig(max_active_sessions=4, max_replica_lag=10.0)
    rig.load.sample_value = LoadSample(9, None, None)
    assert rig.throttler.poll("cdc").reasons == (
        "source load: 9 active sessions, over max_active_sessions 4",
    )
    assert rig.load.calls == [(True, True)]


def test_unreadable_load_goes_stale_and_stops_throttling_with_one_notice() -> None:
    rig = Rig(max_active_sessions=4)
    rig.load.sample_value = LoadSample(9, None, None)
    assert rig.throttler.poll("cdc").throttled
    rig.load.fail = True
    rig.advance(1.0)
    assert rig.throttler.poll("cdc").throttled  # the last sample is still fresh
    rig.advance(1.0)
    rig.throttler.poll("cdc")
    rig.advance(1.5)  # 3.5 s after the last good sample, over 3 check intervals
    assert not rig.throttler.poll("cdc").throttled
    notices = rig.collector.of(Notice)
    assert len(notices) == 1 and "cannot read the source's load" in notices[0].message
    rig.load.fail = False
    rig.advance(1.0)
    assert rig.throttler.poll("cdc").throttled  # measured again


def test_unreadable_controls_keep_the_last_ones() -> None:
    rig = Rig()
    rig.controls[PAUSED] = True
    assert rig.throttler.poll("cdc").throttled
    rig.controls_error = TransientError("state file is locked")
    rig.controls.clear()
    rig.advance(1.0)
    assert rig.throttler.poll("cdc").throttled
    assert any("cannot read throttle controls" in n.message for n in rig.collector.of(Notice))


def test_wait_blocks_while_throttled_ticks_and_returns_on_resume() -> None:
    controls: dict[str, Any] = {PAUSED: True}
    ticks: list[float] = []
    throttler = Throttler(
        file=None,
        max_active_sessions=None,
        max_replica_lag=None,
        check_interval=0.02,
        max_lag=5.0,
        chunk_rows=100,
        events=EventBus(),
        controls=lambda: dict(controls),
    )
    stop = threading.Event()
    threading.Timer(0.3, controls.clear).start()
    started = time.monotonic()
    held = throttler.wait("cdc", stop, tick=lambda: ticks.append(time.monotonic()))
    assert time.monotonic() - started >= 0.25  # held until resumed (it returned: not forever)
    assert held >= 0.25 and len(ticks) >= 5
    assert throttler.wait("cdc", stop) == 0.0  # not throttled: returns at once


def test_wait_returns_when_stopped() -> None:
    throttler = Throttler(
        file=None,
        max_active_sessions=None,
        max_replica_lag=None,
        check_interval=0.05,
        max_lag=5.0,
        chunk_rows=100,
        events=EventBus(),
        controls=lambda: {PAUSED: True},
    )
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    throttler.wait("snapshot", stop)  # returns once stopped (a hang would fail the test run)
    assert stop.is_set()
    assert throttler.throttled  # still held: stopping is not resuming


# -- controls: validation and the state store ---------------------------------------------------


def test_control_changes() -> None:
    assert control_changes(pause=True) == {PAUSED: True}
    assert control_changes(pause=False) == {PAUSED: None}
    assert control_changes(chunk_rows=500, max_lag=2.0) == {CHUNK_ROWS: 500, MAX_LAG: 2.0}
    assert control_changes(reset=True, max_lag=1.5) == {PAUSED: None, CHUNK_ROWS: None, MAX_LAG: 1.5}
    with pytest.raises(TerminalError, match="nothing to change"):
        control_changes()
    with pytest.raises(TerminalError, match="chunk-rows"):
        control_changes(chunk_rows=0)
    with pytest.raises(TerminalError, match="max-lag"):
        control_changes(max_lag=0.0)


def test_store_controls_set_replace_and_remove(tmp_path: Path) -> None:
    with SQLiteStateStore(tmp_path / "s.db") as store:
        run = store.begin_run("shop", "d")
        other = store.begin_run("other", "d")
        assert store.controls(run.id) == []
        records = store.set_controls(run.id, {PAUSED: True, MAX_LAG: 2.0})
        assert {r.name: r.value for r in records} == {PAUSED: True, MAX_LAG: 2.0}
        store.set_controls(run.id, {PAUSED: None, CHUNK_ROWS: 50})
        assert {c.name: c.value for c in store.controls(run.id)} == {CHUNK_ROWS: 50, MAX_LAG: 2.0}
        assert store.controls(other.id) == []
        with pytest.raises(StateError, match="no run"):
            store.set_controls("nope", {PAUSED: True})
        with pytest.raises(StateError, match="secret"):
            store.set_controls(run.id, {"x": {"password": "pw"}})


def test_a_version_1_state_file_gains_the_controls_table_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        schema.upgrade(conn, str(path), schema.STEPS[:1])  # a file written before controls existed
        conn.execute(
            "INSERT INTO runs (id, plan_name, plan_digest, status, started_at) "
            "VALUES ('r1', 'shop', 'd', 'active', '2026-01-01T00:00:00+00:00')"
        )
        assert schema.user_version(conn) == 1
    finally:
        conn.close()
    with SQLiteStateStore(path) as store:
        assert store.active_run("shop") is not None
        store.set_controls("r1", {PAUSED: True})
        assert [c.value for c in store.controls("r1")] == [True]
    conn = sqlite3.connect(path)
    try:
        assert schema.user_version(conn) == schema.SCHEMA_VERSION >= 2
    finally:
        conn.close()


# -- the plan ---------------------------------------------------------------------------------------


def test_plan_throttle_section_defaults_durations_and_strictness() -> None:
    plan = parse_plan(PLAN, file="shop.yaml")
    throttle = plan.phases.throttle
    assert (throttle.file, throttle.max_active_sessions, throttle.max_replica_lag) == (None, None, None)
    assert throttle.check_interval == 1.0
    text = (
        PLAN
        + "phases:\n  throttle: {file: /tmp/t, max_active_sessions: 40, max_replica_lag: 10s, check_interval: 500ms}\n"
    )
    throttle = parse_plan(text, file="shop.yaml").phases.throttle
    assert (throttle.file, throttle.max_active_sessions, throttle.max_replica_lag) == ("/tmp/t", 40, 10.0)
    assert throttle.check_interval == 0.5
    with pytest.raises(PlanError, match="unknown key 'max_load'"):
        parse_plan(PLAN + "phases:\n  throttle: {max_load: 3}\n", file="shop.yaml")
    with pytest.raises(PlanError, match="max_active_sessions"):
        parse_plan(PLAN + "phases:\n  throttle: {max_active_sessions: 0}\n", file="shop.yaml")


def test_throttle_settings_do_not_change_the_plan_digest() -> None:
    base = parse_plan(PLAN, file="shop.yaml")
    tuned = parse_plan(
        PLAN + "phases:\n  throttle: {file: /tmp/t, max_active_sessions: 5}\n", file="shop.yaml"
    )
    assert plan_digest(base) == plan_digest(tuned)
    other = parse_plan(PLAN.replace("key: id}", "key: id, exclude: [email]}"), file="shop.yaml")
    assert plan_digest(base) != plan_digest(other)  # the mapping


def test_json_schema_has_the_throttle_section() -> None:
    schema_ = api.schema()
    throttle = schema_["$defs"]["ThrottleSettings"]
    assert throttle["additionalProperties"] is False
    assert set(throttle["properties"]) == {"file", "max_active_sessions", "max_replica_lag", "check_interval"}


# -- `migrator throttle`, status and metrics ------------------------------------------------------


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(PLAN + "phases:\n  throttle: {file: /tmp/shop.throttle}\n")
    return path


def test_throttle_cli_writes_controls_and_an_event(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    with SQLiteStateStore(state) as store:
        run = store.begin_run("shop", "d")
    runner = CliRunner()
    result = runner.invoke(cli, ["throttle", str(plan), "--state", str(state), "--pause", "--max-lag", "2s"])
    assert result.exit_code == 0, result.output
    assert f"run {run.id}: paused; overrides: max_lag=2" in result.output
    result = runner.invoke(
        cli, ["throttle", str(plan), "--state", str(state), "--resume", "--chunk-rows", "300", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data == {
        "run_id": run.id,
        "changes": {PAUSED: None, CHUNK_ROWS: 300},
        "controls": {CHUNK_ROWS: 300, MAX_LAG: 2.0},
    }
    with SQLiteStateStore(state) as store:
        logged = [e.payload for e in store.events(run.id) if e.kind == ControlsChanged.kind]
    assert logged == [
        {"changes": {PAUSED: True, MAX_LAG: 2.0}, "controls": {PAUSED: True, MAX_LAG: 2.0}},
        {"changes": {PAUSED: None, CHUNK_ROWS: 300}, "controls": {CHUNK_ROWS: 300, MAX_LAG: 2.0}},
    ]


def test_throttle_cli_usage_and_no_run(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["throttle", str(plan), "--state", str(state)]).exit_code == 2
    assert runner.invoke(cli, ["throttle", str(plan), "--max-lag", "soon"]).exit_code == 2
    assert runner.invoke(cli, ["throttle", str(plan), "--chunk-rows", "0"]).exit_code == 2
    result = runner.invoke(cli, ["throttle", str(plan), "--state", str(state), "--pause"])
    assert result.exit_code == 1 and "no active run" in result.output
    assert not state.exists()  # throttling never creates a state file
    with SQLiteStateStore(state) as store:
        store.finish_run(store.begin_run("shop", "d").id, "succeeded")
    assert runner.invoke(cli, ["throttle", str(plan), "--state", str(state), "--pause"]).exit_code == 1
    assert "throttle" in runner.invoke(cli, ["--help"]).output


def test_status_reports_the_hold_its_reasons_and_the_controls(plan: Path, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    since = time.time() - 10.0
    with SQLiteStateStore(state) as store:
        run = store.begin_run("shop", "d")
        store.append_event(run.id, RunStarted.kind, {"run_id": run.id, "plan": "shop", "resumed": False})
        store.append_event(
            run.id, Throttled.kind, {"phase": "snapshot", "reasons": ["a"], "since": since - 100}
        )
        store.append_event(
            run.id, ThrottleLifted.kind, {"phase": "snapshot", "seconds": 4.5, "total_seconds": 4.5}
        )
        store.append_event(
            run.id, Throttled.kind, {"phase": "cdc", "reasons": ["paused by x"], "since": since}
        )
        store.set_controls(run.id, {PAUSED: True, MAX_LAG: 2.0})
    report = api.status(plan, state=state, live=False)
    open_for = time.time() - since  # however slowly the machine got here
    throttle = report.throttle
    assert throttle is not None
    assert throttle.throttled and throttle.phase == "cdc" and throttle.reasons == ["paused by x"]
    assert 14.0 <= throttle.throttled_seconds <= 4.5 + open_for + 0.01  # 4.5 closed + the open hold
    assert throttle.paused and throttle.max_lag_seconds == 2.0 and throttle.chunk_rows is None
    assert throttle.file == "/tmp/shop.throttle" and throttle.controls_updated_at is not None
    data = json.loads(CliRunner().invoke(cli, ["status", str(plan), "--state", str(state), "--json"]).output)
    assert data["throttle"]["throttled"] is True and data["throttle"]["paused"] is True
    text = CliRunner().invoke(cli, ["status", str(plan), "--state", str(state)]).output
    assert "throttled (cdc)" in text and "paused by x" in text and "max_lag 2.0 s" in text

    # Lifted: not throttled, the time closed; a run that ended while held holds nothing.
    with SQLiteStateStore(state) as store:
        store.append_event(
            run.id, ThrottleLifted.kind, {"phase": "cdc", "seconds": 10.0, "total_seconds": 14.5}
        )
        store.append_event(run.id, Throttled.kind, {"phase": "cdc", "reasons": ["y"], "since": since})
        store.append_event(
            run.id, "run.finished", {"run_id": run.id, "status": "active", "stopped_after": "x"}
        )
    throttle = api.status(plan, state=state, live=False).throttle
    assert throttle is not None and not throttle.throttled and throttle.reasons == []
    assert throttle.throttled_seconds == 14.5


def test_metrics_count_throttled_time_as_it_goes() -> None:
    metrics = RunMetrics()
    assert metrics.value("migrator_throttled_seconds_total") == 0.0
    metrics.emit(Throttled("cdc", ["paused"], NOW))
    assert metrics.value("migrator_throttled") == 1.0
    metrics.emit(ThrottleProgress("cdc", ["paused"], 1.0, 1.0))
    metrics.emit(ThrottleProgress("cdc", ["paused"], 2.5, 2.5))
    assert metrics.value("migrator_throttled_seconds_total") == 2.5
    metrics.emit(ThrottleLifted("cdc", 3.0, 3.0))
    assert metrics.value("migrator_throttled_seconds_total") == 3.0
    assert metrics.value("migrator_throttled") == 0.0


def test_release_in_a_finally_never_hides_the_phase_error() -> None:
    def failing_sink(event: Any) -> None:
        if isinstance(event, ThrottleLifted):
            raise StateError("state file is gone")

    load = FakeLoad()
    throttler = Throttler(
        file=None,
        max_active_sessions=None,
        max_replica_lag=None,
        check_interval=1.0,
        max_lag=5.0,
        chunk_rows=100,
        events=EventBus(failing_sink),
        controls=lambda: {PAUSED: True},
        load=load,
    )
    assert throttler.poll("cdc").throttled
    throttler.release("cdc")  # no StateError
    assert not throttler.throttled
    throttler.poll("cdc")
    throttler.close()
    assert load.closed and not throttler.throttled
