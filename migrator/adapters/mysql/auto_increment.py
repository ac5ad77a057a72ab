"""The AUTO_INCREMENT counters of the mapped tables, as the last value each gave out: what cutover
brings a PostgreSQL target's identity to (docs/architecture.md, "Sequences at cutover").

A table's counter is its next value (information_schema.TABLES.AUTO_INCREMENT; MySQL 8 caches the
statistics it reads there unless information_schema_stats_expiry is 0, set for the session), so
the last value given out is one below it, and never below the column's largest value (a row
written with an explicit value above the counter moves it, but a cache may lag). A counter that
gave out nothing (1, an empty table) is not passed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from migrator.adapters.mysql.inspect import quote_ident, quote_table, split_table

_COUNTER = """
SELECT c.COLUMN_NAME, t.AUTO_INCREMENT FROM information_schema.COLUMNS c
JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = %s AND c.TABLE_NAME = %s AND c.EXTRA LIKE '%%auto_increment%%'
"""


def auto_increment_values(conn: Any, tables: Sequence[str]) -> dict[str, dict[str, int]]:
    """table -> {column: last value given out} for each table with an AUTO_INCREMENT column."""
    found: dict[str, dict[str, int]] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION(), DATABASE()")
        version, database = cur.fetchone()
        if "mariadb" not in str(version).lower():
            cur.execute("SET SESSION information_schema_stats_expiry = 0")
        for name in dict.fromkeys(tables):
            schema, table = split_table(name)
            cur.execute(_COUNTER, [schema or database, table])
            row = cur.fetchone()
            if row is None:
                continue
            column, counter = str(row[0]), int(row[1] or 1)
            cur.execute(f"SELECT MAX({quote_ident(column)}) FROM {quote_table(name)}")  # noqa: S608 (quoted identifiers)
            largest = cur.fetchone()[0]
            last = max(counter - 1, int(largest or 0))
            if last > 0:
                found[name] = {column: last}
    return found
