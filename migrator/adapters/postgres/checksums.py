"""Range checksums on PostgreSQL: a key range's rows hashed in the server (adapters/base.py
RangeChecksums; docs/architecture.md, "Verify by checksums").

A range's digest is computed in the form both sides agreed on (checksum_forms.py): the count and
the sum of each row's 64-bit `hashtextextended` of its text, or the md5 of the rows' md5 in key
order. The text settings are pinned for every hash, on the source and on a PostgreSQL target
alike (the target's side, adapters/postgres_target/checksums.py, runs this module's SQL).

An equal digest proves the range's rows equal (their text is exact: floats, numerics and
timestamps print every digit they hold; the sum form leaves a chance of about 2^-64 a range
that different rows sum alike); a different digest proves nothing (a row changed between the
two reads, a collation that orders keys differently), and verify then compares that range row
by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import RangeDigest
from migrator.adapters.postgres.checksum_forms import MD5, PINNED, forms_of, hash_of
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.reading import key_range_condition

_ALIAS = "t"

# And no parallel plan, whose workers could hand the md5 digest's aggregate rows out of key
# order (not part of the form: it changes no row's text).
_PIN = sql.SQL("SELECT {}").format(
    sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in (*PINNED, ("max_parallel_workers_per_gather", "0"))
    )
)

# The rows' hashes in key order from a sorted subquery (PostgreSQL feeds an aggregate its input
# in the subquery's order), not `string_agg(... ORDER BY key)`, which sorts again what the key's
# index scan already returns in order. Were the order ever not kept, the digests would differ
# and the range go row by row: slower, never wrong.
_MD5_SQL = (
    "SELECT count(*), coalesce(md5(string_agg(h, '')), '') FROM ("
    "SELECT md5(ROW({columns})::text) AS h FROM {table} {alias} WHERE {condition} ORDER BY {key}"
    ") hashed"
)
# No order at all: a sum does not depend on it (docs/architecture.md, "Verify by checksums").
# COLLATE "C" hashes the text's bytes whatever the database's collation.
_SUM_SQL = (
    "SELECT count(*), coalesce(sum(hashtextextended((ROW({columns})::text) COLLATE \"C\", 0))::text, '') "
    "FROM {table} {alias} WHERE {condition}"
)


def pin(conn: psycopg.Connection[Any]) -> None:
    """Pin the text settings for the current transaction (one statement)."""
    conn.execute(_PIN)


def digest_query(
    form: str,
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
) -> tuple[sql.Composed, list[Any]]:
    """The count and digest, in `form`, of the rows of `table` with lo < key <= hi (key text)."""

    def ref(name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(_ALIAS), sql.Identifier(name))

    condition, params = key_range_condition(_ALIAS, key, key_types, lo, hi)
    query = sql.SQL(_MD5_SQL if hash_of(form) == MD5 else _SUM_SQL).format(
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

    def forms(self, table: str, columns: Sequence[str], key: Sequence[str]) -> list[str]:
        try:
            return forms_of(self._conn, table, columns, key)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def checksum(
        self,
        form: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> RangeDigest:
        query, params = digest_query(form, table, columns, key, key_types, lo, hi)
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
