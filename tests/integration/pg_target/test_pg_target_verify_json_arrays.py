"""`migrator verify` on a PostgreSQL target compares arrays of json/jsonb (`json[]`, `jsonb[]`)
element by element as their text, as it does a json/jsonb column (docs/verification.md, "By
checksums, PostgreSQL -> PostgreSQL"): an element whose keys are reordered, whose number lost its
scale, whose whitespace changed (json keeps all three), a JSON null element stored as SQL NULL, a
jsonb number's scale, each is a difference, row by row and by checksums; `--repair` puts the
source's array back. An untouched copy verifies equal both ways, though its elements hold such
text.

The expectation is the tampering itself and the arrays read as text on both sides."""

from __future__ import annotations

from tests.support.pg_target import PgToPg, assert_verifies_equal, assert_verify_finds_and_repairs

# Every element is text json keeps as it is: keys out of order, a number's scale, blanks.
_ELEMENTS = """ARRAY['{"b": 1, "a": 2}', '1.50', '[1,  2]', 'null', NULL]::json[]"""
SCHEMA = (
    "CREATE TABLE public.docs (id integer PRIMARY KEY, ja json[], jb jsonb[], grid json[])",
    f"INSERT INTO docs SELECT g, {_ELEMENTS}, ARRAY['{{\"x\": 1.10}}', 'null']::jsonb[], "
    """'{{"{\\"k\\": 1.0}", "2"}, {"[ ]", null}}'::json[] FROM generate_series(1, 40) g""",
    "INSERT INTO docs VALUES (41, NULL, '{}', NULL)",
)
TAMPER = (
    # keys reordered in one element
    """UPDATE docs SET ja[1] = '{"a": 2, "b": 1}' WHERE id = 2""",
    "UPDATE docs SET ja[2] = '1.5' WHERE id = 3",  # a number's scale
    "UPDATE docs SET ja[3] = '[1, 2]' WHERE id = 4",  # whitespace
    "UPDATE docs SET ja[5] = 'null' WHERE id = 5",  # SQL NULL element -> JSON null
    "UPDATE docs SET jb[1] = '{\"x\": 1.1}' WHERE id = 6",  # jsonb keeps 1.10's scale
    "UPDATE docs SET grid[1][1] = '{\"k\": 1}' WHERE id = 7",  # two dimensions
    "UPDATE docs SET jb = NULL WHERE id = 41",  # an empty array is not SQL NULL
    # A value written again as the very same text: no difference.
    """UPDATE docs SET ja[1] = '{"b": 1, "a": 2}' WHERE id = 8""",
)
# Named down to the element that differs.
EXPECTED = {
    2: ("mismatched", ["ja.0"]),
    3: ("mismatched", ["ja.1"]),
    4: ("mismatched", ["ja.2"]),
    5: ("mismatched", ["ja.4"]),
    6: ("mismatched", ["jb.0"]),
    7: ("mismatched", ["grid.0.0"]),
    41: ("mismatched", ["jb"]),
}


def _rows(pg2pg: PgToPg, side: str) -> list[tuple[object, ...]]:
    query = "SELECT id, ja::text, jb::text, jb IS NULL, grid::text FROM docs ORDER BY id"
    return pg2pg.source_rows(query) if side == "source" else pg2pg.target_rows(query)


def test_verify_compares_json_arrays_element_by_element_as_text(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan("- {from: public.docs}", phases="verify: {chunk_rows: 20}")
    pg2pg.run(plan)
    assert _rows(pg2pg, "target") == _rows(pg2pg, "source")
    assert pg2pg.target_rows("SELECT ja[1]::text, ja[3]::text FROM docs WHERE id = 1") == [
        ('{"b": 1, "a": 2}', "[1,  2]")
    ]
    assert_verifies_equal(pg2pg, plan, 41)

    pg2pg.target(*TAMPER)
    assert_verify_finds_and_repairs(pg2pg, plan, EXPECTED, lambda side: _rows(pg2pg, side))
