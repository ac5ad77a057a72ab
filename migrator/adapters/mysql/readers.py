"""The readers of current rows: the coordinator that plans chunks, a copy worker's reader, verify's
range reader and the linked reader, each a connection in a consistent snapshot of its own
(snapshot.py says why one cannot be shared).

One connection runs one statement at a time, and an unbuffered (server-side) result must be read
to its end before the next statement: a collection's levels cannot stream side by side on it as
PostgreSQL's named cursors do. So a single-level collection streams its key range through one
SSCursor, and a collection with embedded levels is read in windows of root keys (`WINDOW_ROOTS`
at a time): a level's rows for a window are read whole, in the same snapshot as every other
statement of the reader, and memory holds about a window per level, whatever the chunk's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pymysql
import pymysql.cursors

from migrator.adapters.base import ColumnInfo, LevelRead
from migrator.adapters.mysql.connection import MysqlEndpoint
from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.positions import BinlogPositions
from migrator.adapters.mysql.reading import (
    Collation,
    Where,
    collation_query,
    is_character,
    key_before_query,
    key_query,
    key_set_condition,
    key_text,
    level_query,
    missing_query,
    sample_condition,
    values_table,
)
from migrator.adapters.mysql.snapshot import SnapshotPoint, open_snapshot, position_value
from migrator.adapters.mysql.values import CONVERSIONS, ZeroDates, converter, row_converter
from migrator.adapters.shown import read_when_shown
from migrator.errors import SourceError

# Rows fetched per round trip from an unbuffered result.
FETCH_ROWS = 2_000
# How long the server waits for the reader to take more of an unbuffered result (seconds).
NET_WRITE_TIMEOUT_S = 3600
# Root keys per window of a collection with embedded levels (see the module's docstring).
WINDOW_ROOTS = 1_000

Row = tuple[Any, ...]


def column_collations(
    fetch: Callable[[str, list[Any]], Sequence[Row]],
    cache: dict[tuple[str, str], Collation],
    columns: Sequence[tuple[str, str] | None],
) -> list[Collation]:
    """The character set and collation of each (table, column) (`fetch` runs a query), cached."""
    found: list[Collation] = []
    for column in columns:
        if column is None:
            found.append(None)
            continue
        if column not in cache:
            rows = fetch(*collation_query(*column))
            cache[column] = (str(rows[0][0]), str(rows[0][1])) if rows else None
        found.append(cache[column])
    return found


def _level_converter(
    level: LevelRead, key_types: Sequence[str], description: Sequence[Any], zero_dates: ZeroDates
) -> Callable[[Row], Row] | None:
    """The conversion of one level's rows: the root key's values first where the level is not the
    root, then its columns (a BIT column's width is its result column's length; a zero date is
    what the plan's `zero_dates` says)."""
    prefix = [converter(t) for t in key_types] if level.path else []
    widths = [int(d[3] or 0) for d in description[len(prefix) :]]
    columns = [
        converter(c.type_name, c.type_kind, w, zero_dates) for c, w in zip(level.columns, widths, strict=True)
    ]
    return row_converter([*prefix, *columns])


class _Reader:
    """A connection that reads levels of collections (one statement at a time)."""

    def __init__(self, endpoint: MysqlEndpoint) -> None:
        self._endpoint = endpoint
        self._conn = endpoint.connect(conv=CONVERSIONS)
        try:
            with self._conn.cursor() as cur:
                # The server drops a connection whose unbuffered result the client has not read
                # for net_write_timeout (60 s by default): a copy paused mid-chunk by the throttle
                # would lose its snapshot.
                cur.execute(f"SET SESSION net_write_timeout = {NET_WRITE_TIMEOUT_S}", [])
        except pymysql.MySQLError as exc:
            self._conn.close()
            raise classify(exc, endpoint.name, endpoint.secrets) from None
        self._open: pymysql.cursors.SSCursor | None = None  # an unbuffered result not read to its end
        self.point: SnapshotPoint | None = None
        self._collations: dict[tuple[str, str], Collation] = {}

    def _error(self, exc: pymysql.MySQLError) -> Exception:
        return classify(exc, self._endpoint.name, self._endpoint.secrets)

    def _finish_open(self) -> None:
        """Read away (and close) an unbuffered result a consumer left, so the next statement runs."""
        if self._open is not None:
            cursor, self._open = self._open, None
            try:
                cursor.close()
            except pymysql.MySQLError as exc:
                raise self._error(exc) from None

    def _all(self, query: str, params: Sequence[Any]) -> tuple[list[Row], Sequence[Any]]:
        self._finish_open()
        try:
            with self._conn.cursor() as cur:
                cur.execute(query, list(params))
                return list(cur.fetchall()), cur.description or ()
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None

    def collations(self, columns: Sequence[tuple[str, str] | None]) -> list[Collation]:
        """The character set and collation of each (table, column), None where it has none."""
        return column_collations(lambda q, p: self._all(q, p)[0], self._collations, columns)

    def _snapshot(self) -> SnapshotPoint:
        self._finish_open()
        try:
            self.point = open_snapshot(self._conn)
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None
        return self.point

    @property
    def position(self) -> str | None:
        """Where this reader's current snapshot stands in the binlog (text), None outside one."""
        return None if self.point is None else self.point.position

    @property
    def read_position(self) -> str | None:
        """Where this reader reads, for the snapshot phase: a copy is consistent once CDC has
        passed every reader's (docs/architecture.md, "MySQL and MariaDB sources"). The protocol
        addition this section proposes (RowStreams.read_position)."""
        return None if self.point is None else self.point.position

    def stream(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        where: Where | None = None,
    ) -> list[Iterator[Row]]:
        """One row stream per level, each ordered by the root key, for the key range (lo, hi]."""
        self._finish_open()
        if len(levels) == 1:
            return [self._unbuffered(levels[0], root, key, key_types, lo, hi, where)]
        return [_windowed(self, level, root, key, key_types, lo, hi, where) for level in levels]

    def _unbuffered(
        self,
        level: LevelRead,
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        where: Where | None,
    ) -> Iterator[Row]:
        query, params = level_query(level, root, key, key_types, lo, hi, where)
        self._finish_open()
        try:
            cur = self._conn.cursor(pymysql.cursors.SSCursor)
            self._open = cur
            cur.execute(query, params)
            convert = _level_converter(level, key_types, cur.description or (), self._endpoint.zero_dates)
            while True:
                rows = cur.fetchmany(FETCH_ROWS)
                if not rows:
                    break
                yield from (rows if convert is None else map(convert, rows))
            self._open = None
            cur.close()
        except pymysql.MySQLError as exc:
            self._open = None
            raise self._error(exc) from None

    def level_rows(
        self,
        level: LevelRead,
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        lo: Sequence[str] | None,
        hi: Sequence[str] | None,
        where: Where | None = None,
        relation: Where | None = None,
    ) -> list[Row]:
        """One level's rows, read whole (a window, or a bounded set of given values)."""
        query, params = level_query(level, root, key, key_types, lo, hi, where, relation)
        rows, description = self._all(query, params)
        convert = _level_converter(level, key_types, description, self._endpoint.zero_dates)
        return rows if convert is None else [convert(r) for r in rows]

    def key_before(
        self, table: str, key: Sequence[str], key_types: Sequence[str], value: Sequence[str]
    ) -> list[str] | None:
        """The greatest key of `table` below `value`, or None: (that, value] holds `value` alone."""
        rows, _ = self._all(*key_before_query(table, key, key_types, value))
        return None if not rows else [key_text(v) for v in rows[0]]

    def close(self) -> None:
        self._open = None
        # Closing a connection that already broke: nothing is left to release.
        with contextlib.suppress(pymysql.MySQLError):
            self._conn.close()


def _windowed(
    reader: _Reader,
    level: LevelRead,
    root: str,
    key: Sequence[str],
    key_types: Sequence[str],
    lo: Sequence[str] | None,
    hi: Sequence[str] | None,
    where: Where | None,
) -> Iterator[Row]:
    """One level's rows, window by window of root keys (see the module's docstring). Each level
    walks the windows on its own: a level with no rows for many windows (the assembler asks it
    for its next row early) skips ahead without the other levels' rows piling up meanwhile."""
    last = lo
    while True:
        keys, _ = reader._all(*key_query(root, key, key_types, last, hi, where, WINDOW_ROOTS))
        if not keys:
            return
        upper = [key_text(v) for v in keys[-1]]
        yield from reader.level_rows(level, root, key, key_types, last, upper, where)
        if len(keys) < WINDOW_ROOTS:
            return
        last = upper


class Coordinator(_Reader):
    """The snapshot session: plans the chunks in a consistent snapshot of its own. `exported`
    names the export's position (or, for a fresh session, its own), which the copy workers'
    readers are opened under (MysqlSource.snapshot_reader)."""

    def __init__(self, endpoint: MysqlEndpoint, exported: str | None) -> None:
        super().__init__(endpoint)
        try:
            point = self._snapshot()
        except Exception:
            self.close()
            raise
        self.exported = exported if exported is not None else point.position

    @property
    def position(self) -> str:
        assert self.point is not None
        return self.point.position

    def key_boundaries(
        self, table: str, key: Sequence[str], key_types: Sequence[str], every: int
    ) -> list[list[str]]:
        """Keys (as text) that split `table` into ranges of about `every` rows: a keyset walk over
        the key's index. The `every`-th key ends a chunk only when a row follows it (no empty
        last chunk)."""
        boundaries: list[list[str]] = []
        last: list[str] | None = None
        while True:
            query, params = key_query(table, key, key_types, last, None, None, 2, every - 1)
            rows, _ = self._all(query, params)
            if len(rows) < 2:
                return boundaries
            last = [key_text(v) for v in rows[0]]
            boundaries.append(last)


def _is_position(text: str) -> bool:
    number, colon, offset = text.partition(":")
    return bool(colon) and number.isdigit() and offset.isdigit()


class SnapshotReader(_Reader):
    """A copy worker's reader: a consistent snapshot of its own, at or after the export's position
    (`position` says where; docs/architecture.md, "MySQL and MariaDB sources")."""

    def __init__(self, endpoint: MysqlEndpoint, snapshot_name: str) -> None:
        super().__init__(endpoint)
        self.snapshot_name = snapshot_name
        try:
            point = self._snapshot()
        except Exception:
            self.close()
            raise
        if _is_position(snapshot_name) and position_value(point.position) < position_value(snapshot_name):
            # Readers open at or after the export; before it means another server answers (a
            # failover) or the binlog was reset: changes since the export are not where CDC looks.
            self.close()
            raise SourceError(
                f"the source's binlog stands at {point.position}, before the snapshot's start {snapshot_name}: "
                "the server was replaced or its binlog reset since the snapshot began",
                hint="roll the run back (`migrator rollback`) and start again",
            )


class RangeReader(_Reader):
    """Verify's reader: each read in a short consistent snapshot of its own (begin/end)."""

    def begin(self) -> str:
        """Start a read; the binlog position its snapshot stands at."""
        return self._snapshot().position

    def end(self) -> None:
        self._finish_open()
        try:
            self._conn.commit()
        except pymysql.MySQLError as exc:
            raise self._error(exc) from None
        self.point = None

    def first_keys(self, table: str, key: Sequence[str], limit: int) -> list[list[str]]:
        """The first `limit` keys of `table` in key order (as text), in the current read."""
        query, params = key_query(table, key, ["text"] * len(key), None, None, None, limit)
        rows, _ = self._all(query, params)
        return [[key_text(v) for v in row] for row in rows]

    def missing_keys(
        self, table: str, key: Sequence[str], key_types: Sequence[str], keys: Sequence[Sequence[str]]
    ) -> list[int]:
        """Positions in `keys` (as text) of the keys `table` does not hold now (compared as the
        key's type, `reading.key_match`)."""
        missing: list[int] = []
        for start in range(0, len(keys), WINDOW_ROOTS):
            collations = self.collations(
                [(table, k) if is_character(t) else None for k, t in zip(key, key_types, strict=True)]
            )
            batch = keys[start : start + WINDOW_ROOTS]
            rows, _ = self._all(*missing_query(table, key, key_types, batch, collations))
            missing.extend(start + int(r[0]) - 1 for r in rows)
        return missing

    def stream_keys(
        self,
        levels: Sequence[LevelRead],
        root: str,
        key: Sequence[str],
        key_types: Sequence[str],
        keys: Sequence[Sequence[str]],
    ) -> list[Iterator[Row]]:
        """As `stream`, for the root keys `keys` (as text) alone."""
        return self.stream(
            levels, root, key, key_types, None, None, key_set_condition("r", key, key_types, keys)
        )

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
    ) -> list[Iterator[Row]]:
        """As `stream`, for a deterministic `fraction` of the keys in (lo, hi]."""
        where: Where = (sample_condition("r", key, fraction, seed), [])
        return self.stream(levels, root, key, key_types, lo, hi, where)


