"""Read-only inspection of a PostgreSQL source: server facts, tables, columns, keys, sizes.

Catalog queries rather than SQLAlchemy reflection: preflight needs replica identity,
enum/domain/array resolution and numeric typmods, which reflection does not expose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import (
    ColumnInfo,
    ForeignKey,
    IdentityIndex,
    JoinHop,
    LargestDocument,
    LeafInfo,
    SequenceGrant,
    SourceInfo,
    SourceServerInfo,
    TableInfo,
    TriggerInfo,
)
from migrator.adapters.postgres import origin_states
from migrator.adapters.postgres.checkpoint_access import checkpoint_denied
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.user_types import with_user_types

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
       (SELECT count(*) FROM pg_stat_replication), current_database()
FROM pg_roles r WHERE r.rolname = current_user
"""

# What reverse sync's writer (reverse_writer.py) calls to tag its writes with its origin.
ORIGIN_FUNCTIONS = (
    "pg_replication_origin_create(text)",
    "pg_replication_origin_drop(text)",
    "pg_replication_origin_oid(text)",
    "pg_replication_origin_session_setup(text)",
    "pg_replication_origin_session_reset()",
)

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
       rt.oid, et.oid, a.atttypid, a.attstorage,
       CASE WHEN {generated} = 's' THEN pg_get_expr(d.adbin, d.adrelid) END,
       CASE WHEN {generated} = 's' THEN ARRAY(
           SELECT ra.attname FROM pg_depend dep
           JOIN pg_attribute ra ON ra.attrelid = dep.refobjid AND ra.attnum = dep.refobjsubid
           WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
             AND dep.refclassid = 'pg_class'::regclass AND dep.refobjid = a.attrelid
             AND dep.refobjsubid > 0 AND dep.refobjsubid <> a.attnum
           ORDER BY ra.attnum) END,
       format_type(a.atttypid, a.atttypmod),
       CASE WHEN {generated} <> 's' THEN pg_get_expr(d.adbin, d.adrelid) END,
       a.attidentity,
       CASE WHEN {generated} = 's' THEN NOT EXISTS (
           SELECT 1 FROM pg_depend dep
           WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid AND dep.refobjid >= 16384
             AND NOT (dep.refclassid = 'pg_class'::regclass AND dep.refobjid = a.attrelid)) END,
       (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
        FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE co.oid = a.attcollation
          AND a.attcollation <> (SELECT t.typcollation FROM pg_type t WHERE t.oid = a.atttypid))
FROM pg_attribute a
JOIN base b ON b.oid = a.atttypid
JOIN pg_type rt ON rt.oid = b.root AND rt.typtype <> 'd'
LEFT JOIN (elem e JOIN pg_type et ON et.oid = e.root AND et.typtype <> 'd')
       ON e.oid = rt.typelem AND rt.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(rel)s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
GENERATED_SERVER_VERSION = 120000  # attgenerated: stored generated columns arrived in PostgreSQL 12

# Only an index's key columns are unique together: INCLUDE columns (PostgreSQL 11+, listed in
# indkey after the first indnkeyatts) are payload, and counting them would refuse a valid key.
# PostgreSQL 10 has no INCLUDE and no indnkeyatts; there every column is a key column.
# `indimmediate` is false for a DEFERRABLE key, which PostgreSQL cannot use as replica identity
# (docs/architecture.md, "Replica identity").
_INDEXES_SQL = """
SELECT i.indisprimary, i.indisreplident,
       array_agg(a.attname ORDER BY k.ord), bool_and(a.attnotnull), i.indimmediate, ic.relname
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %(rel)s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indisvalid AND k.ord <= {key_columns}
GROUP BY i.indexrelid, i.indisprimary, i.indisreplident, i.indimmediate, ic.relname
ORDER BY ic.relname
"""

