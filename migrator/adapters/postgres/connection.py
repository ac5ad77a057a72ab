"""Opening PostgreSQL connections with typed errors and no password in any message."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import conninfo

from migrator.adapters.postgres.errors import classify
from migrator.errors import SourceError
from migrator.redact import endpoint_of

APPLICATION_NAME = "migrator"


class PgEndpoint:
    """A source URL held in memory; only `.name` (no password) is ever shown."""

    def __init__(self, url: str) -> None:
        self._url = url
        try:
            params = conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise SourceError(
                f"the source URL is not a valid PostgreSQL connection string ({endpoint_of(url)})",
                hint="write it as postgresql://user:password@host:port/database",
            ) from None
        self._password = str(params.get("password") or "")
        host = params.get("host") or "localhost"
        port = params.get("port") or "5432"
        user = params.get("user")
        who = f"{user}@" if user else ""
        self.name = f"postgresql://{who}{host}:{port}/{params.get('dbname') or ''}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password,) if self._password else ()

    def connect(self, *, autocommit: bool = True, **options: Any) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"application_name": APPLICATION_NAME, "connect_timeout": 10, **options}
        params = conninfo.conninfo_to_dict(self._url)
        for key in ("application_name", "connect_timeout"):
            if key in params:
                kwargs.pop(key)
        try:
            return psycopg.connect(self._url, autocommit=autocommit, **kwargs)
        except psycopg.Error as exc:
            raise classify(exc, self.name, self.secrets) from None

    def __repr__(self) -> str:
        return f"PgEndpoint({self.name!r})"
