"""What reverse sync needs to know of a MySQL/MariaDB table it writes to: its columns (canonical
types, as inspection reads them), the unique keys an upsert can match, the generated columns it
must never write, and the NOT NULL columns without a default that an INSERT must carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migrator.adapters.base import ColumnInfo
from migrator.adapters.mysql.inspect import MysqlInspector, split_table
from migrator.errors import SourceError

_FLAGS_SQL = (
    "SELECT COLUMN_NAME, EXTRA, IS_NULLABLE, COLUMN_DEFAULT FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = COALESCE(NULLIF(%s, ''), DATABASE()) AND TABLE_NAME = %s"
)

_UNIQUE_SQL = (
    "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0"
)


@dataclass(frozen=True)
class WriteTable:
    name: str
    columns: dict[str, ColumnInfo]
    unique_keys: tuple[tuple[str, ...], ...]  # primary key first
    generated: frozenset[str]  # VIRTUAL / STORED (MariaDB: PERSISTENT) generated columns
    required: frozenset[str]  # NOT NULL, no default, not generated, not auto-increment
    # Every unique index, nullable columns too: ON DUPLICATE KEY UPDATE matches a row by any of
    # them, so with more than one a new row's clash on another would update that other row.
    unique_indexes: int = 1

    def arbiter(self, key: Sequence[str]) -> tuple[str, ...]:
        """The unique key whose columns are all in `key`: what ON DUPLICATE KEY finds a row by."""
        for unique in self.unique_keys:
            if unique and set(unique) <= set(key):
                return unique
        raise SourceError(
            f"{self.name} has no unique index on NOT NULL columns among ({', '.join(key)}), so rows "
            "cannot be upserted by that key",
            hint="use the primary key as the plan's key, or add a unique index on those columns",
        )


def _generated(extra: str) -> bool:
    extra = extra.upper()
    return "GENERATED" in extra or extra in ("VIRTUAL", "PERSISTENT", "STORED")


def read_table(conn: Any, endpoint_name: str, secrets: tuple[str, ...], name: str) -> WriteTable:
    schema, table = split_table(name)
    if not schema:  # a bare name is in the connection's database; inspection reads schema.table
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            schema = str(cur.fetchone()[0] or "")
    qualified = f"{schema}.{table}"
    info = MysqlInspector(conn, endpoint_name, secrets).inspect([qualified]).tables.get(qualified)
    if info is None:
        raise SourceError(f"table {name} does not exist on the source (reverse sync writes to it)")
    with conn.cursor() as cur:
        cur.execute(_FLAGS_SQL, [schema, table])
        flags = list(cur.fetchall())
    generated = frozenset(str(n) for n, extra, _, _ in flags if _generated(str(extra or "")))
    required = frozenset(
        str(n)
        for n, extra, nullable, default in flags
        if nullable == "NO"
        and default is None
        and str(n) not in generated
        and "auto_increment" not in str(extra or "").lower()
    )
    with conn.cursor() as cur:
        cur.execute(_UNIQUE_SQL, [schema, table])
        unique_indexes = int(cur.fetchone()[0])
    return WriteTable(
        name, {c.name: c for c in info.columns}, info.unique_keys, generated, required, unique_indexes
    )
