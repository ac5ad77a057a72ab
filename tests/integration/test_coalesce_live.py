"""Merged writes have the effect of the writes one by one, on a real server.

Random batches of the writes CDC makes (element and nested-element `$set`s, elements found by their key or another field, whole sub-documents
and fields inside them, pushes, pulls, deletes, upserting inserts, and multi-document pulls
as barriers) go to two collections that start equal: one write at a time to the first, through
ChangeApplier (which coalesces) to the second. Both must end equal, batch after batch, and
the applier must have sent fewer writes than it was given.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pymongo import DeleteOne, ReplaceOne, UpdateMany, UpdateOne

from migrator.adapters.base import WriteOp
from migrator.adapters.coalesce import coalesce
from migrator.adapters.mongodb.applier import ChangeApplier

DOCS = 6
LINES = 5


@pytest.fixture
def db(mongo_db: Any) -> Any:
    """This module's name for the test's database."""
    return mongo_db


def document(doc_id: int) -> dict[str, Any]:
    return {
        "_id": doc_id,
        "name": f"doc {doc_id}",
        "total": 0,
        "lines": [
            {
                "id": doc_id * 10 + n,
                "qty": n,
                "rank": n,
                "note": "",
                "detail": {"x": 0, "y": 0},
                "parts": [{"id": k, "n": 0} for k in range(3)],
            }
            for n in range(LINES)
        ],
    }


def random_write(rng: random.Random, step: int) -> WriteOp:
    doc_id = rng.randint(1, DOCS)
    line = doc_id * 10 + rng.randrange(LINES + 1)  # now and then an element that is not there
    kind = rng.choices(
        [
            "root",
            "element",
            "by_rank",
            "nested",
            "detail",
            "detail_field",
            "push",
            "pull",
            "delete",
            "insert",
            "barrier",
        ],
        weights=[10, 30, 6, 15, 5, 8, 4, 4, 1, 2, 1],
    )[0]
    one = {"_id": doc_id}
    if kind == "root":
        fields = rng.sample(["name", "total"], rng.randint(1, 2))
        return WriteOp("c", "update", one, {"$set": {f: f"{f} {step}" for f in fields}})
    if kind == "element":
        fields = rng.sample(["qty", "note"], rng.randint(1, 2))
        return WriteOp(
            "c", "update", one, {"$set": {f"lines.$[e].{f}": step for f in fields}}, ({"e.id": line},)
        )
    if kind == "by_rank":  # elements found by another field than their key
        return WriteOp(
            "c", "update", one, {"$set": {"lines.$[e].note": step}}, ({"e.rank": rng.randrange(LINES)},)
        )
    if kind == "nested":
        return WriteOp(
            "c",
            "update",
            one,
            {"$set": {"lines.$[p0].parts.$[e].n": step}},
            ({"p0.id": line}, {"e.id": rng.randrange(4)}),
        )
    if kind == "detail":
        return WriteOp(
            "c", "update", one, {"$set": {"lines.$[e].detail": {"x": step, "y": -step}}}, ({"e.id": line},)
        )
    if kind == "detail_field":
        return WriteOp("c", "update", one, {"$set": {"lines.$[e].detail.x": step}}, ({"e.id": line},))
    if kind == "push":
        element = {"id": line, "qty": step, "note": "pushed", "detail": {"x": 1, "y": 1}, "parts": []}
        return WriteOp("c", "update", one, {"$push": {"lines": {"$each": [element], "$sort": {"id": 1}}}})
    if kind == "pull":
        return WriteOp("c", "update", one, {"$pull": {"lines": {"id": line}}})
    if kind == "delete":
        return WriteOp("c", "delete", one)
    if kind == "insert" and rng.random() < 0.5:
        return WriteOp("c", "replace", one, document(doc_id), upsert=True)
    if kind == "insert":
        shape = {k: {"$literal": v} for k, v in document(doc_id).items()}
        return WriteOp(
            "c", "update", one, [{"$replaceWith": {"$mergeObjects": [shape, "$$ROOT"]}}], upsert=True
        )
    return WriteOp("c", "update_many", {"lines.id": line}, {"$pull": {"lines": {"id": line}}})


def one_by_one(coll: Any, op: WriteOp) -> None:
    filters = list(op.array_filters) or None
    if op.kind == "update":
        coll.bulk_write([UpdateOne(op.filter, op.update, upsert=op.upsert, array_filters=filters)])
    elif op.kind == "replace":
        coll.bulk_write([ReplaceOne(op.filter, op.update, upsert=True)])
    elif op.kind == "update_many":
        coll.bulk_write([UpdateMany(op.filter, op.update, array_filters=filters)])
    else:
        coll.bulk_write([DeleteOne(op.filter)])


def test_merged_writes_end_as_the_writes_one_by_one(db: Any) -> None:
    rng = random.Random(20261127)
    seq, merged = db["seq"], db["c"]
    for coll in (seq, merged):
        coll.insert_many([document(i) for i in range(1, DOCS + 1)])
    applier = ChangeApplier(db, "test-coalesce", transactions=True)
    given = sent = 0
    for batch_number in range(60):
        ops = [random_write(rng, batch_number * 100 + i) for i in range(rng.randint(1, 40))]
        for op in ops:
            one_by_one(seq, op)
        applier.apply(ops, position=batch_number + 1, position_text=str(batch_number + 1))
        given, sent = given + len(ops), sent + len(coalesce(ops))
        expected = list(seq.find({}, sort=[("_id", 1)]))
        assert list(merged.find({}, sort=[("_id", 1)])) == expected, f"batch {batch_number}: {ops}"
    # The comparison above means something only if writes were merged, and some were not.
    assert sent < given * 0.8, (sent, given)
    assert sent > given * 0.2, (sent, given)
