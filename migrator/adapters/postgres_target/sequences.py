"""The target's sequences brought to the source's values at cutover, under the fence
(docs/architecture.md, "Sequences at cutover"): for each mapped column whose source sequence gave
out values, the target column's own sequence (a serial's or an identity's,
`pg_get_serial_sequence`) is set past the source's last value by the plan's
`cutover.sequence_margin` (in steps of the sequence's increment, in its direction), so that the
application's first insert on the target takes a value the source never gave out. A target column
without a sequence is reported, not invented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from migrator.adapters.postgres_target.schema import qualified

_SET = """
SELECT setval(s.seqrelid, %s + %s * s.seqincrement, true), s.seqrelid::regclass::text
FROM pg_sequence s WHERE s.seqrelid = %s::regclass
"""


def set_sequences(
    conn: psycopg.Connection[Any], values: Mapping[str, Mapping[str, int]], margin: int
) -> list[str]:
    """Set each column's sequence; what was done, one line each."""
    done: list[str] = []
    for table, columns in values.items():
        for column, last in columns.items():
            row = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", [qualified(table), column]).fetchone()
            if row is None or row[0] is None:
                done.append(f"{table}.{column}: no sequence on the target (the source's gave out {last})")
                continue
            set_to = conn.execute(_SET, [last, margin, row[0]]).fetchone()
            assert set_to is not None
            done.append(f"{table}.{column}: {set_to[1]} set to {set_to[0]} (the source's {last} + margin)")
    return done
