"""Inspection of a MySQL/MariaDB source from information_schema: the server (version, binlog
settings, the user's privileges) and each mapped table (columns read as canonical types per
types.py, keys, foreign keys, size, engine). Read-only; preflight judges what it finds
(server_checks.py). A table is named schema.table, the schema being a MySQL database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymysql

from migrator.adapters.base import (
    ColumnInfo,
    ForeignKey,
    JoinHop,
    LargestDocument,
    SourceInfo,
    SourceServerInfo,
    TableInfo,
)
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.grants import ALL, parse_grants
from migrator.adapters.mysql.types import column_info, native_type

# The server variables preflight reads (SHOW GLOBAL VARIABLES needs no privilege). A variable the
# server does not have is absent from `settings` (binlog_row_metadata before MariaDB 10.5, say).
SETTINGS = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "server_id",
    "gtid_mode",
    "enforce_gtid_consistency",
    "gtid_strict_mode",
    "gtid_binlog_pos",
    "binlog_expire_logs_seconds",
    "expire_logs_days",
    "version_comment",
    "lower_case_table_names",
)
# Below this many rows (InnoDB's estimate), a table is counted exactly: the estimate of a table
# just filled may still read 0.
EXACT_COUNT_BELOW = 100_000
# Queries name tables and columns through quote_ident (backquoted, backquotes doubled) and pass
# every value as a parameter: the `noqa: S608` below mark the identifiers.
_NOT_TABLES = {"VIEW": "a view", "SYSTEM VIEW": "a system view", "SEQUENCE": "a sequence"}


@dataclass(frozen=True)
class MysqlServerInfo(SourceServerInfo):
    """SourceServerInfo with what a MySQL/MariaDB server adds: the product, the user's privileges
    (global; per database; per table as schema.table) and each inspected table's storage engine."""

    product: str = "MySQL"  # 'MySQL' or 'MariaDB'
    privileges: frozenset[str] = frozenset()
    database_privileges: dict[str, frozenset[str]] = field(default_factory=dict)
    table_privileges: dict[str, frozenset[str]] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)

    @property
    def mariadb(self) -> bool:
        return self.product == "MariaDB"

    @property
    def grantee(self) -> str:
        """The user as GRANT names it: 'name'@'host'."""
        user, _, host = self.user.rpartition("@")
        return f"'{user}'@'{host}'"

    def may(self, privilege: str, table: str | None = None) -> bool:
        """Whether the user holds `privilege` on *.*, or on `table`'s database or `table` itself."""
        held = set(self.privileges)
        if table is not None:
            held |= self.database_privileges.get(table.partition(".")[0], frozenset())
            held |= self.table_privileges.get(table, frozenset())
        # ALL PRIVILEGES holds every privilege of its level (GRANT OPTION aside).
        return privilege in held or (ALL in held and privilege != "GRANT OPTION")


# Read-as types a PostgreSQL identity can be (smallint, integer, bigint): BIGINT UNSIGNED becomes
# numeric(20,0), which cannot.
_IDENTITY_TYPES = frozenset({"smallint", "integer", "bigint"})


def _identity(data_type: str, column_type: str, extra: Any) -> str:
    """'d' (BY DEFAULT) for an AUTO_INCREMENT column whose target type can be an identity."""
    if "auto_increment" not in str(extra or "").lower():
        return ""
    native = native_type(data_type, column_type)
    return "d" if native is not None and native.type_name in _IDENTITY_TYPES else ""


