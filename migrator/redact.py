"""Masking of secrets in connection URLs and free text.

Secrets never leave memory: anything shown to a person or written to disk passes
through here first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = frozenset({"password", "pass", "pwd", "secret", "sslpassword", "authmechanismproperties"})
# user:password@ inside any URL-looking text
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")
_PARAM = re.compile(r"(?i)\b(password|pwd|sslpassword)=([^&\s]+)")


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by ***; the host and database stay visible."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def endpoint_of(url: str) -> str:
    """A short name for a connection URL fit for messages: scheme://user@host:port/db."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    host = parts.netloc.rpartition("@")[2] or "localhost"
    user = parts.netloc.rpartition("@")[0].split(":", 1)[0] if "@" in parts.netloc else ""
    who = f"{user}@" if user else ""
    return f"{parts.scheme}://{who}{host}{parts.path}"


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Mask passwords in URLs and key=value pairs within free text, and any literal `secrets`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _PARAM.sub(lambda m: f"{m[1]}={MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def url_passwords(*urls: str) -> tuple[str, ...]:
    """The passwords that connection URLs carry (as written and percent-decoded), for
    `redact_text(..., secrets)` where a driver might echo one outside URL form."""
    found: list[str] = []
    for url in urls:
        try:
            parts = urlsplit(url)
            password = parts.password if "://" in url else None
            pairs = parse_qsl(parts.query, keep_blank_values=True)
        except ValueError:
            continue
        values = [password] if password else []
        values += [v for k, v in pairs if k.lower() in _SECRET_PARAMS and v]
        for value in values:
            found += [value, unquote(value)]
    return tuple(dict.fromkeys(found))
