"""One owner (docs/architecture.md, "One owner"), against real servers and the real CLI.

A run of a plan owns its slot and the plan's data in the target; a second run of the same plan,
started from another directory or with another state file, refuses at once and names the owner,
and the first run keeps following with its data right. Rollback removes only what its run
created. `status` finds the run from any directory. Expected documents are built from plain SQL
on the source, never with migrator's mapping code.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator import api
from migrator.engine.events import Collector, SlotCreated
from migrator.errors import OwnedByAnotherRun
from migrator.operations.rollback import RollbackResult
from migrator.operations.run import plan_digest
from migrator.plan.names import legacy_slot_name, publication_name
from migrator.state import SQLiteStateStore
from tests.support.cli_process import migrator_script
from tests.support.docs import Migration

ROWS = 300
TIMEOUT = 120.0
SCHEMA = f"""
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL);
INSERT INTO items SELECT i, 'item ' || i, i * 3 FROM generate_series(1, {ROWS}) AS i;
"""
COLLECTIONS = """
- name: items
  from: items
  key: id
"""


class Cli:
    """One `migrator ...` process: its JSON lines on stdout are read on a thread."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [migrator_script(), *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.stdout: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _drain(self, timeout: float) -> bool:
        """Read what arrived within `timeout`; False at the end of stdout."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return True
        if line is None:
            return False
        self.stdout.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            return True
        if isinstance(event, dict) and "event" in event:
            self.events.append(event)
        return True

    def wait_event(self, kind: str, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                e for e in self.events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())
            ]
            if found:
                return found[-1]
            if not self._drain(0.2) and self.proc.poll() is not None:
                break
        raise AssertionError(f"no {kind} {match} event; {self.describe()}")

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """Wait for the exit; (exit code, stdout, stderr)."""
        stderr = self.proc.stderr.read() if self.proc.stderr is not None else ""
        code = self.proc.wait(timeout)
        while self._drain(0.05):
            pass
        return code, "".join(self.stdout), stderr

    def describe(self) -> str:
        return f"exit {self.proc.poll()}; stdout tail: {''.join(self.stdout[-20:])}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code, _, _ = self.finish()
        return code


def cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = TIMEOUT) -> tuple[int, str, str]:
    return Cli(args, cwd, env).finish(timeout)


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


@pytest.fixture
def cli_processes(mig: Migration) -> Iterator[list[Cli]]:
    """The `migrator` processes a test starts (`start`): killed, if still running, before the
    test's databases go."""
    processes: list[Cli] = []
    mig.processes = processes  # type: ignore[attr-defined]
    yield processes
    for p in processes:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(30)


pytestmark = pytest.mark.usefixtures("cli_processes")


def plan_file(mig: Migration, name: str) -> Path:
    plans = mig.tmp_path / "plans"
    plans.mkdir(exist_ok=True)
    path = mig.plan(
        COLLECTIONS, name=name, phases="snapshot: {chunk_rows: 100}\ncdc: {heartbeat_interval: 1s}"
    )
    moved = plans / path.name
    path.rename(moved)
    return moved


def expected_items(mig: Migration) -> list[tuple[int, str, int]]:
    return [(int(i), str(n), int(q)) for i, n, q in mig.rows("SELECT id, name, qty FROM items ORDER BY id")]


def target_items(mig: Migration) -> list[tuple[int, str, int]]:
    return sorted((int(d["_id"]), str(d["name"]), int(d["qty"])) for d in mig.documents("items"))


def plan_slots(mig: Migration, name: str) -> list[str]:
    """Replication slots of this test's database that belong to the plan (by name prefix)."""
    stem = legacy_slot_name(name)
    return [s for s, _ in mig.slots() if s.startswith(stem[: stem.rindex("_")])]


def wait_until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def start(mig: Migration, args: list[str], cwd: Path) -> Cli:
    process = Cli(args, cwd, mig.env)
    mig.processes.append(process)  # type: ignore[attr-defined]
    return process


def state_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.db") if p.is_file())


# -- two runs of one plan ------------------------------------------------------------------------


