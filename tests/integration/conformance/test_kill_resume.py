"""Conformance (issue 15): `migrator run` killed with SIGKILL while CDC applies a backlog (small
transactions, children moving between parents, one transaction larger than a batch), from every
source adapter; the next run resumes the same run from the target's checkpoint and ends with the
documents the source's rows say (read back with its own driver), nothing lost, nothing twice.
"""

from __future__ import annotations

from typing import Any

from bson.decimal128 import Decimal128

from migrator.state import SQLiteStateStore
from tests.support.compare import assert_documents, group
from tests.support.conformance import Case
from tests.support.sources import SourceDb

CUSTOMERS = 20
BATCH = 20  # phases.cdc.batch_changes: the backlog takes many batches

SETUP = (
    "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(40) NOT NULL)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers (id),"
    " total decimal(10,2) NOT NULL)",
    "INSERT INTO customers VALUES " + ", ".join(f"({i}, 'c{i}')" for i in range(1, CUSTOMERS + 1)),
    "INSERT INTO orders VALUES "
    + ", ".join(f"({10 * i + j}, {i}, {i}.{j}0)" for i in range(1, CUSTOMERS + 1) for j in range(2)),
)

COLLECTIONS = """
- name: customers
  from: {customers}
  key: id
  embed: [{{as: orders, from: {orders}, on: {{customer_id: id}}, key: id, order_by: id}}]
"""


def _backlog() -> list[list[str] | str]:
    """What the killed process has to apply: renames, moves, inserts, deletes, and one transaction
    of 150 inserts (more than a batch)."""
    txns: list[list[str] | str] = []
    for i in range(1, CUSTOMERS + 1):
        txns.append(f"UPDATE customers SET name = 'renamed {i}' WHERE id = {i}")
        txns.append(f"UPDATE orders SET customer_id = {i % CUSTOMERS + 1} WHERE id = {10 * i}")  # a move
        txns.append(
            [
                f"INSERT INTO orders VALUES ({1000 + i}, {i}, 9.99)",
                f"DELETE FROM orders WHERE id = {10 * i + 1}",
            ]
        )
    rows = ", ".join(f"({2000 + k}, {k % CUSTOMERS + 1}, {k}.25)" for k in range(150))
    txns.append([f"INSERT INTO orders VALUES {rows}", "UPDATE orders SET total = total + 1 WHERE id < 1000"])
    return txns


AFTER = (  # made while no process runs
    "UPDATE customers SET name = 'after the kill' WHERE id = 1",
    "UPDATE orders SET customer_id = 2 WHERE id = 2000",
)


def _expected(source: SourceDb) -> list[dict[str, Any]]:
    orders = group(source.records("SELECT id, customer_id, total FROM orders ORDER BY id"), "customer_id")
    return [
        {
            "_id": c["id"],
            "name": c["name"],
            "orders": [{"id": o["id"], "total": Decimal128(o["total"])} for o in orders.get(c["id"], [])],
        }
        for c in source.records("SELECT id, name FROM customers")
    ]


def test_killed_during_cdc_resumes_to_the_documents_of_the_source(case: Case) -> None:
    source = case.source
    source.sql(*SETUP)
    plan = case.plan(
        "conformance-kill",
        COLLECTIONS,
        ("customers", "orders"),
        phases=f"cdc: {{heartbeat_interval: 1s, batch_changes: {BATCH}}}",
    )
    case.run(plan, "snapshot")
    backlog = _backlog()
    source.transactions(*backlog)
    process = case.process(plan)  # follows until killed
    process.wait_for("cdc.batch_applied")
    case.kill9(process)  # with most of the backlog still to apply
    source.transactions(*AFTER)

    outcome = case.run(plan).outcome
    assert outcome is not None and outcome.resumed
    assert outcome.cdc is not None and outcome.cdc.caught_up
    assert outcome.cdc.transactions > len(AFTER)  # the killed process left part of the backlog
    assert_documents(case.target, "customers", _expected(source))
    with SQLiteStateStore(case.state) as store:
        assert len(store.runs()) == 1  # the same run, resumed
