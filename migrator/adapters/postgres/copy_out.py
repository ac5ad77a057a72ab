"""A key range streamed undecoded (docs/architecture.md, "Undecoded copy"): `COPY (SELECT the
mapped columns ...) TO STDOUT (FORMAT binary)`, in the copy worker's imported snapshot. Only the
columns named leave the source (an excluded column stays there), and the blocks are PostgreSQL's
binary COPY format, which a PostgreSQL target takes as they are: no value is parsed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.reading import key_range_condition

# The one format a PostgreSQL source streams and a PostgreSQL target takes undecoded.
BINARY = "postgresql-binary"


def copy_statement(
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
) -> tuple[sql.Composed, list[Any]]:
    condition, params = key_range_condition("t", key, key_types, lo, hi)
    query = sql.SQL("COPY (SELECT {cols} FROM {t} t WHERE {cond}) TO STDOUT (FORMAT binary)").format(
        cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns),
        t=table_identifier(table),
        cond=condition,
    )
    return query, params


def blocks(conn: psycopg.Connection[Any], query: sql.Composed, params: Sequence[Any]) -> Iterator[bytes]:
    """The COPY's output as the server sends it (driver errors raised as they are: the caller
    classifies them)."""
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for block in copy:
            yield bytes(block)
