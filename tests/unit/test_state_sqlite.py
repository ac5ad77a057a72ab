from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.errors import ActiveRunExists, RunInUse, StateDiskFull, StateError, TransientError
from migrator.plan.names import legacy_slot_name
from migrator.state import (
    SCHEMA_VERSION,
    SQLiteStateStore,
    StateStore,
    default_state_path,
    is_secret_key,
    resolve_state_path,
    schema,
)

SECRET = "Xy7sEcretPw"
URL = f"postgresql://app:{SECRET}@db.internal:5432/shop"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / ".migrator" / "demo.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStateStore]:
    with SQLiteStateStore(db_path) as s:
        yield s


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- one active run per plan ---------------------------------------------------------


def test_second_active_run_of_a_plan_is_refused(store: SQLiteStateStore) -> None:
    first = store.begin_run("demo", "sha256:aa")
    with pytest.raises(ActiveRunExists) as info:
        store.begin_run("demo", "sha256:aa")
    assert first.id in str(info.value)
    assert info.value.hint is not None
    assert "migrator run" in info.value.hint and "migrator rollback" in info.value.hint
    assert [r.id for r in store.runs("demo")] == [first.id]


def test_invariant_holds_across_connections(db_path: Path) -> None:
    with SQLiteStateStore(db_path) as one, SQLiteStateStore(db_path) as two:
        run = one.begin_run("demo", "d")
        with pytest.raises(ActiveRunExists, match=run.id):
            two.begin_run("demo", "d")


def test_finished_run_frees_the_plan(store: SQLiteStateStore) -> None:
    first = store.begin_run("demo", "d1")
    finished = store.finish_run(first.id, "succeeded")
    assert finished.status == "succeeded" and finished.ended_at is not None
    assert store.active_run("demo") is None
    second = store.begin_run("demo", "d2")
    assert second.id != first.id
    assert store.active_run("demo") == second
    assert store.get_run(first.id).status == "succeeded"


def test_different_plans_may_be_active_together(store: SQLiteStateStore) -> None:
    a = store.begin_run("orders", "d")
    b = store.begin_run("users", "d")
    assert store.active_run("orders") == a
    assert store.active_run("users") == b


def test_run_status_transitions(store: SQLiteStateStore) -> None:
    run = store.begin_run("demo", "d")
    with pytest.raises(StateError):
        store.finish_run(run.id, "active")
    store.finish_run(run.id, "failed")
    assert store.finish_run(run.id, "failed").status == "failed"  # repeat is harmless
    assert store.finish_run(run.id, "rolled_back").status == "rolled_back"
    with pytest.raises(StateError, match="cannot become"):
        store.finish_run(run.id, "succeeded")
    with pytest.raises(StateError, match="no run"):
        store.finish_run("nope", "failed")


def test_store_satisfies_protocol(store: SQLiteStateStore) -> None:
    assert isinstance(store, StateStore)


def test_closed_store_refuses_use(db_path: Path) -> None:
    s = SQLiteStateStore(db_path)
    s.close()
    s.close()
    with pytest.raises(StateError, match="closed"):
        s.begin_run("demo", "d")


# -- files and paths -----------------------------------------------------------------


def test_new_state_file_and_side_files_are_owner_only(db_path: Path) -> None:
    with SQLiteStateStore(db_path) as s:
        s.append_event(None, "opened", {"n": 1})
        assert mode_of(db_path) == 0o600
        side_files = [p for p in db_path.parent.iterdir() if p != db_path]
        assert {p.name for p in side_files} >= {"demo.db-wal", "demo.db-shm"}
        assert all(mode_of(p) == 0o600 for p in side_files)
    assert mode_of(db_path.parent) == 0o700


def test_loose_existing_state_file_is_tightened(db_path: Path) -> None:
    SQLiteStateStore(db_path).close()
    db_path.chmod(0o644)
    SQLiteStateStore(db_path).close()
    assert mode_of(db_path) == 0o600


