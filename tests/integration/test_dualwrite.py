"""Dual-write verification against real servers: `phases.cdc.apply: false` turns CDC into an
oracle for the application's own writes to both databases, and `migrator.dualwrite` (shadow
reads, a SQLAlchemy session hook, a decorator for plain callables) for the application itself."""

from __future__ import annotations

import datetime
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from sqlalchemy import BigInteger, Integer, Numeric
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from migrator import api
from migrator.adapters.postgres.lsn import Lsn
from migrator.dualwrite import DualWrite, LoggingReporter
from migrator.engine.events import Collector, DualWriteDivergence, DualWriteProgress, DualWriteSummary, Notice
from migrator.mapping.compare import FieldDiff
from migrator.phases.following import CdcNotFollowing
from migrator.plan.names import cdc_checkpoint_id
from migrator.state import SQLiteStateStore
from tests.support.docs import Migration
from tests.support.runs import follow, run, wait_for
from tests.support.shop import COLLECTIONS, CUSTOMERS, SCHEMA

GRACE_S = 2.0


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (SCHEMA,)


def copied(mig: Migration, name: str, phases: str = "") -> Path:
    """A plan for the verify tests' schema, with the snapshot taken."""
    plan_file = mig.plan(COLLECTIONS, name=name, phases=phases or "cdc: {heartbeat_interval: 1s}")
    run(mig, plan_file, "snapshot")
    return plan_file


def commit(mig: Migration, *statements: str) -> None:
    """One source transaction, committed when this returns."""
    with psycopg.connect(mig.pg_url) as conn, conn.transaction():
        for statement in statements:
            conn.execute(statement)


def customer(mig: Migration, doc_id: int) -> dict[str, Any] | None:
    return mig.client[mig.database]["customers"].find_one({"_id": doc_id})


# -- the oracle (cdc.apply: false) ----------------------------------------------------------------