# Every relation below a table through pg_inherits (partitions at any depth, or inheritance
# children), with its depth; pg_partition_tree would do for partitions from PostgreSQL 12 only.
_DESCENDANTS_SQL = """
WITH RECURSIVE tree(relid, depth) AS (
    SELECT i.inhrelid, 1 FROM pg_inherits i WHERE i.inhparent = %(rel)s
  UNION ALL
    SELECT i.inhrelid, t.depth + 1 FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid
)
SELECT c.oid, n.nspname || '.' || c.relname, c.relkind, c.relreplident, c.reltuples::bigint,
       pg_total_relation_size(c.oid), c.relispartition, c.relpersistence
FROM tree JOIN pg_class c ON c.oid = tree.relid JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY tree.depth, n.nspname, c.relname
"""

# The partition key columns of a partitioned table and of its partitioned partitions (their
# attnums differ, their names do not); attnum 0 stands for an expression.
_PARTITION_KEY_SQL = """
SELECT k.n = 0, a.attname
FROM pg_partitioned_table p
CROSS JOIN LATERAL unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(n, ord)
LEFT JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.n
WHERE p.partrelid = ANY(%(rels)s)
ORDER BY p.partrelid = %(root)s DESC, p.partrelid, k.ord
"""

# Where any leaf may store a column out of line, the partitioned table may (storage is per relation).
_LEAF_STORAGE_SQL = """
SELECT a.attname, max(a.attstorage::text) FROM pg_attribute a
WHERE a.attrelid = ANY(%(rels)s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attstorage <> 'p'
GROUP BY a.attname
"""

# User triggers: not those PostgreSQL makes for constraints (tgisinternal). A partition's clone of
# its parent's trigger is listed once, on the parent (tgparentid, PostgreSQL 13+; before, clones
# were internal).
_TRIGGERS_SQL = """
SELECT n.nspname || '.' || c.relname, t.tgname, t.tgenabled, t.tgtype
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.tgrelid = ANY(%(rels)s) AND NOT t.tgisinternal {clones}
ORDER BY t.tgrelid = %(root)s DESC, n.nspname, c.relname, t.tgname
"""
TRIGGER_PARENT_SERVER_VERSION = 130000
_TRIGGER_ENABLED = {"O": "origin", "A": "always", "R": "replica", "D": "disabled"}
INCLUDE_SERVER_VERSION = 110000

_FOREIGN_KEYS_SQL = """
SELECT (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),
       rn.nspname || '.' || r.relname,
       (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord)
        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n),
       c.conname, c.convalidated,
       -- conenforced exists from PostgreSQL 18 (NOT ENFORCED); before, every foreign key is.
       coalesce((to_jsonb(c) ->> 'conenforced')::boolean, true)
FROM pg_constraint c
JOIN pg_class r ON r.oid = c.confrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE c.conrelid = %(rel)s AND c.contype = 'f'
ORDER BY c.conname
"""

_TABLE_SQL = """
SELECT c.relreplident, c.reltuples::bigint, c.relpages, pg_total_relation_size(c.oid),
       pg_has_role(current_user, c.relowner, 'USAGE'), c.relkind, c.relpersistence
FROM pg_class c WHERE c.oid = %(rel)s
"""

# What reverse sync writes (reverse_writer.py) and rollback after cutover does to the columns'
# sequences (sequences.py: pg_sequence_last_value needs SELECT or USAGE, setval UPDATE), as far as
# the plan's role may: preflight fails what it may not, before a cutover that would need it.
_WRITES_SQL = """
SELECT array_remove(ARRAY[
  CASE WHEN NOT has_table_privilege(%(rel)s::oid, 'INSERT') THEN 'INSERT' END,
  CASE WHEN NOT has_table_privilege(%(rel)s::oid, 'UPDATE') THEN 'UPDATE' END,
  CASE WHEN NOT has_table_privilege(%(rel)s::oid, 'DELETE') THEN 'DELETE' END], NULL)
"""
_SEQUENCES_SQL = """
SELECT a.attname, format('%%I.%%I', n.nspname, s.relname), array_remove(ARRAY[
  CASE WHEN NOT has_sequence_privilege(d.objid, 'SELECT, USAGE') THEN 'SELECT' END,
  CASE WHEN NOT has_sequence_privilege(d.objid, 'UPDATE') THEN 'UPDATE' END], NULL)
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjid = %(rel)s::oid
ORDER BY a.attnum
"""

