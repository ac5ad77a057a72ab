"""Conformance (issue 15): `migrator run` killed with SIGKILL at many moments of the snapshot, from
every source adapter, each time at a process's event line: as early as possible (before the slot is
recorded, then with an unrecorded slot left as a crash between creating and recording it leaves
one), right after the slot's checkpoint, between a chunk's writes and its 'done' record, and after a
seeded number of chunks; the source changes meanwhile (while a copy runs and between processes).
Each next run resumes the one run: it keeps the chunks done and the slot, and re-reads the others
at a newer point (the 'reread' checkpoint). The snapshot ends with every chunk done once and every
row read exactly once by its chunk's last attempt, the slot the one first recorded and untouched,
and every document present once; CDC then brings the documents to what the source's rows say (read
back with its own driver, tests/support/embedded_scenario.py).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from migrator import api
from migrator.adapters.base import SourceAdapter
from migrator.adapters.registry import positions_for, source_for
from migrator.engine.events import SnapshotOpened
from migrator.plan.names import publication_name
from migrator.state import CheckpointRecord, SQLiteStateStore
from migrator.state.labels import SnapshotLabel
from tests.support.cli_process import MigratorRun
from tests.support.compare import assert_documents
from tests.support.conformance import Case
from tests.support.docs import run_slot, sorted_documents, typed
from tests.support.embedded_scenario import COLLECTIONS, SETUP, documents

CUSTOMERS = 200  # each with 2 orders of 2 items, every other one a profile
PRODUCTS = 40  # a second collection: the workers share both tables' chunks
CHUNK_ROWS = 10  # 24 chunks or so, so that every kill leaves some to resume
SEED = 20_261_203
NAME = "conformance-snapshot-kill"
TREE = ("customers", "orders", "items", "profiles")
COLLECTIONS_AND_PRODUCTS = COLLECTIONS + "  - {{name: products, from: {products}, key: id}}\n"


def _setup() -> tuple[str, ...]:
    customers = range(1, CUSTOMERS + 1)
    orders = [(10 * c + j, c) for c in customers for j in range(2)]
    return (
        *(s for s in SETUP if s.startswith("CREATE TABLE")),
        "CREATE TABLE products (id integer PRIMARY KEY, title varchar(40) NOT NULL)",
        "INSERT INTO customers VALUES " + ", ".join(f"({c}, 'c{c}')" for c in customers),
        "INSERT INTO orders VALUES " + ", ".join(f"({o}, {c}, {o % 10}, 'n{o}')" for o, c in orders),
        "INSERT INTO items VALUES "
        + ", ".join(f"({10 * o + k}, {o}, 's{o}', {k})" for o, _ in orders for k in range(2)),
        "INSERT INTO profiles VALUES " + ", ".join(f"({c}, {c}, 'b{c}')" for c in customers if c % 2),
        "INSERT INTO products VALUES " + ", ".join(f"({p}, 'p{p}')" for p in range(1, PRODUCTS + 1)),
    )


def _checkpoints(case: Case, label: str) -> list[CheckpointRecord]:
    with SQLiteStateStore(case.state) as store:
        (run,) = store.runs()
        return [c for c in store.checkpoints(run.id, "snapshot") if c.label == label]


def _chunks(case: Case, collection: str | None = None) -> list[Any]:
    with SQLiteStateStore(case.state) as store:
        (run,) = store.runs()
        return list(store.chunks(run.id, collection))


@contextmanager
def _adapter(case: Case) -> Iterator[SourceAdapter]:
    """The case's source adapter, as `migrator run` opens it."""
    adapter = source_for(case.source.adapter, case.source.url)
    try:
        yield adapter
    finally:
        adapter.close()


def _slot(case: Case, name: str) -> dict[str, Any] | None:
    """The slot's confirmed position and whether a stream holds it, as the source records it."""
    with _adapter(case) as adapter:
        monitor = adapter.monitor()
        try:
            return monitor.state(name)
        finally:
            monitor.close()


def _phase_status(case: Case, plan: Path) -> str:
    report = api.status(plan, state=case.state, env={}, live=False)
    return next(p.status for p in report.phases if p.name == "snapshot")


