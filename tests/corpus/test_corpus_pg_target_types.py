"""PostgreSQL src/test/subscription/t/002_types.pl and 014_binary.pl (publisher side), and the
README's type matrix, moved PostgreSQL -> PostgreSQL (`tables:`) through snapshot and CDC.

The same tables, values and statements as tests/corpus/test_corpus_types.py (the MongoDB target's
module), from tests/support/upstream_types.py: arrays, enums, ranges, a tstzrange read in
TimeZone Europe/Berlin, composites, hstore, array and composite keys, a domain whose check reads
the table, and tst_matrix with every other type of docs/plan.md's table and the values whose text
or binary forms are easy to get wrong; a numeric key changed to an equal value of another scale;
a column with an ICU collation. What `migrator plan` refuses must name the object and a fix that
the database accepts, and the fix, applied, must make the plan pass.

The expectation is the source itself: each table's rows as text on both servers with the same
pinned settings (tests/support/pg_corpus.py), and each column's declared type, NOT NULL and
collation as the source declares them.
"""

from __future__ import annotations

from migrator import api
from migrator.engine.events import ChunkFinished
from migrator.findings import Finding
from tests.support.pg_corpus import PgScenario, Table, pg_scenario_fixture
from tests.support.upstream_types import (
    MATRIX_DDL,
    MATRIX_DELETES,
    MATRIX_UPDATES,
    NUMKEY_UPDATES,
    SORTED_INSERTS,
    SPECIALS,
    UPSTREAM_DDL,
    UPSTREAM_DELETES,
    UPSTREAM_INSERTS,
    UPSTREAM_UPDATES,
    matrix_row,
)

scenario = pg_scenario_fixture("pgtypes")

TABLES = (
    "tst_one_array", "tst_arrays", "tst_one_enum", "tst_enums", "tst_one_comp", "tst_comps", "tst_comp_enum",
    "tst_comp_enum_array", "tst_comp_one_enum_array", "tst_comp_enum_what", "tst_comp_mix_array", "tst_range",
    "tst_range_array", "tst_hstore", "tst_dom_constr", "test_numerical", "test_arrays", "tst_matrix",
    "tst_numkey", "tst_sorted_parent", "tst_sorted_code", "tst_sorted_rank", "tst_sorted_bin",
)  # fmt: skip


def tables(exclude: dict[str, tuple[str, ...]] | None = None) -> list[Table]:
    return [Table(f"public.{t}", (exclude or {}).get(t, ())) for t in TABLES]


# Columns of an open defect (test_07b): the other steps leave them out.
KNOWN: dict[str, tuple[str, ...]] = {}  # no column left out: every defect found here is fixed
# Columns whose types have no conversion: refused, and excluded as the refusals say.
EXCLUDED = {
    "tst_one_comp": ("b",),
    "tst_comp_enum": ("b",),
    "tst_comp_one_enum_array": ("b",),
    "tst_hstore": ("b",),
}
# Tables keyed by an array or a composite: refused (mapping.key_type).
ARRAY_KEYED = (
    "tst_arrays",
    "test_arrays",
    "tst_comps",
    "tst_comp_enum_array",
    "tst_comp_enum_what",
    "tst_comp_mix_array",
)
REFUSALS = {
    *((f"{t}.a", "mapping.key_type") for t in ARRAY_KEYED),
    *((f"{t}.b", "mapping.type_supported") for t in EXCLUDED),
    ("tst_dom_constr", "mapping.table_key"),
    ("tst_dom_constr", "source.replica_identity"),
}
COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, co.collname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND co.collname <> 'default'
WHERE c.relname = ANY(%s) AND c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, a.attnum
"""


def moved() -> list[Table]:
    """The tables the migration moves: not those plan refuses (their refusals and fixes are tests of their own)."""
    return [
        Table(f"public.{t}", EXCLUDED.get(t, ())) for t in TABLES if t not in (*ARRAY_KEYED, "tst_dom_constr")
    ]


def other_plan(scenario: PgScenario, name: str, entries: list[Table]) -> list[Finding]:
    """`migrator plan` of another plan on the same databases: its failures."""
    return list(scenario.preflight_of(entries, name).failures)


def test_01_plan_refuses_what_has_no_conversion_and_the_fixes_pass(scenario: PgScenario) -> None:
    scenario.sql(f"ALTER DATABASE {scenario.database} SET TimeZone = 'Europe/Berlin'")
    scenario.sql(UPSTREAM_DDL, MATRIX_DDL)
    scenario.sql(matrix_row(1), matrix_row(2), *SPECIALS)
    scenario.write_plan(tables())
    report = scenario.preflight()
    found = {(f.subject.removeprefix("public."), f.check): f for f in report.failures}
    assert set(found) == REFUSALS, sorted(found)
    assert all(f.fix for f in found.values()), found
    # The fixes: exclude the columns; the primary key the refusal gives (run as it is written).
    (fix,) = [f.fix for (s, c), f in found.items() if s == "tst_dom_constr" and c == "mapping.table_key"]
    assert fix is not None
    scenario.sql(fix.split(": ", 1)[1].split(" (or", 1)[0])
    scenario.write_plan(moved())
    scenario.assert_plan_ready()


def test_02_snapshot(scenario: PgScenario) -> None:
    scenario.start()
    scenario.assert_same(skip=KNOWN)
    names = [t.name.removeprefix("public.") for t in scenario.tables]
    want = [r for r in scenario.source_rows(COLUMNS_SQL, [names]) if r[1] not in EXCLUDED.get(r[0], ())]
    assert scenario.target_rows(COLUMNS_SQL, [names]) == want


def test_02b_a_table_with_an_enum_copies_undecoded_and_keeps_its_json_text(scenario: PgScenario) -> None:
    """tst_matrix has an enum column: its chunks still move in binary COPY (an enum's binary form is its
    label), which keeps a json value's text, key order and `null` as they are."""
    assert scenario.follower is not None
    forms = {e.collection: e.form for e in scenario.follower.events.of(ChunkFinished)}
    assert forms["public.tst_matrix"] == "postgresql-binary", forms
    scenario.assert_same(only={"public.tst_matrix": ("j", "x", "e")})


