"""CDC of partitioned tables against real servers.

The publication publishes a partitioned table with `publish_via_partition_root = false`
(PostgreSQL's default for `FOR TABLE root`), so every change arrives under its leaf partition,
with that leaf's own column order and replica identity (docs/architecture.md, "Partitioned
tables"). Expected documents are built from plain SQL on the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.errors import TerminalError
from tests.support.compare import assert_documents, group, records
from tests.support.docs import Migration
from tests.support.runs import follow, run, transactions, wait_for

pytestmark = pytest.mark.usefixtures("stop_followers")

# accounts: a partitioned root with embedded notes, which have embedded marks. accounts_us has
# its columns in another order and a dropped column, as a table attached later may.
ACCOUNTS = (
    "CREATE TABLE accounts (id integer, region text, name text, PRIMARY KEY (id, region))"
    " PARTITION BY LIST (region)",
    "CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu')",
    "CREATE TABLE accounts_us (name text, gone integer, region text NOT NULL, id integer NOT NULL)",
    "ALTER TABLE accounts_us DROP COLUMN gone",
    "ALTER TABLE accounts ATTACH PARTITION accounts_us FOR VALUES IN ('us')",
    "CREATE TABLE notes (id integer PRIMARY KEY, account_id integer NOT NULL, region text NOT NULL, body text,"
    " FOREIGN KEY (account_id, region) REFERENCES accounts ON UPDATE CASCADE ON DELETE CASCADE)",
    "CREATE TABLE marks (id integer PRIMARY KEY, note_id integer NOT NULL REFERENCES notes ON DELETE CASCADE,"
    " label text)",
    "INSERT INTO accounts VALUES (1, 'eu', 'a1'), (2, 'eu', 'a2'), (3, 'us', 'a3'), (4, 'eu', 'a4')",
    "INSERT INTO notes VALUES (11, 1, 'eu', 'n11'), (21, 2, 'eu', 'n21'), (22, 2, 'eu', 'n22'),"
    " (31, 3, 'us', 'n31')",
    "INSERT INTO marks VALUES (211, 21, 'm211'), (212, 21, 'm212'), (221, 22, 'm221')",
)
ACCOUNTS_PLAN = """
- name: accounts
  from: accounts
  key: [id, region]
  embed:
    - as: notes
      from: notes
      on: {account_id: id, region: region}
      key: id
      embed: [{as: marks, from: marks, on: {note_id: id}, key: id}]
"""

# orders: a partitioned table embedded in shops, with embedded items of its own.
ORDERS = (
    "CREATE TABLE shops (id integer PRIMARY KEY, name text)",
    "CREATE TABLE orders (id integer, region text, shop_id integer NOT NULL REFERENCES shops, note text,"
    " PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
    "CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu')",
    "CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us')",
    "CREATE TABLE items (id integer PRIMARY KEY, order_id integer NOT NULL, order_region text NOT NULL,"
    " sku text, FOREIGN KEY (order_id, order_region) REFERENCES orders ON UPDATE CASCADE ON DELETE CASCADE)",
    "INSERT INTO shops VALUES (1, 's1'), (2, 's2')",
    "INSERT INTO orders VALUES (101, 'eu', 1, 'o101'), (102, 'us', 1, 'o102'), (201, 'eu', 2, 'o201')",
    "INSERT INTO items VALUES (1011, 101, 'eu', 'x'), (1012, 101, 'eu', 'y'), (2011, 201, 'eu', 'z')",
)
ORDERS_PLAN = """
- name: shops
  from: shops
  key: id
  embed:
    - as: orders
      from: orders
      on: {shop_id: id}
      key: [id, region]
      embed: [{as: items, from: items, on: {order_id: id, order_region: region}, key: id}]