class LinkedReader(RangeReader):
    """A RangeReader that also reads levels under a derived parent of given link values.

    A read for CDC shows every transaction of its batch (`begin(visible)`: where each begins in
    the binlog): the binlog is written, and the dump thread sends it, before the engine commits,
    and content read in between would be older than the change that asked for it
    (docs/architecture.md, "Why reading 'now' converges"). The snapshot's binlog position is
    exact (snapshot.py: MariaDB's binlog_snapshot_position, MySQL 8's under a brief global read
    lock), and a transaction is shown once that position stands past where it begins."""

    def begin(self, visible: Sequence[Any] = ()) -> str:
        """Start a read whose snapshot shows the transactions `visible`, waiting for them as
        adapters/shown.py does; the binlog position the read stands at."""

        def attempt() -> tuple[str, str]:
            position = self._snapshot().position
            return position, not_shown(position, visible)

        return read_when_shown(attempt, self.end, self._endpoint.name)

    def unshown(self, visible: Sequence[Any]) -> list[Any]:
        """The newest of `visible` (binlog positions) stands for them all: a snapshot past where
        it begins is past every earlier one. No round trip."""
        begins = [int(v) for v in visible if v is not None]
        return [max(begins)] if begins else []

    def stream_linked(
        self,
        levels: Sequence[LevelRead],
        columns: Sequence[ColumnInfo],
        values: Sequence[Sequence[str]],
        ordinal: str,
    ) -> list[Iterator[Row]]:
        """One row stream per level (the first is the derived parent itself, keyed by `ordinal`),
        each ordered by the position of the values, in the current read. The values are a
        bounded set (a batch's links): each level is read whole."""
        if not values:
            return [iter(()) for _ in levels]
        met = {p: (level.path[0].table, c) for level in levels if level.path for c, p in level.path[0].on}
        collations = self.collations(
            [met.get(c.name) if is_character(c.type_name, c.type_kind) else None for c in columns]
        )
        relation = values_table(
            [c.name for c in columns], [c.type_name for c in columns], values, ordinal, collations
        )
        return [
            iter(self.level_rows(level, "", (ordinal,), ("bigint",), None, None, relation=relation))
            for level in levels
        ]


