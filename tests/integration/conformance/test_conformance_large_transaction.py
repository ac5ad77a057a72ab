"""Conformance (issue 15): one source transaction larger than CDC's batch bound (the plan's
phases.cdc.batch_changes, lowered here so that a small scenario outgrows it many times), from
every source adapter: inserts, updates, moves between parents, deletes and a new parent, applied
completely, in parts of at most the bound, and checkpointed only at its commit (docs/cdc.md "CDC
replay": a crash between parts replays the transaction whole).

The expected documents come from the source's rows read back with its own driver.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson.decimal128 import Decimal128

from migrator.adapters.mongodb.applier import ChangeApplier
from tests.support.compare import assert_documents, group
from tests.support.conformance import Case
from tests.support.sources import SourceDb

SETUP = (
    "CREATE TABLE accounts (id integer PRIMARY KEY, name varchar(40) NOT NULL)",
    "CREATE TABLE entries (id integer PRIMARY KEY, account_id integer NOT NULL REFERENCES accounts (id),"
    " amount decimal(10,2) NOT NULL, note varchar(40))",
)
ACCOUNTS = 40
ENTRIES = 80  # before the big transaction: ids 1-80, two per account
BATCH = 100  # phases.cdc.batch_changes
BIG = 500  # rows the big transaction inserts (ids 1001-1500)
NEW = ACCOUNTS + 1  # the account the big transaction opens

COLLECTIONS = """
- name: accounts
  from: {accounts}
  key: id
  embed: [{{as: entries, from: {entries}, on: {{account_id: id}}, key: id, order_by: id}}]
"""


def _values(rows: list[tuple[int, int, str, str]]) -> str:
    return ", ".join(f"({i}, {a}, {amount}, '{note}')" for i, a, amount, note in rows)


def _big_transaction() -> list[str]:
    new = [(1000 + i, i % ACCOUNTS + 1, f"{i % 997}.{i % 100:02d}", f"big {i}") for i in range(1, BIG + 1)]
    inserts = [f"INSERT INTO entries VALUES {_values(new[i : i + 250])}" for i in range(0, BIG, 250)]
    return [
        *inserts,
        "UPDATE entries SET amount = amount + 1 WHERE id <= 50",  # before-snapshot rows
        "UPDATE entries SET note = 'changed twice' WHERE id BETWEEN 1001 AND 1100",  # its own rows
        "UPDATE entries SET account_id = 1 WHERE id BETWEEN 1200 AND 1260",  # moves between parents
        "DELETE FROM entries WHERE id BETWEEN 51 AND 60 OR id BETWEEN 1451 AND 1500",
        f"INSERT INTO accounts VALUES ({NEW}, 'opened in the big one')",
        f"UPDATE entries SET account_id = {NEW} WHERE id BETWEEN 1300 AND 1309",
    ]


def _expected(source: SourceDb) -> list[dict[str, Any]]:
    entries = group(
        source.records("SELECT id, account_id, amount, note FROM entries ORDER BY id"),
        "account_id",
        ("account_id",),
    )
    for elements in entries.values():
        for entry in elements:
            entry["amount"] = Decimal128(entry["amount"])
    return [
        {"_id": a["id"], "name": a["name"], "entries": entries.get(a["id"], [])}
        for a in source.records("SELECT id, name FROM accounts")
    ]


class Applies:
    """Each target apply of CDC: its writes, and whether it carried a checkpoint."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, bool]] = []
        original = ChangeApplier.apply

        def apply(applier: ChangeApplier, ops: Any, position: Any, *args: Any, **kwargs: Any) -> None:
            original(applier, ops, position, *args, **kwargs)
            self.calls.append((len(ops), position is not None))

        monkeypatch.setattr(ChangeApplier, "apply", apply)

    def parts(self) -> list[int]:
        """The writes of the longest run of applies without a checkpoint, and of the apply with
        the checkpoint that ends it."""
        best: list[int] = []
        run: list[int] = []
        for writes, checkpoint in self.calls:
            run.append(writes)
            if checkpoint:
                best = max(best, run, key=len)
                run = []
        return best


def test_a_transaction_larger_than_a_batch_is_applied_whole_and_checkpointed_at_its_commit(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = case.source
    source.sql(
        *SETUP,
        "INSERT INTO accounts VALUES " + ", ".join(f"({i}, 'account {i}')" for i in range(1, ACCOUNTS + 1)),
        "INSERT INTO entries VALUES "
        + _values([(i, i % ACCOUNTS + 1, f"{i}.50", f"e{i}") for i in range(1, ENTRIES + 1)]),
    )
    plan = case.plan(
        "conformance-large", COLLECTIONS, ("accounts", "entries"), phases=f"cdc: {{batch_changes: {BATCH}}}"
    )
    case.run(plan, "snapshot")
    assert_documents(case.target, "accounts", _expected(source))

    applies = Applies(monkeypatch)
    source.transactions(_big_transaction(), "UPDATE accounts SET name = 'after' WHERE id = 2")
    outcome = case.run(plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert outcome.cdc.changes >= BIG + 250  # MySQL logs no row an UPDATE leaves as it was
    assert_documents(case.target, "accounts", _expected(source))

    # Applied in parts of about the bound (a change that passes it goes whole); only the part at its commit carries the checkpoint.
    parts = applies.parts()
    assert len(parts) > BIG // BATCH, applies.calls
    assert all(writes < 2 * BATCH for writes in parts), applies.calls  # a change may add several
    assert sum(parts) >= BIG, applies.calls
    docs = case.target.by_id("accounts")
    assert docs[NEW]["name"] == "opened in the big one" and len(docs[NEW]["entries"]) == 10
    assert {1200, 1230, 1260} <= {e["id"] for e in docs[1]["entries"]}
    assert not {51, 1451, 1500} & {e["id"] for doc in docs.values() for e in doc["entries"]}
