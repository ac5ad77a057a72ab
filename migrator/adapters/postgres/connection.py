"""Opening PostgreSQL connections with typed errors and no password in any message."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import conninfo

from migrator.adapters.postgres.errors import classify, classify_connect
from migrator.connstr import MalformedConnection, parse_postgres
from migrator.errors import SourceError
from migrator.redact import url_passwords

APPLICATION_NAME = "migrator"
# A read (a snapshot chunk's COPY) that gets nothing from the server for this long is lost: its
# connection is abandoned and the read redone (as the MySQL source's read_timeout).
READ_TIMEOUT_S = 600


class PgEndpoint:
    """A source URL held in memory; only `.name` (no password) is ever shown."""

    def __init__(self, url: str) -> None:
        self._url = url
        # Strict parsing first (migrator/connstr.py): libpq's own errors quote the malformed
        # part, which may be the password; these quote nothing.
        try:
            parse_postgres(url)
            params = conninfo.conninfo_to_dict(url)
        except (MalformedConnection, psycopg.ProgrammingError) as exc:
            reason = str(exc) if isinstance(exc, MalformedConnection) else "libpq cannot parse it"
            raise SourceError(
                f"the source URL is not a valid PostgreSQL connection string: {reason}",
                hint="write it as postgresql://user:password@host:port/database (percent-encode "
                "'@', '/', '?', '#', '%' in the password)",
            ) from None
        self._secrets = url_passwords(url)
        # Whether a connection with these credentials has succeeded (docs/architecture.md,
        # "Connection failures": only a first connection is diagnosed as a refused login).
        self._connected = False
        host = params.get("host") or "localhost"
        port = params.get("port") or "5432"
        user = params.get("user")
        who = f"{user}@" if user else ""
        self.name = f"postgresql://{who}{host}:{port}/{params.get('dbname') or ''}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password (and other secret parameters), as written and percent-decoded."""
        return self._secrets

    def connect(self, *, autocommit: bool = True, **options: Any) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"application_name": APPLICATION_NAME, "connect_timeout": 10, **options}
        params = conninfo.conninfo_to_dict(self._url)
        for key in ("application_name", "connect_timeout"):
            if key in params:
                kwargs.pop(key)
        try:
            conn = psycopg.connect(self._url, autocommit=autocommit, **kwargs)
        except psycopg.Error as exc:
            if self._connected:
                # These credentials worked: a failure now is the server's state (restarting,
                # overloaded: too many connections come after authentication and look alike),
                # retried as a lost connection, never taken for a wrong password.
                raise classify(exc, self.name, self.secrets) from None
            raise classify_connect(exc, self._url, self.name, self.secrets, kwargs) from None
        self._connected = True
        return conn

    def __repr__(self) -> str:
        return f"PgEndpoint({self.name!r})"