"""


def accounts_expected(mig: Migration) -> list[dict[str, Any]]:
    marks = group(records(mig, "SELECT id, note_id, label FROM marks ORDER BY id"), "note_id", ("note_id",))
    notes: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for note in records(mig, "SELECT id, account_id, region, body FROM notes ORDER BY id"):
        element = {"id": note["id"], "body": note["body"], "marks": marks.get(note["id"], [])}
        notes.setdefault((note["account_id"], note["region"]), []).append(element)
    return [
        {
            "_id": {"id": a["id"], "region": a["region"]},
            "name": a["name"],
            "notes": notes.get((a["id"], a["region"]), []),
        }
        for a in records(mig, "SELECT id, region, name FROM accounts")
    ]


def shops_expected(mig: Migration) -> list[dict[str, Any]]:
    items: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for item in records(mig, "SELECT id, order_id, order_region, sku FROM items ORDER BY id"):
        items.setdefault((item["order_id"], item["order_region"]), []).append(
            {"id": item["id"], "sku": item["sku"]}
        )
    orders = group(
        records(mig, "SELECT id, region, shop_id, note FROM orders ORDER BY id, region"),
        "shop_id",
        ("shop_id",),
    )
    for elements in orders.values():
        for order in elements:
            order["items"] = items.get((order["id"], order["region"]), [])
    return [
        {"_id": s["id"], "name": s["name"], "orders": orders.get(s["id"], [])}
        for s in records(mig, "SELECT id, name FROM shops")
    ]


@pytest.fixture
def accounts(mig: Migration) -> Iterator[Path]:
    mig.sql(*ACCOUNTS)
    yield mig.plan(ACCOUNTS_PLAN, name="cdc-partitions")


def test_changes_of_leaf_partitions_are_changes_of_their_root(mig: Migration, accounts: Path) -> None:
    mig.sql(*ORDERS)
    plan = mig.plan(ACCOUNTS_PLAN + ORDERS_PLAN, name="cdc-partitions")
    run(mig, plan, "snapshot")
    assert_documents(mig, "accounts", accounts_expected(mig))
    transactions(
        mig,
        "INSERT INTO accounts VALUES (5, 'us', 'a5'), (6, 'eu', 'a6')",  # one into each leaf
        "INSERT INTO notes VALUES (51, 5, 'us', 'n51')",
        "UPDATE accounts SET name = 'a3-renamed' WHERE id = 3",  # accounts_us: its own column order
        "UPDATE accounts SET name = 'a1-renamed' WHERE id = 1",
        # A row moves to another partition with its notes and their marks (cascaded): the leaves
        # send a DELETE from accounts_eu and an INSERT into accounts_us.
        "UPDATE accounts SET region = 'us', name = 'a2-moved' WHERE id = 2",
        "INSERT INTO marks VALUES (213, 21, 'm213-after-the-move')",
        # Several rows move in one statement, there and back.
        "UPDATE accounts SET region = CASE region WHEN 'eu' THEN 'us' ELSE 'eu' END WHERE id IN (1, 3)",
        ["DELETE FROM accounts WHERE id = 4", "INSERT INTO accounts VALUES (4, 'us', 'a4-again')"],
        "DELETE FROM accounts WHERE id = 6",
        # A partitioned element with its own array moves to another partition, and another one in
        # the same parent changes.
        "UPDATE orders SET region = 'us', note = 'o101-moved' WHERE id = 101",
        "UPDATE orders SET note = 'o102-changed' WHERE id = 102",
        "INSERT INTO items VALUES (1013, 101, 'us', 'after-the-move')",
        "UPDATE orders SET shop_id = 1 WHERE id = 201",  # moves to another shop, same partition
        "DELETE FROM orders WHERE id = 102",
    )
    outcome = run(mig, plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "accounts", accounts_expected(mig))
    assert_documents(mig, "shops", shops_expected(mig))
    # Spot checks on top of the full comparison.
    moved = next(d for d in mig.documents("accounts") if d["_id"] == {"id": 2, "region": "us"})
    assert [n["id"] for n in moved["notes"]] == [21, 22]
    assert [m["id"] for m in moved["notes"][0]["marks"]] == [211, 212, 213]
    shop1 = next(d for d in mig.documents("shops") if d["_id"] == 1)
    assert [(o["id"], o["region"], [i["id"] for i in o["items"]]) for o in shop1["orders"]] == [
        (101, "us", [1011, 1012, 1013]),
        (201, "eu", [2011]),
    ]


def test_a_leaf_whose_replica_identity_lacks_the_key_stops_the_run_until_fixed(
    mig: Migration, accounts: Path
) -> None:
    run(mig, accounts, "snapshot")
    follower = follow(mig, accounts, "cdc-partitions")
    # A partition created after the snapshot, whose replica identity is another unique index:
    # its deletes would carry only `code`, which does not say which document to delete.
    transactions(
        mig,
        [
            "CREATE TABLE accounts_asia PARTITION OF accounts FOR VALUES IN ('asia')",
            "CREATE UNIQUE INDEX accounts_asia_name ON accounts_asia (name)",
            "ALTER TABLE accounts_asia ALTER COLUMN name SET NOT NULL",
            "ALTER TABLE accounts_asia REPLICA IDENTITY USING INDEX accounts_asia_name",
        ],
        "INSERT INTO accounts VALUES (7, 'asia', 'a7')",
    )
    wait_for(lambda: not follower.alive, "the run to stop", 60)
    with pytest.raises(TerminalError, match=r"public\.accounts_asia") as raised:
        follower.join()
    message = str(raised.value)
    assert "public.accounts" in message and "replica identity" in message
    assert {"id": 7, "region": "asia"} not in [d["_id"] for d in mig.documents("accounts")]
    # The fix the hint gives is one PostgreSQL accepts, and the run then goes on.
    fix = next(line for line in message.splitlines() if "ALTER TABLE" in line)
    statement = fix[fix.index("ALTER TABLE") :].split(";")[0]
    assert statement == "ALTER TABLE public.accounts_asia REPLICA IDENTITY FULL"
    mig.sql(statement)
    transactions(
        mig, "UPDATE accounts SET name = 'a7-changed' WHERE id = 7", "DELETE FROM accounts WHERE id = 1"
    )
    run(mig, accounts)
    assert_documents(mig, "accounts", accounts_expected(mig))


@pytest.mark.parametrize("on_truncate", ["stop", "apply"])
def test_truncate_of_one_partition_stops_naming_partition_and_root(
    mig: Migration, accounts: Path, on_truncate: str
) -> None:
    plan = mig.plan(ACCOUNTS_PLAN, name="cdc-partitions", phases=f"cdc: {{on_truncate: {on_truncate}}}")
    run(mig, plan, "snapshot")
    before = mig.documents("accounts")
    transactions(mig, "TRUNCATE accounts_us CASCADE")
    with pytest.raises(TerminalError, match=r"TRUNCATE of partition public\.accounts_us of public\.accounts"):
        run(mig, plan)
    assert mig.documents("accounts") == before  # nothing emptied, least of all the whole collection


def test_truncate_of_the_root_is_applied_on_request(mig: Migration, accounts: Path) -> None:
    plan = mig.plan(ACCOUNTS_PLAN, name="cdc-partitions", phases="cdc: {on_truncate: apply}")
    run(mig, plan, "snapshot")
    transactions(mig, "TRUNCATE accounts CASCADE", "INSERT INTO accounts VALUES (9, 'us', 'a9')")
    run(mig, plan)
    assert_documents(mig, "accounts", accounts_expected(mig))
    assert [d["_id"] for d in mig.documents("accounts")] == [{"id": 9, "region": "us"}]
