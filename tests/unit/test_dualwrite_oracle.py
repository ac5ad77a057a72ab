"""Which documents a row change touches (mapping.affected), and the dual-write oracle's bounded
queue: a full queue skips checks, counts them and says so; it never blocks the CDC loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from migrator.adapters.base import ColumnInfo, SourceInfo, SourceServerInfo, TableInfo
from migrator.engine.events import Collector, DualWriteSummary, EventBus, Notice
from migrator.mapping.affected import AffectedDocuments, DocumentId, ElementKey, ParentRow
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping, FieldMapping
from migrator.mapping.types import conversion_for
from migrator.operations.run import plan_digest
from migrator.phases.oracle import DualWriteOracle
from migrator.plan import parse_plan

UNCHANGED = object()


def column(name: str, position: int, type_name: str = "integer") -> ColumnInfo:
    return ColumnInfo(name, type_name, "base", None, None, False, None, None, position)


def field(c: ColumnInfo) -> FieldMapping:
    return FieldMapping(c.name, c, conversion_for(c))


P_ID, P_NAME = column("id", 1), column("name", 2, "text")
K_ID, K_PARENT, K_LABEL = column("id", 1), column("parent_id", 2), column("label", 3, "text")
KIDS = DocumentMapping("public.kids", ("id",), (field(K_ID), field(K_LABEL)), (), (K_ID, K_PARENT, K_LABEL))
PARENTS = DocumentMapping(
    "public.parents",
    ("id",),
    (field(P_NAME),),
    (EmbedMapping("kids", True, (("parent_id", "id"),), ("id",), KIDS),),
    (P_ID, P_NAME),
)
COLLECTIONS = [CollectionMapping("parents", PARENTS)]


def affected(kids_identity: tuple[str, ...]) -> AffectedDocuments:
    identity = {"public.parents": ("id",), "public.kids": kids_identity}
    return AffectedDocuments(COLLECTIONS, identity, UNCHANGED)


def parent_values(refs: list[Any]) -> list[tuple[Any, ...]]:
    return [r.values for r in refs if isinstance(r, ParentRow)]


def test_root_rows_touch_their_document_and_a_key_change_both() -> None:
    docs = affected(("id",))
    assert docs.insert("public.parents", {"id": 1, "name": "a"}) == [DocumentId("parents", 1)]
    refs = docs.update("public.parents", {"id": 1}, {"id": 2, "name": "a"})
    assert refs == [DocumentId("parents", 1), DocumentId("parents", 2)]
    assert docs.delete("public.parents", {"id": 3}) == [DocumentId("parents", 3)]
    assert docs.insert("public.elsewhere", {"id": 1}) == []


def test_children_touch_their_parents_document_and_a_move_both() -> None:
    full = affected(("id", "parent_id", "label"))
    moved = full.update(
        "public.kids", {"id": 5, "parent_id": 1, "label": "x"}, {"id": 5, "parent_id": 2, "label": "x"}
    )
    assert sorted(parent_values(moved)) == [(1,), (2,)] and len(moved) == 2
    [ref] = full.insert("public.kids", {"id": 6, "parent_id": 3, "label": "y"})
    assert isinstance(ref, ParentRow) and ref.path == () and [c.name for c in ref.columns] == ["id"]

    # The identity holds the link: an update without an old row did not move.
    linked = affected(("parent_id", "id"))
    assert parent_values(linked.update("public.kids", None, {"id": 5, "parent_id": 2, "label": "z"})) == [
        (2,)
    ]

    # The identity is the key alone: the change does not say where the row was, so the target
    # documents still holding its element are looked at, by the element's own key.
    by_key = affected(("id",))
    refs = by_key.update("public.kids", None, {"id": 5, "parent_id": 2, "label": "z"})
    assert parent_values(refs) == [(2,)]
    [element] = [r for r in refs if isinstance(r, ElementKey)]
    assert element.query() == {"kids.id": 5}
    assert by_key.delete("public.kids", {"id": 5}) == [ElementKey("parents", "kids", (("id", 5),))]
    # An unchanged (TOASTed) link says nothing either.
    refs = by_key.update("public.kids", None, {"id": 7, "parent_id": UNCHANGED, "label": "w"})
    assert all(isinstance(r, ElementKey) for r in refs) and refs


class _NoDocuments:
    """The worker is not started: nothing is read."""

    closed = False

    def close(self) -> None:
        self.closed = True


def test_a_full_queue_skips_checks_counts_them_and_says_so() -> None:
    events = Collector()
    server = SourceServerInfo("pg", "15", 150000, {}, 0, 0, "u", True, True, True, (), ())
    table = TableInfo(
        "public.parents", (P_ID, P_NAME), ("id",), (("id",),), "default", ("id",), (), 0, 0, True
    )
    documents = _NoDocuments()
    oracle = DualWriteOracle(
        COLLECTIONS,
        SourceInfo(server, {"public.parents": table}),
        documents,  # type: ignore[arg-type]
        EventBus(events),
        grace=60.0,
        unchanged=UNCHANGED,
        capacity=2,
    )
    for i in range(3):
        oracle.change("public.parents", None, {"id": i, "name": "n"}, "insert")
        oracle.commit(f"0/{i + 1}", 0.0)  # never blocks, although nothing drains the queue
    assert oracle.counts.skipped == 1
    notices = [n.message for n in events.of(Notice)]
    assert len(notices) == 1 and "queue is full" in notices[0]

    # A transaction larger than the whole queue cannot be checked, and is named.
    for i in range(3):
        oracle.change("public.parents", {"id": 10 + i}, None, "delete")
    oracle.commit("0/A", 0.0)
    assert oracle.counts.skipped == 4
    assert "0/A touches more than 2 documents" in events.of(Notice)[-1].message

    counts = oracle.close(drain=False)
    assert counts.skipped == 6 and counts.transactions == 4 and counts.checked == 0
    assert documents.closed
    [summary] = events.of(DualWriteSummary)
    assert summary.skipped == 6 and summary.pending == 0


def test_apply_can_be_switched_on_a_live_run() -> None:
    """The run's plan digest ignores cdc.apply: a run resumes with it switched either way (and
    plans written before the setting existed keep their digest)."""
    text = (Path(__file__).parents[1] / "plans" / "valid" / "minimal.yaml").read_text()
    plain = parse_plan(text, env={})
    oracle = parse_plan(text + "phases: {cdc: {apply: false}}\n", env={})
    batches = parse_plan(text + "phases: {cdc: {batch_changes: 10}}\n", env={})
    assert not oracle.phases.cdc.apply and plain.phases.cdc.apply
    assert plan_digest(oracle) == plan_digest(plain) == plan_digest(batches)  # settings, not the mapping
