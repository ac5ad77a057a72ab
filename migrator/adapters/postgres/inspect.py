"""Read-only inspection of a PostgreSQL source: server facts, tables, columns, keys, sizes.

Catalog queries rather than SQLAlchemy reflection: preflight needs replica identity,
enum/domain/array resolution and numeric typmods, which reflection does not expose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import (
    ColumnInfo,
    ForeignKey,
    JoinHop,
    LargestDocument,
    SourceInfo,
    SourceServerInfo,
    TableInfo,
)
from migrator.adapters.postgres.errors import classify

_KINDS = {
    "b": "base",
    "c": "composite",
    "d": "domain",
    "e": "enum",
    "p": "pseudo",
    "r": "range",
    "m": "multirange",
}
_IDENTITY = {"d": "default", "n": "nothing", "f": "full", "i": "index"}
SETTINGS = (
    "wal_level",
    "max_replication_slots",
    "max_wal_senders",
    "max_slot_wal_keep_size",
    "server_encoding",
)

_SERVER_SQL = """
SELECT current_setting('server_version'), current_setting('server_version_num')::int,
       current_user, r.rolsuper, r.rolreplication,
       has_database_privilege(current_database(), 'CREATE'),
       (SELECT count(*) FROM pg_replication_slots),
       (SELECT count(*) FROM pg_stat_replication)
FROM pg_roles r WHERE r.rolname = current_user
"""

# Domains are resolved to their base type so that conversions see what is stored; so are the
# elements of arrays (PostgreSQL 11+ has arrays over domains), else `qty[]` would be refused.
_COLUMNS_SQL = """
WITH RECURSIVE base(oid, root, typmod) AS (
    SELECT t.oid, t.oid, NULL::int FROM pg_type t
    WHERE t.oid IN (SELECT atttypid FROM pg_attribute WHERE attrelid = %(rel)s)
  UNION ALL
    SELECT b.oid, t.typbasetype, t.typtypmod FROM base b JOIN pg_type t ON t.oid = b.root
    WHERE t.typtype = 'd'
), elem(oid, root, typmod) AS (
    SELECT t.typelem, t.typelem, NULL::int FROM pg_type t
    WHERE t.oid IN (SELECT root FROM base) AND t.typcategory = 'A' AND t.typelem <> 0
  UNION ALL
    SELECT e.oid, t.typbasetype, t.typtypmod FROM elem e JOIN pg_type t ON t.oid = e.root
    WHERE t.typtype = 'd'
)
SELECT a.attname, a.attnum, NOT a.attnotnull,
       format_type(rt.oid, NULL), rt.typtype, rt.typcategory,
       CASE WHEN rt.typcategory = 'A' THEN format_type(et.oid, NULL) END,
       CASE WHEN rt.typcategory = 'A' THEN et.typtype END,
       COALESCE(NULLIF(a.atttypmod, -1), b.typmod, e.typmod, -1),
       rt.oid, et.oid, a.atttypid
FROM pg_attribute a
JOIN base b ON b.oid = a.atttypid
JOIN pg_type rt ON rt.oid = b.root AND rt.typtype <> 'd'
LEFT JOIN (elem e JOIN pg_type et ON et.oid = e.root AND et.typtype <> 'd')
       ON e.oid = rt.typelem AND rt.typcategory = 'A'
WHERE a.attrelid = %(rel)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# Only an index's key columns are unique together: INCLUDE columns (PostgreSQL 11+, listed in
# indkey after the first indnkeyatts) are payload, and counting them would refuse a valid key.
# PostgreSQL 10 has no INCLUDE and no indnkeyatts; there every column is a key column.
_INDEXES_SQL = """
SELECT i.indisprimary, i.indisreplident,
       array_agg(a.attname ORDER BY k.ord), bool_and(a.attnotnull)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %(rel)s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indisvalid AND k.ord <= {key_columns}
GROUP BY i.indexrelid, i.indisprimary, i.indisreplident
"""
INCLUDE_SERVER_VERSION = 110000

_FOREIGN_KEYS_SQL = """
SELECT (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),
       c.confrelid::regclass::text,
       (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord)
        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n)
FROM pg_constraint c WHERE c.conrelid = %(rel)s AND c.contype = 'f'
"""

