"""Is each mapped table still what the plan maps? The schema checks of a run that follows a
binlog (adapters/base.py ChangeSchema; docs/architecture.md, "Change capture from the binlog").

The binlog logs DDL as the statement's text, in commit order with the changes: a statement that
changes a mapped table stops the run there, naming the table and the statement (statements.py
reads which tables it names), before any change logged after it is decoded with the wrong
columns. TRUNCATE is no schema change: it reaches the consumer as Truncated (its on_truncate
setting decides). The catalog is compared too (check_schema), for DDL made while no stream read
the binlog: a mapped column gone or of another type stops the run.

The rows of each mapped table are converted by the types information_schema gives
(binlog_values.py), read when a reader is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from migrator.adapters.base import (
    CaptureStream,
    Change,
    MappedColumns,
    SchemaHost,
    SourceInfo,
    TableInfo,
)
from migrator.adapters.mysql.binlog import BinlogStream
from migrator.adapters.mysql.binlog_events import BinlogReader
from migrator.adapters.mysql.binlog_link import BinlogEndpoint
from migrator.adapters.mysql.binlog_values import ColumnFacts, RowConverter
from migrator.adapters.mysql.capture import MARKERS_TABLE, markers_table
from migrator.adapters.mysql.reverse_checkpoint import REVERSE_TABLE
from migrator.adapters.mysql.statements import touched
from migrator.adapters.mysql.values import ZeroDates
from migrator.errors import TerminalError

_JSON_CHECK = re.compile(r"^\s*json_valid\(`((?:[^`]|``)+)`\)\s*$", re.IGNORECASE)
_NO_PUBLICATION_TO_LOSE = (1 << 63) - 1  # a binlog logs every table: nothing can leave a publication


def column_facts(endpoint: BinlogEndpoint, tables: Sequence[str]) -> dict[str, list[ColumnFacts]]:
    """Each table's (schema.table) columns in order, as information_schema describes them."""
    if not tables:
        return {}
    conn = endpoint.connect()
    try:
        names = tuple(tables)
        rows = endpoint.query(
            conn,
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_OCTET_LENGTH, "
            "NUMERIC_PRECISION, DATETIME_PRECISION FROM information_schema.COLUMNS "
            "WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) IN %s ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
            [names],
        )
        checks = endpoint.query(
            conn,
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME) IN %s",
            [names],
        )
    finally:
        conn.close()
    json_columns = {
        (f"{schema}.{table}", found.group(1).replace("``", "`"))
        for schema, table, clause in checks
        if (found := _JSON_CHECK.match(str(clause)))
    }
    facts: dict[str, list[ColumnFacts]] = {}
    for schema, table, name, data_type, column_type, octets, precision, fsp in rows:
        key = f"{schema}.{table}"
        facts.setdefault(key, []).append(
            ColumnFacts(
                name=str(name),
                data_type=str(data_type),
                column_type=_text(column_type),
                octet_length=None if octets is None else int(octets),
                precision=None if precision is None else int(precision),
                fsp=None if fsp is None else int(fsp),
                is_json=(key, str(name)) in json_columns,
            )
        )
    return facts


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BinlogSchemaWatch:
    """The schema checks of one CDC phase on a binlog source (see the module's docstring)."""

    def __init__(
        self,
        endpoint: BinlogEndpoint,
        publication: str,
        source_info: SourceInfo,
        mapped: MappedColumns,
        host: SchemaHost,
        recorded: Callable[[], Any],
        *,
        zero_dates: ZeroDates = "refuse",
    ) -> None:
        self._endpoint = endpoint
        self._zero_dates: ZeroDates = zero_dates
        self.publication = publication
        self._host = host
        self._recorded = recorded
        self._baseline: dict[str, dict[str, str]] | None = None
        self.remap(source_info, mapped)

    @property
    def vouched(self) -> int:
        return _NO_PUBLICATION_TO_LOSE

    @property
    def baseline(self) -> Mapping[str, Any] | None:
        if self._baseline is None:
            return None
        return {table: {"columns": columns} for table, columns in self._baseline.items()}

    @property
    def tables(self) -> tuple[str, ...]:
        """The mapped tables, schema.table."""
        return tuple(self._source_info.tables)

    def remap(self, source_info: SourceInfo, mapped: MappedColumns) -> None:
        self._source_info = source_info
        self._mapped = mapped

    def reader(self, stream: CaptureStream, *, applied: Callable[[], int], skip_origin: str) -> BinlogReader:
        assert isinstance(stream, BinlogStream)  # this source's own (change_stream)
        markers = markers_table(self._endpoint)
        reverse = f"{self._endpoint.database}.{REVERSE_TABLE}"  # reverse sync's mark
        stream.restrict([*self.tables, markers, reverse])
        facts = column_facts(self._endpoint, self.tables)
        converters = {
            table: RowConverter(columns, self._zero_dates, table, self._mapped.read.get(table, set()))
            for table, columns in facts.items()
        }
        return BinlogReader(
            stream, converters, markers, self, applied=applied, reverse=reverse, skip_origin=skip_origin
        )

    # -- the binlog's DDL -----------------------------------------------------------------------------

    def statement(self, schema: str, query: str) -> tuple[str, ...]:
        """The mapped tables a TRUNCATE empties; a TerminalError for other DDL on a mapped table."""
        kind, tables = touched(query, schema, self.tables)
        if not tables:
            return ()
        if kind == "truncate":
            return tables
        shown = query if len(query) <= 300 else query[:300] + " ..."
        raise TerminalError(
            f"schema change on mapped table {', '.join(tables)} in the source's binlog: {shown}",
            hint="the changes after it cannot be read with the mapping's columns: check the plan against the "
            "new table, then `migrator rollback` and `migrator run` (a new snapshot)",
        )

    # -- the catalog -----------------------------------------------------------------------------------

    def _catalog(self) -> dict[str, dict[str, str]]:
        facts = column_facts(self._endpoint, self.tables)
        return {table: {c.name: c.column_type for c in columns} for table, columns in facts.items()}

    def check_schema(self) -> None:
        current = self._catalog()
        if self._baseline is None:
            self._baseline = current
            return
        for table, columns in self._baseline.items():
            now = current.get(table)
            if now is None:
                raise TerminalError(f"mapped table {table} no longer exists on the source")
            for name in self._mapped.columns(table) or set(columns):
                if name in columns and name not in now:
                    raise TerminalError(f"column {name} of mapped table {table} was dropped on the source")
                if name in columns and now.get(name) != columns[name]:
                    raise TerminalError(
                        f"column {name} of mapped table {table} changed type on the source: "
                        f"{columns[name]} -> {now.get(name)}"
                    )

    def check_publication(self) -> None:
        """Nothing to check: a binlog logs every table (the markers table is checked by its writes)."""

    # -- what a pgoutput stream needs and a binlog does not ---------------------------------------------

    def relation(self, relation: Any) -> None:
        """The binlog announces no relations (TableDescribed is never sent)."""

    def columns_of(self, relation: Any) -> tuple[str, frozenset[str]] | None:
        return None

    def check_located(self, table: str, new: dict[str, Any]) -> None:
        """A FULL row image carries every column: an update's new row always has its key."""

    def to_compute(self, change: Change) -> frozenset[str]:
        return frozenset()

    def complete(self, pending: Sequence[tuple[Change, frozenset[str]]]) -> None:
        """Generated columns are in the row image: nothing to compute."""

    def table(self, table: str) -> TableInfo | None:
        return self._source_info.tables.get(table)

    def columns_changed(self, table: str, current: dict[str, int]) -> None:
        """Not sent by a binlog stream (DDL stops the run at its statement)."""

    def restart(self) -> None:
        """A new stream reads the converters again when its reader is made."""

    def close(self) -> None:
        """No connection is held between checks."""


__all__ = ["MARKERS_TABLE", "BinlogSchemaWatch", "column_facts"]
