"""What `migrator init` reads of a PostgreSQL source besides inspection: the tables a plan could
map, and the statistics its document-size estimates come from (docs/architecture.md, "Proposing
a plan"). Read-only, catalog and statistics views only, plus a bounded sample where a table was
never analyzed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import RowStatistics
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import split_table, table_identifier
from migrator.adapters.postgres.reverse_writer import CHECKPOINT_SCHEMA

# Rows read to measure the width of a table pg_stats knows nothing of (never analyzed).
SAMPLE_ROWS = 1000

# Ordinary and partitioned tables, not partitions (their root stands for them), not temporary;
# no system schema, nor the schema migrator keeps its own tables in on a source.
_TABLES_SQL = """
SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('information_schema', %(own)s) AND n.nspname NOT LIKE 'pg\\_%%'
ORDER BY 1
"""

# A partitioned table's statistics are those of its whole tree (inherited); reltuples is -1 until
# the first ANALYZE (PostgreSQL 14+), and 0 for a partitioned table whose tree is analyzed.
_STATS_SQL = """
SELECT s.attname, s.avg_width, s.most_common_freqs[1]
FROM pg_stats s
WHERE s.schemaname = %(schema)s AND s.tablename = %(table)s
  AND s.inherited = (SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = %(rel)s::regclass)
"""
_ROWS_SQL = """
SELECT CASE WHEN c.relkind = 'p'
  THEN (SELECT sum(greatest(p.reltuples, 0)) FROM pg_partition_tree(c.oid) t
        JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
  ELSE c.reltuples END
FROM pg_class c WHERE c.oid = %(rel)s::regclass
"""


class Census:
    def __init__(self, conn: psycopg.Connection[Any], endpoint: str, secrets: tuple[str, ...]) -> None:
        self._conn = conn
        self._endpoint = endpoint
        self._secrets = secrets

    def user_tables(self) -> tuple[str, ...]:
        try:
            rows = self._conn.execute(_TABLES_SQL, {"own": CHECKPOINT_SCHEMA}).fetchall()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        return tuple(str(r[0]) for r in rows)

    def row_statistics(self, tables: Sequence[str]) -> dict[str, RowStatistics]:
        try:
            return {name: self._table(name) for name in tables}
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def _table(self, name: str) -> RowStatistics:
        schema, table = split_table(name)
        regclass = sql.Identifier(schema, table).as_string(self._conn)
        params = {"schema": schema, "table": table, "rel": regclass}
        stats = self._conn.execute(_STATS_SQL, params).fetchall()
        found = self._conn.execute(_ROWS_SQL, params).fetchone()
        rows = float(found[0]) if found and found[0] is not None else -1.0
        if not stats or rows < 0:
            return RowStatistics(self._sampled_width(name))
        most_common = {
            str(column): round(float(freq) * rows) for column, _width, freq in stats if freq is not None
        }
        return RowStatistics(sum(int(width) for _column, width, _freq in stats), most_common)

    def _sampled_width(self, name: str) -> int | None:
        """The average stored width of up to SAMPLE_ROWS rows (pg_column_size of the row)."""
        query = sql.SQL("SELECT avg(pg_column_size(t.*))::bigint FROM (SELECT * FROM {} LIMIT {}) t").format(
            table_identifier(name), sql.Literal(SAMPLE_ROWS)
        )
        row = self._conn.execute(query).fetchone()
        return int(row[0]) if row and row[0] is not None else None