def test_03_upstream_inserts(scenario: PgScenario) -> None:
    scenario.step(UPSTREAM_INSERTS, matrix_row(3), matrix_row(4))
    scenario.assert_same(skip=KNOWN)


def test_04_upstream_updates(scenario: PgScenario) -> None:
    scenario.step(
        UPSTREAM_UPDATES,
        *MATRIX_UPDATES,
    )
    scenario.assert_same(skip=KNOWN)


def test_05_upstream_deletes(scenario: PgScenario) -> None:
    scenario.step(UPSTREAM_DELETES, *MATRIX_DELETES)
    scenario.assert_same(skip=KNOWN)


def test_06_numeric_key_changed_to_an_equal_value_of_another_scale(scenario: PgScenario) -> None:
    scenario.step(*NUMKEY_UPDATES)
    scenario.assert_same(skip=KNOWN)


def test_07_collated_and_binary_columns_through_cdc(scenario: PgScenario) -> None:
    scenario.step(
        *SORTED_INSERTS,
        "UPDATE tst_matrix SET x = '<c/>', f8 = 0.5 WHERE x IS NOT NULL",
    )
    scenario.assert_same(skip=KNOWN)
    # The target orders the ICU-collated column as the source does.
    ordered = "SELECT code FROM tst_sorted_code ORDER BY code, id"
    assert scenario.target_rows(ordered) == scenario.source_rows(ordered)


def test_07b_json_keeps_its_text_through_cdc(scenario: PgScenario) -> None:
    scenario.step(
        """INSERT INTO tst_matrix (id, j, jb) VALUES (70, '{"z": 1.5e300, "a": 1}', '{"n": 1.10}'), (71, 'null', 'null')"""
    )
    rows = "SELECT id, j::text, jb::text FROM tst_matrix WHERE id >= 70 ORDER BY id"
    assert scenario.target_rows(rows) == scenario.source_rows(rows)


def test_08_verify_agrees(scenario: PgScenario) -> None:
    report = scenario.verify(skip=KNOWN)
    assert report["verdict"] == "equal", report


def test_09_the_array_and_composite_key_refusals_fixes_make_the_plan_pass(scenario: PgScenario) -> None:
    """A `tables:` entry is keyed by the primary key (it has no `key:`): the fix gives the table one
    that can key its rows, the old key kept unique; a composite column is then refused as any
    other and excluded as that refusal says."""
    entries = [Table("public.tst_arrays"), Table("public.tst_comps")]
    refused = other_plan(scenario, "pgtypes_keys", entries)
    assert [(f.check, f.subject) for f in refused] == [
        ("mapping.key_type", "public.tst_arrays.a"),
        ("mapping.key_type", "public.tst_comps.a"),
    ], refused
    for finding in refused:
        assert finding.fix is not None
        scenario.sql(finding.fix.split(": ", 1)[1])
    refused = other_plan(scenario, "pgtypes_keys", entries)
    assert [(f.check, f.subject) for f in refused] == [
        ("mapping.type_supported", "public.tst_comps.a"),
        ("mapping.type_supported", "public.tst_comps.b"),
    ], refused
    assert all("exclude" in (f.fix or "") for f in refused), refused
    assert other_plan(scenario, "pgtypes_keys", [entries[0], Table("public.tst_comps", ("a", "b"))]) == []


def test_10_a_domain_whose_check_calls_a_function_is_refused_until_the_target_has_it(
    scenario: PgScenario,
) -> None:
    """Upstream's monot_int checks its values with monot_incr, which reads the table: creating the
    domain on a target without the function fails (42883), so `plan` refuses it, naming it, with
    the function's definition to run there first."""
    (refused,) = other_plan(scenario, "pgtypes_domain", [Table("public.tst_dom_constr")])
    assert (refused.check, refused.subject) == ("target.schema", "public.monot_int"), refused
    assert "public.monot_incr(integer)" in refused.message, refused
    assert refused.fix is not None
    scenario.target_sql(refused.fix.split(": ", 1)[1])
    assert other_plan(scenario, "pgtypes_domain", [Table("public.tst_dom_constr")]) == []
    # A run of that plan creates the domain and copies the table.
    api.run(
        scenario.directory / "pgtypes_domain.yaml",
        until="snapshot",
        state=scenario.directory / "domain.db",
        env=scenario.env,
    )
    rows = "SELECT a::text FROM tst_dom_constr ORDER BY a"
    assert scenario.target_rows(rows) == scenario.source_rows(rows) == [("10",), ("11",)]
    checks = (
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = 'public.monot_int'::regtype"
    )
    assert scenario.target_rows(checks) == scenario.source_rows(checks)
