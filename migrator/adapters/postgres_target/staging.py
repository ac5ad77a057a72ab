"""Many rows of one table's CDC writes through a staging table (docs/architecture.md, "Tables as
collections"): the rows are copied (COPY) into a temporary table of the target table's columns
(as text), then merged in a few set-based statements: a DELETE ... USING of the absent keys, one INSERT ...
SELECT ... ON CONFLICT DO UPDATE of the whole rows, one UPDATE ... FROM per set of columns.

What the rows are, and that they commute, is batch.py's: each key appears once, as a key to
delete, a whole row, or a column update (a row that is not there stays absent). The staging
table belongs to the session (a temporary table, created once a connection and kept), and its rows
to the transaction (ON COMMIT DELETE ROWS): a batch that fails leaves nothing behind, and a batch
that stages one table twice (a barrier between) empties it first. A column `migrator group` says
what each staged row is: DELETED, ROW, or the number of its set of columns.

One statement a row in a pipeline (writer.py) costs the server a parse-bind-execute and an index
lookup each; the merge costs one of each a statement, for all the rows.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import SourceText
from migrator.adapters.postgres_target.batch import TableWrites
from migrator.adapters.postgres_target.rows import TargetTable, row_values
from migrator.adapters.postgres_target.writer import on_conflict

# A table step of at least this many rows is staged; fewer go as prepared statements in a pipeline
# (writer.py), which costs fewer round trips for the few rows a quiet stream brings. Measured on
# bench_flat's columns (60% column updates, 25% whole rows, 15% deletes), client CPU a row,
# pipeline against staging: 16 rows 70 us / 89 us, 32 rows 63 / 46, 256 rows 19 / 11, 2,000 rows
# 15 / 8 (docs/architecture.md, "Tables as collections").
MIN_ROWS = 32
GROUP = "migrator group"
DELETED = -1
ROW = 0


def staging_name(table: TargetTable) -> str:
    """The staging table's name: one per target table and shape, so that a table whose columns
    changed (an added column) gets a staging table of its new columns."""
    shape = repr((table.name, [(c.name, c.declared) for c in table.writable]))
    return "migrator_stage_" + hashlib.sha256(shape.encode()).hexdigest()[:20]


def create(conn: psycopg.Connection[Any], table: TargetTable, name: str) -> None:
    """The staging table of `table`, in this session's temporary schema, if it has none yet: the
    target table's columns, each as text, cast to its declared type in the merge as a parameter
    is (rows.py placeholder). Text and no constraints: a column update leaves the other columns
    NULL, which a domain's NOT NULL would refuse."""
    conn.execute(
        sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ({} integer, {}) ON COMMIT DELETE ROWS").format(
            sql.Identifier(name),
            sql.Identifier(GROUP),
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c.name)) for c in table.writable),
        )
    )


def _cast(table: TargetTable, name: str) -> sql.Composable:
    """Staged column `name` (of `s`) as its declared type."""
    return sql.SQL("s.{}::{}").format(sql.Identifier(name), sql.SQL(table.column(name).declared))


def write(
    conn: psycopg.Connection[Any],
    table: TargetTable,
    writes: TableWrites,
    name: str,
    *,
    fresh: bool,
    then: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> None:
    """Stage `writes` into staging table `name` (created, see create), then merge them into
    `table`. `fresh`: the staging table holds no rows of this transaction yet. `then`: more
    statements to send in the merge's pipeline, after it (the batch's checkpoint)."""
    stage = sql.Identifier("pg_temp", name)
    if not fresh:
        conn.execute(sql.SQL("DELETE FROM {}").format(stage))
    names = [c.name for c in table.writable]
    groups = list(writes.column_updates())
    _copy(conn, table, stage, names, writes, groups)
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{} = {}").format(sql.Identifier(k), _cast(table, k)) for k in table.key
    )
    # The merge's statements in one round trip (a pipeline: COPY cannot be in one): a batch's
    # round trips are most of its time while the reading thread keeps the interpreter busy.
    with conn.pipeline():
        if writes.deletes:
            conn.execute(
                sql.SQL("DELETE FROM {} AS t USING {} AS s WHERE s.{} = {} AND {}").format(
                    table.identifier, stage, sql.Identifier(GROUP), sql.Literal(DELETED), match
                )
            )
        if writes.rows:
            conn.execute(_merge_rows(table, stage, names))
        for number, (columns, _) in enumerate(groups, start=1):
            conn.execute(
                sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE s.{} = {} AND {}").format(
                    table.identifier,
                    sql.SQL(", ").join(
                        sql.SQL("{} = {}").format(sql.Identifier(c), _cast(table, c)) for c in columns
                    ),
                    stage,
                    sql.Identifier(GROUP),
                    sql.Literal(number),
                    match,
                )
            )
        if then is not None:
            then(conn)


