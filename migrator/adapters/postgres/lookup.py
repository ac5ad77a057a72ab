"""Key lookups in the source as it is now: the root key of a parent row (through the embed
joins), and key values typed as the snapshot reads them.

Values travel as text and are cast back to the column's type in the server, as everywhere
else (`reading.key_set_condition`), so the caller's Python types never need to match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import ColumnInfo, JoinHop
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.reading import cast_type, configure_connection, read_expression

_SESSION = "SET TimeZone = 'UTC'; SET intervalstyle = 'iso_8601'"


class KeyLookup:
    """One autocommit connection for key lookups (each statement sees what is committed now)."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect()
        configure_connection(self._conn)
        try:
            self._conn.execute(_SESSION)
        except psycopg.Error as exc:
            self._conn.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None

    def _rows(self, query: sql.Composed, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            # Binary, as the snapshot reads: its loaders (int8 as Int64) are binary loaders.
            with self._conn.cursor(binary=True) as cur:
                return list(cur.execute(query, params).fetchall())
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    @staticmethod
    def _unnest(columns: Sequence[str], values: Sequence[Sequence[str]]) -> tuple[sql.Composable, list[Any]]:
        """`unnest(...) WITH ORDINALITY AS u(v0, .., n)` over text arrays, one per column."""
        arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in columns)
        names = sql.SQL(", ").join(sql.Identifier(f"v{i}") for i in range(len(columns)))
        params: list[Any] = [[v[i] for v in values] for i in range(len(columns))]
        return sql.SQL("unnest({}) WITH ORDINALITY AS u({}, n)").format(arrays, names), params

    def root_keys(
        self,
        root: str,
        root_key: Sequence[ColumnInfo],
        path: Sequence[JoinHop],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
    ) -> list[list[list[str]]]:
        """For each tuple of `values` (text) of `columns` of the rows at the end of `path` (the
        root row itself when `path` is empty): the keys (as text) of the root rows they belong
        to, none when there is no such row now. Several where a parent holds the link (a lookup:
        many parents name one row)."""
        if not values:
            return []
        alias = "r"
        joins: list[sql.Composable] = []
        for depth, hop in enumerate(path):
            child = f"c{depth}"
            on = sql.SQL(" AND ").join(
                sql.SQL("{}.{} = {}.{}").format(
                    sql.Identifier(child), sql.Identifier(c), sql.Identifier(alias), sql.Identifier(p)
                )
                for c, p in hop.on
            )
            joins.append(
                sql.SQL("JOIN {} {} ON {}").format(table_identifier(hop.table), sql.Identifier(child), on)
            )
            alias = child
        source, params = self._unnest([c.name for c in columns], values)
        match = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = u.{}::{}").format(
                sql.Identifier(alias), sql.Identifier(c.name), sql.Identifier(f"v{i}"), cast_type(c.type_name)
            )
            for i, c in enumerate(columns)
        )
        keys = sql.SQL(", ").join(sql.SQL("r.{}::text").format(sql.Identifier(k.name)) for k in root_key)
        query = sql.SQL("SELECT u.n, {keys} FROM {root} r {joins} JOIN {source} ON {match}").format(
            keys=keys, root=table_identifier(root), joins=sql.SQL(" ").join(joins), source=source, match=match
        )
        found: list[list[list[str]]] = [[] for _ in values]
        for row in self._rows(query, params):
            found[int(row[0]) - 1].append([str(v) for v in row[1:]])
        return found

    def typed(self, key: Sequence[ColumnInfo], values: Sequence[Sequence[str]]) -> list[tuple[Any, ...]]:
        """Key values given as text, as the snapshot reads them (the same casts and loaders),
        in the given order: what a document's _id holds for them."""
        if not values:
            return []
        source, params = self._unnest([c.name for c in key], values)
        parts: list[sql.Composable] = []
        for i, column in enumerate(key):
            value = sql.SQL("(u.{}::{})").format(sql.Identifier(f"v{i}"), cast_type(column.type_name))
            parts.append(read_expression(value, column))
        typed = sql.SQL(", ").join(parts)
        query = sql.SQL("SELECT {typed} FROM {source} ORDER BY u.n").format(typed=typed, source=source)
        return [tuple(row) for row in self._rows(query, params)]

    def close(self) -> None:
        self._conn.close()