def _opened(process: MigratorRun) -> list[bool]:
    """Whether each snapshot the process opened was a resume's re-read."""
    return [bool(e.get("reread")) for e in process.events if e["event"] == "snapshot.opened"]


def _count(case: Case, tables: tuple[str, ...]) -> int:
    return sum(int(case.source.records(f"SELECT count(*) AS n FROM {t}")[0]["n"]) for t in tables)


def test_killed_during_the_snapshot_resumes_every_chunk_once(case: Case) -> None:
    rng = random.Random(SEED)
    source = case.source
    parse = positions_for(source.adapter).parse
    source.sql(*_setup())
    plan = case.plan(
        NAME,
        COLLECTIONS_AND_PRODUCTS,
        ("customers", "orders", "items", "profiles", "products"),
        phases=f"snapshot: {{parallel: 2, chunk_rows: {CHUNK_ROWS}}}\ncdc: {{heartbeat_interval: 1s}}",
    )
    resumed: list[MigratorRun] = []  # the processes killed after the slot was recorded

    # (a) As early as possible: the run exists, its slot is not recorded yet.
    p = case.process(plan, "snapshot")
    p.wait_for("run.started")
    case.kill9(p)
    assert _checkpoints(case, SnapshotLabel.SLOT) == []
    slot = run_slot(case.state, NAME)
    # A crash between creating the slot and recording it leaves an unrecorded one: make one as the
    # source adapter makes it. No chunk was copied under it: the resume must replace it.
    if _slot(case, slot) is None:
        with _adapter(case) as adapter:
            adapter.export_snapshot(slot).close()
    orphan = _slot(case, slot)
    assert orphan is not None

    # (b) Right after the slot and its checkpoint, before any chunk.
    p = case.process(plan, "snapshot")
    created = p.wait_for("snapshot.slot_created")
    case.kill9(p)
    (slot_cp,) = _checkpoints(case, SnapshotLabel.SLOT)
    assert slot_cp.position == created["position"]
    recorded = _slot(case, slot)
    assert recorded is not None
    assert parse(slot_cp.position) > parse(orphan["confirmed"]), "the unrecorded slot was reused"
    assert parse(recorded["confirmed"]) > parse(orphan["confirmed"]), "the unrecorded slot was kept"
    assert parse(recorded["confirmed"]) <= parse(slot_cp.position)

    # (c) After the first chunk, once the next chunk's documents are written (the progress line
    # comes after the write) and before its 'done' record: the kill lands between the two, or just
    # after. `status` tells a phase a process works on from one a kill left. Meanwhile the source
    # changes rows of copied and uncopied chunks alike (updates: every chunk keeps its row count).
    p = case.process(plan, "snapshot")
    resumed.append(p)
    p.wait_for("snapshot.chunk_finished")
    assert _phase_status(case, plan) == "running"
    source.transactions(
        [
            "UPDATE customers SET name = 'renamed' WHERE id IN (1, 2, 100, 199)",
            "UPDATE items SET qty = 7 WHERE id IN (100, 19911)",
            "UPDATE products SET title = 'retitled' WHERE id IN (1, 40)",
        ]
    )
    p.wait_for("snapshot.rows", nth=p.count("snapshot.rows") + 1)
    case.kill9(p)
    assert _phase_status(case, plan) == "interrupted"

    # Between processes: a customer of a chunk not yet copied leaves with its tree, and a new one
    # comes with its tree, in the open-ended last chunk (where new keys go), not yet copied.
    chunks = _chunks(case, "customers")
    pending = [c for c in chunks if c.status == "pending"]
    assert len(pending) >= 2 and pending[-1].hi is None, Counter(c.status for c in chunks)
    gone = (int(pending[0].lo[0]) if pending[0].lo else 0) + 1  # a chunk holds lo < id <= hi
    source.transactions(
        [
            f"DELETE FROM items WHERE order_id IN ({10 * gone}, {10 * gone + 1})",
            f"DELETE FROM orders WHERE customer_id = {gone}",
            f"DELETE FROM profiles WHERE customer_id = {gone}",
            f"DELETE FROM customers WHERE id = {gone}",
        ],
        [
            "INSERT INTO customers VALUES (1000, 'newcomer')",
            "INSERT INTO orders VALUES (10000, 1000, 1, 'new')",
            "INSERT INTO items VALUES (100000, 10000, 'new', 1)",
            "INSERT INTO profiles VALUES (1000, 1000, 'new')",
        ],
    )

    # (d) At a seeded moment: after one to three chunks.
    p = case.process(plan, "snapshot")
    resumed.append(p)
    p.wait_for("snapshot.chunk_finished", nth=rng.randint(1, 3))
    case.kill9(p)
    progress = Counter(c.status for c in _chunks(case))
    assert progress["done"] < sum(progress.values()), f"nothing left to resume: {progress}"

    # The last resume, to the snapshot's end (in this process: nothing kills it).
    final = case.run(plan, "snapshot")
    outcome = final.outcome
    assert outcome is not None and outcome.snapshot is not None
    assert outcome.resumed and not outcome.interrupted
    # Every run after the slot's re-read at a newer point, once.
    opened = [_opened(q) for q in resumed] + [[e.reread for e in final.events.of(SnapshotOpened)]]
    assert opened == [[True]] * len(opened), opened

    # One run, one slot: the one first recorded, untouched (nothing consumed it, nothing recreated
    # it), and no stream holds it.
    with SQLiteStateStore(case.state) as store:
        runs = store.runs()
        assert len(runs) == 1 and runs[0].status == "active"
        checkpoints = store.checkpoints(runs[0].id, "snapshot")
        chunks = store.chunks(runs[0].id)
        phases = {ph.name: ph.status for ph in store.phases(runs[0].id)}
    labels = Counter(c.label for c in checkpoints)
    assert (labels[SnapshotLabel.SLOT], labels[SnapshotLabel.PLANNED], labels[SnapshotLabel.DONE]) == (
        1,
        1,
        1,
    )
    now = _slot(case, slot)
    assert now is not None and (now["confirmed"], now["active"]) == (recorded["confirmed"], False), now
    assert runs[0].slot == slot and slot_cp.detail["slot"] == slot
    assert slot_cp.detail["publication"] == publication_name(NAME)
    assert phases == {"snapshot": "done"}
    rereads = [c for c in checkpoints if c.label == SnapshotLabel.REREAD]
    assert len(rereads) == len(opened)
    assert all(parse(c.position) >= parse(slot_cp.position) for c in rereads)
    (done,) = [c for c in checkpoints if c.label == SnapshotLabel.DONE]
    assert done.position == slot_cp.position == outcome.snapshot.position
    newest = max((c.position for c in rereads), key=parse)
    assert done.detail["consistent_after"] == outcome.snapshot.consistent_after == newest
    # Chunks in flight at a kill were redone.
    assert max(c.attempts for c in chunks) > 1

    # Every chunk done, as planned; each one's last attempt read and wrote exactly its key range.
    (planned,) = [c for c in checkpoints if c.label == SnapshotLabel.PLANNED]
    assert Counter(c.status for c in chunks) == {"done": len(chunks)}
    assert Counter(c.table for c in chunks) == planned.detail["chunks"]
    for collection, tables in (("customers", TREE), ("products", ("products",))):
        mine = [c for c in chunks if c.table == collection]
        assert sum(c.rows_read for c in mine) == _count(case, tables), collection
        written = case.target.client[case.target.database][collection].count_documents({})
        assert sum(c.docs_written for c in mine) == written, collection
    # Every document once, and those of rows unchanged since the slot's point already the source's
    # (the deleted customer's chunk and the newcomer's were copied after those changes).
    ids = sorted(d["_id"] for d in case.target.documents("customers"))
    assert ids == sorted(int(r["id"]) for r in source.records("SELECT id FROM customers"))
    changed = {1, 2, 100, 199}  # renamed, or an item of theirs changed, after the slot's point
    expected = [d for d in documents(source.records) if d["_id"] not in changed]
    actual = [d for d in case.target.documents("customers") if d["_id"] not in changed]
    assert [typed(d) for d in actual] == [typed(d) for d in sorted_documents(expected)]

    # CDC replays the changes since the slot's point: the documents are the source's rows.
    followed = case.run(plan).outcome
    assert followed is not None and followed.cdc is not None and followed.cdc.caught_up
    assert_documents(case.target, "customers", documents(source.records))
    assert_documents(case.target, "products", source.records("SELECT id AS _id, title FROM products"))