def test_oracle_catches_skipped_and_wrong_writes_and_passes_correct_dual_writes(mig: Migration) -> None:
    plan_file = copied(
        mig,
        "dualwrite-oracle",
        f"cdc: {{apply: false, heartbeat_interval: 1s}}\nverify: {{dual_write_grace: {GRACE_S}s}}",
    )
    customers = mig.client[mig.database]["customers"]
    ((before,),) = mig.rows("SELECT pg_current_wal_lsn()::text")
    follower = follow(mig, plan_file, "dualwrite-oracle")
    dual = DualWrite.open(plan_file, env=mig.env)
    try:
        # Correct dual writes, each target write right after the source commit (as an
        # application does): a top-level field, an embedded element, a grandchild.
        commit(mig, "UPDATE customers SET name = 'renamed' WHERE id = 1")
        customers.update_one({"_id": 1}, {"$set": {"name": "renamed"}})
        commit(mig, "UPDATE orders SET total = 100.25 WHERE id = 22")
        customers.update_one(
            {"_id": 2},
            {"$set": {"orders.$[o].total": Decimal128("100.25")}},
            array_filters=[{"o.id": 22}],
        )
        commit(mig, "UPDATE lines SET qty = 99 WHERE order_id = 31 AND line_no = 2")
        customers.update_one(
            {"_id": 3},
            {"$set": {"orders.$[o].lines.$[l].qty": 99}},
            array_filters=[{"o.id": 31}, {"l.line_no": 2}],
        )
        # A child moving between parents, and a new document, mirrored by the library.
        commit(mig, "UPDATE orders SET customer_id = 5 WHERE id = 41")
        assert (
            dual.mirror_changes(
                [("public.orders", {"id": 41, "customer_id": 4}, {"id": 41, "customer_id": 5})]
            )
            == 2
        )
        commit(
            mig,
            "INSERT INTO customers VALUES (2000, 'mirrored', 3.00, now(), '{}')",
            "INSERT INTO orders VALUES (20001, 2000, 9.99)",
        )
        assert dual.mirror("customers", [2000]) == 1

        # Divergences: a write that skipped the target, one with a wrong value, a delete and an
        # insert the target never saw, and a move that forgot the old parent.
        commit(mig, "UPDATE customers SET name = 'skipped' WHERE id = 10")
        commit(mig, "UPDATE orders SET total = 7.50 WHERE id = 61")
        customers.update_one(
            {"_id": 6}, {"$set": {"orders.$[o].total": Decimal128("7.05")}}, array_filters=[{"o.id": 61}]
        )
        commit(mig, "DELETE FROM orders WHERE customer_id = 12", "DELETE FROM customers WHERE id = 12")
        commit(mig, "INSERT INTO customers VALUES (1000, 'never copied', 1.00, now(), '{}')")
        commit(mig, "UPDATE orders SET customer_id = 8 WHERE id = 71")
        doc7 = customer(mig, 7)
        assert doc7 is not None
        element = next(o for o in doc7["orders"] if o["id"] == 71)
        customers.update_one({"_id": 8}, {"$push": {"orders": {"$each": [element], "$sort": {"id": 1}}}})

        def settled() -> bool:
            progress = follower.events.of(DualWriteProgress)
            return (
                len(follower.events.of(DualWriteDivergence)) >= 5
                and bool(progress)
                and progress[-1].pending == 0
            )

        wait_for(settled, "the oracle's checks", timeout=60)
        time.sleep(GRACE_S * 2 + 1)  # room for a (wrong) late divergence on the correct writes
    finally:
        dual.close()
        outcome = follower.finish()

    divergences = {(d.collection, d.id): d for d in follower.events.of(DualWriteDivergence)}
    assert sorted(divergences, key=str) == sorted(
        [("customers", 10), ("customers", 6), ("customers", 12), ("customers", 1000), ("customers", 7)],
        key=str,
    ), divergences
    skipped = divergences[("customers", 10)]
    assert skipped.difference == "mismatched"
    assert [(d["path"], d["source"], d["target"]) for d in skipped.diffs] == [
        ("name", "'skipped'", "'customer 10'")
    ]
    wrong = divergences[("customers", 6)]
    assert [(d["path"], d["kind"], d["source"], d["target"]) for d in wrong.diffs] == [
        ("orders.0.total", "changed", "decimal Decimal128('7.50')", "decimal Decimal128('7.05')")
    ]
    assert divergences[("customers", 12)].difference == "extra"
    assert divergences[("customers", 1000)].difference == "missing"
    moved = divergences[("customers", 7)]
    assert moved.difference == "mismatched" and any(d["path"].startswith("orders") for d in moved.diffs)
    for d in divergences.values():  # each names the source commit it checked
        assert Lsn.parse(d.position) > Lsn.parse(before)

    # Counted in the CDC result: each touched document settled once, five of them diverged.
    # Touched: 1, 2, 3, 5 (order 41 arrived; 4 no longer holds it, so it is not looked at), 2000,
    # 10, 6, 12, 1000, and 7 and 8 (order 71: its new parent, and the old one still holding it).
    assert outcome.cdc is not None and outcome.cdc.dual_write is not None
    counts = outcome.cdc.dual_write
    assert counts["diverged"] == 5 and counts["skipped"] == 0 and counts["superseded"] == 0
    assert counts["checked"] == 11 and counts["equal"] == 6
    assert counts["rate"] == pytest.approx(5 / 11, abs=1e-6)
    [summary] = follower.events.of(DualWriteSummary)
    assert summary.diverged == 5

    # Nothing was written by CDC (the skipped write is still missing), but it checkpointed.
    doc10 = customer(mig, 10)
    assert doc10 is not None and doc10["name"] == "customer 10"
    state = mig.client[mig.database]["_migrator"].find_one({"_id": cdc_checkpoint_id("dualwrite-oracle")})
    assert state is not None and int(state["position"]) > Lsn.parse(before).value
    # Divergences are durable: in the state store's event log.
    with SQLiteStateStore(mig.state_path) as store:
        kinds = [e.kind for e in store.events()]
    assert kinds.count("dualwrite.divergence") == 5 and "dualwrite.summary" in kinds


# -- the library ----------------------------------------------------------------------------------