# What a mapped name is when it is no table migrator can follow (pg_class.relkind; a temporary
# table is relpersistence 't'): said by `plan` instead of "does not exist".
_RELATION_KINDS = {
    "v": "a view",
    "m": "a materialized view",
    "f": "a foreign table",
    "S": "a sequence",
    "c": "a composite type",
    "i": "an index",
    "I": "a partitioned index",
    "t": "a TOAST table",
}


@dataclass(frozen=True)
class _Keys:
    """A relation's unique indexes, read once for keys, uniqueness and replica identity."""

    primary: tuple[str, ...]
    primary_deferrable: bool
    primary_name: str | None
    replident_index: tuple[str, ...]  # () when the identity index was dropped (PostgreSQL keeps 'i')
    unique: tuple[tuple[str, ...], ...]
    identity_indexes: tuple[IdentityIndex, ...]


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
            not_tables: dict[str, str] = {}
            for name in dict.fromkeys(tables):
                info = self.table(name)
                if info is None:
                    missing.append(name)
                    kind = self.kind_of(name)
                    if kind is not None:
                        not_tables[name] = kind
                else:
                    found[name] = info
            return SourceInfo(
                server=server, tables=found, missing_tables=tuple(missing), not_tables=not_tables
            )
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
            checkpoint = checkpoint_denied(cur, str(row[8]))
            origin = [
                str(r[0])
                for r in cur.execute(
                    "SELECT f FROM unnest(%s::text[]) WITH ORDINALITY u(f, n)"
                    " WHERE NOT has_function_privilege('pg_catalog.' || f, 'EXECUTE') ORDER BY n",
                    [list(ORIGIN_FUNCTIONS)],
                ).fetchall()
            ]
            states = origin_states.held(self._conn)
        version, version_num, user, superuser, replication, can_create, used_slots, used_senders, database = (
            row
        )
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
            database=str(database),
            origin_functions_denied=tuple(origin),
            origin_states=states,
            checkpoint_denied=checkpoint,
        )

    def kind_of(self, name: str) -> str | None:
        """What `name` is when it exists but is no table migrator follows ("a view", "a temporary
        table", ...); None when it does not exist or is one. (A temporary table of another session
        is found by its pg_temp_N schema, but only its own session may read it.)"""
        schema, table = split_table(name)
        with self._conn.cursor() as cur:
            row = cur.execute(
                "SELECT c.relkind, c.relpersistence FROM pg_class c"
                " WHERE c.oid = to_regclass(format('%%I.%%I', %s::text, %s::text))",
                [schema, table],
            ).fetchone()
        if row is None:
            return None
        relkind, persistence = str(row[0]), str(row[1])
        if persistence == "t" and relkind in ("r", "p"):
            return "a temporary table"
        return _RELATION_KINDS.get(relkind)

    def table(self, name: str, *, count_rows: bool = True) -> TableInfo | None:
        """The table's catalog facts; `count_rows=False` skips counting a never-analyzed table
        (its estimate is then 0): for callers that need only keys and identities."""
        schema, table = split_table(name)
        with self._conn.cursor() as cur:
            oid_row = cur.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))::oid", [schema, table]
            ).fetchone()
            if oid_row is None or oid_row[0] is None:
                return None
            oid = oid_row[0]
            rel = {"rel": oid}
            meta = cur.execute(_TABLE_SQL, rel).fetchone()
            assert meta is not None
            replident, reltuples, _relpages, total_bytes, owned, relkind, persistence = meta
            if relkind not in ("r", "p") or persistence == "t":
                return None  # see kind_of()
            columns = self._columns(cur, oid)
            keys = self._keys(cur, oid)
            fks = self._foreign_keys(cur, oid)
            descendants = cur.execute(_DESCENDANTS_SQL, rel).fetchall()
            estimated = int(reltuples)
            size = int(total_bytes)
            extra: dict[str, Any] = {}
            if relkind == "p":
                extra = self._partitioned(cur, oid, columns, descendants)
                columns = extra.pop("columns")
                leaves: tuple[LeafInfo, ...] = extra["leaves"]
                estimated, size = self._partitions_size(cur, descendants, count_rows)
                identity_columns = _shared(leaves, keys.primary)
            else:
                extra["inheritance_children"] = tuple(str(d[1]) for d in descendants)
                identity_columns = _identity_columns(str(replident), keys, columns)
            extra["unlogged"] = _unlogged(name, persistence, descendants)
            extra["triggers"] = self._triggers(cur, oid, [d[0] for d in descendants if d[2] == "r"])
            extra["write_denied"], extra["sequences"] = self._writes(cur, oid)
            if estimated < 0:
                estimated = self._count_unanalyzed(cur, name) if count_rows else 0
        return TableInfo(
            name=name,
            columns=columns,
            primary_key=keys.primary,
            unique_keys=keys.unique,
            replica_identity=_IDENTITY.get(str(replident), "default"),
            identity_columns=identity_columns,
            foreign_keys=fks,
            estimated_rows=estimated,
            total_bytes=size,
            owned_by_current_user=bool(owned),
            kind="partitioned" if relkind == "p" else "table",
            primary_key_deferrable=keys.primary_deferrable,
            primary_key_name=keys.primary_name,
            identity_indexes=keys.identity_indexes,
            **extra,
        )

    @staticmethod
    def _writes(cur: psycopg.Cursor[Any], oid: int) -> tuple[tuple[str, ...], tuple[SequenceGrant, ...]]:
        """What the role lacks of INSERT, UPDATE, DELETE on the table, and its columns' sequences."""
        denied = cur.execute(_WRITES_SQL, {"rel": oid}).fetchone()
        assert denied is not None
        sequences = tuple(
            SequenceGrant(column=str(column), sequence=str(sequence), missing=tuple(missing))
            for column, sequence, missing in cur.execute(_SEQUENCES_SQL, {"rel": oid}).fetchall()
        )
        return tuple(denied[0]), sequences

    @staticmethod
    def _foreign_keys(cur: psycopg.Cursor[Any], oid: int) -> tuple[ForeignKey, ...]:
        return tuple(
            # Schema-qualified from the catalog (regclass::text leaves out a schema on the
            # search_path), as TableInfo names are.
            ForeignKey(tuple(c), str(t), tuple(rc), str(name), bool(validated), bool(enforced))
            for c, t, rc, name, validated, enforced in cur.execute(_FOREIGN_KEYS_SQL, {"rel": oid}).fetchall()
        )

    def _partitions_size(
        self, cur: psycopg.Cursor[Any], descendants: list[tuple[Any, ...]], count_rows: bool
    ) -> tuple[int, int]:
        """(estimated rows, total bytes) of a partitioned table."""
        # A partitioned table holds no rows itself: its partitions' statistics are its own,
        # and a partition never analyzed is counted alone (a foreign one never: its server
        # may be far away, and it is refused anyway).
        estimated = sum(
            int(d[4]) if int(d[4]) >= 0 else self._count(cur, int(d[0])) if count_rows else 0
            for d in descendants
            if d[2] == "r"
        )
        return estimated, sum(int(d[5]) for d in descendants)

    @staticmethod
    def _count_unanalyzed(cur: psycopg.Cursor[Any], name: str) -> int:
        # Never analyzed (PostgreSQL 14+ reports -1): count, which is cheap when
        # the table is small and bounded by the session's statement_timeout when not.
        count = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table_identifier(name))).fetchone()
        return int(count[0]) if count else 0

    @staticmethod
    def _count(cur: psycopg.Cursor[Any], oid: int) -> int:
        name = cur.execute("SELECT %s::regclass::text", [oid]).fetchone()
        assert name is not None
        row = cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(name[0]))).fetchone()
        return int(row[0]) if row else 0

    def _columns(self, cur: psycopg.Cursor[Any], oid: int) -> tuple[ColumnInfo, ...]:
        generated = "a.attgenerated" if self._version >= GENERATED_SERVER_VERSION else "''::\"char\""
        query = sql.SQL(_COLUMNS_SQL).format(generated=sql.SQL(generated))
        return with_user_types(cur, [_column(r) for r in cur.execute(query, {"rel": oid}).fetchall()])

    def _keys(self, cur: psycopg.Cursor[Any], oid: int) -> _Keys:
        primary: tuple[str, ...] = ()
        primary_name: str | None = None
        deferrable = False
        replident_index: tuple[str, ...] = ()
        unique: list[tuple[str, ...]] = []
        candidates: list[IdentityIndex] = []
        key_columns = "indnkeyatts" if self._version >= INCLUDE_SERVER_VERSION else "indnatts"
        indexes = sql.SQL(_INDEXES_SQL).format(key_columns=sql.Identifier("i", key_columns))
        for is_primary, is_replident, names, all_not_null, immediate, index in cur.execute(
            indexes, {"rel": oid}
        ).fetchall():
            cols = tuple(names)
            if is_primary:
                primary, deferrable, primary_name = cols, not immediate, str(index)
            if is_replident:
                replident_index = cols
            if all_not_null:
                # A DEFERRABLE unique key is still unique once each transaction commits, which is
                # all a document key needs; it cannot serve as replica identity.
                unique.append(cols)
                if immediate:
                    candidates.append(IdentityIndex(str(index), cols))
        return _Keys(primary, deferrable, primary_name, replident_index, tuple(unique), tuple(candidates))

    def _partitioned(
        self,
        cur: psycopg.Cursor[Any],
        oid: int,
        columns: tuple[ColumnInfo, ...],
        descendants: list[tuple[Any, ...]],
    ) -> dict[str, Any]:
        """What a partitioned table's leaves say: their replica identities, the partition key at
        every level, and which columns any leaf may store out of line."""
        leaves: list[LeafInfo] = []
        foreign: list[str] = []
        for leaf_oid, leaf_name, kind, leaf_replident, *_rest in descendants:
            if kind == "f":
                foreign.append(str(leaf_name))
            if kind != "r":
                continue
            leaf_columns = self._columns(cur, leaf_oid)
            keys = self._keys(cur, leaf_oid)
            identity = _IDENTITY.get(str(leaf_replident), "default")
            leaves.append(
                LeafInfo(
                    name=str(leaf_name),
                    replica_identity=identity,
                    identity_columns=_identity_columns(str(leaf_replident), keys, leaf_columns),
                    primary_key=keys.primary,
                    primary_key_deferrable=keys.primary_deferrable,
                    identity_indexes=keys.identity_indexes,
                )
            )
        partitioned = [oid, *(d[0] for d in descendants if d[2] == "p")]
        key: list[str] = []
        by_expression = False
        for is_expression, column in cur.execute(
            _PARTITION_KEY_SQL, {"rels": partitioned, "root": oid}
        ).fetchall():
            if is_expression:
                by_expression = True
            elif str(column) not in key:
                key.append(str(column))
        leaf_oids = [d[0] for d in descendants if d[2] == "r"]
        storage = dict(cur.execute(_LEAF_STORAGE_SQL, {"rels": leaf_oids}).fetchall()) if leaf_oids else {}
        columns = tuple(
            replace(c, storage=str(storage[c.name])) if c.storage == "p" and c.name in storage else c
            for c in columns
        )
        return {
            "columns": columns,
            "leaves": tuple(leaves),
            "partition_key": tuple(key),
            "partitioned_by_expression": by_expression,
            "foreign_partitions": tuple(foreign),
        }

    def _triggers(self, cur: psycopg.Cursor[Any], oid: int, leaves: list[int]) -> tuple[TriggerInfo, ...]:
        clones = "AND (t.tgrelid = %(root)s OR t.tgparentid = 0)"
        query = sql.SQL(_TRIGGERS_SQL).format(
            clones=sql.SQL(clones if self._version >= TRIGGER_PARENT_SERVER_VERSION else "")
        )
        rows = cur.execute(query, {"rels": [oid, *leaves], "root": oid}).fetchall()
        return tuple(_trigger(*row) for row in rows)

    @property
    def _version(self) -> int:
        return int(self._conn.info.server_version)

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

    def values_outside(self, table: str, column: str, allowed: Sequence[Any]) -> int:
        """Rows whose `column` holds a value other than `allowed` and NULL (a full scan)."""
        query = sql.SQL("SELECT count(*) FROM {t} WHERE {c} NOT IN ({v})").format(
            t=table_identifier(table),
            c=sql.Identifier(column),
            v=sql.SQL(", ").join(sql.Literal(v) for v in allowed),
        )
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


