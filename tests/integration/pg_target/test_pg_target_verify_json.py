"""`migrator verify` on a PostgreSQL target sees json/jsonb values that differ as values although
they parse alike (docs/verification.md, "By checksums, PostgreSQL -> PostgreSQL"): a JSON null
stored as SQL NULL, a json value whose text changed (keys reordered), a jsonb number whose scale
changed (1.10 -> 1.1). Each is named with its key and field, and `--repair` puts the source's value
back. An untouched copy holding such values verifies equal, row by row and by checksums.

The expectation is the tampering itself and the source's rows, read as text on both sides."""

from __future__ import annotations

from tests.support.pg_target import PgToPg, assert_verifies_equal, assert_verify_finds_and_repairs

SCHEMA = (
    "CREATE TABLE public.docs (id integer PRIMARY KEY, j jsonb, t json, n jsonb)",
    "INSERT INTO docs SELECT g, 'null', '{\"b\": 1, \"a\": [1.50, null]}', '{\"x\": 1.10}' "
    "FROM generate_series(1, 40) g",
    "INSERT INTO docs VALUES (41, NULL, NULL, NULL)",
)
TAMPER = (
    "UPDATE docs SET j = NULL WHERE id = 2",  # JSON null -> SQL NULL
    'UPDATE docs SET t = \'{"a": [1.50, null], "b": 1}\' WHERE id = 3',  # keys reordered
    "UPDATE docs SET n = '{\"x\": 1.1}' WHERE id = 4",  # jsonb keeps 1.10's scale
    "UPDATE docs SET j = 'null' WHERE id = 41",  # SQL NULL -> JSON null
)
EXPECTED = {
    2: ("mismatched", ["j"]),
    3: ("mismatched", ["t"]),
    4: ("mismatched", ["n"]),
    41: ("mismatched", ["j"]),
}


def _rows(pg2pg: PgToPg, side: str) -> list[tuple[object, ...]]:
    query = "SELECT id, j IS NULL, j::text, t IS NULL, t::text, n::text FROM docs ORDER BY id"
    return pg2pg.source_rows(query) if side == "source" else pg2pg.target_rows(query)


def test_verify_sees_json_values_that_parse_alike_and_repair_puts_them_back(pg2pg: PgToPg) -> None:
    pg2pg.source(*SCHEMA)
    plan = pg2pg.plan("- {from: public.docs}", phases="verify: {chunk_rows: 20}")
    pg2pg.run(plan)
    assert _rows(pg2pg, "target") == _rows(pg2pg, "source")
    assert_verifies_equal(pg2pg, plan, 41)

    pg2pg.target(*TAMPER)
    assert pg2pg.target_rows("SELECT count(*) FROM docs WHERE j IS NULL") == [(1,)]  # row 2 only
    assert_verify_finds_and_repairs(pg2pg, plan, EXPECTED, lambda side: _rows(pg2pg, side))
