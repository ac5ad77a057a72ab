"""The snapshot's document path into a PostgreSQL target (a table with a `types` cast, so its rows
are decoded and converted rather than copied undecoded) keeps json and jsonb values whose target
column is of the very same type as their text (docs/architecture.md, "Undecoded change values"):
json keeps its key order, its duplicate keys, its numbers' digits and its whitespace; jsonb its
numbers' scale and digits past a double's; a JSON null stays a JSON null (not SQL NULL); arrays of
them (`json[]`, two dimensions too) element by element. The cast column is converted all the same.

The expectation is the source's own text of each value, read with plain psycopg on both sides."""

from __future__ import annotations

from tests.support.pg_target import PgToPg, verify_pg2pg

SCHEMA = (
    "CREATE TABLE public.docs (id integer PRIMARY KEY, flag smallint, j json, jb jsonb, "
    "ja json[], jba jsonb[])",
    """INSERT INTO docs VALUES
    (1, 1, '{"b": 1.50,  "a": 2, "a": 3}', '{"x": 12345678901234567890.5, "y": 1.10, "z": 1e2}',
        ARRAY['{"b":1,"a":2}', ' [1.0 , -0] ', 'null', NULL]::json[],
        ARRAY['{"k": 0.000100}', 'null']::jsonb[]),
    (2, 0, 'null', 'null', '{{"{\\"k\\": 1.0}", "2"}, {"[ ]", null}}', '{}'),
    (3, NULL, NULL, NULL, NULL, NULL),
    (4, 1, '  "text \\u00e9 é"  ', '[{"deep": [1.10, {"e": 2.50}]}]', '{}', NULL)""",
)
TEXT = (
    "SELECT id, flag IS NULL, j IS NULL, j::text, jb IS NULL, jb::text, ja::text, jba::text "
    "FROM docs ORDER BY id"
)


def test_the_document_path_writes_json_values_as_their_text(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan("- {from: public.docs, types: {flag: bool}}")
    pg2pg.run(plan)

    # The cast applied: the rows took the document path.
    assert pg2pg.target_rows("SELECT id, flag FROM docs ORDER BY id") == [
        (1, True),
        (2, False),
        (3, None),
        (4, True),
    ]
    source = pg2pg.source_rows(TEXT)
    assert source[0][3] == '{"b": 1.50,  "a": 2, "a": 3}'  # the source holds what the test wrote
    assert pg2pg.target_rows(TEXT) == source
    report = verify_pg2pg(pg2pg, plan)
    assert (report.verdict, report.totals.equal) == ("equal", 4), report.to_dict()
