"""Preflight's check of foreign-key actions the binlog does not carry (docs/architecture.md, "MySQL
and MariaDB sources", "Connection, inspection and preflight").

InnoDB applies ON DELETE / ON UPDATE CASCADE and SET NULL inside the engine: the binlog holds the
row event of the parent's delete or update and none for the child rows the engine changed with it
(MariaDB, MySQL 8; tests/integration/mysql/test_mysql_preflight_cascades.py reads it). A mapped
table that is the child of such a key would change under change capture without a trace, whether
or not its parent is mapped: refused, naming the table and the key, with the ALTER that makes the
key RESTRICT (the application then deletes or re-keys the children itself, and those writes are
row events like any other).
"""

from __future__ import annotations

from collections.abc import Mapping

from migrator.adapters.base import ForeignKey, TableInfo
from migrator.adapters.mysql.inspect import quote_ident, quote_table
from migrator.findings import Finding, Severity

MAX_NAME = 64  # characters of a MySQL identifier
SUFFIX = "_restrict"


def cascade_findings(tables: Mapping[str, TableInfo]) -> list[Finding]:
    """A FAIL for each mapped table's foreign key whose action changes the table's rows."""
    return [
        _refused(name, key) for name, table in tables.items() for key in table.foreign_keys if key.actions()
    ]


def restrict_fix(table: str, key: ForeignKey) -> str:
    """One ALTER that replaces the key by one with the same columns and no actions, so that the
    key is never absent meanwhile. MariaDB refuses to drop and add a key of the same name in one
    ALTER (errno 121), so the new key is named `<name>_restrict`."""
    columns = ", ".join(quote_ident(c) for c in key.columns)
    referenced = ", ".join(quote_ident(c) for c in key.referenced_columns)
    return (
        f"ALTER TABLE {quote_table(table)} DROP FOREIGN KEY {quote_ident(key.name)}, ADD CONSTRAINT "
        f"{quote_ident(restrict_name(key.name))} FOREIGN KEY ({columns}) REFERENCES "
        f"{quote_table(key.referenced_table)} ({referenced}) ON DELETE RESTRICT ON UPDATE RESTRICT;"
    )


def restrict_name(name: str) -> str:
    """The replacing key's name, within MySQL's 64 characters."""
    return name[: MAX_NAME - len(SUFFIX)] + SUFFIX


def _refused(table: str, key: ForeignKey) -> Finding:
    actions = ", ".join(f"{event} {action}" for event, action in key.actions().items())
    return Finding(
        "source.foreign_key_action",
        Severity.FAIL,
        f"{table}: foreign key {key.name}",
        f"foreign key {key.name} of {table} references {key.referenced_table} with {actions}: the "
        f"server changes the rows of {table} inside the storage engine and writes no row event for them "
        "to the binlog, so change capture would never see those changes",
        restrict_fix(table, key) + " (then the application deletes or updates the child rows itself, "
        "before the parent's; the ALTER copies the table, and DDL on a mapped table stops change capture: "
        "run it before `migrator run`)",
    )
