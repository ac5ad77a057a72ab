"""Opening MySQL/MariaDB connections with typed errors and no password in any message.

Every connection is set up alike (docs/architecture.md, "MySQL and MariaDB sources"): utf8mb4,
autocommit, bounded connect and read waits, and the session time zone UTC, so that a TIMESTAMP
column reads as the UTC instant it stores (the server converts from the session's zone).
"""

from __future__ import annotations

import getpass
from typing import Any

import pymysql

from migrator.adapters.mysql.errors import classify
from migrator.adapters.mysql.values import ZeroDates
from migrator.connstr import ConnInfo, MalformedConnection, parse_mysql
from migrator.errors import SourceError
from migrator.redact import url_passwords

DEFAULT_PORT = 3306
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 600  # a query (or the binlog's next packet) that sends nothing for this long is lost
SESSION_SETUP = "SET time_zone = '+00:00'"


class MysqlEndpoint:
    """A source URL held in memory; only `.name` (no password) is ever shown.

    `name`: mysql://user@host:port/database. `secrets`: what redact_text must mask. `database`,
    `host`, `port`, `user`: the parts (not secret). `connect(**options)`: a PyMySQL connection set
    up as the module says; `options` override PyMySQL's keyword arguments (database=None for none,
    cursorclass=pymysql.cursors.SSCursor to stream, read_timeout=...). `connect_kwargs(**options)`:
    those arguments, for a client that connects by itself."""

    def __init__(self, url: str, *, zero_dates: ZeroDates = "refuse") -> None:
        # How this source's readers deliver a zero date (values.py): a reading setting of the
        # source, as the session's time zone is, so every reader built on the endpoint shares it.
        self.zero_dates: ZeroDates = zero_dates
        try:
            info = parse_mysql(url)
        except MalformedConnection as exc:
            raise SourceError(
                f"the source URL is not a valid MySQL connection string: {exc}",
                hint="write it as mysql://user:password@host:port/database (percent-encode "
                "'@', '/', '?', '#', '%' in the password)",
            ) from None
        self._info = info
        self._secrets = url_passwords(url)
        host, port = _host_port(info)
        self.host, self.port = host, port
        self.user = info.user or getpass.getuser()  # as the mysql client and PyMySQL default it
        self.database = info.database or ""
        self.name = f"mysql://{self.user}@{host}:{port}/{self.database}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password, as written and percent-decoded."""
        return self._secrets

    def connect(self, **options: Any) -> pymysql.connections.Connection[Any]:
        """A new connection; a failure raises the typed error (errors.py), naming `name` only."""
        try:
            return pymysql.connect(**self.connect_kwargs(**options))
        except pymysql.MySQLError as exc:
            raise classify(exc, self.name, self.secrets) from None

    def connect_kwargs(self, **options: Any) -> dict[str, Any]:
        """The keyword arguments `connect` hands PyMySQL (the password included: never show them),
        for a client that opens its own connections (the binlog reader's connection_settings)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self._info.password or "",
            "database": self.database or None,
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "read_timeout": READ_TIMEOUT_S,
            "init_command": SESSION_SETUP,
            **self._url_options(),
            **options,
        }

    def _url_options(self) -> dict[str, Any]:
        params = dict(self._info.params)
        found: dict[str, Any] = {}
        for key in ("connect_timeout", "read_timeout"):
            if key in params:
                if not params[key].isdigit():
                    raise SourceError(f"the source URL's {key} is not a whole number of seconds")
                found[key] = int(params[key])
        ssl: dict[str, Any] = {k.removeprefix("ssl_"): v for k, v in params.items() if k.startswith("ssl_")}
        for flag in ("verify_cert", "verify_identity"):
            if flag in ssl:
                ssl[flag] = ssl[flag].lower() in ("1", "true", "yes", "on")
        if ssl:
            found["ssl"] = ssl
        return found

    def __repr__(self) -> str:
        return f"MysqlEndpoint({self.name!r})"


def _host_port(info: ConnInfo) -> tuple[str, int]:
    hostport = info.hosts[0] if info.hosts else ""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    return host or "localhost", int(port) if port else DEFAULT_PORT
