"""Consistent reads for the snapshot: slot creation with an exported snapshot, a coordinator
transaction that keeps that snapshot importable, and readers that stream key ranges.

Invariant 1 (no gap, no duplicate): the copy reads exactly the snapshot the replication
slot exported, so CDC starting at the slot's consistent point sees every later change
and none that the copy already holds.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.base import LevelRead
from migrator.adapters.json_values import JsonText, JsonTexts
from migrator.adapters.postgres import copy_out
from migrator.adapters.postgres.connection import READ_TIMEOUT_S, PgEndpoint
from migrator.adapters.postgres.errors import classify
from migrator.adapters.postgres.histogram import histogram_boundaries
from migrator.adapters.postgres.inspect import PostgresInspector, split_table, table_identifier
from migrator.adapters.postgres.publication import (
    PARTITIONED_SERVER_VERSION,
    Publishing,
    identity_problems,
    partitioned_unsupported,
    publishing,
)
from migrator.adapters.postgres.reading import (
    cast_type,
    configure_connection,
    key_match,
    key_range_condition,
    key_set_condition,
    level_query,
    sample_condition,
)
from migrator.adapters.postgres.visibility import SNAPSHOT
from migrator.errors import ReadStalled, SourceError

# Rows a named cursor fetches per round trip: large enough to amortise the round trip,
# small enough to keep a chunk's memory bounded whatever the chunk size.
FETCH_ROWS = 2_000
_SESSION = "SET TimeZone = 'UTC'; SET intervalstyle = 'iso_8601'"
_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_PUBLICATION_SQL = (
    "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, {viaroot} "
    "FROM pg_publication WHERE pubname = %s"
)
# SQLSTATE 22023 (invalid_parameter_value) is what SET TRANSACTION SNAPSHOT raises for a
# snapshot whose exporting transaction has ended.
SNAPSHOT_GONE = "22023"
# The root table's alias in every level query (reading.level_query).
_ROOT = "r"


@dataclass(frozen=True)
class SlotStart:
    slot: str
    position: str  # the slot's consistent point: CDC starts here
    snapshot_name: str


def _viaroot(version: int) -> str:
    return "pubviaroot" if version >= PARTITIONED_SERVER_VERSION else "false"


def _published_table(publishing: Publishing) -> sql.Composable:
    """A table of FOR TABLE / SET TABLE, with its column list where it has one."""
    if publishing.columns is None:
        return table_identifier(publishing.table)
    return sql.SQL("{} ({})").format(
        table_identifier(publishing.table), sql.SQL(", ").join(sql.Identifier(c) for c in publishing.columns)
    )


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SourceError(f"'{name}' is not a valid replication slot or publication name")
    return name


class SlotExporter:
    """A replication connection that created the slot; it must stay idle until the
    coordinator has imported the exported snapshot, then it is closed."""

    def __init__(self, endpoint: PgEndpoint, slot: str) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect(replication="database")
        _check_name(slot)
        try:
            version = self._conn.info.server_version
            # PostgreSQL 15 took the option-list syntax; older servers take the keyword.
            option = "(SNAPSHOT 'export')" if version >= 150000 else "EXPORT_SNAPSHOT"
            row = self._conn.execute(f"CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput {option}").fetchone()
        except psycopg.Error as exc:
            self._conn.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        assert row is not None
        self.start = SlotStart(slot=str(row[0]), position=str(row[1]), snapshot_name=str(row[2]))

    def close(self) -> None:
        self._conn.close()


class Coordinator:
    """Holds the REPEATABLE READ transaction whose snapshot every copy worker imports.

    Importing the slot's snapshot here and re-exporting it frees the replication
    connection and lets a worker that lost its connection re-import the same snapshot.
    """

    def __init__(self, endpoint: PgEndpoint, import_snapshot: str | None) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect()
        try:
            self._conn.execute(_SESSION)
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if import_snapshot is not None:
                self._conn.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(import_snapshot))
                )
            row = self._conn.execute(
                f"SELECT pg_export_snapshot(), pg_current_wal_lsn()::text, {SNAPSHOT}"
            ).fetchone()
        except psycopg.Error as exc:
            self._conn.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        assert row is not None
        self.exported = str(row[0])
        # Where a fresh snapshot stands in the WAL (meaningful when nothing was imported).
        self.position = str(row[1])
        self.snapshot = str(row[2])  # pg_current_snapshot(): which transactions it shows (visibility.py)

    @staticmethod
    def snapshot_gone(exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error) and exc.sqlstate == SNAPSHOT_GONE

    def key_boundaries(
        self, table: str, key: Sequence[str], key_types: Sequence[str], every: int
    ) -> list[list[str]]:
        """Keys (as text) that split `table` into ranges of about `every` rows.

        A large table with a one-column key and fresh statistics is cut at its histogram's
        bounds (histogram.py: one catalog query; sizes as even as the statistics); any other by a
        keyset walk over the key's index, read in the snapshot: exact sizes whatever the key's
        type or distribution, at the cost of one index-only pass. Either way the ranges hold
        every row of the snapshot (a boundary only cuts the key space).
        """
        if len(key) == 1:
            try:
                estimated = histogram_boundaries(self._conn, table, key[0], key_types[0], every)
            except psycopg.Error as exc:
                raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
            if estimated is not None:
                return estimated
        return self._walk(table, key, key_types, every)

    def _walk(self, table: str, key: Sequence[str], key_types: Sequence[str], every: int) -> list[list[str]]:
        # Qualified, so that ORDER BY sorts by the key column and not by the same-named
        # ::text output column (text order: '10' < '9', which made chunks uneven).
        cols = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(k)) for k in key)
        texts = sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(k)) for k in key)
        boundaries: list[list[str]] = []
        last: list[str] | None = None
        with self._conn.cursor() as cur:
            while True:
                condition, params = key_range_condition("t", key, key_types, last, None)
                query = sql.SQL(
                    "SELECT {texts} FROM {t} t WHERE {cond} ORDER BY {cols} OFFSET {n} LIMIT 2"
                ).format(
                    texts=texts,
                    t=table_identifier(table),
                    cond=condition,
                    cols=cols,
                    n=sql.Literal(every - 1),
                )
                try:
                    rows = cur.execute(query, params).fetchall()
                except psycopg.Error as exc:
                    raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
                # The `every`-th key ends a chunk only when a row follows it: a boundary on the
                # last row would leave an empty chunk after it (a table of exactly `every` rows was
                # cut into all of its rows and none).
                if len(rows) < 2:
                    return boundaries
                last = [str(v) for v in rows[0]]
                boundaries.append(last)

    def key_before(
        self, table: str, key: Sequence[str], key_types: Sequence[str], value: Sequence[str]
    ) -> list[str] | None:
        """The greatest key of `table` below `value` (as text), or None: the range (that, value]
        holds the row keyed `value` alone, for reading one document."""
        cols = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(k)) for k in key)
        desc = sql.SQL(", ").join(sql.SQL("t.{} DESC").format(sql.Identifier(k)) for k in key)
        texts = sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(k)) for k in key)
        bound = sql.SQL(", ").join(sql.SQL("%s::{}").format(cast_type(t)) for t in key_types)
        query = sql.SQL(
            "SELECT {texts} FROM {t} t WHERE ({cols}) < ({bound}) ORDER BY {desc} LIMIT 1"
        ).format(texts=texts, t=table_identifier(table), cols=cols, bound=bound, desc=desc)
        try:
            row = self._conn.execute(query, list(value)).fetchone()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return None if row is None else [str(v) for v in row]

    def close(self) -> None:
        self._conn.close()


class _LevelReader:
    """Streams the rows of a collection's levels for a key range, one server-side cursor per
    level, all in the connection's current transaction."""

    read_position: str | None = None  # readers share the exported snapshot

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect()
        configure_connection(self._conn)
        self._cursors = 0
        try:
            self._conn.execute(_SESSION)
        except psycopg.Error as exc:
            self._conn.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None

    def stream(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        where: tuple[sql.Composable, list[Any]] | None = None,
    ) -> list[Iterator[tuple[Any, ...]]]:
        """One row stream per level, each ordered by the root key, for the key range (lo, hi]."""
        streams = []
        for level in levels:
            query, params = level_query(level, root, key, key_types, lo, hi, where)
            rows = self._rows(query, params)
            texts = [i for i, c in enumerate(level.columns) if c.name in level.json_text and not level.path]
            streams.append(_json_texts(rows, texts) if texts else rows)
        return streams

    def _rows(self, query: sql.Composed, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        self._cursors += 1
        name = f"migrator_c{self._cursors}"
        try:
            with self._conn.cursor(name=name, binary=True) as cur:
                cur.itersize = FETCH_ROWS
                cur.execute(query, params)
                while True:
                    rows = cur.fetchmany(FETCH_ROWS)
                    if not rows:
                        return
                    yield from rows
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def close(self) -> None:
        self._conn.close()


class SnapshotReader(_LevelReader):
    """A copy worker's connection, inside the imported snapshot."""

    def __init__(
        self, endpoint: PgEndpoint, snapshot_name: str, *, read_timeout_s: float = READ_TIMEOUT_S
    ) -> None:
        super().__init__(endpoint)
        self._read_timeout_s = read_timeout_s
        try:
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_name)))
        except psycopg.Error as exc:
            self._conn.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None

    def raw_chunk(
        self,
        form: str,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
    ) -> Iterator[bytes]:
        """The key range (lo, hi] of `columns` alone, undecoded (copy_out.py)."""
        if form != copy_out.BINARY:
            raise SourceError(f"a PostgreSQL source streams no format named {form!r}")
        query, params = copy_out.copy_statement(table, columns, key, key_types, lo, hi)
        try:
            yield from copy_out.blocks(self._conn, query, params, self._read_timeout_s)
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        except copy_out.Stalled as exc:
            raise ReadStalled(
                self._endpoint.name,
                f"COPY of {table} keys ({_bound(lo)}, {_bound(hi)}]",
                exc.seconds,
                hint="the chunk is copied again on a new connection; if it recurs, look for what holds "
                "the source's backend (pg_stat_activity: its wait_event)",
            ) from None


