"""One source database for the conformance suite (issue 15, "Conformance"): the scenario tests
that prove a source run over every source adapter from one suite, parametrized, not copied.

A `SourceDb` is what a scenario needs of its source and nothing more: the plan's adapter, a table
named as a plan names it, DDL and transactions, and rows read back with the database's own driver
(the expected documents are built from those, never by the mapping). The `source_db` fixture is
parametrized over the adapters; a scenario writes portable SQL (integer, varchar(n), decimal,
REFERENCES t (col), explicit VALUES); where dialects differ, SourceDb is the place to say it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import pymysql.cursors
import pytest
from psycopg.rows import dict_row

from tests.support.mariadb import connect as mysql_connect
from tests.support.mysql_binlog import database

ADAPTERS = ("postgres", "mysql")


class SourceDb(Protocol):
    adapter: str
    url: str

    def table(self, name: str) -> str:
        """`name` as a plan's `from:` names it."""
        ...

    def sql(self, *statements: str) -> None: ...

    def transactions(self, *txns: Sequence[str] | str) -> None:
        """Each item one transaction (a string: one statement)."""
        ...

    def records(self, query: str) -> list[dict[str, Any]]: ...


@dataclass
class PostgresDb:
    url: str
    adapter: str = "postgres"

    def table(self, name: str) -> str:
        return f"public.{name}"

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def transactions(self, *txns: Sequence[str] | str) -> None:
        with psycopg.connect(self.url) as conn:
            for txn in txns:
                with conn.transaction():
                    for statement in [txn] if isinstance(txn, str) else txn:
                        conn.execute(statement)

    def records(self, query: str) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            return list(conn.execute(query).fetchall())


@dataclass
class MysqlDb:
    url: str
    adapter: str = "mysql"

    def table(self, name: str) -> str:
        return f"{database(self.url)}.{name}"

    def sql(self, *statements: str) -> None:
        with mysql_connect(self.url) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def transactions(self, *txns: Sequence[str] | str) -> None:
        with mysql_connect(self.url) as conn, conn.cursor() as cur:
            for txn in txns:
                cur.execute("BEGIN")
                for statement in [txn] if isinstance(txn, str) else txn:
                    cur.execute(statement)
                cur.execute("COMMIT")

    def records(self, query: str) -> list[dict[str, Any]]:
        with mysql_connect(self.url, cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())


@pytest.fixture(params=ADAPTERS)
def source_db(request: pytest.FixtureRequest) -> SourceDb:
    """A fresh source database of each adapter in turn (its server's session fixture)."""
    if request.param == "postgres":
        return PostgresDb(request.getfixturevalue("pg_url"))
    return MysqlDb(request.getfixturevalue("mysql_url"))
