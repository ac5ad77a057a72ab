"""Document comparison for verify (pure): BSON-exact equality, canonical field order, explanations,
and the CLI's rendering of a report."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal
from typing import Any

import bson
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from rich.console import Console

from migrator.adapters.mongodb.codec import CODEC
from migrator.cli.progress import VerifyTicker
from migrator.cli.render import render_verify
from migrator.engine.events import VerifyProgress
from migrator.mapping import compare


def raw(doc: dict[str, Any]) -> bytes:
    return bson.encode(doc, codec_options=CODEC)


def test_field_order_does_not_matter_but_types_and_array_order_do() -> None:
    a = raw({"_id": Int64(1), "x": 1, "y": {"p": 1, "q": 2}})
    b = raw({"y": {"q": 2, "p": 1}, "x": 1, "_id": Int64(1)})
    assert a != b and compare.equal(a, b)
    assert not compare.equal(raw({"_id": 1, "n": Int64(5)}), raw({"_id": 1, "n": 5}))  # int64 vs int32
    assert not compare.equal(raw({"_id": 1, "p": Decimal("1.5")}), raw({"_id": 1, "p": 1.5}))
    assert not compare.equal(raw({"_id": 1, "a": [1, 2]}), raw({"_id": 1, "a": [2, 1]}))


def test_digest_ignores_document_order_and_field_order() -> None:
    docs = [raw({"_id": i, "v": i * 2, "w": "x"}) for i in range(5)]
    shuffled = [raw({"w": "x", "v": i * 2, "_id": i}) for i in reversed(range(5))]
    assert compare.digest(docs) == compare.digest(shuffled)
    assert compare.digest(docs) != compare.digest([*docs[:4], raw({"_id": 4, "v": 9, "w": "x"})])


def test_explain_names_paths_kinds_and_bson_types() -> None:
    when = datetime.datetime(2024, 1, 1, 7, 0, 0, 123000, tzinfo=datetime.UTC)
    expected = {
        "_id": Int64(1),
        "price": Decimal128("1.50"),
        "count": Int64(3),
        "at": when,
        "orders": [{"id": Int64(1), "qty": 1}, {"id": Int64(2), "qty": 2}, {"id": Int64(3), "qty": 3}],
        "tags": ["a", "b"],
        "gone": "x",
    }
    actual = {
        "_id": Int64(1),
        "price": 1.5,
        "count": Int64(4),
        "at": when + datetime.timedelta(milliseconds=1),
        "orders": [{"id": Int64(1), "qty": 1}, {"id": Int64(2), "qty": 20}],
        "tags": ["b", "a"],
        "new": True,
    }
    diffs = {(d.path, d.kind): d for d in compare.explain(expected, actual)}
    assert set(diffs) == {
        ("price", "type"),
        ("count", "changed"),
        ("at", "changed"),
        ("orders.1.qty", "changed"),
        ("orders.2", "missing"),
        ("tags", "order"),
        ("gone", "missing"),
        ("new", "extra"),
    }
    assert diffs[("price", "type")].source == "decimal Decimal128('1.50')"
    assert diffs[("price", "type")].target == "double 1.5"
    assert diffs[("count", "changed")].source == "int64 3" and diffs[("count", "changed")].target == "int64 4"
    assert diffs[("at", "changed")].target == "date 2024-01-01T07:00:00.124+00:00"
    assert diffs[("orders.2", "missing")].source.startswith("document {") and '"qty": 3' in (
        diffs[("orders.2", "missing")].source
    )
    assert diffs[("new", "extra")].source == "" and diffs[("new", "extra")].target == "True"


def test_explain_of_equal_documents_is_empty_and_long_lists_are_capped() -> None:
    doc = {"_id": 1, "a": [1, 2, 3]}
    assert compare.explain(doc, dict(doc)) == []
    many = compare.explain({f"f{i}": i for i in range(50)}, {f"f{i}": -i - 1 for i in range(50)})
    assert len(many) == compare.MAX_DIFFS_PER_DOCUMENT


def report(verdict: str, mismatches: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {
        "checked": 10,
        "equal": 9,
        "mismatched": 1,
        "missing": 0,
        "extra": 0,
        "unsettled": 0,
        "repaired": 0,
    }
    return {
        "plan": "shop",
        "mode": "full",
        "verdict": verdict,
        "score": 0.9,
        "seconds": 1.5,
        **counts,
        "collections": {"customers": counts},
        "mismatches": mismatches,
        "verified_positions": {"first": "0/10", "last": "0/20"},
        "applied_position": "0/30",
    }


def test_report_rendering_names_document_field_values_and_verdict() -> None:
    out = io.StringIO()
    mismatch = {
        "collection": "customers",
        "id": 7,
        "kind": "mismatched",
        "position": "0/18",
        "diffs": [{"path": "name", "kind": "changed", "source": "'Ann'", "target": "'Bob'"}],
    }
    render_verify(Console(file=out, width=120), report("different", [mismatch]))
    text = out.getvalue()
    assert "customers _id 7: mismatched (source read at 0/18)" in text
    assert "name (changed): source 'Ann', target 'Bob'" in text
    assert "DIFFERENT: score 0.900000 (9 of 10 equal)" in text and "0/10 .. 0/20" in text


def test_verify_ticker_sums_ranges_on_stderr() -> None:
    out = io.StringIO()
    ticker = VerifyTicker(Console(file=out, width=200), every_s=0.0)
    ticker.emit(VerifyProgress("customers", "0/10", checked=100, equal=98, differing=2))
    ticker.emit(VerifyProgress("customers", "0/20", checked=50, equal=50, differing=0))
    last = out.getvalue().strip().splitlines()[-1]
    assert "2 ranges, 150 documents compared, 148 equal at first look, 2 rechecked" in last
    assert "0/20" in last