def _json_texts(rows: Iterator[tuple[Any, ...]], positions: list[int]) -> Iterator[tuple[Any, ...]]:
    """Rows whose values at `positions` (json/jsonb read as text, arrays of them as arrays of
    texts: LevelRead.json_text) are JsonText, arrays JsonTexts of them (SQL NULL stays None)."""
    for row in rows:
        values = list(row)
        for i in positions:
            values[i] = _json_text(values[i])
        yield tuple(values)


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):  # an array (of arrays, for more dimensions) of json texts
        return JsonTexts(_json_text(v) for v in value)
    return JsonText(value)


def _bound(key: Sequence[str] | None) -> str:
    return "…" if key is None else ", ".join(key)


class RangeReader(_LevelReader):
    """A verifier's connection: each read in a short REPEATABLE READ transaction of its own,
    which knows the WAL position its snapshot stands at."""

    def begin(self) -> str:
        """Start a read; the position returned is where the read's snapshot stands in the WAL:
        every transaction committed before it is visible, none committed after."""
        try:
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = self._conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        assert row is not None
        return str(row[0])

    def end(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def first_keys(self, table: str, key: Sequence[str], limit: int) -> list[list[str]]:
        """The first `limit` keys of `table` in key order (as text), in the current read: the
        range (None, last of them] then holds exactly those rows (a sample, for --dry-run)."""
        cols = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(k)) for k in key)
        texts = sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(k)) for k in key)
        query = sql.SQL("SELECT {texts} FROM {t} t ORDER BY {cols} LIMIT {n}").format(
            texts=texts, t=table_identifier(table), cols=cols, n=sql.Literal(limit)
        )
        try:
            rows = self._conn.execute(query).fetchall()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return [[str(v) for v in row] for row in rows]

    def missing_keys(
        self, table: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
    ) -> list[int]:
        """Positions in `keys` (key values as text) of the keys `table` does not hold now.
        Compared in SQL, as the key's type (`reading.key_match`), so that text forms never need
        to agree."""
        columns = [sql.Identifier(f"c{i}") for i in range(len(key))]
        arrays = sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in key)
        match = sql.SQL(" AND ").join(
            key_match(sql.SQL("t.{}").format(sql.Identifier(k)), sql.SQL("u.{}").format(c), t)
            for k, c, t in zip(key, columns, key_types, strict=True)
        )
        query = sql.SQL(
            "SELECT u.n FROM unnest({arrays}) WITH ORDINALITY AS u({cols}, n) "
            "WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {match}) ORDER BY u.n"
        ).format(arrays=arrays, cols=sql.SQL(", ").join(columns), t=table_identifier(table), match=match)
        params = [[k[i] for k in keys] for i in range(len(key))]
        try:
            rows = self._conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None
        return [int(row[0]) - 1 for row in rows]

    def stream_keys(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        keys: Sequence[Sequence[str]],
    ) -> list[Iterator[tuple[Any, ...]]]:
        """As `stream`, for the root keys `keys` (as text) alone."""
        where = key_set_condition(_ROOT, key, key_types, keys)
        return self.stream(levels, root, key, key_types, None, None, where)

    def stream_sample(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        fraction: float,
        seed: int,
    ) -> list[Iterator[tuple[Any, ...]]]:
        """As `stream`, for a deterministic `fraction` of the keys in (lo, hi]."""
        where: tuple[sql.Composable, list[Any]] = (sample_condition(_ROOT, key, fraction, seed), [])
        return self.stream(levels, root, key, key_types, lo, hi, where)


