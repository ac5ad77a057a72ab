"""Conformance (issue 15): `migrator verify` through the mapping while `migrator run` follows the
source, from every source adapter: a target kept in step is found equal although the source keeps
changing; differences made in the target (a field, an array element, a missing and an extra
document) are found, each named, and `--repair` fixes them, leaving the documents the source's
rows say (read back with its own driver).
"""

from __future__ import annotations

from migrator import api
from tests.support.compare import assert_documents
from tests.support.conformance import Case
from tests.support.customer_orders import COLLECTIONS, TABLES, documents, setup

CUSTOMERS = 30

# Changes made while verify runs; they touch customers 20 and up, the differences 1 to 4.
CHANGES = (
    "UPDATE customers SET name = 'renamed' WHERE id = 20",
    ["INSERT INTO customers VALUES (31, 'c31')", "INSERT INTO orders VALUES (310, 31, 1.00)"],
    "UPDATE orders SET customer_id = 22 WHERE id = 210",  # an order moves
    "DELETE FROM orders WHERE id = 231",
)


def test_verify_while_cdc_follows_finds_injected_differences_and_repairs_them(case: Case) -> None:
    source = case.source
    source.sql(*setup(CUSTOMERS, 3))
    plan = case.plan(
        "conformance-verify",
        COLLECTIONS,
        TABLES,
        phases="cdc: {heartbeat_interval: 1s}\nverify: {chunk_rows: 10}",
    )
    case.run(plan, "snapshot")
    follower = case.follow(plan)  # follows until stopped
    source.transactions(*CHANGES)

    clean = api.verify(plan, state=case.state, env={})
    assert clean.equal and clean.verdict == "equal", clean.to_dict()
    assert clean.totals.checked == CUSTOMERS + 1

    customers = case.target.client[case.target.database]["customers"]
    customers.update_one({"_id": 1}, {"$set": {"name": "someone else"}})  # a field
    customers.update_one({"_id": 2}, {"$pop": {"orders": 1}})  # an array element gone
    customers.delete_one({"_id": 3})  # a document missing
    customers.insert_one({"_id": 1000, "name": "ghost", "orders": []})  # a document extra

    found = api.verify(plan, state=case.state, env={})
    assert found.verdict == "different", found.to_dict()
    totals = found.totals
    assert (totals.mismatched, totals.missing, totals.extra) == (2, 1, 1), found.to_dict()
    assert sorted(m.id for m in found.mismatches) == [1, 2, 3, 1000]

    repaired = api.verify(plan, repair=True, state=case.state, env={})
    assert repaired.totals.repaired == 4, repaired.to_dict()
    again = api.verify(plan, state=case.state, env={})
    assert again.equal, again.to_dict()
    follower.finish()
    assert_documents(case.target, "customers", documents(source))
