"""Embedded content read from the source (SourceRead) is read only once the source shows every
transaction of its batch (docs/architecture.md, "Why reading 'now' converges").

PostgreSQL flushes a transaction's commit to the WAL, and so decodes and sends it, before the
committing session leaves the running transactions; until then other sessions' snapshots read
the rows before it. A batch whose embedded content were read in that gap would write that older
content and move the checkpoint past it: the document stays wrong for good.

The gap, normally microseconds, is held open here (tests/support/held_commit.py): the
application's commit waits for a synchronous standby that does not exist
(`synchronous_standby_names`), so it is flushed and decoded while every other session still reads
the rows before it, until the test lifts the setting; every other session commits at once.
One transaction moves a customer's link to an address it changes, and inserts a customer after
its orders (a lookup and an owner embed, both filled in by reading the source). The applier's
whole-document re-read (`current`) waits the same way: read through the source adapter, given the
transaction's xid as the change stream gives it.

No batch is checkpointed before the source shows its transactions, also those no read waited
for: a batch that read nothing (an address changed, set where customers link to it) is held back
with its checkpoint, so that a run killed meanwhile (kill -9 of `migrator run`) resumes before the
held transaction, and the next run's read for another customer (its link moved to that address)
waits for it; the documents brought up to date for a column added while CDC follows are read
only once the held transaction at that point of the stream shows; and verify, whose rechecks
wait for CDC to checkpoint a marker, does not find (and --repair does not write) the row before a
commit CDC applied.

The expected documents are built from the source's rows with tests/support/expected.py, never
with migrator's mapping code."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from migrator import api
from migrator.adapters.base import LevelRead
from migrator.adapters.postgres import PostgresSource
from migrator.phases.verify import VerifyReport
from tests.support.cli_process import MigratorRun
from tests.support.compare import assert_equal_to_sql
from tests.support.docs import Migration
from tests.support.expected import Coll, Embed, documents
from tests.support.held_commit import TIMEOUT_S, held_commit, scalar
from tests.support.mariadb import column_info
from tests.support.runs import follow, run, slot_active, source_transactions, wait_for
from tests.support.servers import PgServer, create_pg_database, unique_name, with_database

pytestmark = pytest.mark.usefixtures("stop_followers")

CUSTOMERS = Coll(
    "customers",
    "public.customer",
    ("customer_id",),
    embeds=(
        Embed("address", "public.address", {"address_id": "address_id"}, many=False),
        Embed("orders", "public.orders", {"customer_id": "customer_id"}),
    ),
)
ADDRESSES = Coll("addresses", "public.address", ("address_id",))
# Held open far longer than the follower takes to decode and apply a batch when nothing waits.
GAP_S = 5.0
# Held open while the re-read waits; the read shows the row whenever the gap closes.
HOLD_S = 1.0
# Held open while a run would write (and checkpoint) the held transaction, were it not waited for;
# then while the run started again after a kill -9 would read it.
KILL_GAP_S = 3.0


@pytest.fixture
def source_url(pg_cluster_factory: Callable[..., PgServer]) -> str:
    """A source cluster of the test's own: the test changes a server setting."""
    server = pg_cluster_factory()
    name = unique_name("visibility")
    create_pg_database(server.url, name)
    return with_database(server.url, name)


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (
        "CREATE TABLE address (address_id integer PRIMARY KEY, address text NOT NULL)",
        "CREATE TABLE customer (customer_id integer PRIMARY KEY, name text NOT NULL, address_id integer)",
        "CREATE TABLE orders (order_id integer PRIMARY KEY, customer_id integer NOT NULL, item text)",
        "INSERT INTO address VALUES (1, '1 Main St'), (2, '2 Main St')",
        "INSERT INTO customer VALUES (1, 'one', 1), (2, 'two', 2)",
        "INSERT INTO orders VALUES (10, 1, 'a'), (11, 2, 'b')",
    )


def expected(mig: Migration) -> list[dict[str, Any]]:
    with psycopg.connect(mig.pg_url) as conn:
        return documents(conn, CUSTOMERS)