def test_a_second_run_of_a_plan_refuses_and_the_first_keeps_following(mig: Migration) -> None:
    """Defects 10 and 13: `migrator run` of the same plan from another directory, with the same
    state file and with another one, while the first run follows changes."""
    name = "own-two"
    plan = plan_file(mig, name)
    first_dir, second_dir = mig.tmp_path / "first", mig.tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()

    first = start(mig, ["run", str(plan), "--json"], first_dir)
    started = first.wait_event("run.started")
    run_id = started["run_id"]
    first_state = Path(started.get("state") or first_dir / ".migrator" / f"{name}.db")
    first.wait_event("phase.started", phase="cdc")
    wait_until(
        lambda: bool(mig.rows("SELECT 1 FROM pg_replication_slots WHERE active")), "the stream to open"
    )
    slots_before = plan_slots(mig, name)
    assert len(slots_before) == 1

    # The same command from another directory: the same state file (beside the plan), in use.
    code, _, err = cli(["run", str(plan), "--until", "snapshot"], second_dir, mig.env)
    assert code == 3, err  # RunInUse: operational (docs/json.md)
    assert "is in use" in err and str(first.proc.pid) in err, err
    # Another state file (as the working directory used to choose): the target names the owner.
    other_state = second_dir / "other.db"
    code, _, err = cli(
        ["run", str(plan), "--until", "snapshot", "--state", str(other_state)], second_dir, mig.env
    )
    assert code == 3, err  # OwnedByAnotherRun: operational (docs/json.md)
    flat = " ".join(err.split())
    assert run_id in flat and socket.gethostname() in flat and str(first_state) in flat, err
    assert "--state" in flat and "rollback" in flat, err
    # Refused by the lease and the ownership record (named above), never by waiting on the slot
    # the first run streams from (which named a PostgreSQL backend PID after half a minute).
    assert "is active for PID" not in flat, err

    # Rolling back "the plan" from the other state file finds no run there, and says whose it is.
    code, out, err = cli(["rollback", str(plan), "--state", str(other_state), "--yes"], second_dir, mig.env)
    assert code == 1 and str(first_state) in " ".join((out + err).split()), out + err

    # Nothing of the first run was touched: its slot, its state, its process.
    assert plan_slots(mig, name) == slots_before
    assert first.proc.poll() is None, first.describe()
    with SQLiteStateStore(first_state) as store:
        assert [r.id for r in store.runs(name)] == [run_id]
        assert {p.name: p.status for p in store.phases(run_id)} == {"snapshot": "done", "cdc": "running"}
    with SQLiteStateStore(other_state) as store:
        assert store.runs(name) == []  # the refused run never began

    # The first run keeps following: changes made now reach the target, exactly.
    mig.sql(
        "UPDATE items SET qty = qty + 1000 WHERE id % 7 = 0",
        "DELETE FROM items WHERE id % 11 = 0",
        "INSERT INTO items VALUES (1001, 'late', 5)",
    )
    expected = expected_items(mig)
    wait_until(lambda: target_items(mig) == expected, "the first run to apply the later changes")
    assert first.stop() == 0


def test_a_plan_named_slot_of_an_earlier_version_blocks_a_new_run(mig: Migration) -> None:
    """Runs begun before ownership records have no record: their plan-named slot says that a run
    owns the plan's data, and a new run refuses instead of copying beside it."""
    name = "own-legacy-slot"
    plan = plan_file(mig, name)
    legacy = legacy_slot_name(name)
    mig.sql(f"SELECT pg_create_logical_replication_slot('{legacy}', 'pgoutput')")
    try:
        with pytest.raises(OwnedByAnotherRun, match=legacy) as refused:
            api.run(plan, until="snapshot", state=mig.tmp_path / "s.db", env=mig.env)
        assert "pg_drop_replication_slot" in (refused.value.hint or "")
        assert "items" not in mig.client[mig.database].list_collection_names()
    finally:
        mig.sql(f"SELECT pg_drop_replication_slot('{legacy}')")


def test_a_run_begun_by_an_earlier_version_resumes_on_its_plan_named_slot(mig: Migration) -> None:
    """A state file written before slot names carried the run (runs.slot is NULL): the run
    resumes under the plan-named slot, follows changes through it, and rolls back cleanly."""
    name = "own-legacy-run"
    plan = plan_file(mig, name)
    state = mig.tmp_path / "legacy.db"
    with SQLiteStateStore(state) as store:
        run = store.begin_run(name, plan_digest(api.load(plan, env=mig.env)))  # no slot recorded
    assert run.slot == legacy_slot_name(name)
    api.run(plan, until="snapshot", state=state, env=mig.env)
    assert plan_slots(mig, name) == [legacy_slot_name(name)]
    mig.sql("UPDATE items SET name = 'renamed' WHERE id = 5")
    api.run(plan, until="caught-up", state=state, env=mig.env)
    assert target_items(mig) == expected_items(mig)
    result = api.rollback(plan, state=state, env=mig.env)
    assert isinstance(result, RollbackResult)
    assert plan_slots(mig, name) == []
    assert "_migrator" not in mig.client[mig.database].list_collection_names()


def test_rollback_of_a_run_that_does_not_own_the_target_removes_nothing(mig: Migration) -> None:
    """A state file whose run the target no longer names (another run claimed it since): rolling
    it back would drop that other run's collections and checkpoint; it refuses instead."""
    name = "own-not-owner"
    plan = plan_file(mig, name)
    state = mig.tmp_path / "s.db"
    api.run(plan, until="snapshot", state=state, env=mig.env)
    records = mig.client[mig.database]["_migrator"]
    records.update_one(
        {"_id": f"owner:{name}"}, {"$set": {"run_id": "0000000000000000", "host": "elsewhere"}}
    )
    with pytest.raises(OwnedByAnotherRun, match="0000000000000000") as refused:
        api.rollback(plan, state=state, env=mig.env)
    assert "elsewhere" in str(refused.value)
    assert len(plan_slots(mig, name)) == 1 and target_items(mig) == expected_items(mig)  # all kept


