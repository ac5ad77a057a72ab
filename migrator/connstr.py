"""Connection strings parsed strictly into parts, so that only parts known not to be secret are shown.

A source is a PostgreSQL URI (`postgresql://user:password@host:port/db?param=value`) or a libpq
key=value string (`host=h port=5432 user=u password=pw dbname=db`) or a MySQL/MariaDB URL
(`mysql://user:password@host:port/db`, or `mariadb://`); a target is a MongoDB URL
(`mongodb://` or `mongodb+srv://`). Where a string's structure is broken (an unencoded '@' or '/'
in a password, a missing '@' or scheme), a password lands where a user, host, port or database
belongs, and drivers echo those parts in their errors. So a malformed string is refused here,
before any driver sees it, with a message that quotes none of it (docs/architecture.md,
"Connection strings and secrets").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote, unquote

MASK = "***"
POSTGRES_SCHEMES = ("postgresql", "postgres")
MYSQL_SCHEMES = ("mysql", "mariadb")
# The query parameters a MySQL/MariaDB source URL may carry (the adapter hands them to its
# driver); any other is refused without being quoted, as for libpq.
MYSQL_PARAMS = frozenset(
    {
        "ssl_ca",
        "ssl_cert",
        "ssl_key",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "connect_timeout",
        "read_timeout",
    }
)
MONGODB_SCHEMES = ("mongodb", "mongodb+srv")
# Parameters whose values are secrets, wherever they appear (lower-case).
SECRET_PARAMS = frozenset(
    {
        "password",
        "pass",
        "pwd",
        "secret",
        "sslpassword",
        "oauth_client_secret",
        "scram_client_key",
        "scram_server_key",
        "authmechanismproperties",  # may hold AWS_SESSION_TOKEN
        "tlscertificatekeyfilepassword",
    }
)
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*\Z")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9._~-]+)?\]\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_ParamCheck = Callable[[str, str], None]


class MalformedConnection(ValueError):
    """The string is not a well-formed connection string. The message quotes no part of it."""


@dataclass(frozen=True)
class ConnInfo:
    """A parsed connection string. `endpoint` and `masked` are safe to show; the rest is not."""

    scheme: str  # "postgresql", "mongodb", "mongodb+srv"; "" for a libpq key=value string
    user: str | None
    hosts: tuple[str, ...]  # "host", "host:port", "[::1]:port"; () for the driver's default
    database: str | None
    password: str | None = field(default=None, repr=False)
    # URIs: the query parameters; key=value strings: every pair, in order.
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def endpoint(self) -> str:
        """scheme://user@host:port/database: what messages name (no password, no parameters)."""
        scheme = self.scheme or "postgresql"
        who = f"{self.user}@" if self.user else ""
        hosts = ",".join("localhost" + h if h.startswith(":") else h for h in self.hosts)
        return f"{scheme}://{who}{hosts or 'localhost'}/{self.database or ''}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value the string holds, for masking literals a driver might echo."""
        found = [self.password] if self.password else []
        found += [v for k, v in self.params if k.lower() in SECRET_PARAMS and v]
        return tuple(dict.fromkeys(found))

    @property
    def masked(self) -> str:
        """The whole string in its own form with every secret replaced by ***."""
        return self._written(drop_secrets=False)

    @property
    def without_secrets(self) -> str:
        """The whole string in its own form with the password and every secret parameter left
        out: what `migrator init` may write into a plan file."""
        return self._written(drop_secrets=True)

    def _written(self, *, drop_secrets: bool) -> str:
        params = [
            (k, MASK if k.lower() in SECRET_PARAMS else v)
            for k, v in self.params
            if not (drop_secrets and k.lower() in SECRET_PARAMS)
        ]
        if not self.scheme:
            return " ".join(f"{k}={v if v == MASK else _kv_quote(v)}" for k, v in params)
        who = ""
        if self.user is not None or self.password is not None:
            hidden = f":{MASK}" if self.password is not None and not drop_secrets else ""
            who = quote(self.user or "", safe="") + hidden + "@"
        query = "&".join(f"{k}={v if v == MASK else quote(v, safe='')}" for k, v in params)
        path = "/" + quote(self.database, safe="") if self.database is not None else ""
        if query and not path:
            path = "/"
        return f"{self.scheme}://{who}{','.join(self.hosts)}{path}{'?' + query if query else ''}"


def parse(text: str) -> ConnInfo:
    """Parse any connection string migrator accepts, by its form."""
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in MONGODB_SCHEMES:
        return parse_mongodb(text)
    if scheme in MYSQL_SCHEMES:
        return parse_mysql(text)
    return parse_postgres(text)


def parse_postgres(text: str) -> ConnInfo:
    """A PostgreSQL URI or libpq key=value string, validated as libpq reads it and stricter."""
    if _is_uri(text):
        scheme = text.partition("://")[0].lower()
        if scheme not in POSTGRES_SCHEMES:
            raise MalformedConnection(
                "the source URL does not start with postgresql:// (or postgres://); "
                "write it as postgresql://user:password@host:port/database"
            )
        return _parse_uri(text, "source", "postgresql", _check_pg_param)
    if _looks_like_key_value(text):
        return _parse_key_value(text)
    raise MalformedConnection(
        "the source URL has no scheme and is no key=value string; write it as "
        "postgresql://user:password@host:port/database"
    )


