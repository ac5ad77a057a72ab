"""Conformance (issue 15): a value of every type both sources map, at the root and in embedded
elements, from every source adapter; the snapshot and CDC (inserts and an update) give the
identical document for the same row; a later run applies only what came after the checkpoint.

The expected documents come from the source's rows read back with its own driver and converted as
docs/plan.md's type tables say (tests/support/portable_types.py), compared down to BSON types and key
order; never from migrator's mapping.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.support.compare import assert_documents
from tests.support.conformance import Case
from tests.support.docs import typed
from tests.support.portable_types import NAMES, ROWS, fields, row, select, table_ddl
from tests.support.sources import SourceDb

COLLECTIONS = """
- name: things
  from: {things}
  key: id
  embed: [{{as: parts, from: {parts}, on: {{things_id: id}}, key: id}}]
"""

# Thing k's parts: 10k + j holds ROWS[j]; thing 1 has all of them, thing 2 one, thing 3 none.
PARTS = {1: (0, 1, 2), 2: (0,), 3: ()}
CDC = 100  # the copies CDC inserts: thing 100 + k, parts 100 + 10k + j


def _insert(source: SourceDb, offset: int) -> None:
    source.insert("things", [row(offset + k, ROWS[k - 1]) for k in PARTS])
    parts = [row(offset + 10 * k + j, ROWS[j], offset + k) for k, js in PARTS.items() for j in js]
    source.insert("parts", parts)


def _expected(source: SourceDb) -> list[dict[str, Any]]:
    parts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in source.records(select("parts", "id", "things_id")):
        parts[record["things_id"]].append({"id": record["id"], **fields(record)})
    return [
        {"_id": record["id"], **fields(record), "parts": parts.get(record["id"], [])}
        for record in source.records(select("things", "id"))
    ]


def _content(document: dict[str, Any]) -> Any:
    """A document without its keys (_id, the elements' ids): what two copies of a row share."""
    body = {k: v for k, v in document.items() if k != "_id"}
    body["parts"] = [{k: v for k, v in part.items() if k != "id"} for part in body["parts"]]
    return typed(body)


def test_every_type_reads_the_same_from_the_snapshot_and_from_cdc(case: Case) -> None:
    source = case.source
    source.sql(table_ddl(source.types, "things"), table_ddl(source.types, "parts", parent="things"))
    _insert(source, 0)
    plan = case.plan("conformance-types", COLLECTIONS, ("things", "parts"))
    case.run(plan, "snapshot")
    assert_documents(case.target, "things", _expected(source))
    snapshot = case.target.by_id("things")

    _insert(source, CDC)  # the same values again, through CDC
    source.update("things", 3, dict(zip(NAMES, ROWS[0], strict=True)))  # NULLs to values: an update
    outcome = case.run(plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(case.target, "things", _expected(source))

    docs = case.target.by_id("things")
    for k in PARTS:  # the same row, copied by the snapshot and inserted through CDC
        assert _content(docs[CDC + k]) == _content(snapshot[k])
    # Row 3 updated through CDC to row 1's values: the fields of row 1's snapshot.
    assert typed({n: docs[3][n] for n in NAMES}) == typed({n: snapshot[1][n] for n in NAMES})
    # Spot checks on top of the full comparison, so that a failure says what went wrong.
    assert [p["id"] for p in docs[CDC + 1]["parts"]] == [CDC + 10, CDC + 11, CDC + 12]
    assert all(docs[CDC + 3][name] is None for name in NAMES)

    # A later run resumes from the target's checkpoint: only what came after is applied.
    source.update("things", 2, {"c_text": "again"})
    again = case.run(plan).outcome
    assert again is not None and again.cdc is not None and again.cdc.changes == 1
    assert case.target.by_id("things")[2]["c_text"] == "again"