def split_table(name: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("", name)


def quote_table(name: str) -> str:
    schema, table = split_table(name)
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def version_number(version: str) -> int:
    """'10.11.6-MariaDB-0+deb12u1' -> 101106; '8.0.36' -> 80036."""
    parts = [int(p) for p in re.findall(r"\d+", version.split("-", 1)[0])[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 10_000 + parts[1] * 100 + parts[2]


class MysqlInspector:
    """Reads the catalog on one connection (the caller's)."""

    def __init__(
        self, conn: pymysql.connections.Connection[Any], endpoint: str, secrets: tuple[str, ...] = ()
    ):
        self._conn = conn
        self._endpoint = endpoint
        self._secrets = secrets
        self._is_mariadb: bool | None = None

    def _rows(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(query, tuple(args))
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            raise classify(exc, self._endpoint, self._secrets) from None

    def query(self, query: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a catalog query of preflight's other checks (triggers.py); errors typed."""
        return self._rows(query, args)

    def close(self) -> None:
        self._conn.close()

    def _mariadb(self) -> bool:
        if self._is_mariadb is None:
            self._is_mariadb = "mariadb" in str(self._rows("SELECT VERSION()")[0][0]).lower()
        return self._is_mariadb

    def limit_statements(self, seconds: int) -> None:
        """Stop any statement of this session after `seconds` (MariaDB: max_statement_time;
        MySQL 8: max_execution_time, in ms, for SELECTs: all inspection runs)."""
        if self._mariadb():
            self._rows("SET SESSION max_statement_time = %s", [seconds])
        else:
            self._rows("SET SESSION max_execution_time = %s", [seconds * 1000])

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        found: dict[str, TableInfo] = {}
        missing: list[str] = []
        not_tables: dict[str, str] = {}
        engines: dict[str, str] = {}
        for name in dict.fromkeys(tables):
            row = self._table_row(name)
            if row is None:
                missing.append(name)
            elif row[0] != "BASE TABLE":
                not_tables[name] = _NOT_TABLES.get(row[0], f"a {str(row[0]).lower()}")
            else:
                found[name] = self._table(name, row)
                engines[name] = str(row[1] or "")
        server = self.server(engines)
        return SourceInfo(server, found, tuple(missing), not_tables)

    def server(self, engines: dict[str, str] | None = None) -> MysqlServerInfo:
        version, current_user, database = self._rows("SELECT VERSION(), CURRENT_USER(), DATABASE()")[0]
        marks = ",".join(["%s"] * len(SETTINGS))
        settings = {
            str(k): str(v)
            for k, v in self._rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", SETTINGS)
        }
        user, _, host = str(current_user).rpartition("@")
        grantee = f"'{user}'@'{host}'"
        privileges = set(
            str(p)
            for (p,) in self._rows(
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s", [grantee]
            )
        )
        per_database: dict[str, set[str]] = {}
        for schema, privilege in self._rows(
            "SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = %s",
            [grantee],
        ):
            # A GRANT ON `app\_db`.* escapes the wildcard '_': the database is app_db.
            per_database.setdefault(str(schema).replace("\\_", "_").replace("\\%", "%"), set()).add(
                str(privilege)
            )
        per_table: dict[str, set[str]] = {}
        for schema, table, privilege in self._rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
            "WHERE GRANTEE = %s",
            [grantee],
        ):
            per_table.setdefault(f"{schema}.{table}", set()).add(str(privilege))
        # SHOW GRANTS adds what the user holds through its current role (grants.py).
        shown = parse_grants([str(row[0]) for row in self._rows("SHOW GRANTS")])
        privileges |= shown.server
        for schema, names in shown.databases.items():
            per_database.setdefault(schema, set()).update(names)
        for table, names in shown.tables.items():
            per_table.setdefault(table, set()).update(names)
        # Two-phase XA transactions prepared since the server started (a status, no privilege).
        for name, value in self._rows("SHOW GLOBAL STATUS LIKE 'Com\\_xa\\_prepare'"):
            settings[str(name).lower()] = str(value)
        settings["privileges"] = ", ".join(sorted(privileges))
        replicate = bool(privileges & {"REPLICATION SLAVE", "REPLICATION REPLICA"})
        return MysqlServerInfo(
            endpoint=self._endpoint,
            version=str(version),
            version_num=version_number(str(version)),
            settings=settings,
            used_replication_slots=0,
            used_wal_senders=0,
            user=str(current_user),
            is_superuser="SUPER" in privileges,
            has_replication=replicate,
            can_create_in_database=True,
            existing_slots=(),
            existing_publications=(),
            database=str(database or ""),
            product="MariaDB" if "mariadb" in str(version).lower() else "MySQL",
            privileges=frozenset(privileges),
            database_privileges={k: frozenset(v) for k, v in per_database.items()},
            table_privileges={k: frozenset(v) for k, v in per_table.items()},
            engines=dict(engines or {}),
        )

    def _table_row(self, name: str) -> tuple[Any, ...] | None:
        schema, table = split_table(name)
        rows = self._rows(
            "SELECT TABLE_TYPE, ENGINE, TABLE_ROWS, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            [schema or self._database(), table],
        )
        return rows[0] if rows else None

    def _database(self) -> str:
        return str(self._rows("SELECT DATABASE()")[0][0] or "")

    def _table(self, name: str, row: tuple[Any, ...]) -> TableInfo:
        schema, table = split_table(name)
        columns = self._columns(schema, table)
        primary, unique = self._keys(schema, table, columns)
        rows = int(row[2] or 0)
        if rows < EXACT_COUNT_BELOW:
            rows = int(self._rows(f"SELECT COUNT(*) FROM {quote_table(name)}")[0][0])  # noqa: S608 (quoted identifiers)
        return TableInfo(
            name=name,
            columns=columns,
            primary_key=primary,
            unique_keys=unique,
            # Every row event carries the whole row (binlog_row_image=FULL, which preflight
            # requires): an update's or delete's old row holds every column.
            replica_identity="full",
            identity_columns=tuple(c.name for c in columns),
            foreign_keys=self._foreign_keys(schema, table),
            estimated_rows=rows,
            total_bytes=int(row[3] or 0),
            owned_by_current_user=True,
            primary_key_name="PRIMARY" if primary else None,
        )

    def _columns(self, schema: str, table: str) -> tuple[ColumnInfo, ...]:
        rows = self._rows(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "ORDINAL_POSITION, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION",
            [schema, table],
        )
        json_columns = self._mariadb_json(schema, table)
        # AUTO_INCREMENT is a sequence the table owns: reported as a BY DEFAULT identity, which a
        # PostgreSQL target declares and cutover brings past the source's counter, where the
        # target type can be one (not BIGINT UNSIGNED's numeric; docs/architecture.md, "Sequences
        # at cutover").
        return tuple(
            replace(
                column_info(
                    str(name),
                    "json"
                    if name in json_columns and str(data_type).lower() == "longtext"
                    else str(data_type),
                    str(column_type),
                    nullable=nullable == "YES",
                    position=int(position),
                    precision=None if precision is None else int(precision),
                    scale=None if scale is None else int(scale),
                ),
                identity=_identity(str(data_type), str(column_type), extra),
            )
            for name, data_type, column_type, nullable, precision, scale, position, extra in rows
        )

    def _mariadb_json(self, schema: str, table: str) -> set[str]:
        """MariaDB's JSON is LONGTEXT with the column constraint CHECK (json_valid(col)), which it
        names after the column (MySQL 8 has a json type, and its CHECK_CONSTRAINTS no TABLE_NAME)."""
        if not self._mariadb():
            return set()
        rows = self._rows(
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            [schema, table],
        )
        return {str(n) for n, clause in rows if str(clause) == f"json_valid({quote_ident(str(n))})"}

    def _keys(
        self, schema: str, table: str, columns: tuple[ColumnInfo, ...]
    ) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        """The primary key, and the unique keys over NOT NULL columns whole, the primary key first
        (a prefix index on part of a column does not identify a row's value)."""
        indexes: dict[str, list[tuple[str, bool]]] = {}
        for index, column, sub_part in self._rows(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            [schema, table],
        ):
            indexes.setdefault(str(index), []).append((str(column), sub_part is None))
        not_null = {c.name for c in columns if not c.nullable}
        primary = tuple(c for c, _ in indexes.pop("PRIMARY", []))
        unique = tuple(
            tuple(c for c, _ in parts)
            for _, parts in sorted(indexes.items())
            if all(whole and c in not_null for c, whole in parts)
        )
        return primary, ((primary,) if primary else ()) + unique

    def _foreign_keys(self, schema: str, table: str) -> tuple[ForeignKey, ...]:
        """The table's foreign keys with their ON DELETE / ON UPDATE actions (InnoDB applies a
        cascade inside the engine: preflight's foreign_keys.py says what the binlog then lacks)."""
        found: dict[str, tuple[list[str], str, list[str], str, str]] = {}
        for name, column, ref_schema, ref_table, ref_column, on_delete, on_update in self._rows(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, "
            "k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE FROM information_schema.KEY_COLUMN_USAGE k "
            "JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
            "AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
            "WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.REFERENCED_TABLE_NAME IS NOT NULL "
            "ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            [schema, table],
        ):
            entry = found.setdefault(
                str(name), ([], f"{ref_schema}.{ref_table}", [], str(on_delete or ""), str(on_update or ""))
            )
            entry[0].append(str(column))
            entry[2].append(str(ref_column))
        return tuple(
            ForeignKey(
                tuple(cols), referenced, tuple(ref_cols), name=name, on_delete=delete, on_update=update
            )
            for name, (cols, referenced, ref_cols, delete, update) in found.items()
        )

    # -- scans (preflight's, on `plan` only) ------------------------------------------------------

    def max_significant_digits(self, table: str, column: str) -> int:
        """Largest count of significant digits in a decimal column (leading and trailing zeros
        are not significant: Decimal128 keeps them as an exponent)."""
        col = quote_ident(column)
        digits = f"TRIM(BOTH '0' FROM REPLACE(REPLACE(CAST(ABS({col}) AS CHAR), '.', ''), '-', ''))"
        rows = self._rows(f"SELECT COALESCE(MAX(CHAR_LENGTH({digits})), 0) FROM {quote_table(table)}")  # noqa: S608 (quoted identifiers)
        return int(rows[0][0]) if rows else 0

    def values_outside(self, table: str, column: str, allowed: Sequence[Any]) -> int:
        """Rows whose `column` holds a value other than `allowed` and NULL (a full scan)."""
        marks = ", ".join(["%s"] * len(allowed))
        col = quote_ident(column)
        rows = self._rows(
            f"SELECT COUNT(*) FROM {quote_table(table)} WHERE {col} NOT IN ({marks})",  # noqa: S608 (quoted identifiers)
            list(allowed),
        )
        return int(rows[0][0]) if rows else 0

    def zero_dates(self, table: str, columns: Sequence[str]) -> dict[str, int]:
        """The `columns` (date, datetime, timestamp) of `table` that hold a zero date or a date with
        a zero part ('0000-00-00', '2024-00-10'), with how many rows hold one: no datetime can hold
        one. One scan of the table."""
        if not columns:
            return {}
        probes = ", ".join(
            f"COALESCE(SUM(YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0), 0)"
            for c in (quote_ident(n) for n in columns)
        )
        row = self._rows(f"SELECT {probes} FROM {quote_table(table)}")[0]  # noqa: S608 (quoted identifiers)
        return {name: int(hits) for name, hits in zip(columns, row, strict=True) if int(hits)}

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        """Estimate the largest document: per root key, the root row plus every embedded row, each
        row counted as the byte length of its values (LENGTH of each column, as stored text or
        bytes; a number counts its digits) plus its overhead. Simpler than PostgreSQL's stored
        sizes, and close where it matters: long text and blobs are what reach 16 MB."""
        keys = ", ".join(f"r.{quote_ident(k)} AS k{i}" for i, k in enumerate(key))
        root_size = f"{self._row_bytes(root, 'r')} + {int(root_overhead)}"
        parts = [f"SELECT {keys}, {root_size} AS b, 0 AS n FROM {quote_table(root)} r"]  # noqa: S608 (quoted identifiers)
        for path in paths:
            joins, parent = [], "r"
            for depth, hop in enumerate(path):
                alias = f"c{depth}"
                condition = " AND ".join(
                    f"{alias}.{quote_ident(child)} = {parent}.{quote_ident(up)}" for child, up in hop.on
                )
                joins.append(f"JOIN {quote_table(hop.table)} {alias} ON {condition}")
                parent = alias
            size = f"{self._row_bytes(path[-1].table, parent)} + {int(path[-1].row_overhead)}"
            parts.append(f"SELECT {keys}, {size}, 1 FROM {quote_table(root)} r {' '.join(joins)}")  # noqa: S608 (quoted identifiers)
        group = ", ".join(f"k{i}" for i in range(len(key)))
        union = " UNION ALL ".join(parts)
        query = f"SELECT {group}, SUM(b), SUM(n) FROM ({union}) AS s GROUP BY {group} ORDER BY {len(key) + 1} DESC"  # noqa: S608 (quoted identifiers)
        rows = self._rows(query + " LIMIT 1")
        if not rows:
            return None
        row = rows[0]
        return LargestDocument(
            key=tuple(row[: len(key)]), estimated_bytes=int(row[-2]), embedded_rows=int(row[-1])
        )

    def _row_bytes(self, table: str, alias: str) -> str:
        schema, name = split_table(table)
        columns = [
            str(c)
            for (c,) in self._rows(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                [schema, name],
            )
        ]
        return " + ".join(f"COALESCE(LENGTH({alias}.{quote_ident(c)}), 0)" for c in columns) or "0"
