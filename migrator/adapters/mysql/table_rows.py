"""Every row of one table, now, with its values as a change of the row carries them (values.py):
for a column added while CDC follows (docs/architecture.md, "Schema changes"). One consistent
snapshot, read through an unbuffered cursor in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pymysql
import pymysql.cursors

from migrator.adapters.base import ColumnInfo
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.readers import not_shown
from migrator.adapters.mysql.reading import quote, table_sql
from migrator.adapters.mysql.snapshot import open_snapshot
from migrator.adapters.mysql.values import CONVERSIONS, converter, row_converter, select_expression
from migrator.adapters.shown import read_when_shown


def read_rows(
    endpoint: MysqlEndpoint,
    table: str,
    columns: Mapping[str, ColumnInfo],
    order: Sequence[str],
    chunk: int,
    visible: Sequence[Any] = (),
) -> Iterator[list[dict[str, Any]]]:
    """The rows of `table` ordered by `order`, in lists of up to `chunk`, as name -> value, read
    once the snapshot shows the transactions `visible` (where they begin in the binlog: the
    binlog is sent before the engine commits; docs/architecture.md, "Why reading 'now'
    converges")."""
    names = list(columns)
    select = ", ".join(select_expression(quote(n), columns[n]) for n in names)
    ordering = f" ORDER BY {', '.join(quote(c) for c in order)}" if order else ""
    query = f"SELECT {select} FROM {table_sql(table)}{ordering}"  # noqa: S608 - quoted identifiers
    conn = endpoint.connect(conv=CONVERSIONS)
    try:
        read_when_shown(
            lambda: (None, not_shown(open_snapshot(conn).position, visible)), conn.rollback, endpoint.name
        )
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(query, [])
            widths = [int(d[3] or 0) for d in cur.description or ()]
            convert = row_converter(
                [
                    converter(columns[n].type_name, columns[n].type_kind, w, endpoint.zero_dates)
                    for n, w in zip(names, widths, strict=True)
                ]
            )
            while True:
                rows = cur.fetchmany(chunk)
                if not rows:
                    break
                yield [
                    dict(zip(names, row if convert is None else convert(row), strict=True)) for row in rows
                ]
        conn.rollback()
    except pymysql.MySQLError as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    finally:
        conn.close()
