"""A large table with fresh statistics is cut into chunks at its key's histogram bounds
(migrator/adapters/postgres/histogram.py; docs/architecture.md, "Undecoded copy"): one catalog
query instead of a walk over the key's index, and the ranges still hold every row of the snapshot,
rows added since ANALYZE included. Stale statistics fall back to the walk's exact sizes.

The expectation is the source itself, counted with plain SQL."""

from __future__ import annotations

import pytest

from migrator.adapters.postgres import PostgresSource, histogram
from migrator.engine.events import ChunkFinished
from tests.support.pg_target import PgToPg

ROWS = 30_000
CHUNK = 3_000
LATE = 100  # rows inserted after ANALYZE, every key past the histogram's last bound


def _items(pg2pg: PgToPg) -> None:
    pg2pg.source(
        "CREATE TABLE public.items (id bigint PRIMARY KEY, note text)",
        # keys scattered over a range, so that a boundary is not a round number
        f"INSERT INTO items SELECT (g * 7919) % 1000003, 'n' || g FROM generate_series(1, {ROWS}) g",
        "ANALYZE items",
    )


def test_fresh_statistics_cut_the_table_at_its_histogram_and_every_row_is_copied(
    pg2pg: PgToPg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(histogram, "MIN_ROWS", 1_000)
    _items(pg2pg)
    pg2pg.source(f"INSERT INTO items SELECT 2000000 + g, 'late' FROM generate_series(1, {LATE}) g")
    _, events = pg2pg.run(
        pg2pg.plan("- {from: public.items}", phases=f"snapshot: {{parallel: 2, chunk_rows: {CHUNK}}}")
    )
    chunks = sorted(events.of(ChunkFinished), key=lambda c: c.chunk_id)
    # The walk would cut 30,100 rows into 10 chunks of 3,000 and one of 100; the histogram of the
    # 30,000 analysed rows into 10, the late rows in the last (open-ended) one.
    assert len(chunks) == ROWS // CHUNK
    assert chunks[-1].hi is None and chunks[-1].rows_read >= LATE + CHUNK // 2
    assert all(CHUNK // 2 <= c.rows_read <= CHUNK * 2 for c in chunks[:-1])
    assert sum(c.rows_read for c in chunks) == ROWS + LATE
    query = "SELECT id, note FROM items ORDER BY id"
    assert pg2pg.target_rows(query) == pg2pg.source_rows(query)


def test_stale_statistics_fall_back_to_the_walk_and_its_exact_sizes(
    pg2pg: PgToPg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(histogram, "MIN_ROWS", 1_000)
    _items(pg2pg)
    source = PostgresSource(pg2pg.source_url)
    session = source.snapshot_session(None)
    try:
        fresh = session.key_boundaries("public.items", ["id"], ["bigint"], CHUNK)
    finally:
        session.close()
    # Half as many rows again since ANALYZE: the heap grew over MAX_GROWTH, the statistics are not used.
    pg2pg.source(f"INSERT INTO items SELECT 2000000 + g, 'late' FROM generate_series(1, {ROWS // 2}) g")
    session = source.snapshot_session(None)
    try:
        walked = session.key_boundaries("public.items", ["id"], ["bigint"], CHUNK)
    finally:
        session.close()
    ranks = pg2pg.source_rows(
        "SELECT id::text FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM items) t "
        "WHERE n %% %s = 0 AND n < %s ORDER BY n",
        [CHUNK, ROWS + ROWS // 2],
    )
    assert walked == [[r[0]] for r in ranks]  # every CHUNK-th key: the walk's exact sizes
    # The histogram's cut of the first 30,000 rows: 9 bounds, where the walk cuts 14.
    assert len(fresh) == ROWS // CHUNK - 1 and len(walked) == (ROWS + ROWS // 2) // CHUNK - 1