def test_default_state_path(tmp_path: Path) -> None:
    assert default_state_path("demo", tmp_path) == tmp_path / ".migrator" / "demo.db"
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(StateError):
            default_state_path(bad, tmp_path)


def test_resolve_state_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIGRATOR_STATE", raising=False)
    assert resolve_state_path(None, "demo", tmp_path) == tmp_path / ".migrator" / "demo.db"
    monkeypatch.setenv("MIGRATOR_STATE", "/var/lib/m/env.db")
    assert resolve_state_path(None, "demo", tmp_path) == Path("/var/lib/m/env.db")
    assert resolve_state_path("/x/flag.db", "demo", tmp_path) == Path("/x/flag.db")
    assert resolve_state_path("rel/flag.db", "demo", tmp_path) == tmp_path / "rel" / "flag.db"
    monkeypatch.setenv("MIGRATOR_STATE", "")
    assert resolve_state_path(None, "demo", tmp_path) == tmp_path / ".migrator" / "demo.db"


def test_default_state_file_lies_beside_the_plan_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGRATOR_STATE", raising=False)
    plans, here, there = tmp_path / "plans", tmp_path / "here", tmp_path / "there"
    beside = plans / ".migrator" / "demo.db"
    # The same plan file names the same state file from every working directory.
    assert resolve_state_path(None, "demo", here, plan_file="../plans/demo.yaml") == beside
    assert resolve_state_path(None, "demo", there, plan_file=plans / "demo.yaml") == beside
    # A run begun by an earlier version kept its file in the working directory: it is used while
    # the file beside the plan does not exist.
    earlier = there / ".migrator" / "demo.db"
    earlier.parent.mkdir(parents=True)
    earlier.touch()
    assert resolve_state_path(None, "demo", there, plan_file=plans / "demo.yaml") == earlier
    beside.parent.mkdir(parents=True)
    beside.touch()
    assert resolve_state_path(None, "demo", there, plan_file=plans / "demo.yaml") == beside


# -- one process per run ----------------------------------------------------------------


def test_a_second_holder_of_a_plan_is_refused_naming_the_first(db_path: Path) -> None:
    with SQLiteStateStore(db_path) as first, SQLiteStateStore(db_path) as second:
        first.hold("demo", "migrator run")
        first.hold("demo", "migrator rollback")  # the same store: the same command's next step
        with pytest.raises(RunInUse, match=r"`migrator run` \(pid \d+ on ") as refused:
            second.hold("demo", "migrator cutover")
        assert "SIGTERM" in (refused.value.hint or "")
        second.hold("other-plan", "migrator run")  # another plan's lease is its own
    with SQLiteStateStore(db_path) as third:
        third.hold("demo", "migrator run")  # released when the first store closed


# -- a full disk ------------------------------------------------------------------------


def test_a_full_database_is_named_a_full_disk_and_nothing_half_written_stays(db_path: Path) -> None:
    with SQLiteStateStore(db_path) as store:
        run = store.begin_run("demo", "digest")
        conn = store._require()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own SQLITE_FULL
        with pytest.raises(StateDiskFull, match="is full") as full:
            for i in range(1000):
                store.append_event(run.id, "filler", {"text": "x" * 2000, "i": i})
        assert "free space" in (full.value.hint or "")
        written = len(store.events(run.id))
        conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
        store.append_event(run.id, "after", {})
        assert [e.kind for e in store.events(run.id)][written:] == ["after"]


