"""Changed values taken as the source's text (docs/architecture.md, "Undecoded change values"): a
PostgreSQL source's change stream can hand a column's values over in PostgreSQL's text output
(`postgresql-text`: UTC, ISO dates, ISO 8601 intervals, shortest exact floats, hex bytea, UTF-8),
which this target's type input reads back as the very same value where the target column is of
the source column's type. The applier then writes the text as it is: a SourceText is a str,
which psycopg writes as any text, a COPY field escaped (backslash, tab, newline, carriage return)
or a parameter, cast to the column's declared type by the statement as a decoded value's text is
(rows.py placeholder, staging.py).

Taken only for a built-in type with the same modifier on both sides (copy_in.same_types: a
user-defined type's id differs between servers) and never for money, whose text depends on the
session's lc_monetary; and only on a UTF-8 session, since the text is UTF-8.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.base import RawColumn
from migrator.adapters.postgres_target.copy_in import same_types
from migrator.adapters.postgres_target.schema import qualified

TEXT = "postgresql-text"
# money and money[]: their text is the session's lc_monetary's.
_MONEY = frozenset({790, 791})
# As copy_in.same_types reads them: name, type id, declared type, typtype, a domain's base.
_TYPES_SQL = """
SELECT a.attname, a.atttypid::bigint, format_type(a.atttypid, a.atttypmod), t.typtype::text,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE '' END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


def takes(
    conn: psycopg.Connection[Any], table: str, form: str, columns: Sequence[RawColumn]
) -> frozenset[str]:
    """The source columns of `columns` whose values of `form` are written into `table` as they
    are (see the module's docstring); none where the table is not there (yet)."""
    if form != TEXT or conn.info.encoding != "utf-8":
        return frozenset()
    rows = conn.execute(_TYPES_SQL, [qualified(table)]).fetchall()
    found = {
        str(name): (int(oid), str(declared), str(kind), str(base)) for name, oid, declared, kind, base in rows
    }
    return frozenset(
        c.column.name for c in columns if c.column.type_oid not in _MONEY and same_types(found, [c])
    )