def _identity_columns(replident: str, keys: _Keys, columns: tuple[ColumnInfo, ...]) -> tuple[str, ...]:
    """The columns an UPDATE's or DELETE's old tuple carries; () where PostgreSQL has no usable
    replica identity: NOTHING, no primary key, a DEFERRABLE one (PostgreSQL cannot use it, so a
    table with one has none), an identity index that was dropped (PostgreSQL keeps 'i')."""
    identity = _IDENTITY.get(replident, "default")
    if identity == "full":
        # pgoutput sends no stored generated column, old tuples included (PostgreSQL 18 only with
        # publish_generated_columns, which migrator does not set).
        return tuple(c.name for c in columns if c.generated is None)
    if identity == "index":
        return keys.replident_index
    if identity == "default" and not keys.primary_deferrable:
        return keys.primary
    return ()


def _shared(leaves: Sequence[LeafInfo], primary: tuple[str, ...]) -> tuple[str, ...]:
    """What every leaf's old tuple carries: the intersection of the leaves' identities (a leaf
    without one carries nothing). Without leaves yet, what a partition created later carries by
    default: the primary key."""
    if not leaves:
        return primary
    order = [c for c in leaves[0].identity_columns]
    common = set(order)
    for leaf in leaves[1:]:
        common &= set(leaf.identity_columns)
    return tuple(c for c in order if c in common)


