"""Chunks taken undecoded (docs/architecture.md, "Undecoded copy"): PostgreSQL's binary COPY
stream from a PostgreSQL source, written with `COPY table (columns) FROM STDIN (FORMAT binary)`.

Binary COPY carries each value in its type's binary form, so it is taken only where every target
column is of the very type of its source column: the same built-in type (an object id below
16384, fixed across servers, where a user-defined type's id differs and arrays and composites
carry it) with the same modifier, or an enum or a domain over a built-in type, of the same name
on both servers (an enum's binary form is its label's text, a domain's its base type's; not as
an array's element, whose id the array carries). Otherwise the snapshot takes the document path.

A chunk replaces its key range: DELETE of the range, then the COPY, in one transaction, so a
chunk copied again (a retry after a lost acknowledgement, a resumed run) never duplicates a row.
The DELETE is left out only where the snapshot proves the range never held a row (`known_empty`:
a table this run created, a chunk no attempt began): the table has no primary key during the
copy (docs/architecture.md, "After the copy"), so a DELETE there reads the whole table.
Chosen over COPY into a temporary table merged with INSERT ... ON CONFLICT, which writes every row
twice: 200,000 rows of 7 mixed columns here, a first copy 1.7 s against 4.2 to 4.8 s, copied again
3.6 to 4.1 s against 4.3 to 5.4 s (docs/architecture.md, "Undecoded copy").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import RawColumn
from migrator.adapters.inspection import ColumnInfo
from migrator.adapters.postgres.reading import key_range_condition
from migrator.adapters.postgres_target.connection import Connections
from migrator.adapters.postgres_target.schema import qualified

BINARY = "postgresql-binary"
# Object ids below this are the server's own (FirstNormalObjectId): the same type on every server.
FIRST_USER_OID = 16384

_TYPES_SQL = """
SELECT a.attname, a.atttypid::bigint, format_type(a.atttypid, a.atttypmod), t.typtype::text,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE '' END,
       a.attgenerated <> ''
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
# A user-defined type whose binary form is the same on both servers: an enum sends its label's
# text, a domain its base type's form. Not as an array's element: an array carries the
# element's type id, which differs between servers.
_PORTABLE_KINDS = {"enum": "e", "domain": "d"}


def same_types(found: dict[str, tuple[int, str, str, str]], columns: Sequence[RawColumn]) -> bool:
    """Whether each target column (name -> (type id, declared type, typtype, a domain's base)) is
    its source column's built-in type with the same modifier, or an enum or a domain over a
    built-in type of the same name (and the same base) as the source's."""
    for raw in columns:
        target = found.get(raw.target)
        source = raw.column
        if target is None or not source.declared_type or target[1] != source.declared_type:
            return False
        if 0 < source.type_oid < FIRST_USER_OID:
            if target[0] != source.type_oid:
                return False
        elif not _same_user_type(target, source):
            return False
    return True


def _same_user_type(target: tuple[int, str, str, str], source: ColumnInfo) -> bool:
    kind = source.user_type
    if kind is None or source.type_kind == "array" or kind.kind not in _PORTABLE_KINDS:
        return False
    if target[2] != _PORTABLE_KINDS[kind.kind]:
        return False
    return kind.kind == "enum" or (bool(kind.base) and target[3] == kind.base)


class BinaryWriter:
    """Replaces a key range of one table with a binary COPY stream (RawWriter)."""

    def __init__(self, connections: Connections, table: str, columns: Sequence[str]) -> None:
        self._connections = connections
        self._table = table
        self._columns = tuple(columns)

    @property
    def columns(self) -> tuple[str, ...]:
        """The target columns the stream fills, in its order."""
        return self._columns

    def replace_range(
        self,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        blocks: Iterable[bytes],
        *,
        known_empty: bool = False,
    ) -> int:
        target = sql.SQL(qualified(self._table))
        condition, params = key_range_condition("", key, key_types, lo, hi)
        delete = sql.SQL("DELETE FROM {} WHERE {}").format(target, condition)
        copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
            target, sql.SQL(", ").join(sql.Identifier(c) for c in self._columns)
        )

        def work(conn: psycopg.Connection[Any]) -> int:
            if not known_empty:
                conn.execute(delete, params)
            with conn.cursor() as cur:
                with cur.copy(copy) as stream:
                    for block in blocks:
                        stream.write(block)
                return max(cur.rowcount, 0)

        rows: int = self._connections.run(work)
        return rows


def raw_writer(
    connections: Connections, table: str, form: str, columns: Sequence[RawColumn]
) -> BinaryWriter | None:
    """A binary COPY writer into `table` for `columns`, or None (see the module's docstring)."""
    if form != BINARY:
        return None
    rows = connections.run(lambda conn: conn.execute(_TYPES_SQL, [qualified(table)]).fetchall())
    found = {str(r[0]): (int(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows}
    # A GENERATED column is computed by the target, which refuses a value for it (428C9): the
    # stream leaves it out (raw_copy.py asks `columns`).
    generated = {str(r[0]) for r in rows if r[5]}
    taken = [c for c in columns if c.target not in generated]
    if not same_types(found, taken):
        return None
    return BinaryWriter(connections, table, [c.target for c in taken])