def test_content_is_read_only_once_the_source_shows_the_batch(mig: Migration) -> None:
    plan = mig.plan(json.dumps([CUSTOMERS.plan_entry()]), name="visibility")
    run(mig, plan, "snapshot")
    assert_equal_to_sql(mig, "customers", expected(mig))
    follower = follow(mig, plan, "visibility")
    before = mig.documents("customers")
    with held_commit(
        mig.pg_url,
        "UPDATE address SET address = 'moved' WHERE address_id = 2",
        "UPDATE customer SET address_id = 2 WHERE customer_id = 1",
        "INSERT INTO orders VALUES (30, 3, 'c'), (31, 3, 'd')",
        "INSERT INTO customer VALUES (3, 'three', 2)",
    ) as held:
        held.decoded(mig.pg_url)  # the follower has the transaction
        # Other sessions still read the rows before it.
        assert scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
        deadline = time.monotonic() + GAP_S
        while time.monotonic() < deadline and mig.documents("customers") == before:
            time.sleep(0.05)
    assert scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "moved"
    wait_for(
        lambda: len(mig.documents("customers")) == 3 and mig.documents("customers")[0]["address_id"] == 2,
        "the transaction to be applied",
        TIMEOUT_S,
    )
    follower.finish()
    assert_equal_to_sql(mig, "customers", expected(mig))


def test_a_whole_document_is_re_read_only_once_the_source_shows_the_batch(mig: Migration) -> None:
    source = PostgresSource(mig.pg_url)
    level = LevelRead(
        path=(),
        columns=(column_info("address_id", "integer", "base"), column_info("address", "text", "base")),
        order_by=(),
    )
    read: list[Any] = []

    def reread(xid: int) -> None:
        with source.rows_at_key(
            "public.address", ["address_id"], ["integer"], [2], [level], [xid]
        ) as streams:
            read.extend(list(s) for s in streams)

    with held_commit(mig.pg_url, "UPDATE address SET address = 'moved' WHERE address_id = 2") as held:
        reader = threading.Thread(target=reread, args=(held.xid,), name="re-read")
        reader.start()
        time.sleep(HOLD_S)
        assert scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
        held.release()
        reader.join(TIMEOUT_S)
    assert read == [[(2, "moved")]]


def _document(mig: Migration, collection: str, doc_id: int) -> dict[str, Any]:
    return next(d for d in mig.documents(collection) if d["_id"] == doc_id)


def _customer(mig: Migration, customer_id: int) -> dict[str, Any]:
    return _document(mig, "customers", customer_id)


def _unchanged_for(gap_s: float, look: Callable[[], Any]) -> Any:
    """What `look` sees after up to `gap_s` of it staying as it was (it may change sooner)."""
    before = look()
    deadline = time.monotonic() + gap_s
    while time.monotonic() < deadline and look() == before:
        time.sleep(0.05)
    return look()


def test_no_checkpoint_before_the_source_shows_what_it_covers(mig: Migration) -> None:
    """A transaction applied without reading (an address changed, set in the customer that links
    to it) is not checkpointed while the source does not show it: a run killed meanwhile resumes
    before it, and a later batch that reads that address for another customer (its link moved
    there) reads it only once the source shows the change. With the checkpoint written at once,
    the run started again after the kill resumed past the held commit, read the old address for
    customer 1 and kept it for good."""
    plan = mig.plan(json.dumps([CUSTOMERS.plan_entry()]), name="visibility")
    run(mig, plan, "snapshot")
    env = {**{k: v for k, v in os.environ.items() if k != "MIGRATOR_STATE"}, **mig.env}
    first = MigratorRun(["run", str(plan), "--state", str(mig.state_path)], env, plan.parent, TIMEOUT_S)
    try:
        first.wait_for("phase.started", phase="cdc")
        wait_for(lambda: slot_active(mig, "visibility"), "the replication stream", TIMEOUT_S)
        with held_commit(mig.pg_url, "UPDATE address SET address = 'moved' WHERE address_id = 2") as held:
            held.decoded(mig.pg_url)  # the first run has the transaction (its batch reads nothing)
            unseen = _unchanged_for(KILL_GAP_S, lambda: _customer(mig, 2))
            first.kill9()
            wait_for(lambda: not slot_active(mig, "visibility"), "the killed run's stream to end", TIMEOUT_S)
            follower = follow(mig, plan, "visibility")
            # Shown at once (the server's default is not to wait for the standby meanwhile): its
            # batch reads address 2 for customer 1.
            source_transactions(mig.pg_url, "UPDATE customer SET address_id = 2 WHERE customer_id = 1")
            assert scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
            relinked = _unchanged_for(KILL_GAP_S, lambda: _customer(mig, 1))
    finally:
        first.kill_if_running()
    wait_for(lambda: _customer(mig, 1)["address_id"] == 2, "the link change to be applied", TIMEOUT_S)
    follower.finish()
    assert_equal_to_sql(mig, "customers", expected(mig))
    assert _customer(mig, 1)["address"]["address"] == "moved"
    # Neither the held transaction nor the read after it was written while the source did not
    # show it.
    assert unseen["address"]["address"] == "2 Main St", unseen
    assert relinked["address_id"] == 1, relinked