def parse_mysql(text: str) -> ConnInfo:
    """A MySQL/MariaDB source URL: mysql://user:password@host:port/database (or mariadb://), one
    host, the parameters of MYSQL_PARAMS."""
    scheme = text.partition("://")[0].lower() if _is_uri(text) else ""
    if scheme not in MYSQL_SCHEMES:
        raise MalformedConnection(
            "the source URL does not start with mysql:// (or mariadb://); "
            "write it as mysql://user:password@host:port/database"
        )
    info = _parse_uri(text, "source", scheme, _check_mysql_param)
    if len(info.hosts) > 1:
        raise MalformedConnection("the source URL names more than one host; a MySQL source URL names one")
    if not info.database:
        raise MalformedConnection(
            "the source URL names no database; write it as mysql://user:password@host:port/database"
        )
    return info


def _check_mysql_param(key: str, what: str) -> None:
    if key in MYSQL_PARAMS:
        return
    close = difflib.get_close_matches(key.lower(), sorted(MYSQL_PARAMS), n=1, cutoff=0.75)
    guess = f" (did you mean '{close[0]}'?)" if close else ""
    raise MalformedConnection(f"{what} holds a parameter a MySQL source does not know{guess}")


def parse_mongodb(text: str) -> ConnInfo:
    """A MongoDB URL, validated as pymongo reads it (userinfo split at its only ':')."""
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme not in MONGODB_SCHEMES:
        raise MalformedConnection(
            "the target URL does not start with mongodb:// (or mongodb+srv://); write it as "
            "mongodb://user:password@host:port/?replicaSet=..."
        )
    info = _parse_uri(text, "target", scheme, None)
    if info.password is not None and ":" in info.password:
        raise MalformedConnection(
            "the target URL's password holds ':', which MongoDB URLs require percent-encoded (%3A)"
        )
    return info


# -- URIs -------------------------------------------------------------------------------------------


def _is_uri(text: str) -> bool:
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def _parse_uri(text: str, side: str, scheme: str, check_param: _ParamCheck | None) -> ConnInfo:
    what = f"the {side} URL"
    _check_uri_characters(text, what)
    rest = text.partition("://")[2]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, after = rest[:end], rest[end:]
    _check_uri_at_signs(authority, after, what)
    user = password = None
    if "@" in authority:
        userinfo, _, authority = authority.partition("@")
        raw_user, colon, raw_password = userinfo.partition(":")
        user = unquote(raw_user)
        password = unquote(raw_password) if colon else None
    hosts = tuple(
        _check_host(h, i, what, len(authority.split(","))) for i, h in enumerate(authority.split(","))
    )
    if hosts == ("",):
        hosts = ()
    path, _, query = after.partition("?")
    if scheme == "mongodb" or scheme == "mongodb+srv":
        _check_mongodb_parts(hosts, path, query, what)
    database = unquote(path[1:]) if path[1:] else None
    params = _uri_params(query, what, check_param)
    return ConnInfo(scheme, user, hosts, database, password, params)


def _check_uri_characters(text: str, what: str) -> None:
    if _SPACE_OR_CONTROL.search(text):
        raise MalformedConnection(f"{what} holds a space or a control character; percent-encode it (%20)")
    if "#" in text:
        raise MalformedConnection(f"{what} holds '#': percent-encode it as %23 (in a password too)")
    if _BAD_PERCENT.search(text):
        raise MalformedConnection(f"{what} holds a '%' not followed by two hex digits: write '%' as %25")


def _check_uri_at_signs(authority: str, after: str, what: str) -> None:
    if "@" in after:
        raise MalformedConnection(
            f"{what} holds an '@' after its host: a user name or password holding '/', '?' or '@' "
            "must percent-encode them (%2F, %3F, %40)"
        )
    if authority.count("@") > 1:
        raise MalformedConnection(
            f"{what} holds more than one '@' before its host: percent-encode '@' in the user name or "
            "password as %40"
        )


def _check_mongodb_parts(hosts: tuple[str, ...], path: str, query: str, what: str) -> None:
    if not hosts:
        raise MalformedConnection(f"{what} names no host: write mongodb://host:port/")
    if query and not path:
        raise MalformedConnection(f"{what} needs a '/' between its hosts and its options: host/?option=...")


def _uri_params(query: str, what: str, check_param: _ParamCheck | None) -> tuple[tuple[str, str], ...]:
    params: list[tuple[str, str]] = []
    for number, pair in enumerate(query.split("&") if query else [], start=1):
        key, eq, value = pair.partition("=")
        if not eq or not _KEY.match(key):
            raise MalformedConnection(
                f"{what}'s parameter {number} is not key=value; percent-encode '&' and '=' in values"
            )
        if check_param is not None:
            check_param(key, what)
        params.append((key, unquote(value)))
    return tuple(params)


