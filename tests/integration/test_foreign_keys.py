"""Foreign keys as preflight shows them and as CDC relies on them (issue 17, runbook/preflight).

A foreign key from the children's link to their parent lets CDC skip reading a new parent's
children from the source, since children can precede their parent only inside one transaction.
That holds only for a key every row satisfies: one added NOT VALID leaves older orphans, which
a parent inserted later must still embed, as the snapshot would. Preflight names each key with
its schema and says whether it is enforced and validated.

Expected documents are built from plain SQL here, never with migrator's mapping code.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from migrator import api
from tests.support.compare import assert_equal_to_sql, records
from tests.support.docs import Migration
from tests.support.runs import run, transactions

# Every run a test left following stops before its database is dropped.
pytestmark = pytest.mark.usefixtures("stop_followers")

SCHEMA = (
    "CREATE SCHEMA shop",
    "CREATE TABLE shop.customers (id integer PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE shop.notes (id integer PRIMARY KEY, customer_id integer NOT NULL, body text)",
    "CREATE TABLE shop.tickets (id integer PRIMARY KEY, customer_id integer NOT NULL, subject text)",
    "INSERT INTO shop.customers VALUES (1, 'one')",
    "INSERT INTO shop.notes VALUES (1, 1, 'n1'), (2, 3, 'orphan for 3')",
    "INSERT INTO shop.tickets VALUES (1, 1, 't1')",
    # Added NOT VALID: checked for rows written from now on only; the orphan note stays.
    "ALTER TABLE shop.notes ADD CONSTRAINT notes_customer FOREIGN KEY (customer_id)"
    " REFERENCES shop.customers NOT VALID",
    "ALTER TABLE shop.tickets ADD CONSTRAINT tickets_customer FOREIGN KEY (customer_id) REFERENCES shop.customers",
)

PLAN = """
- name: customers
  from: shop.customers
  key: id
  embed:
    - {as: notes, from: shop.notes, on: {customer_id: id}}
    - {as: tickets, from: shop.tickets, on: {customer_id: id}}
"""


def expected(m: Migration) -> list[dict[str, Any]]:
    def by(query: str) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in records(m, query):
            out[r.pop("customer_id")].append(r)
        return out

    notes = by("SELECT id, customer_id, body FROM shop.notes ORDER BY id")
    tickets = by("SELECT id, customer_id, subject FROM shop.tickets ORDER BY id")
    return [
        {
            "_id": c["id"],
            "name": c["name"],
            "notes": notes.get(c["id"], []),
            "tickets": tickets.get(c["id"], []),
        }
        for c in records(m, "SELECT id, name FROM shop.customers")
    ]


def test_preflight_names_each_foreign_key_with_its_schema_and_whether_it_holds(mig: Migration) -> None:
    mig.sql(*SCHEMA)
    plan = mig.plan(PLAN, name="fk-shown")
    report = api.plan(plan, env=mig.env)
    said = {f.subject: f.message for f in report.findings if f.check == "mapping.embed_foreign_key"}
    assert "NOT VALID" in said["shop.notes(customer_id)"], said
    assert "notes_customer (customer_id) REFERENCES shop.customers (id)" in said["shop.notes(customer_id)"], (
        said
    )
    assert "reads a new parent's children from the source" in said["shop.notes(customer_id)"], said
    tickets = said["shop.tickets(customer_id)"]
    assert "tickets_customer (customer_id) REFERENCES shop.customers (id): enforced, validated" in tickets, (
        said
    )
    # The runbook lists them among the preflight findings, as preflight says them.
    runbook = api.runbook(plan, env=mig.env)
    assert "notes_customer (customer_id) REFERENCES shop.customers (id): NOT VALID" in runbook
    assert "tickets_customer (customer_id) REFERENCES shop.customers (id): enforced, validated" in runbook


def test_a_not_valid_foreign_key_is_not_relied_on_for_children_older_than_it(mig: Migration) -> None:
    mig.sql(*SCHEMA)
    plan = mig.plan(PLAN, name="fk-not-valid")
    run(mig, plan, "snapshot")
    assert_equal_to_sql(mig, "customers", expected(mig))
    transactions(
        mig,
        # The orphan note (older than the key) belongs to customer 3 once it exists.
        "INSERT INTO shop.customers VALUES (3, 'three')",
        # A validated key: a new customer's tickets come in its own transaction.
        ["INSERT INTO shop.customers VALUES (4, 'four')", "INSERT INTO shop.tickets VALUES (2, 4, 't2')"],
    )
    run(mig, plan)
    docs = {d["_id"]: d for d in mig.documents("customers")}
    assert [n["body"] for n in docs[3]["notes"]] == ["orphan for 3"], docs[3]
    assert_equal_to_sql(mig, "customers", expected(mig))
