"""Rows linked to given values, read from the source as it is now: for CDC, the content of an
embed that a change names only by its link values (a lookup's referenced row, a new parent's
children; docs/architecture.md, "Embedded content read from the source").

The values form a derived table standing in for the parent (`unnest(...) WITH ORDINALITY`), each
cast to the parent column's type, so that the join down to the child is the snapshot's own join
(the same `=` between the same types); rows come back keyed by the ordinal of their values.

A read for CDC shows every transaction of its batch (`begin(visible)`: their xids): a commit is
decoded before other sessions see it, and content read in between would be older than the
change that asked for it (docs/architecture.md, "Why reading 'now' converges"). The snapshot is
read with the WAL position, in the read's first statement (no round trip of its own).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import ColumnInfo, LevelRead
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.reading import level_query
from migrator.adapters.postgres.snapshot import RangeReader
from migrator.adapters.postgres.visibility import SNAPSHOT, hidden
from migrator.adapters.shown import read_when_shown

_BEGIN_READ = f"SELECT pg_current_wal_lsn()::text, {SNAPSHOT}"


def values_relation(
    columns: Sequence[ColumnInfo], values: Sequence[Sequence[str]], ordinal: str
) -> tuple[sql.Composable, list[Any]]:
    """`(SELECT u.t0::type AS col, ..., u.n AS <ordinal> FROM unnest(...) WITH ORDINALITY ...)`:
    the given values (as text, one tuple per parent) as rows of the parent's link columns, with
    their position (from 1) as a bigint column named `ordinal`."""
    texts = [sql.Identifier(f"t{i}") for i in range(len(columns))]
    cast = sql.SQL(", ").join(
        sql.SQL("u.{}::{} AS {}").format(t, sql.SQL(c.type_name), sql.Identifier(c.name))
        for t, c in zip(texts, columns, strict=True)
    )
    arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in columns)
    query = sql.SQL(
        "(SELECT {cast}, u.n AS {ordinal} FROM unnest({arrays}) WITH ORDINALITY AS u({names}, n))"
    ).format(
        cast=cast,
        ordinal=sql.Identifier(ordinal),
        arrays=arrays,
        names=sql.SQL(", ").join(texts),
    )
    params: list[Any] = [[v[i] for v in values] for i in range(len(columns))]
    return query, params


class LinkedReader(RangeReader):
    """A RangeReader that also reads levels under a derived parent of given values."""

    def begin(self, visible: Sequence[Any] = ()) -> str:
        """Start a read whose snapshot shows the transactions `visible` (xids of decoded commits,
        32 bits; see the module doc), waiting for them as adapters/shown.py does; the WAL
        position the read stands at."""
        xids = [int(x) for x in visible if x is not None]

        def attempt() -> tuple[str, str]:
            try:
                self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                row = self._conn.execute(_BEGIN_READ).fetchone()
            except psycopg.Error as exc:
                raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
            assert row is not None
            missing = hidden(xids, str(row[1]))
            return str(row[0]), ("" if not missing else "transaction " + ", ".join(map(str, missing)))

        return read_when_shown(attempt, self.end, self._endpoint.name)

    def unshown(self, visible: Sequence[Any]) -> list[Any]:
        """Those of `visible` (xids) a fresh snapshot does not show yet: one statement, outside
        any read (the connection is idle between reads)."""
        try:
            row = self._conn.execute(f"SELECT {SNAPSHOT}").fetchone()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        assert row is not None
        return hidden([int(x) for x in visible if x is not None], str(row[0]))

    def stream_linked(
        self,
        levels: Sequence[LevelRead],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
        ordinal: str,
    ) -> list[Iterator[tuple[Any, ...]]]:
        """One row stream per level (the first is the derived parent itself, keyed by `ordinal`),
        each ordered by the position of the values, in the current read."""
        relation = values_relation(columns, values, ordinal)
        streams = []
        for level in levels:
            query, params = level_query(level, "", (ordinal,), ("bigint",), None, None, relation=relation)
            streams.append(self._rows(query, params))
        return streams
