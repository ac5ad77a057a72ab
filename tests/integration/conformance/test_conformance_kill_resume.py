"""Conformance (issue 15): `migrator run` killed with SIGKILL while CDC applies a backlog (small
transactions, children moving between parents, one transaction larger than a batch), from every
source adapter; the next run resumes the same run from the target's checkpoint and ends with the
documents the source's rows say (read back with its own driver), nothing lost, nothing twice.
"""

from __future__ import annotations

from migrator.state import SQLiteStateStore
from tests.support.compare import assert_documents
from tests.support.conformance import Case
from tests.support.customer_orders import COLLECTIONS, TABLES, documents, setup

CUSTOMERS = 20
BATCH = 20  # phases.cdc.batch_changes: the backlog takes many batches


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


def test_killed_during_cdc_resumes_to_the_documents_of_the_source(case: Case) -> None:
    source = case.source
    source.sql(*setup(CUSTOMERS, 2))
    plan = case.plan(
        "conformance-kill",
        COLLECTIONS,
        TABLES,
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
    assert_documents(case.target, "customers", documents(source))
    with SQLiteStateStore(case.state) as store:
        assert len(store.runs()) == 1  # the same run, resumed
