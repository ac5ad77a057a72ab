"""Chunk boundaries of a large table from its key's statistics (docs/architecture.md, "Undecoded
copy", splitting a table): pg_stats' histogram bounds of a one-column key split the key space
into ranges of about equal row counts, for the price of one catalog query instead of a pass over
the key's index. A boundary only cuts the key space: the ranges (None, b1], (b1, b2], ...,
(bn, None) hold every row whatever the statistics say, so a stale histogram makes chunks uneven,
never wrong. Used only where the statistics are fresh enough for that to be rare; otherwise the
caller walks the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from migrator.adapters.postgres.inspect import table_identifier
from migrator.adapters.postgres.reading import cast_type

# Below this many rows the index walk costs little (a fraction of a second per million rows).
MIN_ROWS = 500_000
# Growth of the table's heap since its statistics were taken (pg_class.relpages, set by ANALYZE
# and VACUUM), as a share, above which they are not trusted to cut even ranges: the rows added
# since then would crowd a range the histogram does not know about. The heap's size rather than
# pg_stat's n_mod_since_analyze, which a bulk load's counts, reported after the ANALYZE that
# followed it, leave at the whole table.
MAX_GROWTH = 0.1

_STATS_SQL = """
SELECT s.histogram_bounds::text, c.reltuples, c.relpages,
       pg_relation_size(c.oid) / current_setting('block_size')::bigint, s.most_common_vals IS NULL
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited
WHERE c.oid = %s::regclass AND s.attname = %s AND s.histogram_bounds IS NOT NULL
"""


def picked(bounds: Sequence[str], chunks: int) -> list[str]:
    """`chunks - 1` of the histogram's `bounds` (sorted, equal-frequency) that cut it into
    `chunks` ranges of about as many buckets each; distinct, increasing."""
    buckets = len(bounds) - 1
    chosen: list[str] = []
    for j in range(1, chunks):
        value = bounds[round(j * buckets / chunks)]
        if not chosen or chosen[-1] != value:
            chosen.append(value)
    return chosen


def histogram_boundaries(
    conn: psycopg.Connection[Any], table: str, key: str, key_type: str, every: int
) -> list[list[str]] | None:
    """Keys (as text) that split `table` into ranges of about `every` rows from the statistics
    of its one-column key, or None where they cannot be trusted to (too few rows to be worth it,
    no histogram, a most-common-values list beside it, the heap grown since ANALYZE, more chunks
    wanted than the histogram has buckets)."""
    if key_type.endswith("[]"):
        return None
    regclass = table_identifier(table).as_string(conn)
    row = conn.execute(_STATS_SQL, [regclass, key]).fetchone()
    if row is None:
        return None
    histogram, reltuples, pages_then, pages_now, no_common = row
    rows = int(reltuples)
    if rows < MIN_ROWS or not no_common or pages_now > pages_then * (1 + MAX_GROWTH):
        return None
    chunks = -(-rows // max(1, every))
    # The bounds parsed by the key's own type, back as its text (the form every boundary takes).
    values = [
        str(v)
        for (v,) in conn.execute(
            sql.SQL("SELECT u::text FROM unnest(%s::{}[]) WITH ORDINALITY AS b(u, i) ORDER BY i").format(
                cast_type(key_type)
            ),
            [histogram],
        ).fetchall()
    ]
    if len(values) < 3 or chunks > len(values) - 1:
        return None
    return [[v] for v in picked(values, chunks)] if chunks > 1 else []
