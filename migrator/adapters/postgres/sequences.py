"""The sequences behind the mapped tables' columns (serial defaults and identity columns), with
the value each last gave out: what cutover brings a PostgreSQL target's sequences to
(docs/architecture.md, "Sequences at cutover").

A sequence belongs to a column through pg_depend ('a' for a serial's OWNED BY, 'i' for an
identity's). `pg_sequence_last_value` is NULL for a sequence never used: nothing was given out, so
nothing needs to be passed on. Reading it needs SELECT or USAGE on the sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from migrator.adapters.postgres.inspect import table_identifier

_SQL = """
SELECT n.nspname || '.' || c.relname, a.attname, pg_sequence_last_value(d.objid)
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_class c ON c.oid = d.refobjid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjid = ANY(%s::regclass[])
"""


def sequence_values(conn: psycopg.Connection[Any], tables: Sequence[str]) -> dict[str, dict[str, int]]:
    """table -> column -> the last value its sequence gave out (columns never served left out)."""
    names = [table_identifier(t).as_string(conn) for t in tables]
    found: dict[str, dict[str, int]] = {}
    for table, column, last in conn.execute(_SQL, [names]).fetchall():
        if last is not None:
            found.setdefault(_plan_name(str(table), tables), {})[str(column)] = int(last)
    return found


def _plan_name(table: str, tables: Sequence[str]) -> str:
    """`table` as the plan names it (a table in `public` may be named without its schema)."""
    schema, _, name = table.partition(".")
    return name if schema == "public" and name in tables else table


# Never back: a sequence already at or past the wanted value (in its direction) is left as it is,
# without a setval that could undo a nextval taken meanwhile.
_RAISE = """
WITH s AS (
  SELECT seqrelid, %s::bigint + %s::bigint * seqincrement AS wanted, seqincrement,
         pg_sequence_last_value(seqrelid) AS last
  FROM pg_sequence WHERE seqrelid = %s::regclass
)
SELECT seqrelid::regclass::text, wanted, last,
       CASE WHEN last IS NOT NULL AND (last - wanted) * sign(seqincrement) >= 0 THEN last
            ELSE setval(seqrelid, wanted, true) END
FROM s
"""


def set_sequences(
    conn: psycopg.Connection[Any], values: Mapping[str, Mapping[str, int]], margin: int
) -> list[str]:
    """Each column's sequence (a serial's or an identity's) brought past the target's last value
    by `margin` steps, at rollback after cutover (docs/architecture.md, "Sequences at rollback after
    cutover"); never moved back. What was done, one line each."""
    done: list[str] = []
    for table, columns in values.items():
        name = table_identifier(table).as_string(conn)
        for column, last in columns.items():
            row = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", [name, column]).fetchone()
            if row is None or row[0] is None:
                done.append(f"{table}.{column}: no sequence on the source (the target's gave out {last})")
                continue
            found = conn.execute(_RAISE, [last, margin, row[0]]).fetchone()
            assert found is not None
            sequence, wanted, before, now = found
            done.append(
                f"{table}.{column}: {sequence} set to {now} (the target's {last} + margin)"
                if now == wanted
                else f"{table}.{column}: {sequence} already at {before}, past the target's {last} + margin"
            )
    return done