def test_shadow_read_reports_differences_and_returns_the_primary_answer(
    mig: Migration, caplog: pytest.LogCaptureFixture
) -> None:
    plan_file = copied(mig, "dualwrite-shadow")
    customers = mig.client[mig.database]["customers"]
    customers.update_one({"_id": 3}, {"$set": {"name": "someone else"}})
    customers.delete_one({"_id": 9})
    reporter = LoggingReporter()
    with DualWrite.open(plan_file, env=mig.env, reporter=reporter) as dual, caplog.at_level(logging.WARNING):

        def name_of(customer_id: int) -> str:
            return str(mig.rows("SELECT name FROM customers WHERE id = %s", [customer_id])[0][0])

        # A difference is reported; the answer served is the primary's.
        assert dual.shadow_read(lambda: name_of(3), collection="customers", ids=[3]) == "customer 3"
        assert reporter.counts["shadow_read.mismatched"] == 1
        [mismatch] = reporter.recent
        assert (mismatch.collection, mismatch.id, mismatch.kind) == ("customers", 3, "mismatched")
        assert mismatch.diffs == (FieldDiff("name", "changed", "'customer 3'", "'someone else'"),)
        assert "customers _id 3 mismatched" in caplog.text and "someone else" in caplog.text

        # Equal documents: checked, nothing reported; ids may come from the answer.
        assert dual.shadow_read(lambda: 4, collection="customers", ids=lambda answer: [answer]) == 4
        assert reporter.counts["shadow_read.checked"] == 2 and reporter.mismatches() == 1

        # A document the target lacks.
        assert dual.shadow_read(lambda: "nine", collection="customers", ids=[9]) == "nine"
        assert reporter.counts["shadow_read.missing"] == 1

        # The application's own read of the target as the shadow side: its answer is compared.
        found = dual.shadow_read(
            lambda: name_of(5),
            collection="customers",
            ids=[5],
            shadow=lambda: customers.find({"_id": {"$in": [5, 3]}}),
        )
        assert found == "customer 5"
        assert reporter.counts["shadow_read.mismatched"] == 2  # 3 again (5 is equal)

        # A failing shadow side is reported, never raised; the answer still stands.
        def broken() -> list[dict[str, Any]]:
            raise RuntimeError("target unreachable")

        assert dual.shadow_read(lambda: "ok", collection="customers", ids=[5], shadow=broken) == "ok"
        assert dual.shadow_read(lambda: "ok", collection="no_such_collection", ids=[5]) == "ok"
        assert reporter.counts["shadow_read.failed"] == 2
        assert "target unreachable" in caplog.text

        # The primary's own failure is the caller's.
        with pytest.raises(ZeroDivisionError):
            dual.shadow_read(lambda: 1 // 0, collection="customers", ids=[5])


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))


class Line(Base):
    __tablename__ = "lines"
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    qty: Mapped[int] = mapped_column(Integer)


def order_ids(mig: Migration, customer_id: int) -> list[int]:
    doc = customer(mig, customer_id)
    assert doc is not None
    return [o["id"] for o in doc["orders"]]


def test_sqlalchemy_hook_mirrors_committed_child_changes_into_parents_and_nothing_on_rollback(
    mig: Migration,
) -> None:
    plan_file = copied(mig, "dualwrite-session")
    url = sqlalchemy.engine.make_url(mig.pg_url).set(drivername="postgresql+psycopg")
    engine = sqlalchemy.create_engine(url)
    reporter = LoggingReporter()
    dual = DualWrite.open(plan_file, env=mig.env, reporter=reporter)
    factory = sessionmaker(engine)
    dual.install(factory)
    try:
        with factory() as session:
            order = session.get(Order, 22)
            assert order is not None
            order.total = Decimal("55.55")
            session.commit()
        doc2 = customer(mig, 2)
        assert doc2 is not None and doc2["orders"][1]["id"] == 22
        assert doc2["orders"][1]["total"] == Decimal128("55.55")

        # A child moving to another parent: both documents are mirrored.
        with factory() as session:
            order = session.get(Order, 23)
            assert order is not None
            order.customer_id = 7
            session.commit()
        assert order_ids(mig, 2) == [21, 22] and order_ids(mig, 7) == [23, 71, 72, 73]

        # A grandchild, inside a savepoint that is released, then the outer commit.
        with factory() as session:
            with session.begin_nested():
                line = session.get(Line, (31, 1))
                assert line is not None
                line.qty = 77
            session.commit()
        doc3 = customer(mig, 3)
        assert doc3 is not None and doc3["orders"][0]["lines"][0] == {"line_no": 1, "qty": 77}

        # Rolled back (after a flush that wrote to the source): nothing happens on the target.
        checked = reporter.counts["dual_write.checked"]
        before = mig.raw_documents("customers")
        with factory() as session:
            order = session.get(Order, 11)
            assert order is not None
            order.total = Decimal("1.00")
            session.flush()
            session.rollback()
        assert mig.raw_documents("customers") == before
        assert reporter.counts["dual_write.checked"] == checked and checked >= 4
        assert mig.rows("SELECT total FROM orders WHERE id = 11") == [(Decimal("2.50"),)]
        assert reporter.counts["dual_write.failed"] == 0 and reporter.mismatches() == 0
    finally:
        dual.close()
        engine.dispose()
    # The target is what the mapping makes of the source, document for document.
    report = api.verify(plan_file, state=mig.state_path, env=mig.env)
    assert report.equal and report.totals.checked == CUSTOMERS + 60, report.to_dict()