class PublicationManager:
    """Creates and drops the run's publication and slot; plain SQL on a normal connection."""

    def __init__(self, endpoint: PgEndpoint) -> None:
        self._endpoint = endpoint

    def _execute(self, query: sql.Composed | str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._endpoint.connect() as conn:
                cur = conn.execute(query, list(params))
                return list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def ensure_publication(
        self, name: str, tables: Mapping[str, Collection[str] | None] | Sequence[str]
    ) -> bool:
        """Publish `tables` (each with the columns the plan reads, None or a plain list of names:
        every column) under `name`: create the publication, or make an existing one match (its
        tables, column lists and options). True when this call created it.

        The last guard before CREATE/ALTER PUBLICATION: it refuses, publishing nothing, a table
        or partition without a usable replica identity, whose application UPDATE and DELETE would
        fail once published. The tables are locked (SHARE UPDATE EXCLUSIVE, which lets the
        application read and write) from the check to the commit, so that no ALTER TABLE ...
        REPLICA IDENTITY, ATTACH or new partition slips in between."""
        _check_name(name)
        wanted: Mapping[str, Collection[str] | None] = (
            tables if isinstance(tables, Mapping) else dict.fromkeys(tables)
        )
        try:
            with self._endpoint.connect() as conn, conn.transaction():
                return self._ensure(conn, name, wanted)
        except psycopg.Error as exc:
            raise classify(exc, self._endpoint.name, self._endpoint.secrets) from None

    def _ensure(
        self, conn: psycopg.Connection[Any], name: str, wanted: Mapping[str, Collection[str] | None]
    ) -> bool:
        version = conn.info.server_version
        conn.execute(
            sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(
                sql.SQL(", ").join(table_identifier(t) for t in wanted)
            )
        )
        inspector = PostgresInspector(conn, self._endpoint.name, self._endpoint.secrets)
        plan: dict[int, Publishing] = {}
        for table, read in wanted.items():
            info = inspector.table(table, count_rows=False)
            if info is None:
                raise SourceError(f"table {table} does not exist on the source (or is not a table)")
            refused = partitioned_unsupported(info, version)
            if refused is not None:
                raise SourceError(
                    f"{refused}: publication {name} was not created", hint="upgrade to PostgreSQL 13 or newer"
                )
            problems = identity_problems(info)
            if problems:
                more = (
                    f" ({len(problems) - 1} more relations of {table} have none)" if len(problems) > 1 else ""
                )
                raise SourceError(
                    f"{problems[0].message}; migrator published nothing (publication {name}){more}",
                    hint=problems[0].fix,
                )
            oid = conn.execute(
                "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))::oid", list(split_table(table))
            ).fetchone()
            assert oid is not None
            plan[int(oid[0])] = publishing(info, read, version)
        exists = conn.execute(_PUBLICATION_SQL.format(viaroot=_viaroot(version)), [name]).fetchone()
        targets = sql.SQL(", ").join(_published_table(p) for p in plan.values())
        if exists is None:
            options = sql.SQL(
                " WITH (publish_via_partition_root = false)" if version >= PARTITIONED_SERVER_VERSION else ""
            )
            conn.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {}{}").format(sql.Identifier(name), targets, options)
            )
            return True
        all_tables, *actions, viaroot = exists
        if all_tables:
            raise SourceError(
                f"publication {name} exists FOR ALL TABLES: migrator did not make it and will not publish "
                "every table of the database",
                hint=f"if nothing else uses it, DROP PUBLICATION {name}; then run again",
            )
        if not all(actions) or viaroot:
            # What migrator needs: every kind of change, and each partition's own (docs/architecture.md).
            settings = "publish = 'insert, update, delete, truncate'"
            if version >= PARTITIONED_SERVER_VERSION:
                settings += ", publish_via_partition_root = false"
            conn.execute(sql.SQL("ALTER PUBLICATION {} SET (" + settings + ")").format(sql.Identifier(name)))
        if self._published(conn, name, version) != {
            oid: (frozenset(p.columns) if p.columns is not None else None, False) for oid, p in plan.items()
        }:
            conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), targets))
        return False

    @staticmethod
    def _published(
        conn: psycopg.Connection[Any], name: str, version: int
    ) -> dict[int, tuple[frozenset[str] | None, bool]] | None:
        """What the publication holds: per table oid, its column list and whether it has a row
        filter; None where it also publishes whole schemas (PostgreSQL 15+)."""
        if version < 150000:
            rows = conn.execute(
                "SELECT pr.prrelid, NULL::name[], false FROM pg_publication_rel pr "
                "JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = %s",
                [name],
            ).fetchall()
            return {int(r[0]): (None, False) for r in rows}
        schemas = conn.execute(
            "SELECT count(*) FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid "
            "WHERE p.pubname = %s",
            [name],
        ).fetchone()
        if schemas is not None and schemas[0]:
            return None
        rows = conn.execute(
            "SELECT pr.prrelid, (SELECT array_agg(a.attname) FROM pg_attribute a "
            "WHERE a.attrelid = pr.prrelid AND a.attnum = ANY(pr.prattrs)), pr.prqual IS NOT NULL "
            "FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = %s",
            [name],
        ).fetchall()
        return {int(r[0]): (frozenset(r[1]) if r[1] is not None else None, bool(r[2])) for r in rows}

    def slot_exists(self, slot: str) -> bool:
        return bool(self._execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]))

    def drop_slot(self, slot: str) -> bool:
        rows = self._execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            [slot],
        )
        return bool(rows)

    def drop_publication(self, name: str) -> None:
        _check_name(name)
        self._execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
