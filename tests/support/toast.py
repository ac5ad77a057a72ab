"""Values PostgreSQL stores out of line (TOASTed): the SQL function that makes them, and a
check that a table's rows really are stored that way."""

from __future__ import annotations

from tests.support.docs import Migration

# 3200 characters of hex digits: no repeats for pglz to find, and SET STORAGE EXTERNAL keeps it
# uncompressed anyway, so any row holding one is stored out of line (TOASTed).
BIG_FUNCTION = """
CREATE FUNCTION big(seed text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT string_agg(md5(seed || ':' || i), '' ORDER BY i) FROM generate_series(1, 100) AS i $$
"""


def toasted_rows(mig: Migration, table: str) -> int:
    """Rows in the table's TOAST relation: proves the big values are stored out of line."""
    ((toast,),) = mig.rows(
        "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = %s::regclass", [table]
    )
    return int(mig.rows(f"SELECT count(*) FROM {toast}")[0][0])
