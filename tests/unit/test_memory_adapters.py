"""The memory adapters themselves (migrator/adapters/memory): fault injection, snapshots at a
position, the change log as typed events, and their registration as adapter `memory`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migrator.adapters.base import Change, Keepalive, Marker, TransactionBegun, TransactionCommitted
from migrator.adapters.memory import (
    Crash,
    Faults,
    MemoryDatabase,
    MemorySource,
    MemoryTarget,
    register,
    unregister,
)
from migrator.adapters.registry import positions_for, source_for, target_for
from migrator.errors import OwnedByAnotherRun, TerminalError, TransientError


@pytest.fixture
def db() -> Iterator[MemoryDatabase]:
    database = register(MemoryDatabase("adapters"))
    database.create_table("public.t", {"id": "integer", "v": "text"}, ["id"])
    database.load("public.t", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    yield database
    unregister(database.name)


def test_faults_fail_transiently_terminally_slowly_and_crash() -> None:
    faults = Faults()
    faults.fail_transiently("write", 2)
    for _ in range(2):
        with pytest.raises(TransientError):
            faults.check("write")
    faults.check("write")
    called: list[int] = []
    faults.slow("read", lambda: called.append(1))
    faults.check("read")
    assert called == [1]
    faults.crash_after("apply", 1)
    faults.check("apply")
    with pytest.raises(Crash):
        faults.check("apply")
    assert not issubclass(Crash, Exception)  # no `except Exception` of the library stops it
    faults.fail("drop", "gone")
    with pytest.raises(TerminalError, match="gone"):
        faults.check("drop")
    faults.clear()
    faults.check("apply")
    faults.check("drop")


def test_rows_as_of_a_position(db: MemoryDatabase) -> None:
    first = db.insert("public.t", {"id": 3, "v": "c"})
    db.update("public.t", [1], {"v": "A"})
    db.delete("public.t", [2])
    assert sorted(db.rows_at("public.t", 0)) == [(1,), (2,)]
    assert db.rows_at("public.t", first)[(1,)]["v"] == "a"
    assert sorted(db.rows_at("public.t", db.position)) == [(1,), (3,)]
    assert db.rows_at("public.t", db.position)[(1,)]["v"] == "A"


def test_a_failed_transaction_leaves_nothing(db: MemoryDatabase) -> None:
    with pytest.raises(TerminalError), db.transaction() as tx:
        tx.insert("public.t", {"id": 9, "v": "x"})
        tx.delete("public.t", [42])  # no such row: the transaction fails
    assert (9,) not in db.table("public.t").rows and db.position == 0


def test_the_change_stream_yields_committed_transactions(db: MemoryDatabase) -> None:
    source = source_for("memory", "memory://adapters")
    assert isinstance(source, MemorySource)
    source.capture_setup().ensure_publication("pub", {"public.t": ["id", "v"]})
    start = source.export_snapshot("slot").start
    assert source.positions.parse(start.position) == 0
    db.insert("public.t", {"id": 3, "v": "c"})
    source.monitor().heartbeat("migrator.heartbeat", "plan")
    stream = source.change_stream("slot", "pub", 0)
    events = source.schema_watch("pub", source.inspect(["public.t"]), None, None, lambda: None)  # type: ignore[arg-type]
    reader = events.reader(stream, applied=lambda: 0, skip_origin="")
    got = []
    for event in reader.events(0.01):
        got.append(event)
        if isinstance(event, Keepalive):
            break
    kinds = [type(e) for e in got]
    assert kinds == [
        TransactionBegun,
        Change,
        TransactionCommitted,
        TransactionBegun,
        Marker,
        TransactionCommitted,
        Keepalive,
    ]
    assert isinstance(got[1], Change) and got[1].new == {"id": 3, "v": "c"}
    assert source.monitor().state("slot") == {
        "retained_bytes": 200,
        "confirmed": "m/0",
        "active": True,
        "current": "m/2",
    }
    stream.acknowledge(2)
    stream.close()
    state = source.monitor().state("slot")
    assert state is not None and state["retained_bytes"] == 0 and not state["active"]


def test_fence_refuses_application_writes(db: MemoryDatabase) -> None:
    fence = MemorySource("memory://adapters").write_fence(["public.t"], lock_timeout=1, hold_limit=1)
    fence.engage()
    with pytest.raises(TerminalError, match="fenced"):
        db.insert("public.t", {"id": 5, "v": "e"})
    assert fence.lift() is not None
    db.insert("public.t", {"id": 5, "v": "e"})


def test_registered_as_adapter_memory(db: MemoryDatabase) -> None:
    assert positions_for("memory").text(7) == "m/7"
    assert positions_for("memory").parse("m/7") == 7
    target = target_for("memory", "memory://adapters", "shop")
    assert isinstance(target, MemoryTarget) and target.database == "shop"
    with pytest.raises(TerminalError, match="no memory database"):
        source_for("memory", "memory://nowhere")


def test_ownership_follows_the_claim_rules_every_target_shares(db: MemoryDatabase) -> None:
    target = MemoryTarget("memory://adapters", "shop")
    owner = target.ownership("shop")
    claim = {"started_at": "2027-01-15T08:00:00Z", "host": "h1", "state": "/srv/a.db", "publication": "p"}
    first = owner.claim(run_id="run-a", slot="slot_a", **claim)
    assert (first.run_id, first.slot, first.facts) == ("run-a", "slot_a", {})
    owner.note("run-a", {"publication_created": True})
    with pytest.raises(OwnedByAnotherRun, match="run run-a"):
        owner.claim(run_id="run-b", slot="slot_b", **claim)
    again = owner.claim(run_id="run-a", slot="slot_a2", **claim)  # its own record: brought up to date
    assert (again.slot, again.facts) == (
        "slot_a2",
        {"publication_created": True},
    ) and owner.slot() == "slot_a2"
    taken = owner.claim(run_id="run-b", slot="slot_b", replaceable=lambda o: o.run_id == "run-a", **claim)
    assert taken.run_id == "run-b"
    with pytest.raises(OwnedByAnotherRun, match="this state file's run is run-a"):
        owner.release("run-a", [])
    assert owner.release("run-b", []) == "0 record(s) and the ownership record deleted"
    assert owner.read() is None
