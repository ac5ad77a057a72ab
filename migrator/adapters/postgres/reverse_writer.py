"""Reverse sync's writes to the source: documents' new states (DocumentRows) as rows, idempotently.

One `apply` is one PostgreSQL transaction holding several documents and the reverse checkpoint.
It is written set-based: per collection and level, one statement covers all the batch's documents
(a DELETE whose lists of parents and kept rows carry each document's number, so that it decides
for each document what the document alone would; multi-row upserts, a row held twice written once,
as the later document holds it), so that a batch of a few hundred documents costs a few dozen
statements sent in one pipeline, not a dozen per document. The statements:

- deletes first, deepest level first (a child row goes before its parent, as
  foreign keys need): the rows of each embedded level that belong to the document (linked to
  its root row through their parents, as the source holds them now, or linked to a parent the
  document now holds) and are not among its new rows; a deleted document loses every such row
  and then its root row;
- then upserts, parents first: `INSERT ... ON CONFLICT (key) DO UPDATE` of the columns the row
  carries, only where a value differs (so a replay, or an element that did not change, writes
  nothing and adds nothing to the WAL); columns the mapping does not carry are never written;
- a value whose forward conversion is lossy is not overwritten by its lossy copy: a timestamp
  keeps its microseconds when the new value is the same instant in milliseconds, json keeps its
  text when the new value is the same JSON value, a numeric of more than 34 digits its trailing
  zeros;
- the checkpoint (the MongoDB change stream's resume token) is upserted in
  `migrator.reverse_checkpoint` in the same transaction, so rows and position commit together.

Echo prevention: the session runs under a replication origin (`reverse_origin_name(plan)`,
created once with `pg_replication_origin_create`, bound to this connection with
`pg_replication_origin_session_setup`). PostgreSQL records the origin in every transaction this
session commits, and pgoutput sends it as an Origin message after Begin; forward CDC's change
reader (adapters/postgres/changes.py) skips the transactions that carry it, so reverse-synced rows
never go back to MongoDB. The origin functions need superuser, or EXECUTE granted on them.

The checkpoint table (schema `migrator`, created on first use, not in the forward publication):

    migrator.reverse_checkpoint(plan text PRIMARY KEY, resume_token bytea (BSON),
                                cluster_time bigint, cluster_at timestamptz, events bigint,
                                updated_at timestamptz)
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bson
import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

from migrator.adapters.base import TableInfo
from migrator.adapters.json_values import json_text
from migrator.adapters.postgres import origin_states
from migrator.adapters.postgres.checkpoint_access import CHECKPOINT_SCHEMA, CHECKPOINT_TABLE
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.inspect import PostgresInspector, table_identifier
from migrator.adapters.rows import DocumentRows, LevelRows, ReverseCheckpoint, TableLevel
from migrator.errors import (
    AuthenticationFailed,
    MigratorError,
    SourceError,
    TransientError,
)

# A multi-row upsert holds at most this many rows, and never more parameters than the protocol's
# 65535; the statement cache (keyed by row count too) is emptied when it grows past its bound.
ROWS_PER_STATEMENT = 500
_MAX_PARAMETERS = 65_535
_STATEMENT_CACHE = 256
_OBJECT_IN_USE = "55006"  # the origin is bound to another session (an earlier run still connected)
_ORIGIN_PRIVILEGE_HINT = (
    "run reverse sync as a superuser, or GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
    "pg_replication_origin_session_setup(text), pg_replication_origin_oid(text) TO the plan's user"
)


@dataclass(frozen=True)
class _Column:
    name: str
    sql_type: str  # format_type with the type modifier: what a parameter is cast to for comparisons
    base: str  # the base type's canonical name (domains resolved), for json handling
    array_of: str | None  # the element's canonical name for arrays
    generated: bool  # GENERATED ... STORED: never written
    identity_always: bool  # GENERATED ALWAYS AS IDENTITY: inserted with OVERRIDING SYSTEM VALUE
    required: bool = False  # NOT NULL with no default: an INSERT must carry it


@dataclass(frozen=True)
class _Table:
    name: str
    columns: dict[str, _Column]
    unique_keys: tuple[tuple[str, ...], ...]  # primary key first

    def arbiter(self, key: Sequence[str]) -> tuple[str, ...]:
        """The unique key ON CONFLICT names: one whose columns are all in `key`."""
        for unique in self.unique_keys:
            if set(unique) <= set(key):
                return unique
        raise SourceError(
            f"{self.name} has no unique index on NOT NULL columns among ({', '.join(key)}), so rows "
            "cannot be upserted by that key",
            hint="use the primary key as the plan's key, or add a unique index on those columns",
        )


_COLUMN_FLAGS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', a.attidentity = 'a',
       a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


def _table_info(conn: psycopg.Connection[Any], name: str, endpoint: PgEndpoint) -> _Table:
    info: TableInfo | None = PostgresInspector(conn, endpoint.name, endpoint.secrets).table(name)
    if info is None:
        raise SourceError(f"table {name} does not exist on the source (reverse sync writes to it)")
    flags = {
        str(r[0]): (str(r[1]), bool(r[2]), bool(r[3]), bool(r[4]))
        for r in conn.execute(_COLUMN_FLAGS_SQL, [str(table_identifier(name).as_string(conn))]).fetchall()
    }
    columns = {
        c.name: _Column(
            name=c.name,
            sql_type=flags[c.name][0],
            base=c.type_name,
            array_of=c.element_type if c.type_kind == "array" else None,
            generated=flags[c.name][1],
            identity_always=flags[c.name][2],
            required=flags[c.name][3],
        )
        for c in info.columns
    }
    primary = (info.primary_key,) if info.primary_key else ()
    unique = primary + tuple(u for u in info.unique_keys if u != info.primary_key)
    return _Table(name, columns, unique)


_CHECKPOINT_TABLE = sql.Identifier(CHECKPOINT_SCHEMA, CHECKPOINT_TABLE)


def _read_checkpoint(conn: psycopg.Connection[Any], plan_name: str) -> ReverseCheckpoint | None:
    exists = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))", [CHECKPOINT_SCHEMA, CHECKPOINT_TABLE]
    ).fetchone()
    if exists is None or exists[0] is None:
        return None
    row = conn.execute(
        sql.SQL("SELECT resume_token, cluster_time, events FROM {} WHERE plan = %s").format(
            _CHECKPOINT_TABLE
        ),
        [plan_name],
    ).fetchone()
    if row is None:
        return None
    return ReverseCheckpoint(dict(bson.decode(bytes(row[0]))), row[1], int(row[2]))


def stored_checkpoint(endpoint: PgEndpoint, plan_name: str) -> ReverseCheckpoint | None:
    """Reverse sync's checkpoint for `plan_name`, read on a plain connection (no replication
    origin), so that status or rollback can read it while reverse sync runs elsewhere."""
    with endpoint.connect(autocommit=True) as conn:
        try:
            return _read_checkpoint(conn, plan_name)
        except psycopg.Error as exc:
            raise classify(exc, endpoint.name, endpoint.secrets) from None


def _adapt(column: _Column, value: Any) -> Any:
    """A value as psycopg must send it: json and jsonb wrapped, arrays of them element-wise."""
    if value is None:
        return None
    kind = column.array_of if column.array_of is not None else column.base
    if kind not in ("json", "jsonb"):
        return value
    kind_of = Jsonb if kind == "jsonb" else Json

    def wrap(item: Any) -> Any:
        # A number as the target holds it (a Decimal from its reader: json_values.py).
        return kind_of(item, dumps=json_text)

    if column.array_of is None:
        return wrap(value)

    def walk(item: Any) -> Any:
        if isinstance(item, list):
            return [walk(v) for v in item]
        return None if item is None else wrap(item)

    return walk(value)


def _hashable(value: Any) -> Any:
    """A key value as a dict key (an array key is a list)."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def _numbered(lists: Iterable[Sequence[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """The tuples of each document's list, each led by the document's number (its position)."""
    return [(n, *item) for n, items in enumerate(lists) for item in items]


def _ref(alias: str, column: str) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column))


def _row(alias: str, columns: Sequence[str]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(_ref(alias, c) for c in columns))


class ReverseWriter:
    """Applies DocumentRows to the source's tables under migrator's reverse replication origin."""

    def __init__(
        self,
        endpoint: PgEndpoint,
        plan_name: str,
        origin: str,
        *,
        lock_timeout_ms: int | None = 30_000,
    ) -> None:
        self._endpoint = endpoint
        self._plan = plan_name
        self.origin = origin
        self._lock_timeout_ms = lock_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None
        self.replica_role: bool | None = None  # session_replication_role = replica was set
        self._tables: dict[str, _Table] = {}
        self._statements: dict[Any, sql.Composed] = {}

    # -- connection and set-up -------------------------------------------------------------------

    def _error(self, exc: psycopg.Error) -> MigratorError:
        return classify(exc, self._endpoint.name, self._endpoint.secrets)

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._conn = None
        options = "-c TimeZone=UTC"  # timestamp (without time zone) values are UTC wall clocks
        if self._lock_timeout_ms is not None:
            options += f" -c lock_timeout={int(self._lock_timeout_ms)}"
        conn = self._endpoint.connect(autocommit=True, options=options)
        try:
            self._ensure_origin(conn)
            conn.execute("SELECT pg_replication_origin_session_setup(%s)", [self.origin])
            # The application's triggers (ENABLE, i.e. origin) do not fire on what reverse sync
            # writes: the document already holds every effect the application wanted (it wrote
            # it on the target), so a trigger firing again applies that effect twice (a counter
            # bumped twice, a column overwritten so that source and target differ for good).
            # PostgreSQL's own apply worker runs so. ENABLE ALWAYS / REPLICA triggers still fire
            # (preflight says so); foreign keys' triggers do not either, which the order of the
            # writes makes up for (see the module doc). A role that may not set it (superuser,
            # or GRANT SET ON PARAMETER from PostgreSQL 15) writes with triggers firing, as
            # preflight's trigger finding warns.
            try:
                conn.execute("SET session_replication_role = replica")
                self.replica_role = True
            except psycopg.errors.InsufficientPrivilege:
                self.replica_role = False
        except psycopg.Error as exc:
            conn.close()
            raise self._origin_error(exc) from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _origin_error(self, exc: psycopg.Error) -> MigratorError:
        error = self._error(exc)
        if exc.sqlstate == _OBJECT_IN_USE:
            return TransientError(
                f"replication origin {self.origin} is bound to another session: an earlier reverse sync "
                "may still be connected",
                hint="stop the other reverse sync; a crashed one's session ends with its connection",
            )
        if exc.sqlstate == origin_states.CONFIGURATION_LIMIT_EXCEEDED:
            return SourceError(
                origin_states.full_message(self.origin, self._endpoint.name), hint=origin_states.HINT
            )
        if isinstance(error, AuthenticationFailed):
            error.hint = _ORIGIN_PRIVILEGE_HINT
        return error

    def _ensure_origin(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT pg_replication_origin_oid(%s)", [self.origin]).fetchone()
        if row is not None and row[0] is not None:
            return
        with contextlib.suppress(psycopg.errors.UniqueViolation):  # a concurrent set-up made it
            conn.execute("SELECT pg_replication_origin_create(%s)", [self.origin])

    def setup(self) -> None:
        """Create the replication origin and the checkpoint table where missing (idempotent),
        and bind the origin to this writer's session: raises if reverse sync could not write."""
        conn = self._connection()
        try:
            exists = conn.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
                [CHECKPOINT_SCHEMA, CHECKPOINT_TABLE],
            ).fetchone()
            if exists is None or exists[0] is None:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(CHECKPOINT_SCHEMA))
                    )
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} (plan text PRIMARY KEY, resume_token bytea NOT NULL, "
                            "cluster_time bigint, cluster_at timestamptz, events bigint NOT NULL DEFAULT 0, "
                            "updated_at timestamptz NOT NULL DEFAULT now())"
                        ).format(self._checkpoint_table())
                    )
        except psycopg.Error as exc:
            raise self._error(exc) from None

    @staticmethod
    def _checkpoint_table() -> sql.Identifier:
        return _CHECKPOINT_TABLE

    def checkpoint(self) -> ReverseCheckpoint | None:
        """The stored position, or None before the first one (or without the table)."""
        try:
            return _read_checkpoint(self._connection(), self._plan)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    def forget(self, *, drop_empty: bool = False) -> bool:
        """Remove this plan's checkpoint and its replication origin (rollback, finish); True if a
        checkpoint existed. The table stays (it may hold other plans' checkpoints), unless
        `drop_empty` (`migrator finish`) and `_drop_if_unused` finds it unused; the schema stays
        (a DBA may have made it, with its grants)."""
        self.close()
        with self._endpoint.connect(autocommit=True) as conn:
            try:
                existed = False
                exists = conn.execute(
                    "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))",
                    [CHECKPOINT_SCHEMA, CHECKPOINT_TABLE],
                ).fetchone()
                if exists is not None and exists[0] is not None:
                    cur = conn.execute(
                        sql.SQL("DELETE FROM {} WHERE plan = %s").format(self._checkpoint_table()),
                        [self._plan],
                    )
                    existed = cur.rowcount > 0
                row = conn.execute("SELECT pg_replication_origin_oid(%s)", [self.origin]).fetchone()
                if row is not None and row[0] is not None:
                    conn.execute("SELECT pg_replication_origin_drop(%s)", [self.origin])
                if drop_empty and exists is not None and exists[0] is not None:
                    _drop_if_unused(conn)
            except psycopg.Error as exc:
                raise self._origin_error(exc) from None
        return existed

    def close(self) -> None:
        if self._conn is not None:
            try:
                if not self._conn.closed and not self._conn.broken:
                    self._conn.execute("SELECT pg_replication_origin_session_reset()")
            except psycopg.Error:
                pass  # closing ends the session, which releases the origin anyway
            self._conn.close()
            self._conn = None

    # -- applying --------------------------------------------------------------------------------

    def apply(self, documents: Sequence[DocumentRows], checkpoint: ReverseCheckpoint | None) -> int:
        """Apply each document's new state (or deletion) and record `checkpoint`, in one
        transaction. Returns the number of rows inserted, updated or deleted.

        The batch is written set-based (see `_set_statements`): per level of a collection, one
        DELETE for all its documents and multi-row upserts, sent in pipeline mode, so that a
        batch costs a few statements and about one round trip, not several per document. An
        error there cannot be pinned to its document, so a batch that fails is done again one
        document and one statement at a time, which either names the document and table in its
        error or, should the first failure have been passing, applies the batch."""
        conn = self._connection()
        try:
            return self._apply_sets(conn, documents, checkpoint)
        except psycopg.Error as exc:
            if isinstance(self._error(exc), TransientError):
                raise self._error(exc) from None
        return self._apply_each(conn, documents, checkpoint)

    def _apply_sets(
        self,
        conn: psycopg.Connection[Any],
        documents: Sequence[DocumentRows],
        checkpoint: ReverseCheckpoint | None,
    ) -> int:
        cursors: list[psycopg.Cursor[Any]] = []
        try:
            with conn.transaction(), conn.pipeline():
                # The statements find a batch's rows by key (the documents' roots, their parents,
                # the rows they hold): index probes, which cost per change. On tables of some
                # 100k rows the planner chose hash joins over a scan of the whole table in each
                # statement instead (its estimates for the parameter arrays are coarse): a cost
                # per table size, most of a 200-document batch's apply on the demo's data.
                # Nested loops probe the indexes; without an index a scan per key is what the
                # per-document statements did too. In this transaction only.
                conn.execute("SET LOCAL enable_hashjoin = off")
                conn.execute("SET LOCAL enable_mergejoin = off")
                for statement, params in self._set_statements(conn, documents):
                    cur = conn.cursor()
                    cur.execute(statement, params)
                    cursors.append(cur)
                if checkpoint is not None:
                    self._save(conn, checkpoint)
            return sum(max(cur.rowcount, 0) for cur in cursors)  # known once the pipeline synced
        finally:
            for cur in cursors:
                cur.close()

    def _apply_each(
        self,
        conn: psycopg.Connection[Any],
        documents: Sequence[DocumentRows],
        checkpoint: ReverseCheckpoint | None,
    ) -> int:
        """The batch one document at a time, one statement after the other (no pipeline): an
        error names its document and table."""
        written = 0
        current: DocumentRows | None = None
        table = ""
        try:
            with conn.transaction():
                for current in documents:
                    for level, statement, params, many in self._statements_for(conn, current):
                        table = level.table
                        with conn.cursor() as cur:
                            if many:
                                cur.executemany(statement, params)
                            else:
                                cur.execute(statement, params)
                            written += max(cur.rowcount, 0)
                current = None
                if checkpoint is not None:
                    self._save(conn, checkpoint)
            return written
        except psycopg.Error as exc:
            raise self._write_error(exc, current, table) from None

    def _write_error(self, exc: psycopg.Error, document: DocumentRows | None, table: str) -> MigratorError:
        error = self._error(exc)
        if isinstance(error, TransientError) or document is None:
            return error
        state = exc.sqlstate or ""
        diag = exc.diag
        where = f"document _id {document.document_id!r} of collection '{document.collection}'"
        hint = None
        if state == "23502":
            hint = (
                f"column {diag.column_name} of {table} is NOT NULL without a default and the document does not "
                "carry it (excluded, not mapped, or missing): give the column a default, or map it"
            )
        elif state == "23503":
            hint = (
                f"constraint {diag.constraint_name}: a row of another table refers to the row reverse sync "
                "changes or deletes, or the row refers to one the source does not have"
            )
        elif state == "23505":
            hint = f"constraint {diag.constraint_name}: another row already holds this unique value"
        return SourceError(f"reverse sync could not write {where} to {table}: {error.message}", hint=hint)

    def _save(self, conn: psycopg.Connection[Any], checkpoint: ReverseCheckpoint) -> None:
        cluster_at = None
        if checkpoint.cluster_time is not None:
            cluster_at = datetime.datetime.fromtimestamp(checkpoint.cluster_time >> 32, datetime.UTC)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} AS c (plan, resume_token, cluster_time, cluster_at, events, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (plan) DO UPDATE SET "
                "resume_token = EXCLUDED.resume_token, cluster_time = EXCLUDED.cluster_time, "
                "cluster_at = EXCLUDED.cluster_at, events = EXCLUDED.events, updated_at = now()"
            ).format(self._checkpoint_table()),
            [
                self._plan,
                bson.encode(checkpoint.resume_token),
                checkpoint.cluster_time,
                cluster_at,
                checkpoint.events,
            ],
        )

    def _table(self, conn: psycopg.Connection[Any], name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            table = _table_info(conn, name, self._endpoint)
            self._tables[name] = table
        return table

    def _statements_for(
        self, conn: psycopg.Connection[Any], document: DocumentRows
    ) -> list[tuple[TableLevel, sql.Composed, Any, bool]]:
        """(level, statement, parameters, executemany) in order: deletes deepest first, the
        root's delete or upserts parents first."""
        levels = document.levels
        out: list[tuple[TableLevel, sql.Composed, Any, bool]] = []
        for index in range(len(levels) - 1, 0, -1):
            statement, params = self._delete_children(conn, document, index)
            out.append((levels[index], statement, params, False))
        root = levels[0]
        root_table = self._table(conn, root.table)
        if document.state is None:
            keys = list(document.root_key)
            statement = sql.SQL("DELETE FROM {} AS r WHERE {} = ({})").format(
                table_identifier(root.table),
                _row("r", keys),
                sql.SQL(", ").join(sql.Placeholder() * len(keys)),
            )
            out.append((root, statement, [document.root_key[k] for k in keys], False))
            return out
        for level, level_rows in zip(levels, document.state, strict=True):
            table = root_table if level is root else self._table(conn, level.table)
            groups: dict[tuple[str, ...], list[list[Any]]] = {}
            for row in level_rows.rows:
                columns = tuple(c for c in row if not table.columns[c].generated)
                groups.setdefault(columns, []).append([_adapt(table.columns[c], row[c]) for c in columns])
            for columns, params in groups.items():
                out.append((level, self._upsert(table, level, columns, 1), params, True))
        return out

    # -- set-based: a batch's documents, per level ----------------------------------------------

    def _set_statements(
        self, conn: psycopg.Connection[Any], documents: Sequence[DocumentRows]
    ) -> list[tuple[sql.Composed, list[Any]]]:
        """The batch as statements per collection (in first-seen order): per level, deepest
        first, one DELETE of the rows each document no longer holds; one DELETE of the deleted
        documents' root rows; then, parents first, the rows the documents hold as multi-row
        upserts. Each statement does for all documents what the per-document ones
        (`_statements_for`) do for one, and in the same order of levels (foreign keys)."""
        groups: dict[tuple[str, tuple[TableLevel, ...]], list[DocumentRows]] = {}
        for document in documents:
            groups.setdefault((document.collection, document.levels), []).append(document)
        out: list[tuple[sql.Composed, list[Any]]] = []
        for (_, levels), group in groups.items():
            for index in range(len(levels) - 1, 0, -1):
                out.append(self._delete_level(conn, levels, group, index))
            gone = [d.root_key for d in group if d.state is None]
            if gone:
                out.append(self._delete_roots(conn, levels[0], gone))
            for index, level in enumerate(levels):
                held = [d.state[index] for d in group if d.state is not None]
                out.extend(self._level_upserts(conn, level, held))
        return out

    def _delete_roots(
        self, conn: psycopg.Connection[Any], root: TableLevel, keys: list[dict[str, Any]]
    ) -> tuple[sql.Composed, list[Any]]:
        columns = list(keys[0])
        params: list[Any] = []
        values = self._unnest(
            self._table(conn, root.table), columns, [tuple(k[c] for c in columns) for k in keys], params
        )
        statement = sql.SQL("DELETE FROM {} AS r WHERE {} IN ({})").format(
            table_identifier(root.table), _row("r", columns), values
        )
        return statement, params

    def _level_upserts(
        self, conn: psycopg.Connection[Any], level: TableLevel, held: list[LevelRows]
    ) -> list[tuple[sql.Composed, list[Any]]]:
        """The rows of one level that the documents hold, as multi-row upserts per set of columns.
        A row (by its key) held twice is written once, as the later document holds it (as one
        document after the other would leave it; one upsert may not touch a row twice)."""
        if not any(rows.rows for rows in held):
            return []
        table = self._table(conn, level.table)
        arbiter = table.arbiter(level.key)
        latest: dict[Any, tuple[tuple[str, ...], list[Any]]] = {}
        for rows in held:
            for row in rows.rows:
                columns = tuple(c for c in row if not table.columns[c].generated)
                key = _hashable(tuple(row.get(c) for c in arbiter))
                latest.pop(key, None)
                latest[key] = (columns, [_adapt(table.columns[c], row[c]) for c in columns])
        by_columns: dict[tuple[str, ...], list[list[Any]]] = {}
        for columns, values in latest.values():
            by_columns.setdefault(columns, []).append(values)
        out: list[tuple[sql.Composed, list[Any]]] = []
        for columns, values in by_columns.items():
            per = max(1, min(ROWS_PER_STATEMENT, _MAX_PARAMETERS // max(1, len(columns))))
            for start in range(0, len(values), per):
                part = values[start : start + per]
                out.append((self._upsert(table, level, columns, len(part)), [v for row in part for v in row]))
        return out

    def _delete_level(
        self,
        conn: psycopg.Connection[Any],
        levels: tuple[TableLevel, ...],
        group: list[DocumentRows],
        index: int,
    ) -> tuple[sql.Composed, list[Any]]:
        """`_delete_children` for every document of `group` at once. The documents are numbered
        (`n`), and every list the per-document statement compares with (exempt parents at each
        level above, carried parents, exempt parents, the rows held) carries the number of its
        document: a row is deleted when a document governs it and that document does not hold
        it, as the statements one document at a time decide."""
        level = levels[index]
        states = [d.state or [LevelRows() for _ in levels] for d in group]
        table = self._table(conn, level.table)
        parent_table = self._table(conn, levels[level.parent].table)
        params: list[Any] = []
        governed = self._governing_parents(conn, levels, group, states, index, params)
        parents = [f"c{i}" for i in range(len(level.parent_link))]
        conditions: list[sql.Composable] = [
            sql.SQL("{} = {}").format(_ref("l", c), _ref("g", p))
            for c, p in zip(level.link, parents, strict=True)
        ]
        exempt = _numbered(state[index].exempt for state in states)
        if exempt:
            conditions.append(
                self._not_in_numbered("g", "l", level.link, parent_table, level.parent_link, exempt, params)
            )
        held = _numbered([tuple(row[k] for k in level.key) for row in state[index].rows] for state in states)
        if held:
            conditions.append(self._not_in_numbered("g", "l", level.key, table, level.key, held, params))
        statement = sql.SQL(
            "DELETE FROM {table} AS l USING ({governed}) AS g ({names}) WHERE {conditions}"
        ).format(
            table=table_identifier(level.table),
            governed=governed,
            names=sql.SQL(", ").join(sql.Identifier(c) for c in ["n", *parents]),
            conditions=sql.SQL(" AND ").join(conditions),
        )
        return statement, params

    def _governing_parents(
        self,
        conn: psycopg.Connection[Any],
        levels: tuple[TableLevel, ...],
        group: list[DocumentRows],
        states: list[list[LevelRows]],
        index: int,
        params: list[Any],
    ) -> sql.Composable:
        """(document number, parent's link values) of the parents whose rows of level `index`
        the documents govern: as the source holds them now (joined from each document's root
        row, skipping parents under an exempt one), and those the documents carry."""
        level = levels[index]
        chain = [level.parent]
        while levels[chain[-1]].parent != -1:
            chain.append(levels[chain[-1]].parent)
        chain.reverse()  # root first
        root_key = list(group[0].root_key)
        names = ["n", *(f"k{i}" for i in range(len(root_key)))]
        roots = [(n, *(d.root_key[k] for k in root_key)) for n, d in enumerate(group)]
        documents = self._unnest_numbered(self._table(conn, levels[0].table), root_key, roots, params)
        joins: list[sql.Composable] = [
            sql.SQL("JOIN {} AS p0 ON {}").format(
                table_identifier(levels[0].table),
                sql.SQL(" AND ").join(
                    sql.SQL("{} = {}").format(_ref("p0", k), _ref("d", c))
                    for k, c in zip(root_key, names[1:], strict=True)
                ),
            )
        ]
        where: list[sql.Composable] = []
        for depth, hop_index in enumerate(chain[1:], start=1):
            hop = levels[hop_index]
            alias = f"p{depth}"
            joins.append(
                sql.SQL("JOIN {} AS {} ON {}").format(
                    table_identifier(hop.table),
                    sql.Identifier(alias),
                    sql.SQL(" AND ").join(
                        sql.SQL("{} = {}").format(_ref(alias, c), _ref(f"p{depth - 1}", p)) for c, p in hop.on
                    ),
                )
            )
            exempt = _numbered(state[hop_index].exempt for state in states)
            if exempt:
                hop_table = self._table(conn, hop.table)
                where.append(self._not_in_numbered("d", alias, hop.link, hop_table, hop.link, exempt, params))
        source = sql.SQL("SELECT {n}, {cols} FROM {documents} AS d ({names}) {joins}{where}").format(
            n=_ref("d", "n"),
            cols=sql.SQL(", ").join(_ref(f"p{len(chain) - 1}", p) for p in level.parent_link),
            documents=documents,
            names=sql.SQL(", ").join(sql.Identifier(c) for c in names),
            joins=sql.SQL(" ").join(joins),
            where=sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(where)) if where else sql.SQL(""),
        )
        carried = _numbered(state[index].carried for state in states)
        if not carried:
            return source
        parent_table = self._table(conn, levels[level.parent].table)
        return sql.SQL("{} UNION SELECT * FROM {}").format(
            source, self._unnest_numbered(parent_table, level.parent_link, carried, params)
        )

    def _not_in_numbered(
        self,
        numbered: str,
        alias: str,
        columns: Sequence[str],
        table: _Table,
        typed_as: Sequence[str],
        values: list[tuple[Any, ...]],
        params: list[Any],
    ) -> sql.Composable:
        """`(numbered.n, alias.columns) NOT IN (the numbered values)`, the values typed as
        `table`'s `typed_as` columns."""
        return sql.SQL("({}, {}) NOT IN (SELECT * FROM {})").format(
            _ref(numbered, "n"),
            sql.SQL(", ").join(_ref(alias, c) for c in columns),
            self._unnest_numbered(table, typed_as, values, params),
        )

    @staticmethod
    def _unnest_numbered(
        table: _Table, columns: Sequence[str], values: Sequence[tuple[Any, ...]], params: list[Any]
    ) -> sql.Composable:
        """`unnest(%s::int4[], %s::t1[], ...)`: (document number, the columns' values) rows, one
        array parameter per column."""
        params.append([v[0] for v in values])
        for i, _ in enumerate(columns, start=1):
            params.append([v[i] for v in values])
        return sql.SQL("unnest(%s::int4[], {})").format(
            sql.SQL(", ").join(
                sql.SQL("%s::{}[]").format(sql.SQL(table.columns[c].sql_type)) for c in columns
            )
        )

    def _upsert(self, table: _Table, level: TableLevel, columns: tuple[str, ...], rows: int) -> sql.Composed:
        """The upsert of `rows` rows of these columns (a multi-row VALUES list)."""
        cache_key = ("upsert", level, columns, rows)
        cached = self._statements.get(cache_key)
        if cached is not None:
            return cached
        if len(self._statements) >= _STATEMENT_CACHE:
            self._statements.clear()  # row counts vary: keep the cache bounded
        statement = self._build_upsert(table, level, columns, rows)
        self._statements[cache_key] = statement
        return statement

    def _build_upsert(
        self, table: _Table, level: TableLevel, columns: tuple[str, ...], rows: int
    ) -> sql.Composed:
        arbiter = table.arbiter(level.key)
        missing = [k for k in arbiter if k not in columns]
        if missing:
            raise SourceError(f"rows of {table.name} reach the writer without their key column(s) {missing}")
        equivalent = dict(level.equivalent)
        updates = [c for c in columns if c not in arbiter and not table.columns[c].identity_always]
        overriding = (
            sql.SQL(" OVERRIDING SYSTEM VALUE")
            if any(table.columns[c].identity_always for c in columns)
            else sql.SQL("")
        )
        if updates and any(c.required and c.name not in columns for c in table.columns.values()):
            return self._update_or_insert(table, arbiter, columns, updates, equivalent, overriding, rows)
        # Directly in INSERT, each VALUES row is assigned to the columns as a single row would be
        # (parameters take the columns' types; no cast that could cut a value to a type modifier).
        row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
        insert = sql.SQL("INSERT INTO {table} AS cur ({columns}){overriding} VALUES {values}").format(
            table=table_identifier(table.name),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            overriding=overriding,
            values=sql.SQL(", ").join([row] * rows),
        )
        if not updates:
            return sql.SQL("{} ON CONFLICT ({}) DO NOTHING").format(
                insert, sql.SQL(", ").join(sql.Identifier(c) for c in arbiter)
            )
        return self._insert_or_update(table, insert, arbiter, updates, equivalent)

    def _insert_or_update(
        self,
        table: _Table,
        insert: sql.Composed,
        arbiter: tuple[str, ...],
        updates: list[str],
        equivalent: Mapping[str, str],
    ) -> sql.Composed:
        """INSERT ... ON CONFLICT DO UPDATE, writing only a row whose values differ."""
        new = {c: self._new_value(table.columns[c], equivalent.get(c)) for c in updates}
        return sql.SQL(
            "{insert} ON CONFLICT ({arbiter}) DO UPDATE SET {assignments} "
            "WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
        ).format(
            insert=insert,
            arbiter=sql.SQL(", ").join(sql.Identifier(c) for c in arbiter),
            assignments=sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), new[c]) for c in updates
            ),
            # As text: every type has an output function, not every type an equality (json, point).
            old=sql.SQL(", ").join(sql.SQL("{}::text").format(_ref("cur", c)) for c in updates),
            new=sql.SQL(", ").join(sql.SQL("({})::text").format(new[c]) for c in updates),
        )

    def _update_or_insert(
        self,
        table: _Table,
        arbiter: tuple[str, ...],
        columns: tuple[str, ...],
        updates: list[str],
        equivalent: Mapping[str, str],
        overriding: sql.Composable,
        rows: int,
    ) -> sql.Composed:
        """For a table with a NOT NULL column (no default) the rows do not carry (excluded, or not
        mapped): PostgreSQL checks NOT NULL on the row an INSERT proposes before ON CONFLICT
        looks for the existing one, so an upsert of a stored row would fail. Update the stored
        row, and insert only a row that is not there (which then fails, rightly, naming the
        column). One statement, one snapshot; it returns a row per row written (the count)."""
        given = sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(table.columns[c].sql_type))
                for c in columns
            )
        )
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        new = {c: self._new_value(table.columns[c], equivalent.get(c), "v") for c in updates}
        match = sql.SQL(" AND ").join(
            sql.SQL("{} = v.{}").format(_ref("cur", c), sql.Identifier(c)) for c in arbiter
        )
        return sql.SQL(
            "WITH v ({names}) AS (VALUES {given}), "
            "upd AS (UPDATE {table} AS cur SET {assignments} FROM v WHERE {match} "
            "AND ROW({old}) IS DISTINCT FROM ROW({new}) RETURNING 1), "
            "ins AS (INSERT INTO {table} ({names}){overriding} SELECT {names} FROM v "
            "WHERE NOT EXISTS (SELECT 1 FROM {table} AS cur WHERE {match}) RETURNING 1) "
            "SELECT 1 FROM upd UNION ALL SELECT 1 FROM ins"
        ).format(
            names=names,
            given=sql.SQL(", ").join([given] * rows),
            table=table_identifier(table.name),
            assignments=sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), new[c]) for c in updates
            ),
            match=match,
            old=sql.SQL(", ").join(sql.SQL("{}::text").format(_ref("cur", c)) for c in updates),
            new=sql.SQL(", ").join(sql.SQL("({})::text").format(new[c]) for c in updates),
            overriding=overriding,
        )

    @staticmethod
    def _new_value(column: _Column, equivalence: str | None, source: str = "EXCLUDED") -> sql.Composable:
        """The value a column is set to on conflict: the new one, unless the stored one maps to
        the same document value through a lossy conversion."""
        cur = _ref("cur", column.name)
        new = sql.SQL("{}.{}").format(
            sql.Identifier(source) if source != "EXCLUDED" else sql.SQL(source), sql.Identifier(column.name)
        )
        if equivalence == "milliseconds":
            if column.array_of is not None:
                same = sql.SQL(
                    "{cur} IS NOT NULL AND ARRAY(SELECT date_trunc('milliseconds', e) "
                    "FROM unnest({cur}) WITH ORDINALITY AS u(e, n) ORDER BY n) = {new}"
                ).format(cur=cur, new=new)
            else:
                same = sql.SQL("date_trunc('milliseconds', {}) = {}").format(cur, new)
        elif equivalence == "json":
            same = sql.SQL("{}::jsonb = {}::jsonb").format(cur, new)
        elif equivalence == "numeric":
            # Equal, and longer than Decimal128's 34 digits: only the forward conversion trimmed it.
            same = sql.SQL("{cur} = {new} AND length(translate({cur}::text, '-.', '')) > 34").format(
                cur=cur, new=new
            )
        else:
            return new
        return sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(same, cur, new)

    def _delete_children(
        self, conn: psycopg.Connection[Any], document: DocumentRows, index: int
    ) -> tuple[sql.Composed, list[Any]]:
        """DELETE the rows of level `index` that belong to the document (through the source's
        rows, or through a parent the document now holds) and that it no longer holds. Rows under
        a parent whose array (or sub-document) the document lacks, at any level above, stay."""
        levels = document.levels
        state = document.state or [LevelRows() for _ in levels]
        level_rows = state[index]
        level = levels[index]
        table = self._table(conn, level.table)
        parent_table = self._table(conn, levels[level.parent].table)
        link = level.link
        params: list[Any] = []
        # Parents as the source holds them now: the chain of joins from the root row down to
        # this level's parent level.
        chain = [level.parent]
        while levels[chain[-1]].parent != -1:
            chain.append(levels[chain[-1]].parent)
        chain.reverse()  # root first
        joins: list[sql.Composable] = []
        exempt_hops: list[tuple[int, int]] = []  # (depth, level) whose parents' arrays are missing
        for depth, lvl_index in enumerate(chain[1:], start=1):
            hop = levels[lvl_index]
            if state[lvl_index].exempt:
                exempt_hops.append((depth, lvl_index))
            joins.append(
                sql.SQL("JOIN {} AS {} ON {}").format(
                    table_identifier(hop.table),
                    sql.Identifier(f"p{depth}"),
                    sql.SQL(" AND ").join(
                        sql.SQL("{} = {}").format(_ref(f"p{depth}", c), _ref(f"p{depth - 1}", p))
                        for c, p in hop.on
                    ),
                )
            )
        root_key = list(document.root_key)
        params.extend(document.root_key[k] for k in root_key)
        where: list[sql.Composable] = [
            sql.SQL("{} = ({})").format(
                _row("p0", root_key), sql.SQL(", ").join(sql.Placeholder() * len(root_key))
            )
        ]
        for depth, lvl_index in exempt_hops:
            hop = levels[lvl_index]
            where.append(
                sql.SQL("{} NOT IN ({})").format(
                    _row(f"p{depth}", hop.link),
                    self._unnest(self._table(conn, hop.table), hop.link, state[lvl_index].exempt, params),
                )
            )
        source_parents = sql.SQL("SELECT {cols} FROM {root} AS p0 {joins} WHERE {where}").format(
            cols=sql.SQL(", ").join(_ref(f"p{len(chain) - 1}", p) for p in level.parent_link),
            root=table_identifier(levels[0].table),
            joins=sql.SQL(" ").join(joins),
            where=sql.SQL(" AND ").join(where),
        )
        governed: list[sql.Composable] = [sql.SQL("{} IN ({})").format(_row("l", link), source_parents)]
        if level_rows.carried:
            governed.append(
                sql.SQL("{} IN ({})").format(
                    _row("l", link), self._unnest(parent_table, level.parent_link, level_rows.carried, params)
                )
            )
        conditions: list[sql.Composable] = [sql.SQL("({})").format(sql.SQL(" OR ").join(governed))]
        if level_rows.exempt:
            conditions.append(
                sql.SQL("{} NOT IN ({})").format(
                    _row("l", link), self._unnest(parent_table, level.parent_link, level_rows.exempt, params)
                )
            )
        if level_rows.rows:
            keys = [tuple(row[k] for k in level.key) for row in level_rows.rows]
            conditions.append(
                sql.SQL("{} NOT IN ({})").format(
                    _row("l", level.key), self._unnest(table, level.key, keys, params)
                )
            )
        statement = sql.SQL("DELETE FROM {} AS l WHERE {}").format(
            table_identifier(level.table), sql.SQL(" AND ").join(conditions)
        )
        return statement, params

    @staticmethod
    def _unnest(
        table: _Table, columns: Sequence[str], values: Sequence[tuple[Any, ...]], params: list[Any]
    ) -> sql.Composable:
        """`SELECT * FROM unnest(%s::t1[], ...)`: one array parameter per column, so that the
        statement does not grow with the number of rows; cast to the columns' own types."""
        for i, _ in enumerate(columns):
            params.append([v[i] for v in values])
        return sql.SQL("SELECT * FROM unnest({})").format(
            sql.SQL(", ").join(
                sql.SQL("%s::{}[]").format(sql.SQL(table.columns[c].sql_type)) for c in columns
            )
        )


