"""Text columns that cannot take back what the target's text holds (docs/architecture.md, "Tables
as collections"): reverse sync after cutover writes the application's target values into the
source, and a char, varchar or text column in a character set other than utf8mb4 (latin1, utf8mb3,
ascii, ...) cannot hold every character a PostgreSQL text or a MongoDB string (any Unicode) takes (strict mode refuses
the write, errno 1366, and stops reverse sync; without it MySQL stores '?'). `plan` refuses such a
cutover, naming the column, with the ALTER that makes it utf8mb4 (a fix the database accepts).
"""

from __future__ import annotations

from collections.abc import Mapping

from migrator.adapters.mysql.inspect import MysqlInspector, quote_ident, quote_table, split_table
from migrator.findings import Finding, Severity

_QUERY = (
    "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s AND DATA_TYPE IN "
    "('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext') AND CHARACTER_SET_NAME <> 'utf8mb4'"
)


def charset_findings(inspector: MysqlInspector, read: Mapping[str, set[str]]) -> list[Finding]:
    """A FAIL per text column read (table -> columns) that is not utf8mb4."""
    found: list[Finding] = []
    for table, names in read.items():
        schema, name = split_table(table)
        for column, column_type, nullable, charset in inspector.query(_QUERY, [schema or None, name]):
            if column not in names:
                continue
            null = "NULL" if nullable == "YES" else "NOT NULL"
            found.append(
                Finding(
                    "target.cutover",
                    Severity.FAIL,
                    f"{table}.{column}",
                    f"column {column} ({column_type}, character set {charset}) cannot hold every character "
                    "the target takes (any Unicode): reverse sync after cutover would fail on (or, "
                    "outside strict mode, replace) a character the application writes there",
                    f"ALTER TABLE {quote_table(table)} MODIFY {quote_ident(str(column))} {column_type} "
                    f"CHARACTER SET utf8mb4 {null} (repeat its DEFAULT and COMMENT, if any), or cut over "
                    "without reverse sync (cutover.reverse_sync: false)",
                )
            )
    return found
