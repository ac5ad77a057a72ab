"""Snapshot batches into a target table: INSERT ... ON CONFLICT (primary key) DO UPDATE of each
row, a batch in one transaction, so that a chunk copied again replaces its rows and never
duplicates them (docs/architecture.md, "Tables as collections")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import WriteResult
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.rows import TargetTable, decode, row_values

# PostgreSQL takes at most 65,535 parameters a statement (delete_keys).
MAX_PARAMETERS = 60_000


def on_conflict(table: TargetTable) -> sql.Composed:
    """`ON CONFLICT (key) DO UPDATE` of every other column from the row inserted (DO NOTHING when
    the key is every column): an INSERT's row replaces a stored row of the same key."""
    others = [c.name for c in table.writable if c.name not in table.key]
    update = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in others)
        )
        if others
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL("ON CONFLICT ({}) {}").format(
        sql.SQL(", ").join(sql.Identifier(k) for k in table.key), update
    )


def upsert_statement(table: TargetTable, rows: int, *, returning: bool = True) -> sql.Composed:
    """INSERT of `rows` whole rows, replacing a row of the same key; with `returning`, RETURNING
    whether each was inserted (xmax is 0 for a row this statement inserted, its own id for one it
    updated). A partitioned table refuses a system column there (0A000), so CDC, which needs no
    counts, asks for none."""
    names = [c.name for c in table.writable]
    one = sql.SQL("({})").format(sql.SQL(", ").join(table.placeholder(n) for n in names))
    return sql.SQL("INSERT INTO {} ({}) VALUES {} {}{}").format(
        table.identifier,
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.SQL(", ").join([one] * rows),
        on_conflict(table),
        sql.SQL(" RETURNING (xmax = 0)" if returning else ""),
    )


def upsert(
    conn: psycopg.Connection[Any], table: TargetTable, documents: Sequence[dict[str, Any]]
) -> WriteResult:
    """Write whole rows (no two of one key): one prepared single-row upsert sent for all of them
    in a pipeline (psycopg's executemany), each row's RETURNING saying whether it was inserted.
    The multi-row statement it replaces spent two thirds of its time composing and splitting its
    60,000-parameter text in the client, for every batch: measured on 20,000 rows of 7 mixed
    columns in batches of 1,000, 5.8 s against 2.9 s (docs/architecture.md, "Tables as
    collections")."""
    if not documents:
        return WriteResult(0, 0)
    names = [c.name for c in table.writable]
    inserted = 0
    with conn.cursor() as cur:
        cur.executemany(
            upsert_statement(table, 1), [row_values(table, d, names) for d in documents], returning=True
        )
        while True:
            inserted += sum(1 for (new,) in cur.fetchall() if new)
            if not cur.nextset():
                break
    return WriteResult(inserted, len(documents) - inserted)


class TableWriter:
    """A target table's snapshot writer (adapters/base.py CollectionWriter), on the calling
    thread's connection of the adapter (`connections`): the snapshot asks for a writer per chunk
    and never closes it."""

    def __init__(self, connections: Connections, table: str) -> None:
        self._connections = connections
        self._name = table

    def write(self, batch: Sequence[tuple[Any, bytes]]) -> WriteResult:
        if not batch:
            return WriteResult(0, 0)
        # One key once: within a batch the last document of a key is the one that stands.
        documents = list({repr(doc_id): decode(raw) for doc_id, raw in batch}.values())
        table = self._connections.table(self._name)
        return self._connections.run(lambda conn: upsert(conn, table, documents))


def delete_keys(conn: psycopg.Connection[Any], table: TargetTable, ids: Sequence[Any]) -> None:
    """DELETE the rows of keys `ids`, as one `(key) IN (VALUES ...)` a statement."""
    per = max(1, MAX_PARAMETERS // len(table.key))
    one = sql.SQL("({})").format(sql.SQL(", ").join(table.placeholder(k) for k in table.key))
    for start in range(0, len(ids), per):
        part = ids[start : start + per]
        query = sql.SQL("DELETE FROM {} WHERE ({}) IN (VALUES {})").format(
            table.identifier,
            sql.SQL(", ").join(sql.Identifier(k) for k in table.key),
            sql.SQL(", ").join([one] * len(part)),
        )
        conn.execute(query, [v for doc_id in part for v in table.key_values(doc_id)])


def upsert_each(
    conn: psycopg.Connection[Any], table: TargetTable, documents: Sequence[dict[str, Any]]
) -> None:
    """Write whole rows (no two of one key) as one prepared single-row upsert sent for all of them
    in a pipeline (psycopg's executemany): for CDC batches it costs half the time and CPU of the
    multi-row statement, measured on 40,000 rows in 20 transactions (docs/architecture.md,
    "Tables as collections")."""
    names = [c.name for c in table.writable]
    with conn.cursor() as cur:
        cur.executemany(
            upsert_statement(table, 1, returning=False), [row_values(table, d, names) for d in documents]
        )


def update_columns(
    conn: psycopg.Connection[Any],
    table: TargetTable,
    names: Sequence[str],
    changes: Sequence[tuple[Any, Mapping[str, Any]]],
) -> None:
    """Set columns `names` of the rows of the given keys (rows that are not there stay absent),
    one prepared UPDATE sent for all of them in a pipeline, as upsert_each."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(n), table.placeholder(n)) for n in names
    )
    query = sql.SQL("UPDATE {} SET {} WHERE {}").format(table.identifier, assignments, table.key_match())
    with conn.cursor() as cur:
        cur.executemany(
            query,
            [
                [table.value(n, columns[n]) for n in names] + table.key_values(doc_id)
                for doc_id, columns in changes
            ],
        )
