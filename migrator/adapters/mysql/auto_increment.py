"""The AUTO_INCREMENT counters of the mapped tables, as the last value each gave out: what cutover
brings a PostgreSQL target's identity to (docs/architecture.md, "Sequences at cutover").

A table's counter is its next value (information_schema.TABLES.AUTO_INCREMENT; MySQL 8 caches the
statistics it reads there unless information_schema_stats_expiry is 0, set for the session), so
the last value given out is one below it, and never below the column's largest value (a row
written with an explicit value above the counter moves it, but a cache may lag). A counter that
gave out nothing (1, an empty table) is not passed on.

At rollback after cutover the counters are brought past the target's last values instead
(`raise_auto_increment`, docs/architecture.md, "Sequences at rollback after cutover"): ALTER TABLE
... AUTO_INCREMENT only where the counter is below the wanted next value, never lower. It matters
though MySQL moves a counter past each explicit key reverse sync writes: a key the target gave out
to a row it deleted since never reaches the source, and the source must not give it out again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def raise_auto_increment(conn: Any, values: Mapping[str, Mapping[str, int]], margin: int) -> list[str]:
    """Each table's counter brought to the target's last value plus `margin` plus one (the next
    value given out), where it is below; what was done, one line each."""
    done: list[str] = []
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION(), DATABASE()")
        version, database = cur.fetchone()
        if "mariadb" not in str(version).lower():
            cur.execute("SET SESSION information_schema_stats_expiry = 0")
        for name, columns in values.items():
            schema, table = split_table(name)
            cur.execute(_COUNTER, [schema or database, table])
            row = cur.fetchone()
            for column, last in columns.items():
                if row is None or str(row[0]) != column:
                    done.append(
                        f"{name}.{column}: no AUTO_INCREMENT on the source (the target's gave out {last})"
                    )
                    continue
                counter, wanted = int(row[1] or 1), last + margin + 1
                if counter >= wanted:
                    done.append(
                        f"{name}.{column}: AUTO_INCREMENT already at {counter}, past the target's {last} + margin"
                    )
                    continue
                cur.execute(f"ALTER TABLE {quote_table(name)} AUTO_INCREMENT = {int(wanted)}")
                done.append(
                    f"{name}.{column}: AUTO_INCREMENT set to {wanted} (the target's {last} + margin + 1)"
                )
    return done
