"""A document as a row of its target table, and back (docs/architecture.md, "Tables as
collections"): `_id` holds the primary key (its value, or a mapping of its columns), the other
fields are the other columns, under their target names.

What the target table is comes from the target's own catalog (created by schema.py before the
copy): its columns with their types, and its primary key.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from psycopg import sql
from psycopg.types.json import Jsonb

from migrator.adapters.base import SourceText
from migrator.adapters.json_values import JsonText, JsonTexts, json_text
from migrator.errors import TargetError

_JSON = frozenset({"json", "jsonb"})

_TABLE_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, et.typname,
       COALESCE(a.attnum = ANY(i.indkey), false), a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_KEY_SQL = """
SELECT a.attname FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n
"""


@dataclass(frozen=True)
class Column:
    name: str
    declared: str  # format_type: what values are cast to
    json: bool  # json or jsonb (or an array of them): a dict or list is a JSON value
    array: bool
    generated: bool = False  # GENERATED ... STORED on the target: computed there, never written


@dataclass(frozen=True)
class TargetTable:
    name: str  # schema.table, as the collection is named
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def identifier(self) -> sql.Composable:
        schema, _, table = self.name.rpartition(".")
        return sql.Identifier(schema or "public", table)

    @functools.cached_property
    def writable(self) -> tuple[Column, ...]:
        """The columns a write names: all but the GENERATED ones, which PostgreSQL computes and
        refuses to be given (SQLSTATE 428C9); a document's value for one is left out."""
        return tuple(c for c in self.columns if not c.generated)

    @functools.cached_property
    def fields(self) -> frozenset[str]:
        """What a document of this table may hold: `_id` and the columns."""
        return frozenset(["_id", *(c.name for c in self.columns)])

    @functools.cached_property
    def generated(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.generated)

    @functools.cached_property
    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @functools.cached_property
    def as_is(self) -> dict[str, frozenset[type]]:
        """Per column, the value types written as they are (what `value` returns unchanged, told
        by type alone): CDC's writers test a value's type against it instead of calling `value`."""
        return {c.name: _NONE if c.json else _PLAIN for c in self.columns}

    def column(self, name: str) -> Column:
        # By name through a dict: CDC asks for every value it writes.
        column = self._by_name.get(name)
        if column is not None:
            return column
        raise TargetError(
            f"target table {self.name} has no column {name}",
            hint=f"add it with the source column's type (ALTER TABLE {self.name} ADD COLUMN {name} ...) and run "
            "again, or drop the table and run again",
        )

    def placeholder(self, name: str) -> sql.Composable:
        """A parameter cast to the column's type: values the source gives as text (an interval,
        an enum label) become the column's type in the server."""
        return sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(self.column(name).declared))

    def key_values(self, doc_id: Any) -> list[Any]:
        if len(self.key) == 1:
            return [self.value(self.key[0], doc_id)]
        if not isinstance(doc_id, Mapping):
            raise TargetError(f"{self.name}: _id {doc_id!r} is not a mapping of its key columns {self.key}")
        return [self.value(k, doc_id[k]) for k in self.key]

    def key_match(self) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), self.placeholder(k)) for k in self.key
        )

    def document_id(self, row: Mapping[str, Any]) -> Any:
        if len(self.key) == 1:
            return row[self.key[0]]
        return {k: row[k] for k in self.key}

    def value(self, name: str, value: Any) -> Any:
        """`value` of column `name` as psycopg passes it on."""
        return _adapt(value, self.column(name))


