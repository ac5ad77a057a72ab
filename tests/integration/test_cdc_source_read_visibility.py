"""Embedded content read from the source (SourceRead) is read only once the source shows every
transaction of its batch (docs/architecture.md, "Why reading 'now' converges").

PostgreSQL flushes a transaction's commit to the WAL, and so decodes and sends it, before the
committing session leaves the running transactions; until then other sessions' snapshots read
the rows before it. A batch whose embedded content were read in that gap would write that older
content and move the checkpoint past it: the document stays wrong for good.

The gap, normally microseconds, is held open here: the source waits for a synchronous standby that
does not exist (`synchronous_standby_names`), so the application's commit is flushed and decoded
while every other session still reads the rows before it, until the test lifts the setting.
One transaction moves a customer's link to an address it changes, and inserts a customer after
its orders (a lookup and an owner embed, both filled in by reading the source). The applier's
whole-document re-read (`current`) waits the same way: read through the source adapter, given the
transaction's xid as the change stream gives it.

The expected documents are built from the source's rows with tests/support/expected.py, never
with migrator's mapping code."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from migrator.adapters.base import LevelRead
from migrator.adapters.postgres import PostgresSource
from tests.support.compare import assert_equal_to_sql
from tests.support.docs import Migration
from tests.support.expected import Coll, Embed, documents
from tests.support.mariadb import column_info
from tests.support.runs import follow, run, wait_for
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
# Held open far longer than the follower takes to decode and apply a batch when nothing waits.
GAP_S = 5.0
# Held open while the re-read waits; the read shows the row whenever the gap closes.
HOLD_S = 1.0
TIMEOUT_S = 60.0


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


def _setting(url: str, value: str | None) -> None:
    change = (
        "ALTER SYSTEM RESET synchronous_standby_names"
        if value is None
        else f"ALTER SYSTEM SET synchronous_standby_names = '{value}'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(change)  # type: ignore[call-overload]
        conn.execute("SELECT pg_reload_conf()")
    wanted = value or ""

    def applied() -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SHOW synchronous_standby_names").fetchone()
            return row is not None and row[0] == wanted

    wait_for(applied, f"synchronous_standby_names = {wanted!r}", TIMEOUT_S)


@dataclass
class HeldCommit:
    xid: int  # the transaction's, as pgoutput's Begin gives it (32 bits)
    release: Callable[[], None]  # lifts the setting: the commit returns and is shown


@contextmanager
def held_commit(url: str, *statements: str) -> Iterator[HeldCommit]:
    """`statements` committed in one transaction that waits for a standby that never comes:
    flushed and decoded, not shown to other sessions until `release` (also on the way out)."""
    errors: list[psycopg.Error] = []

    def application() -> None:
        try:
            with psycopg.connect(url) as conn:
                for statement in statements:
                    conn.execute(statement)  # type: ignore[call-overload]
        except psycopg.Error as exc:  # reported by the test's thread
            errors.append(exc)

    _setting(url, "migrator_test_absent_standby")
    writer = threading.Thread(target=application, name="application")
    try:
        writer.start()
        waiting = "FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
        wait_for(
            lambda: _scalar(url, f"SELECT count(*) {waiting}") == 1,
            "the application's commit to wait for the standby",
            TIMEOUT_S,
        )
        yield HeldCommit(
            int(_scalar(url, f"SELECT backend_xid::text {waiting}")), lambda: _setting(url, None)
        )
    finally:
        _setting(url, None)
        writer.join(TIMEOUT_S)
    assert not errors, errors


def _scalar(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[call-overload]
        assert row is not None
        return row[0]


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
    ):
        flushed = _scalar(mig.pg_url, "SELECT pg_current_wal_flush_lsn()::text")
        # The walsender sent the commit (decoded): the follower has the transaction.
        sent = f"SELECT count(*) FROM pg_stat_replication WHERE sent_lsn >= '{flushed}'::pg_lsn"
        wait_for(lambda: _scalar(mig.pg_url, sent) == 1, "the walsender to send the commit", TIMEOUT_S)
        # Other sessions still read the rows before it.
        assert _scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
        deadline = time.monotonic() + GAP_S
        while time.monotonic() < deadline and mig.documents("customers") == before:
            time.sleep(0.05)
    assert _scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "moved"
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
        assert _scalar(mig.pg_url, "SELECT address FROM address WHERE address_id = 2") == "2 Main St"
        held.release()
        reader.join(TIMEOUT_S)
    assert read == [[(2, "moved")]]
