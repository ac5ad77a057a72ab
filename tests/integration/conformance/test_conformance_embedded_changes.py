"""Conformance (issue 15): embedded children under live changes, from every source adapter.

The shop scenario (tests/support/embedded_scenario.py): customers with their orders embedded (each
with its items) and a 1:1 profile; after the snapshot, inserts, updates and deletes on every level,
children moving between parents (a middle level carrying its grandchildren, there and back), key
changes of a root and of an element, a tree inserted in one transaction. The snapshot and the
caught-up target are compared with documents built from the source's rows read back with its own
driver, down to BSON types and key order.
"""

from __future__ import annotations

from tests.support.compare import assert_documents
from tests.support.conformance import Case
from tests.support.embedded_scenario import CHANGES, COLLECTIONS, SETUP, TABLES, documents


def test_embedded_children_move_between_parents_under_live_changes(case: Case) -> None:
    source = case.source
    source.sql(*SETUP)
    plan = case.plan("conformance-embedded", COLLECTIONS, TABLES)
    case.run(plan, "snapshot")
    assert_documents(case.target, "customers", documents(source.records))  # the snapshot itself
    source.transactions(*CHANGES)
    outcome = case.run(plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert outcome.cdc.changes >= len(CHANGES)
    assert_documents(case.target, "customers", documents(source.records))
    # Spot checks on top of the full comparison, so that a failure says what went wrong.
    docs = case.target.by_id("customers")
    assert [o["id"] for o in docs[1]["orders"]] == [102, 106]
    assert [o["id"] for o in docs[2]["orders"]] == [101, 201]
    assert [o["id"] for o in docs[1]["orders"][0]["items"]] == [1022, 1023]
    assert [i["id"] for i in docs[2]["orders"][0]["items"]] == [1011, 1013]  # 1012 moved to 201
    assert docs[2]["orders"][0]["items"][0]["qty"] == 99
    assert [i["id"] for i in docs[2]["orders"][1]["items"]] == [1012]
    assert [i["id"] for i in docs[3]["orders"][0]["items"]] == [1021, 3011]
    assert docs[4]["orders"][0]["id"] == 401 and docs[4]["profile"] == {"id": 3, "bio": "bio3"}
    assert docs[2]["profile"] is None and docs[3]["profile"] is None
    assert 6 not in docs and docs[7]["orders"][0]["items"][0]["id"] == 7011
    assert 5 not in docs and docs[55] == {"_id": 55, "name": "c5-renamed", "orders": [], "profile": None}
