"""A target table's rows as documents by _id (verify, lookups, repair: adapters/base.py
CollectionReader).

A row comes back as the document the mapping builds from the source's row (docs/architecture.md,
"Tables as collections"): the target table has the source's declared types, so each column is
read as the source's range reader reads one of its type: the same casts in the server (an
interval as ISO 8601 text, an enum as its label, money as numeric), binary values, bigint as
Int64, timestamps in UTC. A character(n) column's value (not a key's) comes back as `Padded`,
which verify alone compares with its padding blanks set aside (comparison.py). Keys are matched as the source matches them (reading.py: key text
cast to the key's type), so an _id from either side names the same row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from migrator.adapters.base import ColumnInfo, KeyOrder
from migrator.adapters.json_values import JsonText, loads_exact, loads_numbers
from migrator.adapters.postgres.inspect import PostgresInspector
from migrator.adapters.postgres.reading import (
    Int64Loader,
    column_expression,
    key_range_condition,
    key_set_condition,
    key_text,
)
from migrator.adapters.postgres_target.comparison import Padded
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.rows import TargetTable, decode, document_of, encode
from migrator.adapters.postgres_target.writer import upsert
from migrator.errors import TargetError

_ALIAS = "t"
# The source's range reader reads in these settings too (adapters/postgres/snapshot.py); the
# target's connections already read timestamps in UTC (connection.py).
_READ_SETTINGS = "SET LOCAL intervalstyle = 'iso_8601'"
# Keys a fetch names in one statement (one text array per key column).
FETCH_KEYS = 1_000


class _JsonTextLoader(Loader):
    """A json value's binary form (its text) as JsonText."""

    format = Format.BINARY

    def load(self, data: Buffer) -> JsonText:
        return JsonText(bytes(data).decode("utf-8"))


class _JsonbTextLoader(Loader):
    """A jsonb value's binary form (a version byte, 1, then its text output) as JsonText."""

    format = Format.BINARY

    def load(self, data: Buffer) -> JsonText:
        raw = bytes(data)
        if raw[:1] != b"\x01":
            raise TargetError(f"jsonb binary format version {raw[:1]!r} is not 1")
        return JsonText(raw[1:].decode("utf-8"))


@dataclass(frozen=True)
class _Shape:
    """How a target table is read: each column's type as the source adapter describes one."""

    table: TargetTable
    columns: tuple[ColumnInfo, ...]

    @property
    def key_types(self) -> list[str]:
        types = {c.name: c.type_name for c in self.columns}
        return [types[k] for k in self.table.key]

    @property
    def padded(self) -> frozenset[str]:
        """The character(n) columns outside the key (a key stays plain text: an _id names its row
        by its bytes, reverse.py's identity)."""
        key = set(self.table.key)
        return frozenset(c.name for c in self.columns if c.type_name == "character" and c.name not in key)