_TABLE_SQL = """
SELECT c.relreplident, c.reltuples::bigint, c.relpages, pg_total_relation_size(c.oid),
       pg_has_role(current_user, c.relowner, 'USAGE'), c.relkind
FROM pg_class c WHERE c.oid = %(rel)s
"""


def split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.rpartition(".")
    return (schema or "public", table)


def table_identifier(name: str) -> sql.Identifier:
    return sql.Identifier(*split_table(name))


class PostgresInspector:
    """Runs the read-only catalog queries; every method is safe on a production primary."""

    def __init__(self, conn: psycopg.Connection[Any], endpoint: str, secrets: tuple[str, ...] = ()) -> None:
        self._conn = conn
        self._endpoint = endpoint
        self._secrets = secrets

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        try:
            server = self.server()
            found: dict[str, TableInfo] = {}
            missing: list[str] = []
            for name in dict.fromkeys(tables):
                info = self.table(name)
                if info is None:
                    missing.append(name)
                else:
                    found[name] = info
            return SourceInfo(server=server, tables=found, missing_tables=tuple(missing))
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def server(self) -> SourceServerInfo:
        with self._conn.cursor() as cur:
            row = cur.execute(_SERVER_SQL).fetchone()
            assert row is not None, "current_user has no pg_roles row"
            settings = dict(
                cur.execute(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]
                ).fetchall()
            )
            slots = [r[0] for r in cur.execute("SELECT slot_name FROM pg_replication_slots").fetchall()]
            pubs = [r[0] for r in cur.execute("SELECT pubname FROM pg_publication").fetchall()]
        version, version_num, user, superuser, replication, can_create, used_slots, used_senders = row
        return SourceServerInfo(
            endpoint=self._endpoint,
            version=str(version),
            version_num=int(version_num),
            settings={str(k): str(v) for k, v in settings.items()},
            used_replication_slots=int(used_slots),
            used_wal_senders=int(used_senders),
            user=str(user),
            is_superuser=bool(superuser),
            has_replication=bool(replication),
            can_create_in_database=bool(can_create),
            existing_slots=tuple(slots),
            existing_publications=tuple(pubs),
        )

    def table(self, name: str) -> TableInfo | None:
        schema, table = split_table(name)
        with self._conn.cursor() as cur:
            oid_row = cur.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))::oid", [schema, table]
            ).fetchone()
            if oid_row is None or oid_row[0] is None:
                return None
            rel = {"rel": oid_row[0]}
            meta = cur.execute(_TABLE_SQL, rel).fetchone()
            assert meta is not None
            replident, reltuples, _relpages, total_bytes, owned, relkind = meta
            if relkind not in ("r", "p"):
                return None
            columns = tuple(_column(r) for r in cur.execute(_COLUMNS_SQL, rel).fetchall())
            primary: tuple[str, ...] = ()
            replident_index: tuple[str, ...] = ()
            unique: list[tuple[str, ...]] = []
            key_columns = (
                "indnkeyatts" if self._conn.info.server_version >= INCLUDE_SERVER_VERSION else "indnatts"
            )
            indexes = sql.SQL(_INDEXES_SQL).format(key_columns=sql.Identifier("i", key_columns))
            for is_primary, is_replident, names, all_not_null in cur.execute(indexes, rel).fetchall():
                cols = tuple(names)
                if is_primary:
                    primary = cols
                if is_replident:
                    replident_index = cols
                if all_not_null:
                    unique.append(cols)
            fks = tuple(
                ForeignKey(tuple(c), str(t), tuple(rc))
                for c, t, rc in cur.execute(_FOREIGN_KEYS_SQL, rel).fetchall()
            )
            estimated = int(reltuples)
            if estimated < 0:
                # Never analyzed (PostgreSQL 14+ reports -1): count, which is cheap when
                # the table is small and bounded by the session's statement_timeout when not.
                count = cur.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(table_identifier(name))
                ).fetchone()
                estimated = int(count[0]) if count else 0
        identity = _IDENTITY.get(str(replident), "default")
        identity_columns = {
            "default": primary,
            "index": replident_index,
            "full": tuple(c.name for c in columns),
            "nothing": (),
        }[identity]
        return TableInfo(
            name=name,
            columns=columns,
            primary_key=primary,
            unique_keys=tuple(unique),
            replica_identity=identity,
            identity_columns=identity_columns,
            foreign_keys=fks,
            estimated_rows=estimated,
            total_bytes=int(total_bytes),
            owned_by_current_user=bool(owned),
        )

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        """Largest count of significant digits in a numeric column (NaN and infinities count as 0).

        For a numeric[] column (`array`), over every element: abs() has no array form.
        """
        value = sql.SQL("unnest({})" if array else "{}").format(sql.Identifier(column))
        # Infinities are compared as text: before PostgreSQL 14, 'Infinity'::numeric is an error.
        query = sql.SQL(
            "SELECT COALESCE(max(length(trim(both '0' from translate(abs(v)::text, '.', '')))), 0) "
            "FROM (SELECT {value} AS v FROM {t}) AS u "
            "WHERE v IS NOT NULL AND v::text NOT IN ('NaN', 'Infinity', '-Infinity')"
        ).format(value=value, t=table_identifier(table))
        try:
            row = self._conn.execute(query).fetchone()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        return int(row[0]) if row else 0

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        """Estimate the largest document: the root row plus every embedded row, grouped by root key.

        pg_column_size gives stored (possibly compressed) sizes, so this is an estimate; it
        finds the parent with the most embedded data, which is what a 16 MB limit hits.
        """
        keys = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(k)) for k in key)
        parts = [
            sql.SQL("SELECT {keys}, pg_column_size(r.*) + {o} AS b, 0 AS n FROM {t} r").format(
                keys=keys, o=sql.Literal(root_overhead), t=table_identifier(root)
            )
        ]
        for path in paths:
            joins: list[sql.Composable] = []
            parent_alias = "r"
            for depth, hop in enumerate(path):
                alias = f"c{depth}"
                condition = sql.SQL(" AND ").join(
                    sql.SQL("{a}.{c} = {p}.{pc}").format(
                        a=sql.Identifier(alias),
                        c=sql.Identifier(child_col),
                        p=sql.Identifier(parent_alias),
                        pc=sql.Identifier(parent_col),
                    )
                    for child_col, parent_col in hop.on
                )
                joins.append(
                    sql.SQL("JOIN {t} {a} ON {cond}").format(
                        t=table_identifier(hop.table), a=sql.Identifier(alias), cond=condition
                    )
                )
                parent_alias = alias
            parts.append(
                sql.SQL("SELECT {keys}, pg_column_size({a}.*) + {o}, 1 FROM {t} r {joins}").format(
                    keys=keys,
                    a=sql.Identifier(parent_alias),
                    o=sql.Literal(path[-1].row_overhead),
                    t=table_identifier(root),
                    joins=sql.SQL(" ").join(joins),
                )
            )
        group = sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(len(key)))
        aliased = group
        # ORDER BY the size column: position len(key) + 1.
        query = sql.SQL(
            "SELECT {group}, sum(b)::bigint, sum(n)::bigint FROM ({union}) AS s({aliased}, b, n) "
            "GROUP BY {group} ORDER BY {pos} DESC LIMIT 1"
        ).format(
            group=group,
            union=sql.SQL(" UNION ALL ").join(parts),
            aliased=aliased,
            pos=sql.SQL(str(len(key) + 1)),
        )
        try:
            row = self._conn.execute(query).fetchone()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint, self._secrets) from None
        if row is None:
            return None
        return LargestDocument(
            key=tuple(row[: len(key)]), estimated_bytes=int(row[-2]), embedded_rows=int(row[-1])
        )


def _column(row: tuple[Any, ...]) -> ColumnInfo:
    (
        name,
        position,
        nullable,
        type_name,
        typtype,
        category,
        elem_name,
        elem_typtype,
        typmod,
        _oid,
        _eoid,
        attypid,
    ) = row
    is_array = category == "A" and elem_name is not None
    kind = "array" if is_array else _KINDS.get(str(typtype), "base")
    precision = scale = None
    base_numeric = (elem_name if is_array else type_name) == "numeric"
    if base_numeric and typmod is not None and typmod >= 4:
        precision = ((typmod - 4) >> 16) & 0xFFFF
        scale = (typmod - 4) & 0xFFFF
    return ColumnInfo(
        name=str(name),
        type_name=str(elem_name + "[]" if is_array else type_name),
        type_kind=kind,
        element_type=str(elem_name) if is_array else None,
        element_kind=_KINDS.get(str(elem_typtype), "base") if is_array else None,
        nullable=bool(nullable),
        numeric_precision=precision,
        numeric_scale=scale,
        position=int(position),
        type_oid=int(attypid),
    )
