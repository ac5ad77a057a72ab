"""`migrator throttle` and the plan's throttle file take effect on a running `migrator run`
(real servers): a paused CDC applies nothing while the source changes, keeps its replication
connection, and catches up once resumed; the snapshot waits for a throttle file to go."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrator import api
from migrator.cli.main import cli
from migrator.engine.events import (
    ChunkFinished,
    ErrorRaised,
    Throttled,
    ThrottleLifted,
)
from migrator.operations.status import StatusReport
from tests.support.docs import Migration
from tests.support.runs import Follower, wait_for
from tests.support.servers import PgServer

ROWS = 60


ITEMS = (
    "CREATE TABLE items (id integer PRIMARY KEY, v text NOT NULL)",
    f"INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g",
)


def _make(mig: Migration) -> Migration:
    mig.sql(*ITEMS)
    return mig


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return ITEMS


def _plan(mig: Migration, flag: Path, *, chunk_rows: int = 100) -> Path:
    return mig.plan(
        "- {name: items, from: items, key: id}",
        name="throttleplan",
        phases=f"snapshot: {{parallel: 1, chunk_rows: {chunk_rows}}}\n"
        "cdc: {max_lag: 1s, heartbeat_interval: 1s}\n"
        f"throttle: {{file: '{flag}', check_interval: 200ms}}",
    )


def _throttle(mig: Migration, plan: Path, *args: str) -> None:
    result = CliRunner().invoke(
        cli, ["throttle", str(plan), "--state", str(mig.state_path), *args], env=mig.env
    )
    assert result.exit_code == 0, result.output


def _status(mig: Migration, plan: Path, live: bool = False) -> StatusReport:
    return api.status(plan, state=mig.state_path, env=mig.env, live=live)


def _values(mig: Migration) -> dict[int, str]:
    return {int(d["_id"]): str(d["v"]) for d in mig.client[mig.database]["items"].find()}


def test_pause_holds_cdc_while_the_source_changes_and_resume_catches_up(
    mig: Migration, tmp_path: Path
) -> None:
    plan = _plan(mig, tmp_path / "no-such.flag")
    mig.run(plan)  # the snapshot
    assert len(_values(mig)) == ROWS
    follower = Follower(mig, plan, "stopped")
    try:
        mig.sql("INSERT INTO items VALUES (1000, 'before')")
        wait_for(lambda: _values(mig).get(1000) == "before", "CDC to apply a change", 60)

        _throttle(mig, plan, "--pause")

        def held() -> bool:
            throttle = _status(mig, plan).throttle
            return throttle is not None and throttle.throttled and throttle.phase == "cdc"

        wait_for(held, "the run to report itself throttled", 60)
        report = _status(mig, plan, live=True)
        assert report.throttle is not None and report.throttle.paused
        assert any("paused by the operator" in r for r in report.throttle.reasons)
        slot_pid = mig.rows(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'migrator_throttleplan'"
        )

        mig.sql(
            "INSERT INTO items SELECT g, 'during' FROM generate_series(2000, 2009) g",
            "UPDATE items SET v = 'changed' WHERE id = 1",
            "DELETE FROM items WHERE id = 2",
        )
        before = _values(mig)
        time.sleep(3.0)  # many check intervals, batch ages and heartbeats
        during = _values(mig)
        assert during == before  # nothing applied while paused
        assert 2000 not in during and during[1] == "v1" and 2 in during
        # The stream kept its connection (and the same walsender) while held.
        assert follower.alive
        assert (
            mig.rows("SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'migrator_throttleplan'")
            == slot_pid
            != [(None,)]
        )

        _throttle(mig, plan, "--resume")

        def caught_up() -> bool:
            now = _values(mig)
            return (
                all(now.get(i) == "during" for i in range(2000, 2010))
                and now[1] == "changed"
                and 2 not in now
            )

        wait_for(caught_up, "CDC to apply what the source wrote while paused", 60)
        throttle = _status(mig, plan).throttle
        assert throttle is not None and not throttle.throttled and not throttle.paused
        assert throttle.throttled_seconds >= 3.0
    finally:
        follower.finish()
    started = [e for e in follower.events.of(Throttled) if e.phase == "cdc"]
    lifted = [e for e in follower.events.of(ThrottleLifted) if e.phase == "cdc"]
    assert len(started) == 1 and len(lifted) == 1 and lifted[0].seconds >= 3.0
    assert not [e for e in follower.events.of(ErrorRaised) if e.phase == "cdc"]


def test_max_lag_override_reaches_the_running_cdc(mig: Migration, tmp_path: Path) -> None:
    """--max-lag is read by a running CDC (and reported by status) without a restart."""
    plan = _plan(mig, tmp_path / "no-such.flag")
    mig.run(plan)
    _throttle_before = _status(mig, plan).throttle
    assert _throttle_before is not None and _throttle_before.max_lag_seconds is None
    follower = Follower(mig, plan, "stopped")
    try:
        mig.sql("INSERT INTO items VALUES (3000, 'x')")
        wait_for(lambda: 3000 in _values(mig), "CDC to run", 60)
        _throttle(mig, plan, "--max-lag", "750ms", "--chunk-rows", "10")
        throttle = _status(mig, plan).throttle
        assert throttle is not None and throttle.max_lag_seconds == 0.75 and throttle.chunk_rows == 10
    finally:
        follower.finish()
    # The overrides belong to the run: a later `migrator run` resumes with them (and catches up
    # under the overridden max_lag).
    outcome = api.run(plan, until="caught-up", state=mig.state_path, env=mig.env)
    assert outcome.cdc is not None and outcome.cdc.caught_up
    throttle = _status(mig, plan).throttle
    assert throttle is not None and throttle.max_lag_seconds == 0.75 and not throttle.throttled


def test_throttle_file_holds_the_snapshot_until_removed(mig: Migration, tmp_path: Path) -> None:
    flag = tmp_path / "hold.flag"
    flag.write_text("")
    plan = _plan(mig, flag, chunk_rows=20)  # several chunks
    follower = Follower(mig, plan, "snapshot")
    try:

        def held() -> bool:
            if not mig.state_path.exists():
                return False
            throttle = _status(mig, plan).throttle
            return throttle is not None and throttle.throttled and throttle.phase == "snapshot"

        wait_for(held, "the snapshot to be held by the throttle file", 60)
        assert any("throttle file" in r for r in _status(mig, plan).throttle.reasons)  # type: ignore[union-attr]
        time.sleep(1.5)
        assert follower.alive
        assert follower.events.of(ChunkFinished) == []
        assert mig.client[mig.database]["items"].count_documents({}) == 0
        flag.unlink()
        wait_for(lambda: not follower.alive, "the snapshot to finish once the file is gone", 60)
    finally:
        follower.finish()
    chunks = follower.events.of(ChunkFinished)
    assert len(chunks) >= 3 and sum(c.rows_read for c in chunks) == ROWS
    assert len(_values(mig)) == ROWS
    (lifted,) = follower.events.of(ThrottleLifted)
    assert lifted.phase == "snapshot" and lifted.seconds >= 1.5


def test_a_paused_stream_survives_a_short_wal_sender_timeout(
    pg_cluster_factory: Callable[..., PgServer], mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    """While held, CDC reads nothing, so the server's keepalive requests go unanswered: status
    updates sent unasked must keep the walsender from timing out (here after 2 s)."""
    server = pg_cluster_factory(settings={"wal_sender_timeout": "2s"})
    mig = _make(Migration(server.url, mongo_url, mongo_db_name, tmp_path, tmp_path / "state.db"))
    try:
        plan = _plan(mig, tmp_path / "no-such.flag")
        mig.run(plan)
        follower = Follower(mig, plan, "stopped")
        try:
            mig.sql("INSERT INTO items VALUES (1000, 'before')")
            wait_for(lambda: 1000 in _values(mig), "CDC to run", 60)
            _throttle(mig, plan, "--pause")
            wait_for(lambda: bool(_status(mig, plan).throttle.throttled), "the hold", 60)  # type: ignore[union-attr]
            mig.sql("INSERT INTO items SELECT g, 'during' FROM generate_series(2000, 2199) g")
            time.sleep(6.0)  # three times wal_sender_timeout
            assert 2000 not in _values(mig)
            _throttle(mig, plan, "--resume")
            wait_for(lambda: 2199 in _values(mig), "CDC to catch up", 60)
        finally:
            follower.finish()
        dropped = [e for e in follower.events.of(ErrorRaised) if e.phase == "cdc"]
        assert dropped == [], [e.message for e in dropped]
    finally:
        mig.close()
