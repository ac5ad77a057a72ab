"""PostgreSQL -> PostgreSQL: the target tables are created without their primary keys, which are
added after the copy (docs/architecture.md, "After the copy"), and a chunk's DELETE is left out
only where nothing can be in its range. Proved against what would break it: a chunk committed on
the target but never checkpointed (the process died in between) is copied again on resume, and
must replace its rows, else the primary key's unique index finds duplicates; a table that existed before the run
(holding a stale row) must have its ranges replaced too.

The expectation is the source's rows, read with plain psycopg on both sides."""

from __future__ import annotations

from typing import Any

import pytest

from migrator.engine.events import ChunkFinished
from migrator.errors import MigratorError, TerminalError
from migrator.state import SQLiteStateStore
from tests.support.pg_target import PRIMARY_KEY_SQL, PgToPg

SCHEMA = (
    "CREATE TABLE public.items (id bigint PRIMARY KEY, n int NOT NULL, note text)",
    "INSERT INTO items SELECT g, g * 7, 'note ' || g FROM generate_series(1, 3000) g",
)
TABLES = "- {from: public.items}"
SETTINGS = "snapshot: {parallel: 1, chunk_rows: 500}"
ROWS_SQL = "SELECT t::text FROM items t ORDER BY id"
DUPLICATES_SQL = "SELECT id FROM items GROUP BY id HAVING count(*) > 1"


def test_a_chunk_committed_but_not_checkpointed_is_replaced_on_resume(
    pg2pg: PgToPg, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES, phases=SETTINGS)
    record = SQLiteStateStore.record_chunk

    def dies_before_the_checkpoint(
        self: SQLiteStateStore, run_id: str, table: str, chunk_id: int, **kw: Any
    ) -> Any:
        if kw.get("status") == "done" and chunk_id == 2:
            raise TerminalError("injected: the process died after the target's commit, before the checkpoint")
        return record(self, run_id, table, chunk_id, **kw)

    monkeypatch.setattr(SQLiteStateStore, "record_chunk", dies_before_the_checkpoint)
    with pytest.raises(MigratorError, match="injected"):
        pg2pg.run(plan)
    monkeypatch.undo()
    # The chunk's rows are on the target (committed), the key is not built yet, the chunk not done.
    written = pg2pg.target_rows("SELECT count(*) FROM items")[0][0]
    assert written >= 1500
    assert pg2pg.target_rows(PRIMARY_KEY_SQL, ["public.items"]) == []
    with SQLiteStateStore(pg2pg.state_path) as store:
        run = store.runs()[0]
        chunks = {c.chunk_id: c for c in store.chunks(run.id, "public.items")}
    assert (chunks[2].status, chunks[2].attempts) == ("running", 1)

    _, events = pg2pg.run(plan)  # resumes
    again = [c for c in events.of(ChunkFinished) if c.chunk_id == 2]
    assert [c.attempt for c in again] == [2]
    assert pg2pg.target_rows(DUPLICATES_SQL) == []
    assert pg2pg.target_rows(ROWS_SQL) == pg2pg.source_rows(ROWS_SQL)
    assert pg2pg.target_rows(PRIMARY_KEY_SQL, ["public.items"]) == [("id",)]


def test_a_table_that_existed_before_the_run_has_its_ranges_replaced(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    # Made by hand before the run, without a key, holding a stale row the source also has.
    pg2pg.target(
        "CREATE TABLE public.items (id bigint NOT NULL, n int NOT NULL, note text)",
        "INSERT INTO items VALUES (1234, -1, 'stale')",
    )
    pg2pg.run(pg2pg.plan(TABLES, phases=SETTINGS))
    assert pg2pg.target_rows(DUPLICATES_SQL) == []
    assert pg2pg.target_rows(ROWS_SQL) == pg2pg.source_rows(ROWS_SQL)
    assert pg2pg.target_rows(PRIMARY_KEY_SQL, ["public.items"]) == [("id",)]