class TableReader:
    """`padding`: character(n) values as `Padded` (for comparison); plain text where they are
    written on (reverse sync)."""

    def __init__(self, connections: Connections, table: str, *, padding: bool = True) -> None:
        self._connections = connections
        self._padding = padding
        self._name = table
        self._lock = threading.Lock()
        self._shape: _Shape | None = None

    def _read_shape(self, conn: psycopg.Connection[Any]) -> _Shape:
        table = self._connections.table(self._name)
        endpoint = self._connections.endpoint
        info = PostgresInspector(conn, endpoint.name, endpoint.secrets).table(self._name, count_rows=False)
        if info is None:
            raise TargetError(f"target table {self._name} does not exist")
        return _Shape(table, info.columns)

    def _run(self, query: sql.Composed, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def work(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            conn.execute(_READ_SETTINGS)
            with conn.cursor(row_factory=dict_row, binary=True) as cur:
                cur.adapters.register_loader("int8", Int64Loader)
                # JSON numbers with their digits (json_values.py): plain Decimals where written on
                # by reverse sync, JsonNumbers, compared as numbers, for verify.
                set_json_loads(loads_numbers if self._padding else loads_exact, cur)
                if self._padding:
                    # For verify, json and jsonb as their text (comparison.py: JsonText).
                    cur.adapters.register_loader("json", _JsonTextLoader)
                    cur.adapters.register_loader("jsonb", _JsonbTextLoader)
                return cur.execute(query, list(params)).fetchall()

        return self._connections.run(work)

    @property
    def _read(self) -> _Shape:
        with self._lock:
            shape = self._shape
        if shape is None:
            shape = self._connections.run(self._read_shape)
            with self._lock:
                self._shape = shape
        return shape

    @property
    def _table(self) -> TargetTable:
        return self._read.table

    def _select(self, where: sql.Composable, tail: sql.Composable | None = None) -> sql.Composed:
        shape = self._read
        columns = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(column_expression(_ALIAS, c), sql.Identifier(c.name))
            for c in shape.columns
        )
        order = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(_ALIAS), sql.Identifier(k)) for k in shape.table.key
        )
        return sql.SQL("SELECT {} FROM {} {} WHERE {} ORDER BY {} {}").format(
            columns, shape.table.identifier, sql.Identifier(_ALIAS), where, order, tail or sql.SQL("")
        )

    def _documents(self, rows: list[dict[str, Any]]) -> list[tuple[Any, bytes]]:
        shape = self._read
        padded = shape.padded if self._padding else frozenset()
        for row in rows:
            for name in padded:
                if row[name] is not None:
                    row[name] = Padded(row[name])
        return [(d["_id"], encode(d)) for d in (document_of(shape.table, r) for r in rows)]

    def _key_texts(self, doc_id: Any) -> list[str]:
        shape = self._read
        values = [doc_id] if len(shape.table.key) == 1 else [doc_id[k] for k in shape.table.key]
        return [key_text(v, t) for v, t in zip(values, shape.key_types, strict=True)]

    def fetch(self, ids: Sequence[Any]) -> list[tuple[Any, bytes]]:
        shape = self._read
        out: list[tuple[Any, bytes]] = []
        for start in range(0, len(ids), FETCH_KEYS):
            keys = [self._key_texts(i) for i in ids[start : start + FETCH_KEYS]]
            condition, params = key_set_condition(_ALIAS, shape.table.key, shape.key_types, keys)
            out.extend(self._documents(self._run(self._select(condition), params)))
        return out

    def fetch_range(self, order: KeyOrder, lo: str | None, hi: str | None) -> list[tuple[Any, bytes]]:
        shape = self._read
        if len(shape.table.key) != 1:
            raise TargetError(f"{self._name}: a key range needs a single key column")
        condition, params = key_range_condition(
            _ALIAS,
            shape.table.key,
            shape.key_types,
            None if lo is None else [lo],
            None if hi is None else [hi],
        )
        return self._documents(self._run(self._select(condition), params))

    def ids(
        self,
        batch: int = 1_000,
        sample: int | None = None,
        outside: KeyOrder | None = None,
        after: Any = None,
    ) -> Iterator[list[Any]]:
        shape = self._read
        table = shape.table
        if outside is not None:
            return  # the key columns have the source's types: a range read sees every row
        if sample is not None:
            query = sql.SQL("{} ORDER BY random() LIMIT {}").format(self._keys_query(sql.SQL("true")), sample)
            yield [table.document_id(r) for r in self._run(query)]
            return
        last = after
        while True:
            condition: sql.Composable = sql.SQL("true")
            params: list[Any] = []
            if last is not None:
                condition, params = key_range_condition(
                    _ALIAS, table.key, shape.key_types, self._key_texts(last), None
                )
            order = sql.SQL(", ").join(
                sql.SQL("{}.{}").format(sql.Identifier(_ALIAS), sql.Identifier(k)) for k in table.key
            )
            query = sql.SQL("{} ORDER BY {} LIMIT {}").format(self._keys_query(condition), order, batch)
            rows = self._run(query, params)
            if not rows:
                return
            ids = [table.document_id(r) for r in rows]
            yield ids
            last = ids[-1]

    def _keys_query(self, condition: sql.Composable) -> sql.Composed:
        shape = self._read
        columns = {c.name: c for c in shape.columns}
        keys = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(column_expression(_ALIAS, columns[k]), sql.Identifier(k))
            for k in shape.table.key
        )
        return sql.SQL("SELECT {} FROM {} {} WHERE {}").format(
            keys, shape.table.identifier, sql.Identifier(_ALIAS), condition
        )

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