def _check_host(host: str, index: int, what: str, count: int) -> str:
    which = f"host {index + 1}" if count > 1 else "host"
    name, port = host, None
    if host.startswith("["):
        close = host.find("]")
        name, port = host[: close + 1], host[close + 2 :] if host[close + 1 : close + 2] == ":" else None
        if close < 0 or not _IPV6.match(name) or (port is None and host[close + 1 :]):
            raise MalformedConnection(f"{what}'s {which} is not a valid [IPv6] address")
    elif ":" in host:
        name, _, port = host.partition(":")
    if not _HOST.match(name) and not _IPV6.match(name):
        raise MalformedConnection(
            f"{what}'s {which} holds a character a host name cannot hold (is a user:password@ part "
            "malformed? percent-encode '@', '/', ':' in it)"
        )
    if port is not None and (not _PORT.match(port) or not 1 <= int(port) <= 65535):
        raise MalformedConnection(
            f"{what}'s {which} has a port that is not a number from 1 to 65535 (a user:password "
            "must be followed by '@host')"
        )
    return host


# -- libpq parameters -------------------------------------------------------------------------------


@cache
def _libpq_keywords() -> frozenset[str]:
    """The parameters the installed libpq accepts (it refuses others, quoting them)."""
    from psycopg import pq

    return frozenset(info.keyword.decode() for info in pq.Conninfo.get_defaults()) | {"ssl"}


def _check_pg_param(key: str, what: str) -> None:
    known = _libpq_keywords()
    if key in known:
        return
    # The unknown name is not quoted: it might be a misplaced secret. A close match is.
    close = difflib.get_close_matches(key.lower(), sorted(known), n=1, cutoff=0.75)
    guess = f" (did you mean '{close[0]}'?)" if close else ""
    raise MalformedConnection(f"{what} holds a parameter libpq does not know{guess}")


def _looks_like_key_value(text: str) -> bool:
    return re.match(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=", text) is not None


def _parse_key_value(text: str) -> ConnInfo:
    """libpq's conninfo_parse: `key = value` pairs separated by spaces; a value is unquoted (up to
    the next space) or in single quotes; a backslash escapes the next character in both."""
    what = "the source key=value string"
    values: dict[str, str] = {}
    for key, value in _kv_pairs(text, what):
        _check_pg_param(key, what)
        if key in values:
            raise MalformedConnection(f"{what} gives parameter '{key}' twice")
        values[key] = value
    if not values:
        raise MalformedConnection(f"{what} is empty")
    joined = _kv_hosts(values, what)
    user, password, database = values.get("user"), values.get("password"), values.get("dbname")
    return ConnInfo("", user, joined, database, password, tuple(values.items()))


def _kv_pairs(text: str, what: str) -> Iterator[tuple[str, str]]:
    """The (key, value) pairs in order; lazily, so a pair is checked before the next is read."""
    i, n, number = 0, len(text), 0
    while True:
        i = _skip_space(text, i)
        if i >= n:
            return
        number += 1
        key, i = _kv_key(text, i, what, number)
        value, i = _kv_value(text, i, what, number)
        yield key, value


def _skip_space(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i


def _kv_key(text: str, i: int, what: str, number: int) -> tuple[str, int]:
    """The key starting at `i` and the index of its value (after '=' and spaces)."""
    n, start = len(text), i
    while i < n and text[i] != "=" and not text[i].isspace():
        i += 1
    key = text[start:i]
    i = _skip_space(text, i)
    if i >= n or text[i] != "=" or not _KEY.match(key):
        raise MalformedConnection(
            f"{what}'s word {number} is not key=value (quote values with spaces: 'a b')"
        )
    return key, _skip_space(text, i + 1)


def _kv_value(text: str, i: int, what: str, number: int) -> tuple[str, int]:
    """The value starting at `i` (quoted or not, backslash escapes) and the index after it."""
    n = len(text)
    quoted = i < n and text[i] == "'"
    if quoted:
        i += 1
    value: list[str] = []
    while i < n and (text[i] != "'" if quoted else not text[i].isspace()):
        if text[i] == "\\" and i + 1 < n:
            i += 1
        value.append(text[i])
        i += 1
    if quoted:
        if i >= n:
            raise MalformedConnection(f"{what}'s word {number} opens a quote it never closes")
        i += 1
    return "".join(value), i


def _kv_hosts(values: dict[str, str], what: str) -> tuple[str, ...]:
    """host and port lists joined pairwise ("h:p"), as libpq pairs them."""
    hosts = values.get("host", "")
    ports = values.get("port", "")
    host_list = hosts.split(",") if hosts else []
    port_list = ports.split(",") if ports else []
    for port in port_list:
        if not _PORT.match(port) or not 1 <= int(port) <= 65535:
            raise MalformedConnection(f"{what}'s port is not a number from 1 to 65535")
    if port_list and host_list and len(port_list) not in (1, len(host_list)):
        raise MalformedConnection(f"{what} gives {len(port_list)} ports for {len(host_list)} hosts")
    return tuple(
        h + (f":{port_list[0] if len(port_list) == 1 else port_list[k]}" if port_list else "")
        for k, h in enumerate(host_list or ([""] if port_list else []))
    )


def _kv_quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
