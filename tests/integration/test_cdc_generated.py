"""CDC of stored generated columns, against real servers.

pgoutput before PostgreSQL 18 does not send stored generated columns (docs/architecture.md,
"Stored generated columns"): CDC computes them on the source from the change's own values.
Expected documents are built from plain SQL on the source: the stored values themselves.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from bson.decimal128 import Decimal128

from migrator.errors import TerminalError
from tests.support.compare import assert_documents, flat_documents, records
from tests.support.docs import Migration
from tests.support.runs import follow, run, transactions, wait_for
from tests.support.toast import BIG_FUNCTION

pytestmark = pytest.mark.usefixtures("stop_followers")

SCHEMA = (
    "CREATE TABLE orders (id integer PRIMARY KEY, customer text,"
    " code text GENERATED ALWAYS AS ('O-' || lpad(id::text, 5, '0')) STORED)",
    "CREATE TABLE lines (id integer PRIMARY KEY, order_id integer NOT NULL REFERENCES orders ON UPDATE CASCADE,"
    ' qty integer NOT NULL, price numeric(10, 2), "Label" text, note text,'
    " total numeric GENERATED ALWAYS AS (qty * price) STORED,"
    " tag text GENERATED ALWAYS AS (upper(\"Label\") || '-' || qty) STORED,"
    " positive boolean GENERATED ALWAYS AS (qty > 0) STORED)",
    # Inputs that are never stored out of line: an UPDATE always carries their values (a TOASTed
    # one it leaves alone arrives "unchanged", see the next test).
    'ALTER TABLE lines ALTER COLUMN price SET STORAGE PLAIN, ALTER COLUMN "Label" SET STORAGE PLAIN',
    "INSERT INTO orders (id, customer) VALUES (1, 'c1'), (2, 'c2')",
    "INSERT INTO lines (id, order_id, qty, price, \"Label\") VALUES (11, 1, 1, 2.50, 'a'), (12, 1, 2, 0.10, 'b'),"
    " (21, 2, 3, NULL, 'c')",
)
PLAN = """
- name: orders
  from: orders
  key: id
  embed: [{as: lines, from: lines, on: {order_id: id}, key: id}]
"""


def bson_numbers(row: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal128(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def expected(mig: Migration) -> list[dict[str, Any]]:
    lines: dict[int, list[dict[str, Any]]] = {}
    for line in records(mig, "SELECT * FROM lines ORDER BY id"):
        lines.setdefault(line.pop("order_id"), []).append(bson_numbers(line))
    return [
        {"_id": o["id"], "customer": o["customer"], "code": o["code"], "lines": lines.get(o["id"], [])}
        for o in records(mig, "SELECT id, customer, code FROM orders")
    ]


def test_generated_columns_follow_inserts_updates_and_key_changes(mig: Migration) -> None:
    mig.sql(*SCHEMA)
    plan = mig.plan(PLAN, name="cdc-generated")
    run(mig, plan, "snapshot")
    assert_documents(mig, "orders", expected(mig))
    transactions(
        mig,
        "INSERT INTO orders (id, customer) VALUES (3, 'c3')",
        "INSERT INTO lines (id, order_id, qty, price, \"Label\") VALUES (31, 3, 2, 1.25, 'x')",
        "UPDATE lines SET qty = 7 WHERE id = 11",  # a column the generated ones read
        'UPDATE lines SET "Label" = NULL WHERE id = 12',  # tag becomes NULL
        "UPDATE lines SET note = 'unrelated' WHERE id = 21",  # a column they do not read
        "UPDATE orders SET id = 20 WHERE id = 2",  # a key the generated code reads (cascades to lines)
        "UPDATE orders SET customer = 'c1-changed' WHERE id = 1",
        "UPDATE lines SET id = 111, qty = 0 WHERE id = 11",  # element key and a dependency
        "UPDATE lines SET price = price * 2",  # several rows in one statement
        [
            "INSERT INTO lines (id, order_id, qty, price, \"Label\") VALUES (32, 3, 5, 1, 'y')",
            "UPDATE lines SET qty = 6 WHERE id = 32",
            "DELETE FROM lines WHERE id = 12",
        ],
    )
    outcome = run(mig, plan).outcome
    assert outcome is not None and outcome.cdc is not None and outcome.cdc.caught_up
    assert_documents(mig, "orders", expected(mig))
    docs = {d["_id"]: d for d in mig.documents("orders")}
    assert docs[20]["code"] == "O-00020" and docs[3]["lines"][0]["tag"] == "X-2"


def test_a_generated_column_whose_input_is_not_sent_stops_the_run(mig: Migration) -> None:
    # big is stored out of line; heads.head reads only big, docs.summary reads big and note.
    mig.sql(
        BIG_FUNCTION,
        "CREATE TABLE heads (id integer PRIMARY KEY, big text, note text,"
        " head text GENERATED ALWAYS AS (left(big, 8)) STORED)",
        "CREATE TABLE docs (id integer PRIMARY KEY, big text, note text,"
        " summary text GENERATED ALWAYS AS (left(big, 4) || coalesce(note, '-')) STORED)",
        *(f"ALTER TABLE {t} ALTER COLUMN big SET STORAGE EXTERNAL" for t in ("heads", "docs")),
        # The old row carries big: what plan accepts.
        *(f"ALTER TABLE {t} REPLICA IDENTITY FULL" for t in ("heads", "docs")),
        *(f"INSERT INTO {t} (id, big) VALUES (1, big('d1')), (2, big('d2'))" for t in ("heads", "docs")),
    )
    plan = mig.plan(
        "- {name: heads, from: heads, key: id}\n- {name: docs, from: docs, key: id}",
        name="cdc-generated-toast",
    )
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, "cdc-generated-toast")

    def assert_table(table: str, generated: str) -> None:
        assert_documents(mig, table, flat_documents(mig, f"SELECT id, big, note, {generated} FROM {table}"))

    def applied(table: str, note: str) -> bool:
        return any(d.get("note") == note for d in mig.documents(table)) or not follower.alive

    transactions(
        mig, "UPDATE heads SET note = 'full' WHERE id = 1", "UPDATE docs SET note = 'full' WHERE id = 1"
    )
    wait_for(lambda: applied("docs", "full"), "the updates under REPLICA IDENTITY FULL")
    # Then the identity no longer carries big: an UPDATE of note sends it as "unchanged". head
    # reads nothing else, so it is unchanged too; summary also reads note: it cannot be computed.
    mig.sql(*(f"ALTER TABLE {t} REPLICA IDENTITY DEFAULT" for t in ("heads", "docs")))
    transactions(mig, "UPDATE heads SET note = 'default' WHERE id = 2")
    wait_for(lambda: applied("heads", "default"), "the update of heads")
    assert_table("heads", "head")
    transactions(mig, "UPDATE docs SET note = 'default' WHERE id = 2")
    wait_for(lambda: not follower.alive, "the run to stop", 60)
    with pytest.raises(TerminalError, match=r"generated column public\.docs\.summary") as raised:
        follower.join()
    assert "big" in str(raised.value) and "REPLICA IDENTITY FULL" in str(raised.value)
    assert mig.documents("docs")[1].get("note") is None  # nothing applied half
    mig.sql("UPDATE docs SET note = NULL WHERE id = 2")
    assert_table("docs", "summary")
