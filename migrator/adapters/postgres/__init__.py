"""PostgreSQL source adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg

from migrator.adapters.base import Capabilities, JoinHop, LargestDocument, SourceInfo
from migrator.adapters.postgres.connection import PgEndpoint
from migrator.adapters.postgres.inspect import PostgresInspector


class PostgresSource:
    """The source side: inspection now; snapshot and change stream arrive with their phases."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        change_capture=True, exported_snapshot=True, transactions=True, change_streams=False
    )

    def __init__(self, url: str, *, statement_timeout_ms: int = 60_000) -> None:
        self.endpoint = PgEndpoint(url)
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    def _inspector(self) -> PostgresInspector:
        if self._conn is None:
            # A statement timeout bounds every inspection query: preflight must never
            # hang on a production primary.
            self._conn = self.endpoint.connect(options=f"-c statement_timeout={self._statement_timeout_ms}")
        return PostgresInspector(self._conn, self.endpoint.name, self.endpoint.secrets)

    def inspect(self, tables: Sequence[str]) -> SourceInfo:
        return self._inspector().inspect(tables)

    def max_significant_digits(self, table: str, column: str, *, array: bool = False) -> int:
        return self._inspector().max_significant_digits(table, column, array=array)

    def largest_document(
        self, root: str, key: Sequence[str], root_overhead: int, paths: Sequence[Sequence[JoinHop]]
    ) -> LargestDocument | None:
        return self._inspector().largest_document(root, key, root_overhead, paths)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