_TIMING = {2: "before", 64: "instead of"}
_EVENTS = ((4, "insert"), (16, "update"), (8, "delete"), (32, "truncate"))


def _trigger(table: str, name: str, enabled: str, tgtype: int) -> TriggerInfo:
    # tgtype bits (PostgreSQL's pg_trigger.h): 2 BEFORE, 64 INSTEAD OF, else AFTER; 4 INSERT,
    # 8 DELETE, 16 UPDATE, 32 TRUNCATE.
    timing = next((t for bit, t in _TIMING.items() if tgtype & bit), "after")
    return TriggerInfo(
        table=str(table),
        name=str(name),
        enabled=_TRIGGER_ENABLED.get(str(enabled), "origin"),
        timing=timing,
        events=tuple(event for bit, event in _EVENTS if tgtype & bit),
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
        storage,
        generated,
        generated_from,
        declared,
        default,
        identity,
        builtin,
        collation,
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
        generated=str(generated) if generated is not None else None,
        storage=str(storage),
        generated_from=tuple(str(c) for c in generated_from or ()),
        generated_builtin=bool(builtin),
        declared_type=str(declared),
        default=None if default is None else str(default),
        identity=str(identity or ""),
        collation=str(collation or ""),
    )


def _unlogged(name: str, persistence: str, descendants: list[tuple[Any, ...]]) -> tuple[str, ...]:
    """The table (if UNLOGGED) and its UNLOGGED partitions: their changes never reach the WAL."""
    return tuple(
        [name] * (persistence == "u") + [str(d[1]) for d in descendants if d[2] == "r" and d[7] == "u"]
    )
