"""`migrator verify` and `--repair` against a PostgreSQL target (docs/architecture.md, "Tables as
collections" and "Verify by checksums"): the target's rows read back as the documents the
source's rows map to, type for type, so that an untouched copy verifies equal both row by row
and by server-side checksums; four kinds of damage done to the target with plain SQL (a row
deleted, a row added, a value changed, and values changed in types that round-trip badly:
a numeric's scale, a timestamp's microsecond, a value inside jsonb) are each named, with the
field, and `--repair` puts back what the source holds. Only the key ranges whose checksums
differ are read row by row. While CDC follows a writing source, nothing in flight is reported.

The expectation is the source itself, read with the same query on both sides."""

from __future__ import annotations

import threading
import time

from migrator.phases.verify import VerifyReport
from tests.support.pg_target import PgToPg, verify_pg2pg
from tests.support.runs import ApiRun, wait_for

ROWS = 300
SCHEMA = (
    "CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL, amount numeric, "
    "balance numeric(12,2), seen timestamptz, born date, naive timestamp, span interval, doc jsonb, "
    "js json, tags text[], raw bytea, uid uuid, flag boolean, ratio float8, small float4, big bigint, "
    "cash money, code char(3), addr inet, at time)",
    f"INSERT INTO items SELECT g, 'n' || g, g * 0.5, g * 1.25, "
    "'2024-01-01 00:00:00.000001+00'::timestamptz + g * interval '1 second 7 microseconds', "
    "date '2000-01-01' + g, timestamp '2024-02-29 12:00:00.5' + g * interval '1 hour', "
    "g * interval '1 day 2 hours 3.000004 seconds', jsonb_build_object('g', g, 'x', array[g, 1.5]), "
    "'{\"a\": [2], \"b\": 1}', ARRAY['t' || g, NULL], '\\x00ff'::bytea || g::text::bytea, "
    "md5(g::text)::uuid, g % 2 = 0, g / 3.0, g / 7.0, g * 10000000000, g * 1.5, 'c' || g % 10, "
    "('10.0.' || g % 256 || '.1')::inet, time '12:34:56.789' "
    f"FROM generate_series(1, {ROWS}) g WHERE g <> 10",  # 10: a key the source lacks
    "INSERT INTO items (id, name) VALUES (1000, 'nulls')",
    "CREATE TABLE public.lines (item integer, line bigint, qty numeric NOT NULL, PRIMARY KEY (item, line))",
    "INSERT INTO lines SELECT g % 30, g, g / 4.0 FROM generate_series(1, 200) g",
)
TABLES = "- {from: public.items}\n- {from: public.lines}"
# Every damage lies in the first key range of items (keys up to 50 with chunk_rows 50).
DAMAGE = (
    "DELETE FROM items WHERE id = 3",
    "INSERT INTO items (id, name) VALUES (10, 'extra')",
    "UPDATE items SET name = 'changed' WHERE id = 5",
    "UPDATE items SET amount = amount::numeric(20,3) WHERE id = 8",  # 4.000 for 4.0: scale only
    "UPDATE items SET seen = seen + interval '1 microsecond' WHERE id = 7",
    "UPDATE items SET doc = jsonb_set(doc, '{x,1}', '2.5') WHERE id = 9",  # inside jsonb
)
EXPECTED = {
    3: ("missing", []),
    10: ("extra", []),
    5: ("mismatched", ["name"]),
    8: ("mismatched", ["amount"]),
    7: ("mismatched", ["seen"]),
    9: ("mismatched", ["doc.x.1"]),
}


def _found(report: VerifyReport) -> dict[object, tuple[str, list[str]]]:
    return {m.id: (m.kind, [d.path for d in m.diffs]) for m in report.mismatches}


def _same_rows(pg2pg: PgToPg) -> None:
    for table, order in (("items", "id"), ("lines", "item, line")):
        query = f"SELECT t::text FROM {table} t ORDER BY {order}"
        assert pg2pg.target_rows(query) == pg2pg.source_rows(query), table


def test_verify_names_each_difference_and_repair_puts_back_the_source_rows(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES, phases="verify: {chunk_rows: 50}")
    pg2pg.run(plan)
    _same_rows(pg2pg)
    total = ROWS - 1 + 1 + 200

    # An untouched copy: equal row by row (every type read back as the source's reader gives it)
    # and by checksums, where every range is settled by its hashes.
    rows = verify_pg2pg(pg2pg, plan, row_by_row=True)
    assert (rows.verdict, rows.totals.checked, rows.totals.equal, rows.hashed) == ("equal", total, total, 0)
    hashed = verify_pg2pg(pg2pg, plan)
    assert (hashed.verdict, hashed.totals.checked, hashed.totals.equal) == ("equal", total, total)
    assert hashed.hashed == hashed.ranges > 2

    pg2pg.target(*DAMAGE)
    for report in (verify_pg2pg(pg2pg, plan, row_by_row=True), verify_pg2pg(pg2pg, plan)):
        assert report.verdict == "different"
        assert _found(report) == EXPECTED, report.to_dict()
        totals = report.totals
        assert (totals.missing, totals.extra, totals.mismatched) == (1, 1, 4)
    # Only the damaged range went row by row.
    assert report.hashed == report.ranges - 1
    [numeric] = [m for m in report.mismatches if m.id == 8]
    assert [(d.source, d.target) for d in numeric.diffs] == [
        ("decimal Decimal128('4.0')", "decimal Decimal128('4.000')")
    ]

    repaired = verify_pg2pg(pg2pg, plan, repair=True)
    assert repaired.totals.repaired == len(EXPECTED) and repaired.verdict == "equal", repaired.to_dict()
    _same_rows(pg2pg)
    again = verify_pg2pg(pg2pg, plan)
    assert again.verdict == "equal" and again.hashed == again.ranges


def test_verify_while_cdc_follows_a_writing_source_reports_only_real_differences(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES, phases="verify: {chunk_rows: 50, settle_timeout: 120s}")
    pg2pg.run(plan)
    follower = ApiRun("migrator-follow", plan, "stopped", pg2pg.state_path, pg2pg.env)
    wait_for(
        lambda: (
            pg2pg.source_rows("SELECT bool_or(active) FROM pg_replication_slots")[0][0] or not follower.alive
        ),
        "the replication stream",
        60,
    )
    stop = threading.Event()
    writes = [0]

    def write() -> None:
        # Rows 100..299 change all the time; row 20 never does.
        n = 0
        while not stop.is_set():
            n += 1
            pg2pg.source(
                f"UPDATE items SET amount = amount + 1, seen = now() WHERE id = {100 + n % 200}",
                f"UPDATE lines SET qty = qty + 0.25 WHERE line = {1 + n % 200}",
            )
            writes[0] += 1
            time.sleep(0.005)

    writer = threading.Thread(target=write, name="writer")
    writer.start()
    try:
        time.sleep(0.5)
        pg2pg.target("UPDATE items SET name = 'drifted' WHERE id = 20")
        report = verify_pg2pg(pg2pg, plan)
    finally:
        stop.set()
        writer.join(30)
        follower.finish()
    assert writes[0] > 20, "the writer must have been busy during the verify"
    totals = report.totals
    assert (totals.mismatched, totals.missing, totals.extra, totals.unsettled) == (1, 0, 0, 0), (
        report.to_dict()
    )
    assert _found(report) == {20: ("mismatched", ["name"])}
    assert 0 < report.hashed < report.ranges