def _merge_rows(table: TargetTable, stage: sql.Composable, names: Sequence[str]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE s.{} = {} {}").format(
        table.identifier,
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.SQL(", ").join(_cast(table, n) for n in names),
        stage,
        sql.Identifier(GROUP),
        sql.Literal(ROW),
        on_conflict(table),
    )


def _wall_clock(value: Any) -> Any:
    """A time-zone-aware datetime as its UTC wall clock (lists: each element). The text input of a
    `timestamp without time zone` ignores an offset, where the cast of a parameter (rows.py
    placeholder) converts it to the session's TimeZone, UTC (connection.py)."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    if isinstance(value, list):
        return [_wall_clock(v) for v in value]
    return value


def _copy(
    conn: psycopg.Connection[Any],
    table: TargetTable,
    stage: sql.Composable,
    names: Sequence[str],
    writes: TableWrites,
    groups: Sequence[tuple[tuple[str, ...], Sequence[tuple[Any, dict[str, Any]]]]],
) -> None:
    """Every staged row, in text COPY: the staged text is cast to each column's type in the merge,
    as a parameter is (rows.py placeholder)."""
    width = len(names)
    position = {n: i for i, n in enumerate(names)}
    key_at = [position[k] for k in table.key]
    wall_clock = [i + 1 for i, c in enumerate(table.writable) if "without time zone" in c.declared]
    query = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(
        stage, sql.Identifier(GROUP), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )

    as_is = table.as_is
    # A key of one column whose value is written as it is (an integer, text): placed without a
    # call (staging writes one a row).
    key_as_is = as_is[table.key[0]] if len(table.key) == 1 else frozenset()
    first_key = key_at[0] + 1

    def keyed(group: int, doc_id: Any) -> list[Any]:
        row: list[Any] = [None] * (width + 1)
        row[0] = group
        if type(doc_id) in key_as_is:
            row[first_key] = doc_id
            return row
        for at, value in zip(key_at, table.key_values(doc_id), strict=True):
            row[at + 1] = value
        return row

    def place(column: str) -> int:
        if column not in position:
            table.column(column)  # not the table's: TargetError, naming it
        return position[column] + 1

    # The commonest rows built whole, without a step a value: a key of one column leading the
    # staging table's columns, and every other column in its order (a whole row; an update of
    # every column, pgoutput's usual), each value of a type written as it is in every one of them.
    whole = tuple(names[1:]) if key_at == [0] else None
    whole_as_is = frozenset.intersection(*(as_is[n] for n in names)) if whole is not None else frozenset()
    shape = None if whole is None else ("_id", *whole)  # a whole row's document (mapping/changes.py)

    def whole_row(document: dict[str, Any]) -> list[Any] | None:
        """A whole row as that document holds it (its _id the key's value), or None."""
        if tuple(document) != shape or not whole_as_is.issuperset(map(type, document.values())):
            return None
        return [ROW, *document.values()]

    def rows() -> Iterator[list[Any]]:
        for doc_id in writes.deletes.values():
            yield keyed(DELETED, doc_id)
        for document in writes.rows.values():
            yield whole_row(document) or [ROW, *row_values(table, document, names)]
        for number, (columns, changes) in enumerate(groups, start=1):
            # A group's rows set the same columns, in the same order (batch.py column_updates).
            places = [(place(c), c, as_is[c]) for c in columns]
            every = columns == whole
            for doc_id, values in changes:
                if (
                    every
                    and type(doc_id) in whole_as_is
                    and whole_as_is.issuperset(map(type, values.values()))
                ):
                    yield [number, doc_id, *values.values()]  # a whole row's columns, as above
                    continue
                row = keyed(number, doc_id)
                for (at, column, plain), value in zip(places, values.values(), strict=True):
                    # Most values pass through as they are (the source's text, NULL: text_values.py):
                    # no call for those.
                    row[at] = (
                        value
                        if type(value) in plain or isinstance(value, SourceText)
                        else table.value(column, value)
                    )
                yield row

    with conn.cursor() as cur, cur.copy(query) as copy:
        for row in rows():
            for at in wall_clock:
                row[at] = _wall_clock(row[at])
            copy.write_row(row)
