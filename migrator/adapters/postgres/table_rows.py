"""Every row of one table, now, in the text form CDC receives (docs/architecture.md, "Schema
changes": a column added while CDC follows).

Values arrive as PostgreSQL's text output under the replication session's settings, so that
CDC's own parsers (values.py) turn them into exactly what a change of the row would give.
One REPEATABLE READ transaction: the rows are one consistent state, read in chunks through a
server-side cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.values import REPLICATION_OPTIONS
from migrator.adapters.postgres.visibility import SNAPSHOT, hidden
from migrator.adapters.shown import read_when_shown


class _RawText(Loader):
    """A value's text output as bytes, unparsed: what pgoutput sends for it."""

    format = Format.TEXT

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def read_rows(
    endpoint: PgEndpoint,
    table: str,
    columns: Sequence[tuple[str, int]],
    order: Sequence[str],
    chunk: int,
    visible: Sequence[Any] = (),
) -> Iterator[list[tuple[bytes | None, ...]]]:
    """The rows of `table` (a partitioned table: every partition's), `columns` given as (name,
    type oid), ordered by `order`, in lists of up to `chunk`; NULL is None. Read once the
    snapshot shows the transactions `visible` (xids of decoded commits): CDC reads the rows at a
    point of the stream, and a row read before a commit there shows would be older than what
    CDC applied (docs/architecture.md, "Why reading 'now' converges")."""
    xids = [int(x) for x in visible if x is not None]
    query = sql.SQL("SELECT {} FROM {}{}").format(
        sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns),
        table_identifier(table),
        sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(sql.Identifier(c) for c in order))
        if order
        else sql.SQL(""),
    )
    try:
        conn = endpoint.connect(autocommit=False, options=REPLICATION_OPTIONS)
    except psycopg.Error as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    try:

        def attempt() -> tuple[None, str]:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute(f"SELECT {SNAPSHOT}").fetchone()
            assert row is not None
            missing = hidden(xids, str(row[0]))
            return None, ("" if not missing else "transaction " + ", ".join(map(str, missing)))

        read_when_shown(attempt, conn.rollback, endpoint.name)
        # A result names a domain's column by its base type: register the types it will name.
        described = conn.execute(sql.SQL("{} LIMIT 0").format(query)).description or []
        for oid in {oid for _, oid in columns} | {d.type_code for d in described}:
            conn.adapters.register_loader(oid, _RawText)
        with conn.cursor(name="migrator_backfill") as cur:
            cur.itersize = chunk
            cur.execute(query)
            while True:
                rows: list[Any] = cur.fetchmany(chunk)
                if not rows:
                    break
                yield rows
        conn.rollback()
    except psycopg.Error as exc:
        raise classify(exc, endpoint.name, endpoint.secrets) from None
    finally:
        conn.close()
