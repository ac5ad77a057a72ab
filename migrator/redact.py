"""Masking of secrets in connection URLs and free text.

Secrets never leave memory: anything shown to a person or written to disk passes
through here first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from migrator.connstr import MASK, SECRET_PARAMS, MalformedConnection, parse

__all__ = ["MALFORMED", "MASK", "endpoint_of", "redact_text", "redact_url", "url_passwords"]

# What stands for a connection string that cannot be parsed: no part of it is known to be safe.
MALFORMED = "(a malformed connection string, not shown)"
# user:password@ inside any URL-looking text
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
# password=value in a URL query or a libpq key=value string; a libpq value may be 'quoted'.
_PARAM = re.compile(
    r"(?i)\b("
    + "|".join(sorted(SECRET_PARAMS, key=len, reverse=True))
    + r")(\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s]+)"
)


def redact_url(url: str) -> str:
    """`url` (a URL or a libpq key=value string) with every secret replaced by ***; the host and
    database stay visible. A string that does not parse is not shown at all."""
    try:
        return parse(url).masked
    except MalformedConnection:
        return MALFORMED


def endpoint_of(url: str) -> str:
    """A short name for a connection string fit for messages: scheme://user@host:port/db."""
    try:
        return parse(url).endpoint
    except MalformedConnection:
        return MALFORMED


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask passwords in URLs and key=value pairs within free text, and any literal `secrets`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _PARAM.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def url_passwords(*urls: str) -> tuple[str, ...]:
    """The secrets that connection strings carry (decoded and percent-encoded), for
    `redact_text(..., secrets)` where a driver might echo one outside URL form. Of a string that
    does not parse, every word that could be one (its pieces between delimiters)."""
    found: list[str] = []
    for url in urls:
        try:
            values = list(parse(url).secrets)
        except MalformedConnection:
            values = [w for w in re.split(r"[\s:/@?#&=,;%'\"]+", url) if len(w) >= 4]
            values = [w for w in values if w.lower() not in _NOT_SECRETS]
        for value in values:
            found += [value, quote(value, safe=""), quote(value, safe="~!$&'()*+,;=:")]
    return tuple(dict.fromkeys(found))


_NOT_SECRETS = frozenset(
    {"postgresql", "postgres", "mongodb", "mongodb+srv", "host", "port", "user", "dbname"}
)


def redact_tree(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """`value` (JSON-like: mappings, lists, scalars) with every string and key through
    `redact_text`: what log lines and the dashboard's API hand out."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, Mapping):
        return {redact_text(str(k), secrets): redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value), secrets)