# Another plan's run into or out of this database may use the table, even before its reverse sync
# stored a checkpoint there: such a run holds a slot here (forward CDC's, until it is finished or
# rolled back), named with migrator's prefix (plan/names.py). This plan's own is dropped before.
_OTHER_RUNS = r"""
SELECT 1 FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE 'migrator\_%' LIMIT 1
"""


def _drop_if_unused(conn: psycopg.Connection[Any]) -> bool:
    """Drop the checkpoint table (`migrator finish`, once this plan's row and origin are gone) when
    this role owns it, no plan's checkpoint is left in it and no other run holds a slot in this
    database; under an exclusive lock, so that no reverse writer stores a row meanwhile. True if
    dropped. Another role's table, or one in use, is kept: nothing another run uses is dropped."""
    owned = conn.execute(
        "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass(format('%%I.%%I', "
        "%s::text, %s::text))",
        [CHECKPOINT_SCHEMA, CHECKPOINT_TABLE],
    ).fetchone()
    if owned is None or not owned[0]:
        return False
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_CHECKPOINT_TABLE))
        left = conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(_CHECKPOINT_TABLE)).fetchone()
        if left is not None or conn.execute(_OTHER_RUNS).fetchone() is not None:
            return False
        conn.execute(sql.SQL("DROP TABLE {}").format(_CHECKPOINT_TABLE))
    return True
