"""Reverse sync's writes to a MySQL/MariaDB source: documents' new states (DocumentRows) as rows,
idempotently, in one transaction with the checkpoint (docs/architecture.md, "Reverse sync and
echo prevention"). The statements are reverse_sql.py's; the checkpoint and the mark that keeps
these transactions out of the forward stream are reverse_checkpoint.py's: the plan's checkpoint
row is the FIRST write of every transaction, so the binlog shows it before any row of a mapped
table and the forward stream skips the whole transaction.

The session runs under time_zone '+00:00' (connection.py), so a TIMESTAMP stores the UTC instant
written. Triggers fire (MySQL has no replica role for a client session): preflight's trigger
finding says so.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import pymysql

from migrator.adapters.mysql import reverse_checkpoint, reverse_sql
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify, errno_of
from migrator.adapters.mysql.reverse_tables import WriteTable, read_table
from migrator.adapters.rows import DocumentRows, ReverseCheckpoint, TableLevel
from migrator.errors import MigratorError, SourceError, TransientError

_HINTS = {
    1364: "a NOT NULL column without a default that the document does not carry (excluded, not mapped, "
    "or missing): give the column a default, or map it",
    1048: "a NOT NULL column that the document holds as null",
    1451: "a row of another table refers to the row reverse sync changes or deletes",
    1452: "the row refers to one the source does not have",
    1062: "another row already holds this unique value",
}


class ReverseWriter:
    """ReverseWriter (adapters/base.py) for a MySQL/MariaDB source."""

    def __init__(
        self, endpoint: MysqlEndpoint, plan_name: str, origin: str, *, lock_timeout_ms: int | None = 30_000
    ) -> None:
        self._endpoint = endpoint
        self._plan = plan_name
        self.origin = origin  # written in the mark: the forward stream skips what names it
        self._lock_timeout_ms = lock_timeout_ms
        self._conn: Any = None
        self._mariadb = True
        self._tables: dict[str, WriteTable] = {}

    def _error(self, exc: BaseException) -> MigratorError:
        return classify(exc, self._endpoint.name, self._endpoint.secrets)

    def _connection(self) -> Any:
        if self._conn is not None and self._conn.open:
            return self._conn
        conn = self._endpoint.connect()
        try:
            with conn.cursor() as cur:
                if self._lock_timeout_ms is not None:
                    seconds = max(1, math.ceil(self._lock_timeout_ms / 1000))
                    cur.execute("SET SESSION innodb_lock_wait_timeout = %s", [seconds])
                    cur.execute("SET SESSION lock_wait_timeout = %s", [seconds])
                cur.execute("SELECT VERSION()")
                self._mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
        except pymysql.MySQLError as exc:
            conn.close()
            raise self._error(exc) from None
        self._conn = conn
        return conn

    def setup(self) -> None:
        """Create the checkpoint table where missing (idempotent): raises if reverse sync could
        not write there."""
        try:
            with self._connection().cursor() as cur:
                cur.execute(reverse_checkpoint.CREATE_SQL)
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def checkpoint(self) -> ReverseCheckpoint | None:
        try:
            with self._connection().cursor() as cur:
                return reverse_checkpoint.read(cur, self._plan)
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def forget(self, *, drop_empty: bool = False) -> bool:
        """Remove this plan's checkpoint (rollback, finish); True if one existed. `drop_empty`
        (`migrator finish`): also the table, when no plan's row is left in it."""
        try:
            with self._connection().cursor() as cur:
                existed = reverse_checkpoint.forget(cur, self._plan)
                if drop_empty:
                    reverse_checkpoint.drop_if_empty(cur)
                return existed
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.MySQLError):
                self._conn.close()
            self._conn = None

    # -- applying --------------------------------------------------------------------------------

    def apply(self, documents: Sequence[DocumentRows], checkpoint: ReverseCheckpoint | None) -> int:
        """Apply each document's new state (or deletion) and record `checkpoint`, in one
        transaction; the number of rows inserted, updated or deleted. A batch that fails is done
        again one document after the other, so that the error names the document and table."""
        conn = self._connection()
        for document in documents:  # the catalog is read before the transaction begins
            for level in document.levels:
                self._table(level.table)
        try:
            return self._transaction(conn, [(None, documents)], checkpoint)
        except pymysql.MySQLError as exc:
            error = self._error(exc)
            if isinstance(error, TransientError) or len(documents) < 2:
                raise self._named(exc, documents[0] if len(documents) == 1 else None) from None
        try:
            return self._transaction(conn, [(d, [d]) for d in documents], checkpoint)
        except _Failed as failed:
            raise self._named(failed.exc, failed.document, failed.table) from None
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def _transaction(
        self,
        conn: Any,
        parts: list[tuple[DocumentRows | None, Sequence[DocumentRows]]],
        checkpoint: ReverseCheckpoint | None,
    ) -> int:
        written = 0
        try:
            conn.begin()
            with conn.cursor() as cur:
                reverse_checkpoint.mark(cur, self._plan, self.origin, checkpoint)  # first: the echo mark
                for document, group in parts:
                    for table, step in self._statements(group):
                        try:
                            written += _execute(cur, step)
                        except pymysql.MySQLError as exc:
                            if document is None:
                                raise
                            raise _Failed(exc, document, table) from None
            conn.commit()
        except BaseException:
            with contextlib.suppress(pymysql.MySQLError):
                conn.rollback()
            raise
        return written

    def _named(self, exc: BaseException, document: DocumentRows | None, table: str = "") -> MigratorError:
        error = self._error(exc)
        if isinstance(error, TransientError) or document is None:
            return error
        where = f"document _id {document.document_id!r} of collection '{document.collection}'"
        return SourceError(
            f"reverse sync could not write {where}{f' to {table}' if table else ''}: {error.message}",
            hint=_HINTS.get(errno_of(exc) or 0),
        )

    def _table(self, name: str) -> WriteTable:
        table = self._tables.get(name)
        if table is None:
            try:
                table = read_table(self._connection(), self._endpoint.name, self._endpoint.secrets, name)
            except pymysql.MySQLError as exc:
                raise self._error(exc) from None
            self._tables[name] = table
        return table

    def _statements(self, documents: Sequence[DocumentRows]) -> list[tuple[str, reverse_sql.Step]]:
        """(table, statement, parameters) per collection: per level deepest first the rows each
        document no longer holds, the deleted documents' root rows, then upserts parents first."""
        groups: dict[tuple[str, tuple[TableLevel, ...]], list[DocumentRows]] = {}
        for document in documents:
            groups.setdefault((document.collection, document.levels), []).append(document)
        out: list[tuple[str, reverse_sql.Step]] = []
        for (_, levels), group in groups.items():
            for index in range(len(levels) - 1, 0, -1):
                out.append((levels[index].table, reverse_sql.delete_level(levels, group, index, self._table)))
            gone = [d.root_key for d in group if d.state is None]
            if gone:
                root = levels[0]
                out.append((root.table, reverse_sql.delete_roots(root, self._table(root.table), gone)))
            for index, level in enumerate(levels):
                held = [d.state[index] for d in group if d.state is not None]
                if any(rows.rows for rows in held):
                    for statement in reverse_sql.level_upserts(
                        level, self._table(level.table), held, self._mariadb
                    ):
                        out.append((level.table, statement))
        return out


def _execute(cur: Any, step: reverse_sql.Step) -> int:
    """Run one step; the rows it wrote."""
    if isinstance(step, reverse_sql.Guarded):
        cur.execute(*step.check)
        if cur.fetchone() is not None:
            return 0
        step = step.then
    return int(cur.execute(*step))


class _Failed(Exception):
    def __init__(self, exc: pymysql.MySQLError, document: DocumentRows, table: str) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.document = document
        self.table = table