def _json_text(value: Any) -> str:
    """A JSON value's text: json.dumps (in C) unless the value holds a Decimal, which it refuses."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return json_text(value)


# Values written as they are into any column but a JSON one (exact types: JsonText and SourceText
# are str subclasses of their own). A plain str is also how a source hands over the text of a
# column whose decoded values are never a str (docs/architecture.md, "Undecoded change values").
_AS_THEY_ARE = frozenset({int, Int64, str, float, bool})
_PLAIN = _AS_THEY_ARE | {type(None)}
_NONE: frozenset[type] = frozenset({type(None)})


def _adapt(value: Any, column: Column, *, element: bool = False) -> Any:
    if type(value) in _AS_THEY_ARE and not column.json:
        return value  # a key's int or str (CDC writes one for every change)
    if isinstance(value, JsonText):
        return str(value)  # a json/jsonb value's exact text (json_values.py), cast to the column's type
    if isinstance(value, JsonTexts):
        # An array of such texts, each nested JsonTexts a further dimension (not a JSON array).
        return [_adapt(v, column, element=True) for v in value]
    if value is None or isinstance(value, SourceText):
        # A SourceText is the source's text of the column's very type (text_values.py): written
        # as the text it is (a COPY field, a parameter), cast to the column's type as any text.
        # First: CDC passes most values through so (a JsonText is no SourceText).
        return value
    if isinstance(value, JsonText):
        return str(value)  # a json/jsonb value's exact text (json_values.py), cast to the column's type
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Binary):
        return bytes(value)
    if column.array and not element:
        # A list is the array; its elements are values of the element type (JSON ones too).
        return [_adapt(v, column, element=True) for v in value] if isinstance(value, list) else value
    if column.json:
        # Any JSON value: object, array, string, number, boolean; a Decimal (a JsonNumber) with
        # its own digits, which jsonb keeps (json_values.py).
        return Jsonb(value, dumps=_json_text)
    if isinstance(value, list):
        return [_adapt(v, column, element=True) for v in value]
    return value


def read_table(conn: psycopg.Connection[Any], name: str) -> TargetTable:
    """The target table `name` (schema.table) as its catalog describes it."""
    schema, _, table = name.rpartition(".")
    regclass = sql.Identifier(schema or "public", table).as_string(conn)
    try:
        rows = conn.execute(_TABLE_SQL, [regclass]).fetchall()
        key = tuple(str(r[0]) for r in conn.execute(_KEY_SQL, [regclass]).fetchall())
    except psycopg.errors.UndefinedTable:
        raise TargetError(
            f"target table {name} does not exist",
            hint="run the snapshot's create-target-tables step (migrator run)",
        ) from None
    if not key:
        raise TargetError(
            f"target table {name} has no primary key, which rows are written by", hint="add one"
        )
    columns = tuple(
        Column(str(r[0]), str(r[1]), (r[3] or r[2]) in _JSON, r[3] is not None, bool(r[5])) for r in rows
    )
    return TargetTable(name, columns, key)


def encode(document: Mapping[str, Any]) -> bytes:
    """A document as writers take it and readers give it back. Pickled: the bytes never leave the
    process, and keep every value the source reader gives (microseconds, Decimal, UUID)."""
    return pickle.dumps(dict(document), protocol=pickle.HIGHEST_PROTOCOL)


def decode(raw: bytes) -> dict[str, Any]:
    # Only bytes this process encoded (encode above) are ever decoded.
    value = pickle.loads(raw)
    assert isinstance(value, dict)
    return value


def row_values(table: TargetTable, document: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
    """The values of columns `names` of `document` (key columns from its _id). A field the table
    has no column for is an error, never dropped (a column added on the source that the target
    lacks: docs/architecture.md, "A column added while CDC follows")."""
    if not document.keys() <= table.fields:
        table.column(min(document.keys() - table.fields))  # raises, naming it
    key = dict(zip(table.key, table.key_values(document["_id"]), strict=True))
    # Most values pass through as they are (the source's text, NULL): no call for those (CDC
    # writes every value of every row through here).
    as_is = table.as_is
    return [
        key[n]
        if n in key
        else v
        if type(v := document.get(n)) in as_is[n] or isinstance(v, SourceText)
        else table.value(n, v)
        for n in names
    ]


def document_of(table: TargetTable, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row read back as the document it was written from."""
    document: dict[str, Any] = {"_id": table.document_id(row)}
    document.update((c.name, row[c.name]) for c in table.columns if c.name not in table.key)
    return document
