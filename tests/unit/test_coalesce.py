"""What adapters/coalesce.py merges, keeps apart and reorders (the effect on a real server is
checked in tests/integration/test_coalesce_live.py)."""

from __future__ import annotations

from migrator.adapters.base import WriteOp
from migrator.adapters.coalesce import coalesce


def element_set(parent: int, child: int, **fields: object) -> WriteOp:
    return WriteOp(
        "orders",
        "update",
        {"_id": parent},
        {"$set": {f"lines.$[e].{k}": v for k, v in fields.items()}},
        ({"e.id": child},),
    )


def test_element_sets_of_one_parent_become_one_update() -> None:
    ops = [element_set(1, c, qty=c * 10) for c in (1, 2, 3)]
    [merged] = coalesce(ops)
    assert merged.filter == {"_id": 1}
    assert merged.update == {"$set": {"lines.$[f0].qty": 10, "lines.$[f1].qty": 20, "lines.$[f2].qty": 30}}
    assert merged.array_filters == ({"f0.id": 1}, {"f1.id": 2}, {"f2.id": 3})


def test_the_same_element_and_field_takes_the_later_value() -> None:
    ops = [element_set(1, 7, qty=1, note="a"), element_set(1, 7, qty=2)]
    [merged] = coalesce(ops)
    assert merged.update == {"$set": {"lines.$[f0].qty": 2, "lines.$[f0].note": "a"}}
    assert merged.array_filters == ({"f0.id": 7},)


def test_a_single_write_is_left_as_it_was() -> None:
    op = element_set(1, 2, qty=3)
    assert coalesce([op]) == [op]


def test_a_path_inside_another_keeps_the_writes_apart() -> None:
    whole = WriteOp("c", "update", {"_id": 1}, {"$set": {"address": {"city": "x"}}})
    part = WriteOp("c", "update", {"_id": 1}, {"$set": {"address.zip": "1"}})
    assert coalesce([whole, part]) == [whole, part]
    # An element replaced whole, and a field of maybe the same element: apart as well.
    one = WriteOp("c", "update", {"_id": 1}, {"$set": {"lines.$[p].detail": {}}}, ({"p.id": 1},))
    other = WriteOp("c", "update", {"_id": 1}, {"$set": {"lines.$[q].detail.x": 1}}, ({"q.id": 1},))
    assert coalesce([one, other]) == [one, other]


def test_elements_matched_by_other_fields_are_kept_apart() -> None:
    by_id = element_set(1, 1, qty=1)
    by_sku = WriteOp("orders", "update", {"_id": 1}, {"$set": {"lines.$[e].qty": 2}}, ({"e.sku": "a"},))
    assert coalesce([by_id, by_sku]) == [by_id, by_sku]


def test_values_of_other_types_are_other_elements() -> None:
    # 1 and True are equal in Python, not to MongoDB: two identifiers, not one.
    [merged] = coalesce([element_set(1, 1, qty=1), element_set(1, True, qty=2)])  # type: ignore[arg-type]
    assert merged.array_filters == ({"f0.id": 1}, {"f1.id": True})


def test_writes_of_one_document_keep_their_order_and_only_neighbours_merge() -> None:
    push = WriteOp("orders", "update", {"_id": 1}, {"$push": {"lines": {"$each": [{"id": 9}]}}})
    ops = [element_set(1, 1, qty=1), push, element_set(1, 2, qty=2), element_set(1, 3, qty=3)]
    out = coalesce(ops)
    assert out[:2] == ops[:2]
    assert len(out) == 3 and out[2].array_filters == ({"f0.id": 2}, {"f1.id": 3})


def test_documents_are_gathered_by_collection_between_barriers() -> None:
    a1, b1, a2 = element_set(1, 1, qty=1), element_set(2, 5, qty=1), element_set(1, 2, qty=2)
    other = WriteOp("stock", "update", {"_id": "x"}, {"$set": {"n": 1}})
    barrier = WriteOp("orders", "update_many", {"lines.id": 3}, {"$pull": {"lines": {"id": 3}}})
    after = element_set(1, 4, qty=4)
    out = coalesce([a1, other, b1, a2, barrier, after])
    assert [(o.collection, o.filter) for o in out] == [
        ("orders", {"_id": 1}),
        ("orders", {"_id": 2}),
        ("stock", {"_id": "x"}),
        ("orders", {"lines.id": 3}),
        ("orders", {"_id": 1}),
    ]
    assert out[0].array_filters == ({"f0.id": 1}, {"f1.id": 2})
    assert out[3] is barrier and out[4] is after


def test_writes_it_does_not_understand_stay_as_they_are() -> None:
    upsert = WriteOp("c", "update", {"_id": 1}, {"$set": {"a": 1}}, upsert=True)
    every = WriteOp("c", "update", {"_id": 1}, {"$set": {"lines.$[].a": 1}})
    operator = WriteOp("c", "update", {"_id": 1}, {"$set": {"lines.$[e].a": 1}}, ({"e.n": {"$gt": 1}},))
    plain = WriteOp("c", "update", {"_id": 1}, {"$set": {"b": 1}})
    for op in (upsert, every, operator):
        assert coalesce([op, plain]) == [op, plain]
    # A filter that is not _id alone is a barrier, and an unhashable _id is never regrouped.
    by_field = WriteOp("c", "update", {"_id": 1, "v": 2}, {"$set": {"b": 1}})
    assert coalesce([plain, by_field, plain]) == [plain, by_field, plain]
    odd = WriteOp("c", "update", {"_id": {1, 2}}, {"$set": {"b": 1}})  # type: ignore[arg-type]
    assert coalesce([plain, odd, plain]) == [plain, odd, plain]
