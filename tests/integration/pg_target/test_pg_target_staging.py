"""CDC batches through the staging table (adapters/postgres_target/staging.py): a batch's rows of a
table copied into a temporary table and merged give the rows that applying each write one after
the other gives. The expectation is a model here that applies the writes in order to a dict of
rows, written without the applier's folding or merging; the target's rows are read back.

Covered: column updates of several column sets (NULLs among them), whole rows with NULLs, deletes,
a whole row and an update of every column whose JSON column holds a JSON string,
a key deleted and inserted again, a row inserted, updated and deleted, an update of a row that is
not there, a key change between two staged steps of one table (the staging table used twice in a
transaction), a compound key, a replayed batch, a failed batch, a batch with too few rows to be
staged; a lost checkpoint found by the one sent in the merge's pipeline; the forward origin on staged writes, held only while a batch commits; and, through real CDC, a TRUNCATE between staged rows.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from migrator.adapters.base import WriteOp
from migrator.adapters.postgres_target import staging
from migrator.adapters.postgres_target.applier import TableApplier
from migrator.adapters.postgres_target.connection import Connections, TargetEndpoint
from migrator.errors import MigratorError, TargetLostWrites
from tests.support.pg_target import PgToPg

SCHEMA = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), tags text[], "
    "doc jsonb, seen timestamptz)",
    "CREATE TABLE lines (a integer, b integer, total numeric NOT NULL, PRIMARY KEY (a, b))",
    "INSERT INTO items SELECT g, 'n' || g, g * 1.5, ARRAY['t' || g], jsonb_build_object('g', g), "
    "'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second' FROM generate_series(1, 80) g",
    "INSERT INTO lines SELECT g % 5, g, g FROM generate_series(1, 60) g",
)
ITEM_COLUMNS = ("name", "amount", "tags", "doc", "seen")
T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def _seed_items() -> dict[Any, dict[str, Any]]:
    return {
        g: {
            "name": f"n{g}",
            "amount": Decimal(g) * Decimal("1.5"),
            "tags": [f"t{g}"],
            "doc": {"g": g},
            "seen": T0 + datetime.timedelta(seconds=g),
        }
        for g in range(1, 81)
    }


def _seed_lines() -> dict[Any, dict[str, Any]]:
    return {(g % 5, g): {"total": Decimal(g)} for g in range(1, 61)}


def _set(table: str, doc_id: Any, **columns: Any) -> WriteOp:
    return WriteOp(table, "update", {"_id": doc_id}, {"$set": columns})


def _row(table: str, doc_id: Any, **columns: Any) -> WriteOp:
    return WriteOp(table, "replace", {"_id": doc_id}, {"_id": doc_id, **columns})


def _delete(table: str, doc_id: Any) -> WriteOp:
    return WriteOp(table, "delete", {"_id": doc_id})


def _line(a: int, b: int) -> dict[str, int]:
    return {"a": a, "b": b}


def _batch() -> list[WriteOp]:
    items, lines = "public.items", "public.lines"
    ops: list[WriteOp] = []
    ops += [_set(items, i, amount=Decimal(i) / 4) for i in range(1, 21)]  # one set of columns
    ops += [_set(items, i, name=f"u{i}", tags=None) for i in range(21, 26)]  # another, with NULLs
    ops += [_delete(items, i) for i in range(26, 31)]
    ops += [
        _delete(items, 31),
        _row(items, 31, name="again", amount=None, tags=["x", None], doc="s", seen=None),
    ]
    ops += [_row(items, 200, name="new", amount=Decimal("2.25"), tags=[], doc=[1, {"x": True}], seen=T0)]
    ops += [_set(items, 200, name="newer"), _delete(items, 200)]  # inserted, updated, deleted
    ops += [
        _row(items, 201, name="kept", amount=None, tags=None, doc=None, seen=None),
        _set(items, 201, doc={}),
    ]
    ops += [_set(items, 32, name="first"), _set(items, 32, amount=Decimal(7)), _set(items, 32, name="last")]
    ops += [_set(items, 999, name="absent")]  # not there: stays absent
    # A whole row and an update of every column, each value a str or None, one a JSON string:
    # still a JSON value, not the text of one (staging.py builds such rows whole otherwise).
    ops += [
        _row(items, 202, name="plain", amount=None, tags=None, doc="s", seen=None),
        _set(items, 70, name="every", amount=None, tags=None, doc="t", seen=None),
    ]
    ops += [
        _set(items, 33, name="before"),
        _row(items, 33, name="whole", amount=None, tags=None, doc=None, seen=T0),
    ]
    ops += [_set(lines, _line(i % 5, i), total=Decimal(i) + Decimal("0.5")) for i in range(1, 41)]
    ops += [_delete(lines, _line(1, 21)), _row(lines, _line(1, 21), total=Decimal(-1))]
    # A key change: a barrier, after which both tables are staged again in the same transaction.
    moved = {**{c: None for c in ITEM_COLUMNS}, "name": "moved", "seen": T0}
    ops.append(WriteOp(items, "rekey", {"_id": 34}, extra={"new_id": 134, "set": moved, "defaults": {}}))
    ops += [_set(items, 134, amount=Decimal(134))]
    ops += [_set(items, i, amount=Decimal(-i), doc={"i": i}) for i in range(35, 60)]
    ops += [_delete(items, i) for i in range(60, 70)]
    ops += [_row(items, 60, name="back", amount=Decimal(60), tags=["y"], doc={"k": [1, 2]}, seen=None)]
    ops += [_set(lines, _line(i % 5, i), total=Decimal(0)) for i in range(21, 50)]
    ops += [_delete(lines, _line(i % 5, i)) for i in range(50, 55)]
    return ops


def _key(table: str, doc_id: Any) -> Any:
    return (doc_id["a"], doc_id["b"]) if table == "public.lines" else doc_id


def _expected(ops: Sequence[WriteOp]) -> dict[str, dict[Any, dict[str, Any]]]:
    """The writes applied one after the other, to rows as dicts (the model)."""
    tables = {"public.items": _seed_items(), "public.lines": _seed_lines()}
    for op in ops:
        rows = tables[op.collection]
        key = _key(op.collection, op.filter["_id"])
        if op.kind == "replace":
            rows[key] = {k: v for k, v in op.update.items() if k != "_id"}
        elif op.kind == "update":
            if key in rows:
                rows[key].update(op.update["$set"])
        elif op.kind == "delete":
            rows.pop(key, None)
        else:  # rekey
            old = rows.pop(key, None)
            rows[_key(op.collection, op.extra["new_id"])] = {**(old or {}), **op.extra["set"]}
    return tables


def _stored(url: str) -> dict[str, dict[Any, dict[str, Any]]]:
    with psycopg.connect(url) as conn:
        items = {
            r[0]: dict(zip(ITEM_COLUMNS, r[1:], strict=True))
            for r in conn.execute("SELECT id, name, amount, tags, doc, seen FROM items")
        }
        lines = {(r[0], r[1]): {"total": r[2]} for r in conn.execute("SELECT a, b, total FROM lines")}
    return {"public.items": items, "public.lines": lines}


@pytest.fixture
def target(pg_url: str) -> Iterator[tuple[str, TableApplier, Connections]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
    connections = Connections(TargetEndpoint(pg_url))
    try:
        yield pg_url, TableApplier(connections, "staging-test"), connections
    finally:
        connections.close()


def _staging_tables(connections: Connections) -> list[str]:
    return [
        str(r[0])
        for r in connections.run(
            lambda conn: conn.execute(
                "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relkind = 'r' ORDER BY 1"
            ).fetchall()
        )
    ]


def test_a_staged_batch_gives_the_rows_of_its_writes_applied_one_by_one(
    target: tuple[str, TableApplier, Connections],
) -> None:
    url, applier, connections = target
    ops = _batch()
    expected = _expected(ops)
    applier.apply(ops, 100, "0/64")
    assert _stored(url) == expected
    # Spot checks the model must agree with, too.
    items = expected["public.items"]
    assert 26 not in items and 200 not in items and 999 not in items and 34 not in items
    assert items[31]["name"] == "again" and items[32]["name"] == "last" and items[134]["name"] == "moved"
    assert items[33] == {"name": "whole", "amount": None, "tags": None, "doc": None, "seen": T0}
    assert items[202]["doc"] == "s" and items[70]["doc"] == "t"
    # The staged path ran: a staging table per table (their rows went at commit).
    staged = _staging_tables(connections)
    assert len(staged) == 2 and all(name.startswith("migrator_stage_") for name in staged)
    assert connections.run(
        lambda conn: conn.execute(f"SELECT count(*) FROM pg_temp.{staged[0]}").fetchone()
    ) == (0,)

    # Replayed (a crash before the source was acknowledged): the same rows.
    applier.apply(ops, 100, "0/64")
    assert _stored(url) == expected
    # The checkpoint committed with the batch.
    assert applier.checkpoint() is not None and applier.checkpoint()["position"] == 100  # type: ignore[index]


def test_a_failed_staged_batch_leaves_neither_rows_nor_checkpoint(
    target: tuple[str, TableApplier, Connections],
) -> None:
    url, applier, _ = target
    before = _stored(url)
    # A whole row without its NOT NULL name fails in the merge, after the staged copy.
    ops = [_set("public.items", i, amount=Decimal(0)) for i in range(1, 40)]
    ops.append(_row("public.items", 300, name=None, amount=None, tags=None, doc=None, seen=None))
    assert len(ops) >= staging.MIN_ROWS
    with pytest.raises(MigratorError):
        applier.apply(ops, 50, "0/32")
    assert _stored(url) == before
    assert applier.checkpoint() is None
    # The next batch goes through on a new connection (its staging table created again).
    good = ops[:-1]
    applier.apply(good, 60, "0/3C")
    expected = _expected(good)
    assert _stored(url) == expected


def test_a_checkpoint_sent_with_the_merge_still_finds_a_lost_one(
    target: tuple[str, TableApplier, Connections],
) -> None:
    """After the first batch, the checkpoint goes in the last staged table's pipeline: it is
    written with the batch, and a stored checkpoint behind the one this applier committed (the
    target lost a commit) still stops the batch, which leaves nothing."""
    url, applier, _ = target
    first = [_set("public.items", i, amount=Decimal(1)) for i in range(1, 41)]
    applier.apply(first, 100, "0/64")
    second = [_set("public.items", i, amount=Decimal(2)) for i in range(1, 41)]
    applier.apply(second, 200, "0/C8")
    assert applier.checkpoint()["position"] == 200  # type: ignore[index]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE migrator.state SET doc = jsonb_set(doc, '{position}', '150') WHERE id = 'staging-test'"
        )
    before = _stored(url)
    third = [_set("public.items", i, amount=Decimal(3)) for i in range(1, 41)]
    with pytest.raises(TargetLostWrites):
        applier.apply(third, 300, "0/12C")
    assert _stored(url) == before
    assert before["public.items"][1]["amount"] == Decimal(2)


def test_a_few_rows_go_as_single_statements_with_the_same_result(
    target: tuple[str, TableApplier, Connections],
) -> None:
    url, applier, connections = target
    ops = [
        _set("public.items", 1, name="one"),
        _delete("public.items", 2),
        _row("public.items", 2, name="two", amount=None, tags=None, doc=None, seen=None),
        _delete("public.lines", _line(1, 1)),
    ]
    applier.apply(ops, 10, "0/A")
    assert _stored(url) == _expected(ops)
    assert _staging_tables(connections) == []


def _schema_and_slot(url: str, slot: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [slot])


def _item_updates_then_drop(url: str, slot: str, origin_name: str) -> tuple[int, int]:
    """The updates of items that slot `slot` saw: all of them, and those without an origin
    (test_decoding's `only-local`); then the slot and the origin dropped."""
    peek = (
        "SELECT count(*) FROM pg_logical_slot_peek_changes(%s, NULL, NULL{}) "
        "WHERE data LIKE 'table public.items: UPDATE:%%'"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        every = conn.execute(peek.format(""), [slot]).fetchone()
        local = conn.execute(peek.format(", 'only-local', '1'"), [slot]).fetchone()
        conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
        conn.execute("SELECT pg_replication_origin_drop(%s)", [origin_name])
    assert every is not None and local is not None
    return every[0], local[0]


def test_a_staged_batch_commits_under_the_forward_origin(pg_url: str) -> None:
    """Reverse sync skips forward CDC's transactions by their origin (origin.py): the staged
    merge's writes carry it too. A test_decoding slot on the target sees them, and its
    `only-local` option (changes without an origin only) does not."""
    _schema_and_slot(pg_url, "staging_origin")
    connections = Connections(TargetEndpoint(pg_url))
    try:
        applier = TableApplier(connections, "staging-origin", origin_name="migrator_staging_test")
        ops = [_set("public.items", i, name=f"o{i}") for i in range(1, 41)]
        assert len(ops) >= staging.MIN_ROWS
        applier.apply(ops, 10, "0/A")
    finally:
        connections.close()
    assert _item_updates_then_drop(pg_url, "staging_origin", "migrator_staging_test") == (40, 0)
    assert _stored(pg_url)["public.items"][40]["name"] == "o40"


def test_the_forward_origin_is_held_only_while_a_batch_commits(pg_url: str) -> None:
    """The origin is bound with the batch's BEGIN and released with its COMMIT (origin.py): once
    a batch returned, or failed, another session binds it (a second applier after a retry, or
    on another thread, meets no SQLSTATE 55006), and every batch that committed carries it."""
    _schema_and_slot(pg_url, "origin_held")
    name = "migrator_origin_held_test"

    def bind_elsewhere() -> None:
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SELECT pg_replication_origin_session_setup(%s)", [name])
            other.execute("SELECT pg_replication_origin_session_reset()")

    connections = Connections(TargetEndpoint(pg_url))
    try:
        applier = TableApplier(connections, "origin-held", origin_name=name)
        applier.apply([_set("public.items", i, name=f"h{i}") for i in range(1, 41)], 10, "0/A")
        bind_elsewhere()
        failing = [_set("public.items", i, amount=Decimal(0)) for i in range(1, 40)]
        failing.append(_row("public.items", 300, name=None, amount=None, tags=None, doc=None, seen=None))
        with pytest.raises(MigratorError):
            applier.apply(failing, 20, "0/14")
        bind_elsewhere()
        applier.apply([_set("public.items", 41, name="few")], 30, "0/1E")  # no staging table
        bind_elsewhere()
        again = TableApplier(connections, "origin-held", origin_name=name)
        worker = threading.Thread(
            target=again.apply, args=([_set("public.items", 42, name="thread")], 40, "0/28")
        )
        worker.start()
        worker.join()
        bind_elsewhere()
        assert again.checkpoint()["position"] == 40  # type: ignore[index]
    finally:
        connections.close()
    assert _item_updates_then_drop(pg_url, "origin_held", name) == (42, 0)
    stored = _stored(pg_url)["public.items"]
    assert (stored[40]["name"], stored[41]["name"], stored[42]["name"], stored[1]["amount"]) == (
        "h40",
        "few",
        "thread",
        Decimal("1.50"),
    )


def test_a_truncate_between_staged_rows_of_one_source_transaction(pg2pg: PgToPg) -> None:
    """Real CDC, one source transaction: many updates, a TRUNCATE (applied), many inserts and
    updates of the new rows; the target ends as the source."""
    pg2pg.source(
        "CREATE TABLE public.t (id integer PRIMARY KEY, v text, n numeric)",
        "INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 50) g",
    )
    plan = pg2pg.plan("- {from: public.t}", phases="cdc: {on_truncate: apply}")
    pg2pg.run(plan)
    pg2pg.source(
        """BEGIN;
        UPDATE t SET v = 'before' WHERE id <= 40;
        TRUNCATE t;
        INSERT INTO t SELECT g, 'after' || g, NULL FROM generate_series(10, 45) g;
        UPDATE t SET n = id * 2 WHERE id % 3 = 0;
        DELETE FROM t WHERE id > 35;
        COMMIT"""
    )
    pg2pg.run(plan, until="caught-up")
    query = "SELECT id, v, n FROM t ORDER BY id"
    assert pg2pg.target_rows(query) == pg2pg.source_rows(query)
    assert len(pg2pg.source_rows(query)) == 26


def test_an_aware_datetime_lands_in_a_timestamp_column_as_its_utc_wall_clock_either_way(pg_url: str) -> None:
    """A `timestamp without time zone` holds the UTC wall clock (docs/architecture.md, "Tables as
    collections"): staged (text COPY, whose input ignores an offset) as written one by one."""
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE stamps (id integer PRIMARY KEY, at timestamp, ats timestamp[])")
    connections = Connections(TargetEndpoint(pg_url))
    try:
        applier = TableApplier(connections, "staging-stamps")
        at = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=plus2)
        staged = [_row("public.stamps", i, at=at, ats=[at, None]) for i in range(40)]
        single = [_row("public.stamps", 100, at=at, ats=[at])]
        assert len(staged) >= staging.MIN_ROWS > len(single)
        applier.apply(staged, 1, "0/1")
        applier.apply(single, 2, "0/2")
    finally:
        connections.close()
    utc = datetime.datetime(2024, 5, 1, 10, 0)
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, at, ats FROM stamps ORDER BY id").fetchall()
    assert rows == [(i, utc, [utc, None]) for i in range(40)] + [(100, utc, [utc])]


def test_staged_deletes_and_column_updates_of_a_table_with_a_not_null_domain(pg_url: str) -> None:
    """A staged delete or column update carries only some columns: the staging table must not
    refuse the others' NULLs, as a NOT NULL domain column (copied from the source) would."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE DOMAIN positive AS integer NOT NULL CHECK (VALUE > 0)")
        conn.execute("CREATE TABLE ranked (id integer PRIMARY KEY, rank positive, label text)")
        conn.execute("INSERT INTO ranked SELECT g, g, 'l' || g FROM generate_series(1, 60) g")
    ops = [_delete("public.ranked", i) for i in range(1, 11)]
    ops += [_set("public.ranked", i, label=f"x{i}") for i in range(11, 41)]
    ops += [_row("public.ranked", i, rank=i + 100, label=None) for i in range(41, 51)]
    assert len(ops) >= staging.MIN_ROWS
    connections = Connections(TargetEndpoint(pg_url))
    try:
        TableApplier(connections, "staging-domain").apply(ops, 1, "0/1")
    finally:
        connections.close()
    expected = [(i, i, f"x{i}") for i in range(11, 41)]
    expected += [(i, i + 100, None) for i in range(41, 51)]
    expected += [(i, i, f"l{i}") for i in range(51, 61)]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id, rank, label FROM ranked ORDER BY id").fetchall() == expected
