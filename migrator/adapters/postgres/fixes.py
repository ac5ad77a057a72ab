"""SQL statements that preflight offers as fixes, spelled so that PostgreSQL accepts them.

Every statement here is run by a test on a real server, which then checks that the finding it
fixes is gone (tests/integration/test_source_features.py). Names are quoted only where
PostgreSQL needs it, so that the statements read as an operator would write them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from migrator.adapters.postgres.inspect import split_table

_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")
# Keywords that cannot name a column or table unquoted (pg_get_keywords(): catcode R and T).
_RESERVED = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization binary both case cast
    check collate collation column concurrently constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user default
    deferrable desc distinct do else end except false fetch for foreign freeze from full grant
    group having ilike in initially inner intersect into is isnull join lateral leading left
    like limit localtime localtimestamp natural not notnull null offset on only or order outer
    overlaps placing primary references returning right select session_user similar some
    symmetric table tablesample then to trailing true union unique user using variadic verbose
    when where window with""".split()  # noqa: SIM905
)


def ident(name: str) -> str:
    """One identifier as PostgreSQL reads it: as is when plain, else double-quoted."""
    if _PLAIN.match(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def table(name: str) -> str:
    schema, relation = split_table(name)
    return f"{ident(schema)}.{ident(relation)}"


def columns(names: Sequence[str]) -> str:
    return ", ".join(ident(n) for n in names)


def replica_identity(name: str, identity: str) -> str:
    """`identity`: 'FULL', 'DEFAULT' or 'NOTHING'."""
    return f"ALTER TABLE {table(name)} REPLICA IDENTITY {identity};"


def replica_identity_index(name: str, index: str) -> str:
    return f"ALTER TABLE {table(name)} REPLICA IDENTITY USING INDEX {ident(index)};"


def add_primary_key(name: str, key: Sequence[str]) -> str:
    return f"ALTER TABLE {table(name)} ADD PRIMARY KEY ({columns(key)});"


def replace_primary_key(name: str, constraint: str, key: Sequence[str]) -> str:
    return f"ALTER TABLE {table(name)} DROP CONSTRAINT {ident(constraint)}, ADD PRIMARY KEY ({columns(key)});"


def unique_index(name: str, index: str, key: Sequence[str]) -> str:
    """CONCURRENTLY: the application keeps writing while the index builds (run it on its own,
    outside a transaction block)."""
    return f"CREATE UNIQUE INDEX CONCURRENTLY {ident(index)} ON {table(name)} ({columns(key)});"


def set_logged(name: str) -> str:
    """Rewrites the table (and its indexes) into the WAL under an ACCESS EXCLUSIVE lock."""
    return f"ALTER TABLE {table(name)} SET LOGGED;"


def set_not_null(name: str, column: str) -> str:
    return f"ALTER TABLE {table(name)} ALTER {ident(column)} SET NOT NULL;"


def enable_trigger(name: str, trigger: str) -> str:
    """ENABLE (without ALWAYS or REPLICA): the trigger fires for the application's writes only,
    not under session_replication_role = replica."""
    return f"ALTER TABLE {table(name)} ENABLE TRIGGER {ident(trigger)};"


def identity_index_name(name: str) -> str:
    """A name for a new unique index meant as replica identity (63 bytes at most)."""
    return f"{split_table(name)[1][:42]}_replica_identity"
