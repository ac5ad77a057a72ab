"""Partitioned tables in the change stream: the mapped root a leaf partition's changes belong to.

The publication publishes a partitioned table with `publish_via_partition_root = false`, so a
change arrives under its leaf partition's Relation message (its own relation id, column order
and replica identity), and a TRUNCATE of one partition names only that leaf
(docs/architecture.md, "Partitioned tables"). CDC asks here, once per leaf, which root it is of.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import split_table

_IDENTITY = {"d": "default", "n": "nothing", "f": "full", "i": "index"}

# The root of a partition (pg_partition_root, PostgreSQL 12+); NULL for a table that is none.
_ROOT_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = pg_partition_root(%(rel)s::oid) AND c.oid <> %(rel)s::oid
"""

_LEAVES_SQL = """
SELECT t.relid::oid FROM pg_partition_tree(to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text))) t
WHERE t.isleaf
"""

# A relation's replica identity now, the columns its index covers (primary key or REPLICA
# IDENTITY USING INDEX), and that index's name.
_IDENTITY_SQL = """
SELECT c.relreplident,
       ARRAY(SELECT a.attname::text FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = c.oid
               AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))),
       (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = c.oid
          AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)))
FROM pg_class c WHERE c.oid = %(rel)s::oid
"""

_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")


def quoted_identifier(name: str) -> str:
    """One identifier as SQL accepts it (quoted where it needs to be)."""
    return name if _PLAIN_IDENTIFIER.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def quoted(name: str) -> str:
    """`schema.table` as SQL accepts it (each part quoted where it needs to be)."""
    return ".".join(quoted_identifier(part) for part in split_table(name))


@dataclass(frozen=True)
class Identity:
    kind: str  # 'default', 'index', 'full', 'nothing'
    columns: tuple[str, ...]  # the columns an UPDATE or DELETE logs of the old row ('full': all)
    index: str | None = None  # the primary key's or identity index's name

    def covers(self, needed: Sequence[str]) -> bool:
        return self.kind == "full" or set(needed) <= set(self.columns)

    def describe(self) -> str:
        """As an operator would recognise it: `REPLICA IDENTITY USING INDEX people_email (email)`."""
        columns = f" ({', '.join(self.columns)})" if self.columns else " (no columns: it has none)"
        if self.kind == "index":
            return f"REPLICA IDENTITY USING INDEX {self.index or '(dropped)'}{columns}"
        if self.kind == "default":
            return (
                f"REPLICA IDENTITY DEFAULT, the primary key {self.index}{columns}"
                if self.index
                else ("REPLICA IDENTITY DEFAULT without a primary key (no columns: it has none)")
            )
        return f"REPLICA IDENTITY {self.kind.upper()}"


class Partitions:
    """Catalog look-ups for the leaf partitions CDC meets; a root is looked up once per leaf."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint
        self._conn: psycopg.Connection[Any] | None = None
        self._roots: dict[int, str | None] = {}

    def _query(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._endpoint.connect()
            return list(self._conn.execute(query, params).fetchall())
        except psycopg.Error as exc:
            self.close()
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def root_of(self, relation_id: int) -> str | None:
        """`schema.table` of the partitioned root of relation `relation_id` (a leaf's oid, as
        its Relation message gives it); None when it is not a partition."""
        if relation_id not in self._roots:
            rows = self._query(_ROOT_SQL, {"rel": relation_id})
            self._roots[relation_id] = f"{rows[0][0]}.{rows[0][1]}" if rows else None
        return self._roots[relation_id]

    def leaves(self, root: str) -> set[int]:
        """The oids of `root`'s leaf partitions now."""
        schema, table = split_table(root)
        return {int(oid) for (oid,) in self._query(_LEAVES_SQL, {"schema": schema, "table": table})}

    def identity(self, relation_id: int, columns: Sequence[str]) -> Identity | None:
        """Relation `relation_id`'s replica identity now (None: it no longer exists)."""
        rows = self._query(_IDENTITY_SQL, {"rel": relation_id})
        if not rows:
            return None
        kind = _IDENTITY.get(str(rows[0][0]), "default")
        index = None if rows[0][2] is None else str(rows[0][2])
        return Identity(kind, tuple(columns) if kind == "full" else tuple(rows[0][1]), index)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