def test_mirrored_callable_mirrors_its_keys(mig: Migration) -> None:
    # No CDC runs here: verify finds 14 (not mirrored) and says nothing follows to confirm it.
    plan_file = copied(
        mig, "dualwrite-callable", "cdc: {heartbeat_interval: 1s}\nverify: {settle_timeout: 1s, rechecks: 2}"
    )
    reporter = LoggingReporter()
    with DualWrite.open(plan_file, env=mig.env, reporter=reporter) as dual:

        @dual.mirrored("customers", keys=lambda customer_id, name: [customer_id])
        def rename(customer_id: int, name: str) -> str:
            commit(mig, f"UPDATE customers SET name = '{name}' WHERE id = {customer_id}")
            return name

        @dual.mirrored("customers", keys=lambda customer_id: [customer_id])
        def create(customer_id: int) -> None:
            commit(
                mig,
                f"INSERT INTO customers VALUES ({customer_id}, 'new', 2.50, '2024-05-01 10:00:00.5+00', '{{a,b}}')",
                f"INSERT INTO orders VALUES ({customer_id * 10}, {customer_id}, 4.00)",
            )

        @dual.mirrored("customers", keys=lambda customer_id: [customer_id])
        def remove(customer_id: int) -> None:
            commit(
                mig,
                f"DELETE FROM orders WHERE customer_id = {customer_id}",
                f"DELETE FROM customers WHERE id = {customer_id}",
            )

        @dual.mirrored("customers", keys=lambda customer_id: [customer_id])
        def rename_then_fail(customer_id: int) -> None:
            commit(mig, f"UPDATE customers SET name = 'not mirrored' WHERE id = {customer_id}")
            raise ValueError("the application's own error")

        assert rename(5, "renamed") == "renamed"
        doc5 = customer(mig, 5)
        assert doc5 is not None and doc5["name"] == "renamed"

        create(3000)
        doc = customer(mig, 3000)
        assert doc is not None
        assert doc["_id"] == Int64(3000) and isinstance(doc["_id"], Int64)
        assert doc["created"] == datetime.datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=datetime.UTC)
        assert [o["id"] for o in doc["orders"]] == [30000] and doc["tags"] == ["a", "b"]

        remove(13)
        assert customer(mig, 13) is None

        with pytest.raises(ValueError, match="own error"):
            rename_then_fail(14)
        doc14 = customer(mig, 14)
        assert doc14 is not None and doc14["name"] == "customer 14"

        assert reporter.counts["dual_write.checked"] == 3 and reporter.counts["dual_write.failed"] == 0
    # Everything mirrored is what the mapping makes of the source; 14 was not mirrored, and with
    # no CDC following the slot, verify cannot confirm that difference: it says so.
    events = Collector()
    with pytest.raises(CdcNotFollowing, match="not applied to the target"):
        api.verify(plan_file, state=mig.state_path, env=mig.env, sinks=[events])
    assert any("nothing follows" in n.message for n in events.of(Notice))