def test_runs_of_a_version_2_file_keep_their_plan_named_slot(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = raw(db_path)
    try:
        schema.upgrade(conn, str(db_path), schema.STEPS[:2])
        conn.execute(
            "INSERT INTO runs (id, plan_name, plan_digest, status, started_at) "
            "VALUES ('r1', 'demo', 'd', 'active', '2024-01-01T00:00:00+00:00')"
        )
    finally:
        conn.close()
    with SQLiteStateStore(db_path) as store:
        run = store.active_run("demo")
        assert run is not None and run.slot == legacy_slot_name("demo")
        store.finish_run("r1", "rolled_back")
        new = store.begin_run("demo", "d", run_id="0123456789abcdef", slot="migrator_demo_x_01234567")
        assert store.get_run(new.id).slot == "migrator_demo_x_01234567"


# -- schema versions -----------------------------------------------------------------


def test_empty_file_is_upgraded_to_current_version(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    SQLiteStateStore(db_path).close()
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "phases", "chunks", "checkpoints", "events"} <= tables


def test_upgrade_chain_runs_each_missing_step_once(db_path: Path) -> None:
    SQLiteStateStore(db_path).close()  # a file at the current version

    def next_step(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    conn = raw(db_path)
    try:
        found = schema.upgrade(conn, str(db_path), (*schema.STEPS, next_step))
        assert found == SCHEMA_VERSION
        assert schema.user_version(conn) == SCHEMA_VERSION + 1
        columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
        assert "note" in columns
        # Already there: nothing runs again (a second ALTER would fail).
        assert schema.upgrade(conn, str(db_path), (*schema.STEPS, next_step)) == SCHEMA_VERSION + 1
    finally:
        conn.close()


def test_failed_step_leaves_the_file_at_its_old_version(db_path: Path) -> None:
    SQLiteStateStore(db_path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("step failed midway")

    conn = raw(db_path)
    try:
        with pytest.raises(RuntimeError):
            schema.upgrade(conn, str(db_path), (*schema.STEPS, broken))
        assert schema.user_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone() is None
    finally:
        conn.close()


def test_newer_file_is_refused(db_path: Path) -> None:
    SQLiteStateStore(db_path).close()
    with raw(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StateError, match="schema version 99") as info:
        SQLiteStateStore(db_path)
    assert info.value.hint is not None and "upgrade migrator" in info.value.hint


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with raw(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StateError, match="not a migrator state file"):
        SQLiteStateStore(other)
    with raw(other) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_non_database_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all, just some text " * 100)
    with pytest.raises(StateError, match="not an SQLite database"):
        SQLiteStateStore(junk)


# -- events and checkpoints ----------------------------------------------------------


@pytest.mark.parametrize("statement", ["UPDATE events SET kind = 'x'", "DELETE FROM events"])
def test_events_are_append_only(store: SQLiteStateStore, db_path: Path, statement: str) -> None:
    store.append_event(None, "started", {"a": 1})
    with raw(db_path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    assert [e.kind for e in store.events()] == ["started"]


@pytest.mark.parametrize("statement", ["UPDATE checkpoints SET position = '0/0'", "DELETE FROM checkpoints"])
def test_checkpoints_are_append_only(store: SQLiteStateStore, db_path: Path, statement: str) -> None:
    run = store.begin_run("demo", "d")
    store.add_checkpoint(run.id, "cdc", "c1", "0/16B3748")
    with raw(db_path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    assert [c.position for c in store.checkpoints(run.id)] == ["0/16B3748"]


def test_events_round_trip_and_filter(store: SQLiteStateStore) -> None:
    run = store.begin_run("demo", "d")
    other = store.begin_run("other", "d")
    e1 = store.append_event(run.id, "phase_started", {"phase": "snapshot", "tables": ["users", "orders"]})
    store.append_event(other.id, "noise", None)
    e3 = store.append_event(run.id, "chunk_done", {"rows": 20000, "ratio": 0.5, "ok": True, "none": None})
    plan_level = store.append_event(None, "plan_checked", {"warnings": 0})

    mine = store.events(run.id)
    assert mine == [e1, e3]
    assert mine[1].payload == {"rows": 20000, "ratio": 0.5, "ok": True, "none": None}
    assert store.events(run.id, since_seq=e1.seq) == [e3]
    assert [e.seq for e in store.events()] == sorted(e.seq for e in store.events())
    assert len(store.events()) == 4 and store.events()[-1] == plan_level
    assert store.events(limit=2) == store.events()[:2]
    assert e1.ts.endswith("+00:00")


def test_event_for_unknown_run_is_refused(store: SQLiteStateStore) -> None:
    with pytest.raises(StateError, match="no such run"):
        store.append_event("missing", "x", {})


def test_checkpoints_round_trip_and_latest(store: SQLiteStateStore) -> None:
    run = store.begin_run("demo", "d")
    assert store.latest_checkpoint(run.id, "cdc") is None
    snap = store.add_checkpoint(run.id, "snapshot", "consistent point", "0/1000", {"slot": "migrator_demo"})
    c1 = store.add_checkpoint(run.id, "cdc", "batch 1", "0/2000", {"txns": 3})
    c2 = store.add_checkpoint(run.id, "cdc", "batch 2", '{"_data": "8263A1"}', {"txns": [1, 2]})
    assert store.checkpoints(run.id) == [snap, c1, c2]
    assert store.checkpoints(run.id, "cdc") == [c1, c2]
    assert store.latest_checkpoint(run.id, "cdc") == c2
    assert store.latest_checkpoint(run.id, "snapshot") == snap
    assert c2.detail == {"txns": [1, 2]}


json_text = st.text(alphabet=st.characters(exclude_characters="@="), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | json_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="abcdefgh_0123456789", max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
json_payloads = st.dictionaries(st.text(alphabet="abcdefgh_0123456789", max_size=8), json_values, max_size=6)


@settings(max_examples=60, deadline=None)
@given(payload=json_payloads)
def test_any_json_payload_round_trips(
    tmp_path_factory: pytest.TempPathFactory, payload: dict[str, Any]
) -> None:
    # Text without '@' or '=' has nothing redaction would touch, so it must come back as is.
    with SQLiteStateStore(tmp_path_factory.getbasetemp() / "hypothesis.db") as s:
        written = s.append_event(None, "fuzz", payload)
        assert written.payload == payload
        assert s.events(since_seq=written.seq - 1, limit=1)[0].payload == payload


# -- secrets -------------------------------------------------------------------------


def test_urls_in_payloads_are_stored_masked(db_path: Path) -> None:
    with SQLiteStateStore(db_path) as s:
        run = s.begin_run("demo", "d")
        event = s.append_event(run.id, "connected", {"source": URL, "nested": [{"dsn": f"x {URL} y"}]})
        checkpoint = s.add_checkpoint(run.id, "cdc", "c", "0/1", {"target": f"mongodb://u:{SECRET}@m/app"})
        assert event.payload["source"] == "postgresql://app:***@db.internal:5432/shop"
        assert s.events(run.id)[0].payload["nested"] == [
            {"dsn": "x postgresql://app:***@db.internal:5432/shop y"}
        ]
        assert s.latest_checkpoint(run.id, "cdc") == checkpoint
        assert checkpoint.detail == {"target": "mongodb://u:***@m/app"}
    files = list(db_path.parent.iterdir())
    assert files, "the state file exists"
    for f in files:
        assert SECRET.encode() not in f.read_bytes()


@pytest.mark.parametrize(
    "payload",
    [
        {"password": "hunter2"},
        {"conn": {"Password": "hunter2"}},
        {"items": [{"api_token": "abc"}]},
        {"clientSecret": "abc"},
        {"PWD": "abc"},
    ],
)
def test_secret_named_keys_are_refused(store: SQLiteStateStore, payload: dict[str, Any]) -> None:
    run = store.begin_run("demo", "d")
    with pytest.raises(StateError, match="names a secret") as info:
        store.append_event(run.id, "leak", payload)
    assert "hunter2" not in str(info.value) and "abc" not in str(info.value)
    with pytest.raises(StateError, match="names a secret"):
        store.add_checkpoint(run.id, "cdc", "c", "0/1", payload)
    assert store.events(run.id) == [] and store.checkpoints(run.id) == []


def test_masked_secrets_and_resume_tokens_are_allowed(store: SQLiteStateStore) -> None:
    event = store.append_event(None, "ok", {"password": "***", "resume_token": {"_data": "82"}})
    assert event.payload == {"password": "***", "resume_token": {"_data": "82"}}
    assert is_secret_key("postBatchResumeToken") is False
    assert is_secret_key("auth-token") is True


def test_non_json_payload_is_refused(store: SQLiteStateStore) -> None:
    with pytest.raises(StateError, match="not a JSON value"):
        store.append_event(None, "bad", {"when": object()})
    with pytest.raises(StateError, match=r"NaN|Out of range"):
        store.append_event(None, "bad", {"x": float("nan")})


# -- phases and chunks ---------------------------------------------------------------


def test_phases_track_current_phase(store: SQLiteStateStore) -> None:
    run = store.begin_run("demo", "d")
    store.set_phase(run.id, "snapshot", "pending")
    running = store.set_phase(run.id, "snapshot", "running")
    assert running.started_at is not None and running.ended_at is None
    done = store.set_phase(run.id, "snapshot", "done")
    assert done.started_at == running.started_at and done.ended_at is not None
    store.set_phase(run.id, "cdc", "running")
    assert store.get_run(run.id).phase == "cdc"
    assert [(p.name, p.status) for p in store.phases(run.id)] == [("snapshot", "done"), ("cdc", "running")]
    with pytest.raises(StateError):
        store.set_phase(run.id, "cdc", "bogus")  # type: ignore[arg-type]


def test_chunks_upsert_by_run_table_and_chunk(store: SQLiteStateStore) -> None:
    run = store.begin_run("demo", "d")
    store.record_chunk(run.id, "users", 0, lo=None, hi=[1000], status="running", attempts=1)
    store.record_chunk(run.id, "users", 1, lo=[1000], hi=None, status="pending")
    store.record_chunk(run.id, "orders", 0, lo=None, hi=None, status="pending")
    updated = store.record_chunk(
        run.id, "users", 0, lo=None, hi=[1000], status="done", rows_read=1000, docs_written=990, attempts=1
    )

    users = store.chunks(run.id, "users")
    assert [c.chunk_id for c in users] == [0, 1]
    assert users[0] == updated
    assert (users[0].status, users[0].rows_read, users[0].docs_written) == ("done", 1000, 990)
    assert users[0].hi == [1000] and users[1].lo == [1000] and users[1].hi is None
    assert len(store.chunks(run.id)) == 3
    with pytest.raises(StateError, match="JSON"):
        store.record_chunk(run.id, "users", 2, lo=object(), hi=None, status="pending")
    with pytest.raises(StateError, match="negative"):
        store.record_chunk(run.id, "users", 2, lo=None, hi=None, status="pending", rows_read=-1)


# -- concurrency ---------------------------------------------------------------------


def test_threads_share_one_store(store: SQLiteStateStore) -> None:
    run = store.begin_run("demo", "d")

    def worker(n: int) -> list[int]:
        return [store.append_event(run.id, "tick", {"worker": n, "i": i}).seq for i in range(200)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        per_worker = list(pool.map(worker, range(4)))  # re-raises any worker's error
    everything = [seq for mine in per_worker for seq in mine]
    assert len(set(everything)) == 800
    assert all(mine == sorted(mine) for mine in per_worker)
    stored = store.events(run.id)
    assert [e.seq for e in stored] == sorted(everything)
    assert {(e.payload["worker"], e.payload["i"]) for e in stored} == {
        (n, i) for n in range(4) for i in range(200)
    }


def test_locked_file_is_a_transient_error(db_path: Path) -> None:
    with SQLiteStateStore(db_path, busy_timeout=0.05) as s:
        blocker = raw(db_path)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(TransientError, match="locked"):
                s.append_event(None, "blocked", {})
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert s.append_event(None, "free", {}).kind == "free"