def test_an_added_column_is_read_once_the_source_shows_what_cdc_applied(mig: Migration) -> None:
    """The documents brought up to date for a column added since the snapshot are read at a
    point of the stream: the transaction there, applied without reading, may still be unseen."""
    plan = mig.plan(json.dumps([CUSTOMERS.plan_entry(), ADDRESSES.plan_entry()]), name="visibility")
    run(mig, plan, "snapshot")
    source_transactions(mig.pg_url, "ALTER TABLE address ADD COLUMN note text NOT NULL DEFAULT 'n'")
    # The first change of the table after the ALTER (its Relation message carries the column) is
    # the point where CDC brings every document up to date: the end of this transaction. Its
    # change is applied with its own values (nothing read).
    with held_commit(mig.pg_url, "UPDATE address SET address = 'moved' WHERE address_id = 2") as held:
        follower = follow(mig, plan, "visibility")
        held.decoded(mig.pg_url)
        assert scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
        during = _unchanged_for(GAP_S, lambda: mig.documents("addresses"))
        # Neither the transaction (no checkpoint before the source shows it) nor the rows read
        # at its end (not before the commit shows).
        assert all("note" not in d for d in during), during
        assert _document(mig, "addresses", 2)["address"] == "2 Main St"
    wait_for(
        lambda: all(d.get("note") == "n" for d in mig.documents("addresses")),
        "every document to carry the added column",
        TIMEOUT_S,
    )
    follower.finish()
    assert _document(mig, "addresses", 2)["address"] == "moved"
    assert _document(mig, "customers", 2)["address"]["address"] == "moved"
    with psycopg.connect(mig.pg_url) as conn:
        assert_equal_to_sql(mig, "addresses", documents(conn, ADDRESSES))
    assert_equal_to_sql(mig, "customers", expected(mig))


def test_verify_reads_the_source_once_it_shows_what_cdc_applied(mig: Migration) -> None:
    """Verify compares the source read at a WAL position with the target once CDC applied that
    position: a read that misses a commit before it finds a difference the target does not have,
    and --repair would write the row before the commit over the target for good."""
    plan = mig.plan(json.dumps([ADDRESSES.plan_entry()]), name="visibility")
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, "visibility")
    reports: list[VerifyReport] = []
    with held_commit(mig.pg_url, "UPDATE address SET address = 'moved' WHERE address_id = 2") as held:
        held.decoded(mig.pg_url)
        # Time for the follower to write the transaction, were it written before the source shows
        # it (it is not: no checkpoint before then).
        _unchanged_for(HOLD_S, lambda: _document(mig, "addresses", 2))
        verifier = threading.Thread(
            target=lambda: reports.append(api.verify(plan, state=mig.state_path, env=mig.env, repair=True)),
            name="verify",
        )
        verifier.start()
        verifier.join(GAP_S)
        assert scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
    verifier.join(TIMEOUT_S)
    assert len(reports) == 1
    totals = reports[0].totals
    assert (totals.checked, totals.mismatched, totals.repaired, totals.unsettled) == (2, 0, 0, 0), reports[
        0
    ].to_dict()
    assert reports[0].equal
    follower.finish()
    # Not repaired with the row before the commit.
    assert _document(mig, "addresses", 2)["address"] == "moved"
    with psycopg.connect(mig.pg_url) as conn:
        assert_equal_to_sql(mig, "addresses", documents(conn, ADDRESSES))
