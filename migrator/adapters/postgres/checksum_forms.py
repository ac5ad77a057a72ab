"""The forms a PostgreSQL server hashes a table's rows in (adapters/base.py RangeChecksums.forms;
docs/architecture.md, "Verify by checksums").

Every form hashes a row over its text, `ROW(columns)::text`. Two servers give one row the same
text when the columns have the same declared types and the session settings that shape text
output are the same: they are pinned for every hash (time zone, date and interval styles, float
digits, bytea and money output), on a source and on a PostgreSQL target alike. Float output is
the shortest exact text from PostgreSQL 12 on (extra_float_digits > 0), the one change of text
output between major versions that a hash would see; earlier servers form a family each.

Two hashes over that text, the faster first:

- `sum-hashtext-1`: count(*) and the sum of each row's `hashtextextended(text COLLATE "C", 0)`
  (64 bits; the sum is exact, in numeric): no order, no sort, no string built, about half the
  server time of the md5 form a range. hashtextextended is PostgreSQL's own hash of bytes, which
  a build may compute otherwise (its word reads follow the machine's byte order), so the form
  carries a probe: the hashes of every prefix of a fixed non-ASCII string, which both servers
  must give alike. Offered from PostgreSQL 11 (hashtextextended) on a UTF8 database (the
  probe's text is UTF8).
- `md5-rowtext-1`: the md5 of the rows' `md5(text)` in key order, offered by every server: the
  form two servers fall back to when one of them has no sum form or their probes differ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from migrator.adapters.postgres.inspect import table_identifier

SUM = "sum-hashtext-1"
MD5 = "md5-rowtext-1"
# Settings that shape the text output of values, as every hash reads them (SET LOCAL).
PINNED = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
    ("xmlbinary", "base64"),
)
# From this version on, text output (floats: the shortest exact text) is one family.
SHORTEST_FLOATS = 120000
# hashtextextended, which the sum form hashes rows with.
HASHTEXT_EXTENDED = 110000
# The probe's text: multi-byte characters of 2, 3 and 4 bytes, and prefixes of every length
# (the hash reads 12 bytes at a time, then a tail of 0 to 11).
PROBE_TEXT = "migrator probe: Grüße, ǅ, Ωμέγα, 東京, 😀 — ∑ 0123456789"

_SERVER_SQL = """
SELECT current_setting('server_version_num')::int, pg_encoding_to_char(d.encoding), d.datcollate
FROM pg_database d WHERE d.datname = current_database()
"""
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation = 0 THEN NULL WHEN c.collname = 'default' THEN '' ELSE c.collname END
FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""
_PROBE_SQL = """
SELECT md5(string_agg(hashtextextended(left(p, n) COLLATE "C", n)::text, ',' ORDER BY n))
FROM (SELECT %s::text AS p) probe, generate_series(0, length(p)) n
"""


def probe(conn: psycopg.Connection[Any]) -> str:
    """What this server's hashtextextended gives for the probe's prefixes (one md5)."""
    row = conn.execute(_PROBE_SQL, [PROBE_TEXT]).fetchone()
    assert row is not None
    return str(row[0])


def forms_of(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], key: Sequence[str]
) -> list[str]:
    """The forms this server hashes `columns` of `table` in, the fastest first
    (RangeChecksums.forms); none when the table or one of the columns is not there."""
    row = conn.execute(_SERVER_SQL).fetchone()
    assert row is not None, "the current database has no pg_database row"
    version, encoding, default_collation = int(row[0]), str(row[1]), str(row[2])
    found = {
        str(name): (str(declared), collation)
        for name, declared, collation in conn.execute(
            _COLUMNS_SQL, [table_identifier(table).as_string(conn)]
        ).fetchall()
    }
    if any(c not in found for c in columns):
        return []
    common = {
        "family": "12+" if version >= SHORTEST_FLOATS else str(version // 100),
        "encoding": encoding,
        "settings": dict(PINNED),
        "types": [found[c][0] for c in columns],
        # Key order decides which rows a range holds (and, in the md5 form, the order of the
        # hashes in a digest).
        "key_collations": [default_collation if found[k][1] == "" else found[k][1] for k in key],
    }
    forms = []
    if version >= HASHTEXT_EXTENDED and encoding == "UTF8":
        forms.append(json.dumps({**common, "hash": SUM, "probe": probe(conn)}, sort_keys=True))
    forms.append(json.dumps({**common, "hash": MD5}, sort_keys=True))
    return forms


def hash_of(form: str) -> str:
    """The hash a form names (SUM or MD5)."""
    name = json.loads(form)["hash"]
    if name not in (SUM, MD5):
        raise ValueError(f"unknown checksum form {name!r}")
    return str(name)