# -- rollback drops only what the run created ------------------------------------------------------


def test_rollback_keeps_a_publication_the_run_found(mig: Migration) -> None:
    """Defect 11: `run` said "created publication" for one it reused, and rollback dropped it."""
    name = "own-reused-pub"
    plan = plan_file(mig, name)
    publication = publication_name(name)
    mig.sql(f"CREATE PUBLICATION {publication} FOR TABLE items")  # made by a DBA beforehand
    state = mig.tmp_path / "s.db"
    code, out, err = cli(
        ["run", str(plan), "--until", "snapshot", "--state", str(state)], mig.tmp_path, mig.env
    )
    assert code == 0, err
    assert f"reusing existing publication {publication}" in out and "created publication" not in out, out
    assert target_items(mig) == expected_items(mig)

    result = api.rollback(plan, state=state, env=mig.env)
    assert isinstance(result, RollbackResult)
    outcomes = {s["name"]: s["outcome"] for s in result.steps}
    assert outcomes["publication"].startswith("kept"), outcomes
    assert mig.rows("SELECT 1 FROM pg_publication WHERE pubname = %s", [publication])  # still there
    assert plan_slots(mig, name) == []
    assert mig.client[mig.database].list_collection_names() == []  # items and _migrator gone

    # A run that creates the publication drops it on rollback (and says it created it).
    mig.sql(f"DROP PUBLICATION {publication}")
    events = Collector()
    api.run(plan, until="snapshot", state=state, env=mig.env, sinks=[events])
    assert [e.publication_created for e in events.of(SlotCreated)] == [True]
    api.rollback(plan, state=state, env=mig.env)
    assert not mig.rows("SELECT 1 FROM pg_publication WHERE pubname = %s", [publication])


def test_a_found_publication_that_misses_a_mapped_table_is_made_to_publish_it(mig: Migration) -> None:
    """Used as found, a publication must publish every mapped table, or CDC would silently miss
    the changes of the others: the run makes it match the plan."""
    name = "own-partial-pub"
    mig.sql("CREATE TABLE extra (id int PRIMARY KEY, note text)", "INSERT INTO extra VALUES (1, 'one')")
    plan = mig.plan(COLLECTIONS + "- {name: extra, from: extra, key: id}", name=name)
    publication = publication_name(name)
    mig.sql(f"CREATE PUBLICATION {publication} FOR TABLE items")
    state = mig.tmp_path / "s.db"
    api.run(plan, until="caught-up", state=state, env=mig.env)
    published = mig.rows(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1", [publication]
    )
    assert published == [("extra",), ("items",)]
    mig.sql("UPDATE extra SET note = 'changed' WHERE id = 1")
    api.run(plan, until="caught-up", state=state, env=mig.env)
    assert [(d["_id"], d["note"]) for d in mig.documents("extra")] == [(1, "changed")]
    assert target_items(mig) == expected_items(mig)


# -- status finds the run ------------------------------------------------------------------------------


def test_status_finds_the_run_from_any_directory(mig: Migration) -> None:
    """Defect 13: after `scripts/demo` (state in MIGRATOR_STATE), `migrator status plans/demo.yaml`
    said "no run"; and a state file relative to the working directory was found from there only."""
    name = "own-status"
    plan = plan_file(mig, name)
    elsewhere = mig.tmp_path / "services" / "demo-state.db"
    elsewhere.parent.mkdir()
    some_dir = mig.tmp_path / "somewhere"
    some_dir.mkdir()
    code, _, err = cli(
        ["run", str(plan), "--until", "snapshot"], mig.tmp_path, {**mig.env, "MIGRATOR_STATE": str(elsewhere)}
    )
    assert code == 0, err
    with SQLiteStateStore(elsewhere) as store:
        (run,) = store.runs(name)

    code, out, err = cli(["status", str(plan), "--json"], some_dir, mig.env)
    assert code == 0, err + out
    report = json.loads(out)
    assert report["run"]["id"] == run.id and report["state"] == str(elsewhere)
    assert report["snapshot"]["chunks_done"] == report["snapshot"]["chunks_total"] > 0

    # Without the record's help: the default state file lies beside the plan, whatever the
    # working directory of `run` and of `status`.
    other = mig.plan("- {name: more_items, from: items, key: id}", name="own-status-default")
    ran_here = mig.tmp_path / "ran-here"
    ran_here.mkdir()
    code, _, err = cli(["run", str(other), "--until", "snapshot"], ran_here, mig.env)
    assert code == 0, err
    assert state_files(ran_here) == []
    assert state_files(other.parent / ".migrator") == [other.parent / ".migrator" / "own-status-default.db"]
    code, out, err = cli(["status", str(other), "--json"], some_dir, mig.env)
    assert code == 0, err + out
    assert json.loads(out)["run"]["status"] == "active"
