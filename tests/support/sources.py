"""One source database for the conformance suite (issue 15, "Conformance"): the scenario tests
that prove a source run over every source adapter from one suite, parametrized, not copied.

A `SourceDb` is what a scenario needs of its source and nothing more: the plan's adapter, a table
named as a plan names it, DDL and transactions, rows written with parameters, and rows read back
with the database's own driver (the expected documents are built from those, never by the
mapping). The `source_db` fixture is parametrized over the adapters; a scenario writes portable SQL
(integer, varchar(n), decimal, REFERENCES t (col), explicit VALUES) and names the types whose
spelling differs through `types` ({timestamp}, {bytes}, ...); where dialects differ, SourceDb is
the place to say it. Every session reads and writes in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import psycopg
import pymysql.cursors
import pytest
from psycopg.rows import dict_row

from tests.support.mariadb import connect as mysql_connect
from tests.support.mysql_binlog import database

ADAPTERS = ("postgres", "mysql")

# Portable type names (as a scenario's DDL writes them in braces) in each dialect's spelling.
POSTGRES_TYPES = {
    "real": "real",  # a 4-byte float
    "timestamp": "timestamp(6)",  # wall-clock, no time zone
    "timestamptz": "timestamptz(6)",  # a moment in time
    "time": "time(0)",
    "bytes": "bytea",
    "json": "json",  # its text kept, key order and all
}
MYSQL_TYPES = {
    "real": "FLOAT",
    "timestamp": "DATETIME(6)",
    "timestamptz": "TIMESTAMP(6) NULL",
    "time": "TIME",
    "bytes": "VARBINARY(64)",
    "json": "JSON",
}


QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement pg_cancel_backend ended
QUERY_INTERRUPTED = 1317  # MySQL/MariaDB's errno for a statement KILL QUERY ended


class Cancelled(Exception):
    """The source cancelled an application's statement (a cutover fence's doing): retry it."""


class SourceWriter(Protocol):
    def update(self, table: str, column: str, key: int, value: Any) -> None:
        """`UPDATE table SET column = value WHERE id = key` (autocommit); Cancelled when the
        source interrupted it."""
        ...


class SourceDb(Protocol):
    adapter: str
    url: str
    types: ClassVar[Mapping[str, str]]

    def table(self, name: str) -> str:
        """`name` as a plan's `from:` names it."""
        ...

    def sql(self, *statements: str) -> None: ...

    def transactions(self, *txns: Sequence[str] | str) -> None:
        """Each item one transaction (a string: one statement)."""
        ...

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """`rows` (Python values, parameters of one INSERT each) into `table`, in one transaction."""
        ...

    def update(self, table: str, key: int, values: Mapping[str, Any]) -> None:
        """Row `id = key` of `table` set to `values` (parameters), in one transaction."""
        ...

    def records(self, query: str) -> list[dict[str, Any]]: ...

    def writer(self) -> AbstractContextManager[SourceWriter]:
        """An application's connection, for writes one at a time."""
        ...


def _placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def _assignments(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{column} = %s" for column in values)


@dataclass
class PostgresDb:
    url: str
    adapter: str = "postgres"
    types: ClassVar[Mapping[str, str]] = POSTGRES_TYPES

    def _connect(self, **options: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, options="-c TimeZone=UTC", **options)

    def table(self, name: str) -> str:
        return f"public.{name}"

    def sql(self, *statements: str) -> None:
        with self._connect(autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def transactions(self, *txns: Sequence[str] | str) -> None:
        with self._connect() as conn:
            for txn in txns:
                with conn.transaction():
                    for statement in [txn] if isinstance(txn, str) else txn:
                        conn.execute(statement)

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES ({_placeholders(len(rows[0]))})", rows)

    def update(self, table: str, key: int, values: Mapping[str, Any]) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(f"UPDATE {table} SET {_assignments(values)} WHERE id = %s", [*values.values(), key])

    def records(self, query: str) -> list[dict[str, Any]]:
        with self._connect(row_factory=dict_row) as conn:
            return list(conn.execute(query).fetchall())

    @contextmanager
    def writer(self) -> Iterator[SourceWriter]:
        with self._connect(autocommit=True) as conn:
            yield _PostgresWriter(conn)


@dataclass
class _PostgresWriter:
    conn: psycopg.Connection[Any]

    def update(self, table: str, column: str, key: int, value: Any) -> None:
        try:
            self.conn.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, key])
        except psycopg.Error as exc:
            if exc.sqlstate == QUERY_CANCELED:
                raise Cancelled from exc
            raise


@dataclass
class MysqlDb:
    url: str
    adapter: str = "mysql"
    types: ClassVar[Mapping[str, str]] = MYSQL_TYPES

    @contextmanager
    def _cursor(self, **options: Any) -> Iterator[Any]:
        with mysql_connect(self.url, **options) as conn, conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            yield cur

    def table(self, name: str) -> str:
        return f"{database(self.url)}.{name}"

    def sql(self, *statements: str) -> None:
        with self._cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def transactions(self, *txns: Sequence[str] | str) -> None:
        with self._cursor() as cur:
            for txn in txns:
                cur.execute("BEGIN")
                for statement in [txn] if isinstance(txn, str) else txn:
                    cur.execute(statement)
                cur.execute("COMMIT")

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._cursor() as cur:
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO {table} VALUES ({_placeholders(len(rows[0]))})", rows)
            cur.execute("COMMIT")

    def update(self, table: str, key: int, values: Mapping[str, Any]) -> None:
        with self._cursor() as cur:
            cur.execute(f"UPDATE {table} SET {_assignments(values)} WHERE id = %s", [*values.values(), key])

    def records(self, query: str) -> list[dict[str, Any]]:
        with self._cursor(cursorclass=pymysql.cursors.DictCursor) as cur:
            cur.execute(query)
            return list(cur.fetchall())

    @contextmanager
    def writer(self) -> Iterator[SourceWriter]:
        with self._cursor() as cur:
            yield _MysqlWriter(cur)


@dataclass
class _MysqlWriter:
    cur: Any

    def update(self, table: str, column: str, key: int, value: Any) -> None:
        try:
            self.cur.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, key])
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == QUERY_INTERRUPTED:
                raise Cancelled from exc
            raise


@pytest.fixture(params=ADAPTERS)
def source_db(request: pytest.FixtureRequest) -> SourceDb:
    """A fresh source database of each adapter in turn (its server's session fixture)."""
    if request.param == "postgres":
        return PostgresDb(request.getfixturevalue("pg_url"))
    return MysqlDb(request.getfixturevalue("mysql_url"))
