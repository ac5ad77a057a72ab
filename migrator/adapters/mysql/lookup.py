"""Key lookups in a MySQL/MariaDB source as it is now: the root keys of given rows (through the
embed joins), and key values typed as the snapshot reads them."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pymysql

from migrator.adapters.base import ColumnInfo, JoinHop
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.readers import column_collations
from migrator.adapters.mysql.reading import (
    Collation,
    is_character,
    key_param,
    key_text,
    quote,
    table_sql,
    values_table,
)
from migrator.adapters.mysql.values import converter


def typed_key(column: ColumnInfo, text: str) -> Any:
    """A key value given as text, as the snapshot's reader delivers it (values.py): a decimal at
    the column's scale (the _id holds Decimal128, whose exponent counts), a timestamp aware in UTC."""
    value = key_param(text, column.type_name)
    if column.type_name == "numeric" and column.numeric_scale is not None:
        value = value.quantize(Decimal(1).scaleb(-column.numeric_scale))
    elif column.type_name == "bit":
        return format(value, f"0{len(text)}b")
    elif column.type_name == "time without time zone":
        return text
    convert = converter(column.type_name, column.type_kind)
    return value if convert is None else convert(value)


class KeyLookup:
    """One autocommit connection for key lookups (each statement sees what is committed now)."""

    def __init__(self, endpoint: MysqlEndpoint) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect()
        self._collations: dict[tuple[str, str], Collation] = {}

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
        to, none when there is no such row now."""
        if not values:
            return []
        alias = "r"
        joins: list[str] = []
        for depth, hop in enumerate(path):
            child = f"c{depth}"
            on = " AND ".join(f"{quote(child)}.{quote(c)} = {quote(alias)}.{quote(p)}" for c, p in hop.on)
            joins.append(f"JOIN {table_sql(hop.table)} {quote(child)} ON {on}")
            alias = child
        names = [f"v{i}" for i in range(len(columns))]
        end = path[-1].table if path else root
        collations = column_collations(
            self._fetch,
            self._collations,
            [(end, c.name) if is_character(c.type_name, c.type_kind) else None for c in columns],
        )
        derived, params = values_table(names, [c.type_name for c in columns], values, "n", collations)
        match = " AND ".join(
            f"{quote(alias)}.{quote(c.name)} = u.{quote(n)}" for c, n in zip(columns, names, strict=True)
        )
        keys = ", ".join(f"r.{quote(k.name)}" for k in root_key)
        query = (
            f"SELECT u.n, {keys} FROM {table_sql(root)} r {' '.join(joins)} "  # noqa: S608 - quoted identifiers
            f"JOIN {derived} u ON {match}"
        )
        found: list[list[list[str]]] = [[] for _ in values]
        for row in self._fetch(query, params):
            found[int(row[0]) - 1].append([key_text(v) for v in row[1:]])
        return found

    def _fetch(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def typed(self, key: Sequence[ColumnInfo], values: Sequence[Sequence[str]]) -> list[tuple[Any, ...]]:
        """Key values given as text, as the snapshot reads them, in the given order: what a
        document's _id holds for them."""
        return [tuple(typed_key(c, v) for c, v in zip(key, row, strict=True)) for row in values]

    def close(self) -> None:
        self._conn.close()