def not_shown(position: str, visible: Sequence[Any]) -> str:
    """What a snapshot standing at binlog `position` does not show of the transactions that begin
    at `visible` (binlog positions as ints, None for none): '' when it shows them all. A snapshot's
    position is at a transaction's end, so standing past where one begins means past its end."""
    begins = [int(v) for v in visible if v is not None]
    if not begins or position_value(position) > max(begins):
        return ""
    return f"the transaction at binlog position {BinlogPositions.text(max(begins))} (the snapshot stands at {position})"


@contextlib.contextmanager
def document_rows(
    endpoint: MysqlEndpoint,
    table: str,
    key: Sequence[str],
    key_types: Sequence[str],
    values: Sequence[Any],
    reads: Sequence[LevelRead],
    visible: Sequence[Any] = (),
) -> Iterator[list[Iterator[Row]]]:
    """One document's rows (root key `values`), level by level, read as a snapshot chunk reads
    them: a fresh snapshot that shows the transactions `visible` (LinkedReader), the range from
    the key before it."""
    texts = [key_text(v) for v in values]
    opened: list[SnapshotReader] = []

    def attempt() -> tuple[SnapshotReader, str]:
        opened.append(SnapshotReader(endpoint, ""))
        point = opened[-1].point
        assert point is not None
        return opened[-1], not_shown(point.position, visible)

    reader = read_when_shown(attempt, lambda: opened.pop().close(), endpoint.name)
    try:
        lo = reader.key_before(table, key, key_types, texts)
        yield reader.stream(list(reads), table, key, key_types, lo, texts)
    finally:
        reader.close()
