"""What `migrator init` reads of a MySQL/MariaDB source besides inspection: the tables a plan could
map, and the average row widths its document-size estimates come from (docs/architecture.md,
"Proposing a plan"). information_schema only: no scan."""

from __future__ import annotations

from collections.abc import Sequence

from migrator.adapters.base import RowStatistics
from migrator.adapters.mysql.inspect import MysqlInspector, split_table
from migrator.adapters.mysql.run_privileges import OWN_TABLES


def user_tables(inspector: MysqlInspector) -> tuple[str, ...]:
    """The base tables of the URL's database, as database.table, migrator's own left out."""
    rows = inspector.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
    )
    return tuple(f"{schema}.{table}" for schema, table in rows if table not in OWN_TABLES)


def row_statistics(inspector: MysqlInspector, tables: Sequence[str]) -> dict[str, RowStatistics]:
    """AVG_ROW_LENGTH (InnoDB: its data pages over its estimated rows; 0 for an empty table). No
    per-value statistics: MySQL keeps none by default, so fan-outs are estimated as averages."""
    found: dict[str, RowStatistics] = {}
    for name in tables:
        schema, table = split_table(name)
        rows = inspector.query(
            "SELECT AVG_ROW_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            [schema, table],
        )
        width = int(rows[0][0] or 0) if rows else 0
        found[name] = RowStatistics(width or None)
    return found
