"""PostgreSQL -> PostgreSQL: `plan` refuses a table keyed by an array or a composite column
(mapping.key_type) in the target's words: a table's row key, never MongoDB's `_id`; and the fix it
gives, run on the source, makes the key refusal go.

The expectation is the wording the PostgreSQL target's vocabulary promises, written out here."""

from __future__ import annotations

import re

from migrator import api
from tests.support.pg_target import PgToPg

SCHEMA = (
    "CREATE TABLE public.by_array (k integer[] PRIMARY KEY, v text)",
    "INSERT INTO by_array VALUES ('{1,2}', 'a')",
    "CREATE TYPE public.pair AS (x int, y int)",
    "CREATE TABLE public.by_pair (k public.pair PRIMARY KEY, v text)",
    "INSERT INTO by_pair VALUES (ROW(1, 2), 'b')",
)
TABLES = "- {from: public.by_array}\n- {from: public.by_pair}"


def test_an_array_or_composite_key_is_refused_in_the_pg_targets_words(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan(TABLES)
    refused = {f.subject: f for f in api.plan(plan, env=pg2pg.env).failures if f.check == "mapping.key_type"}
    assert sorted(refused) == ["public.by_array.k", "public.by_pair.k"], refused
    array, composite = refused["public.by_array.k"], refused["public.by_pair.k"]
    assert array.message == (
        "key column k of type integer[] cannot form the row key of table 'public.by_array' (what CDC, "
        "verify and repair find each row by): a table's rows cannot be keyed by one array column alone"
    ), array.message
    assert composite.message.startswith(
        "key column k of type pair cannot form the row key of table 'public.by_pair' (what CDC, verify and "
        "repair find each row by): composite types have no defined conversion"
    ), composite.message
    for finding in (array, composite):
        words = f"{finding.message} {finding.fix}"
        assert not re.search(r"mongo|\b_id\b|document", words, re.IGNORECASE), words
    # The fix, as written: another primary key, the old one kept unique.
    assert array.fix is not None and composite.fix is not None
    pg2pg.source(array.fix.split(": ", 1)[1], composite.fix.split(": ", 1)[1])
    after = api.plan(plan, env=pg2pg.env).failures
    assert [f for f in after if f.check == "mapping.key_type"] == [], after
