"""Range checksums on PostgreSQL: a key range's rows hashed in the server (adapters/base.py
RangeChecksums; docs/architecture.md, "Verify by checksums").

Each row is hashed over its text form, `md5(ROW(columns)::text)`, and a range's digest is the md5
of those hashes in key order. Two servers give one row the same text when the columns have the
same declared types and the session settings that shape text output are the same: they are
pinned here for every hash (time zone, date and interval styles, float digits, bytea and money
output), on the source and on a PostgreSQL target alike (the target's side,
adapters/postgres_target/checksums.py, runs this module's SQL). The `form` names all that, so
that verify hashes only where both sides would hash equal rows alike. Float output is the
shortest exact text from PostgreSQL 12 on (extra_float_digits > 0), the one change of text
output between major versions that a hash would see; earlier servers form a family each.

An equal digest proves the range's rows equal (their text is exact: floats, numerics and
timestamps print every digit they hold); a different digest proves nothing (a collation that
orders keys differently, a row changed between the two reads), and verify then compares that
range row by row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import RangeDigest
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.reading import key_range_condition

FORM = "md5-rowtext-1"
# Settings that shape the text output of values, as every hash reads them (SET LOCAL).
PINNED = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
    ("xmlbinary", "base64"),
)
# From this version on, text output (floats: the shortest exact text) is one family.
SHORTEST_FLOATS = 120000
_ALIAS = "t"

_SERVER_SQL = """
SELECT current_setting('server_version_num')::int, pg_encoding_to_char(d.encoding), d.datcollate
FROM pg_database d WHERE d.datname = current_database()
"""
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation = 0 THEN NULL WHEN c.collname = 'default' THEN '' ELSE c.collname END
FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


# And no parallel plan, whose workers could hand the digest's aggregate rows out of key order
# (not part of the form: it changes no row's text).
_PIN = sql.SQL("SELECT {}").format(
    sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in (*PINNED, ("max_parallel_workers_per_gather", "0"))
    )
)


def pin(conn: psycopg.Connection[Any]) -> None:
    """Pin the text settings for the current transaction (one statement)."""
    conn.execute(_PIN)


def form_of(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], key: Sequence[str]
) -> str | None:
    """The form this server hashes `columns` of `table` in (RangeChecksums.form), or None when
    the table or one of the columns is not there."""
    row = conn.execute(_SERVER_SQL).fetchone()
    assert row is not None, "the current database has no pg_database row"
    version, encoding, default_collation = int(row[0]), str(row[1]), str(row[2])
    found = {
        str(name): (str(declared), collation)
        for name, declared, collation in conn.execute(
            _COLUMNS_SQL, [table_identifier(table).as_string(conn)]
        ).fetchall()
    }
    if any(c not in found for c in columns):
        return None
    return json.dumps(
        {
            "hash": FORM,
            "family": "12+" if version >= SHORTEST_FLOATS else str(version // 100),
            "encoding": encoding,
            "settings": dict(PINNED),
            "types": [found[c][0] for c in columns],
            # Key order decides the order of the hashes in a digest (and which rows a range holds).
            "key_collations": [default_collation if found[k][1] == "" else found[k][1] for k in key],
        },
        sort_keys=True,
    )


def digest_query(
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
) -> tuple[sql.Composed, list[Any]]:
    """The count and digest of the rows of `table` with lo < key <= hi (key text)."""

    def ref(name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(_ALIAS), sql.Identifier(name))

    # The rows' hashes in key order from a sorted subquery (PostgreSQL feeds an aggregate its
    # input in the subquery's order), not `string_agg(... ORDER BY key)`, which sorts again what
    # the key's index scan already returns in order: the same digest, about 17 % less server time
    # a range (docs/architecture.md, "Verify by checksums"). Were the order ever not kept, the
    # digests would differ and the range go row by row: slower, never wrong.
    condition, params = key_range_condition(_ALIAS, key, key_types, lo, hi)
    query = sql.SQL(
        "SELECT count(*), coalesce(md5(string_agg(h, '')), '') FROM ("
        "SELECT md5(ROW({columns})::text) AS h FROM {table} {alias} WHERE {condition} ORDER BY {key}"
        ") hashed"
    ).format(
        columns=sql.SQL(", ").join(ref(c) for c in columns),
        key=sql.SQL(", ").join(ref(k) for k in key),
        table=table_identifier(table),
        alias=sql.Identifier(_ALIAS),
        condition=condition,
    )
    return query, params


def digest(conn: psycopg.Connection[Any], query: sql.Composed, params: list[Any]) -> tuple[int, str]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


class SourceChecksums:
    """A verifier's checksum connection on the source: each range hashed in a REPEATABLE READ
    transaction of its own, which knows the WAL position its snapshot stands at (as
    snapshot.RangeReader's reads)."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect()

    def _error(self, exc: psycopg.Error) -> Exception:
        return classify(exc, self._endpoint.name, self._endpoint.secrets)

    def form(self, table: str, columns: Sequence[str], key: Sequence[str]) -> str | None:
        try:
            return form_of(self._conn, table, columns, key)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def checksum(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> RangeDigest:
        query, params = digest_query(table, columns, key, key_types, lo, hi)
        try:
            with self._conn.transaction():
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                row = self._conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                assert row is not None
                pin(self._conn)
                rows, hashed = digest(self._conn, query, params)
        except psycopg.Error as exc:
            raise self._error(exc) from None
        return RangeDigest(rows, hashed, str(row[0]))

    def close(self) -> None:
        self._conn.close()
