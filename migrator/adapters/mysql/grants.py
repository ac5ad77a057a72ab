"""The user's privileges as SHOW GRANTS lists them, roles included.

information_schema's privilege tables show a user's own grants only: a privilege held through a
role (MariaDB's current role, whose grants SHOW GRANTS lists too) is missing there, and preflight
would refuse a user that has what it needs. Only the privilege names and the objects are kept; a
line's `IDENTIFIED BY PASSWORD` hash is never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALL = "ALL PRIVILEGES"
_NAME = r"(?:`(?:[^`]|``)*`|\*)"
_GRANT = re.compile(rf"GRANT (?P<privileges>.+?) ON (?P<schema>{_NAME})\.(?P<table>{_NAME}) TO ", re.S)


@dataclass
class Grants:
    """Privileges on *.* (`server`), per database, and per table (schema.table)."""

    server: set[str] = field(default_factory=set)
    databases: dict[str, set[str]] = field(default_factory=dict)
    tables: dict[str, set[str]] = field(default_factory=dict)


def parse_grants(lines: list[str]) -> Grants:
    """Privileges named by SHOW GRANTS lines. A column-level privilege (`SELECT (a, b)`) grants no
    table privilege and is left out; ALL [PRIVILEGES] is kept as ALL (Grants' users expand it)."""
    grants = Grants()
    for line in lines:
        match = _GRANT.match(line)
        if match is None:  # a role granted (GRANT `r` TO ...), a routine's grant, SET DEFAULT ROLE
            continue
        privileges = {p for p in (_privilege(p) for p in _split(match["privileges"])) if p}
        schema, table = _name(match["schema"]), _name(match["table"])
        if schema == "*":
            grants.server |= privileges
        elif table == "*":
            # A database name in a grant is a LIKE pattern: `app\_db` is app_db.
            grants.databases.setdefault(schema.replace("\\_", "_").replace("\\%", "%"), set()).update(
                privileges
            )
        else:
            grants.tables.setdefault(f"{schema}.{table}", set()).update(privileges)
    return grants


def _split(text: str) -> list[str]:
    """Comma-separated privileges; commas inside a column list do not separate."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _privilege(text: str) -> str | None:
    text = " ".join(text.split()).upper()
    if "(" in text:
        return None
    return ALL if text in ("ALL", ALL) else text


def _name(text: str) -> str:
    return text[1:-1].replace("``", "`") if text.startswith("`") else text
