"""demo_app.py's application with a MySQL/MariaDB source (PyMySQL, MySQL's dialect):

    python scripts/lib/demo_app_mysql.py --source mysql://... --target URL --routing FILE [--rate 100]

The cutover fence interrupts a waiting write with KILL QUERY (errno 1317): it is retried on the
side the routing file names then, as PostgreSQL's cancelled write is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql
from demo_app import main
from demo_data_mysql import connect
from routed_writes import SourceRows

QUERY_INTERRUPTED = 1317  # ER_QUERY_INTERRUPTED: the cutover fence cancelled a waiting write


class MysqlRows:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def update(self, row_id: int, text: str) -> None:
        with self._conn.cursor() as cur:
            cur.execute("UPDATE customers SET full_name = %s WHERE id = %s", [text, row_id])

    def fenced(self, exc: Exception) -> bool:
        return isinstance(exc, pymysql.Error) and bool(exc.args) and exc.args[0] == QUERY_INTERRUPTED


class MysqlApp:
    @contextlib.contextmanager
    def connect(self, url: str) -> Iterator[Any]:
        with connect(url, autocommit=True) as conn:
            yield conn

    def rows(self, conn: Any) -> SourceRows:
        return MysqlRows(conn)

    def names(self, conn: Any, keys: Sequence[int]) -> dict[int, str]:
        with conn.cursor() as cur:
            cur.execute("SELECT id, full_name FROM customers WHERE id IN %s", [list(keys)])
            return dict(cur.fetchall())


if __name__ == "__main__":
    main(MysqlApp())
