"""A target table's rows as documents by _id (verify, lookups, repair: adapters/base.py
CollectionReader)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from migrator.adapters.base import KeyOrder
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.rows import TargetTable, decode, document_of, encode
from migrator.adapters.postgres_target.writer import upsert
from migrator.errors import TargetError


class TableReader:
    def __init__(self, connections: Connections, table: str) -> None:
        self._connections = connections
        self._name = table

    def _run(self, query: sql.Composed, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def work(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            with conn.cursor(row_factory=dict_row) as cur:
                return cur.execute(query, list(params)).fetchall()

        return self._connections.run(work)

    @property
    def _table(self) -> TargetTable:
        return self._connections.table(self._name)

    def _select(self, where: sql.Composable, tail: sql.Composable | None = None) -> sql.Composed:
        order = sql.SQL(", ").join(sql.Identifier(k) for k in self._table.key)
        return sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {} {}").format(
            self._table.identifier, where, order, tail or sql.SQL("")
        )

    def fetch(self, ids: Sequence[Any]) -> list[tuple[Any, bytes]]:
        table = self._table
        out: list[tuple[Any, bytes]] = []
        for doc_id in ids:
            for row in self._run(self._select(table.key_match()), table.key_values(doc_id)):
                document = document_of(table, row)
                out.append((document["_id"], encode(document)))
        return out

    def fetch_range(self, order: KeyOrder, lo: str | None, hi: str | None) -> list[tuple[Any, bytes]]:
        table = self._table
        if len(table.key) != 1:
            raise TargetError(f"{self._name}: a key range needs a single key column")
        column = sql.Identifier(table.key[0])
        bounds: list[sql.Composable] = [sql.SQL("true")]
        params: list[Any] = []
        if lo is not None:
            bounds.append(sql.SQL("{} > {}").format(column, table.placeholder(table.key[0])))
            params.append(lo)
        if hi is not None:
            bounds.append(sql.SQL("{} <= {}").format(column, table.placeholder(table.key[0])))
            params.append(hi)
        rows = self._run(self._select(sql.SQL(" AND ").join(bounds)), params)
        return [(d["_id"], encode(d)) for d in (document_of(table, r) for r in rows)]

    def ids(
        self,
        batch: int = 1_000,
        sample: int | None = None,
        outside: KeyOrder | None = None,
        after: Any = None,
    ) -> Iterator[list[Any]]:
        table = self._table
        if outside is not None:
            return  # the key columns have the source's types: a range read sees every row
        if sample is not None:
            query = sql.SQL("SELECT * FROM {} ORDER BY random() LIMIT {}").format(table.identifier, sample)
            yield [table.document_id(r) for r in self._run(query)]
            return
        last = after
        while True:
            where: sql.Composable = sql.SQL("true")
            params: list[Any] = []
            if last is not None:
                keys = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
                values = sql.SQL(", ").join(table.placeholder(k) for k in table.key)
                where = sql.SQL("({}) > ({})").format(keys, values)
                params = table.key_values(last)
            rows = self._run(self._select(where, sql.SQL("LIMIT {}").format(batch)), params)
            if not rows:
                return
            ids = [table.document_id(r) for r in rows]
            yield ids
            last = ids[-1]

    def find_ids(self, query: Mapping[str, Any]) -> list[Any]:
        raise TargetError("a PostgreSQL target does not take document queries (embeds are not supported)")

    def count(self) -> int:
        rows = self._run(sql.SQL("SELECT count(*) AS n FROM {}").format(self._table.identifier))
        return int(rows[0]["n"])

    def replace(self, doc_id: Any, raw: bytes) -> None:
        document = decode(raw)
        document["_id"] = doc_id
        table = self._table
        self._connections.run(lambda conn: upsert(conn, table, [document]))

    def delete(self, doc_id: Any) -> None:
        table = self._table
        query = sql.SQL("DELETE FROM {} WHERE {} RETURNING 1").format(table.identifier, table.key_match())
        self._run(query, table.key_values(doc_id))
