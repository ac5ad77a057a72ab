"""PostgreSQL src/test/subscription/t/002_types.pl and 014_binary.pl (publisher side), and the
README's type matrix, moved PostgreSQL -> PostgreSQL (`tables:`) through snapshot and CDC.

The same tables, values and statements as tests/corpus/test_corpus_types.py (the MongoDB target's
module; copied, since no test module imports another): arrays, enums, ranges, a tstzrange read in
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

import json

import pytest

from migrator import api
from migrator.engine.events import ChunkFinished
from migrator.findings import Finding
from tests.support.pg_corpus import PgScenario, Table, pg_scenario_fixture

scenario = pg_scenario_fixture("pgtypes")

UPSTREAM_DDL = """
CREATE EXTENSION hstore WITH SCHEMA public;
CREATE TABLE public.tst_one_array (a INTEGER PRIMARY KEY, b INTEGER[]);
CREATE TABLE public.tst_arrays (a INTEGER[] PRIMARY KEY, b TEXT[], c FLOAT[], d INTERVAL[]);
CREATE TYPE public.tst_enum_t AS ENUM ('a', 'b', 'c', 'd', 'e');
CREATE TABLE public.tst_one_enum (a INTEGER PRIMARY KEY, b public.tst_enum_t);
CREATE TABLE public.tst_enums (a public.tst_enum_t PRIMARY KEY, b public.tst_enum_t[]);
CREATE TYPE public.tst_comp_basic_t AS (a FLOAT, b TEXT, c INTEGER);
CREATE TYPE public.tst_comp_enum_t AS (a FLOAT, b public.tst_enum_t, c INTEGER);
CREATE TYPE public.tst_comp_enum_array_t AS (a FLOAT, b public.tst_enum_t[], c INTEGER);
CREATE TABLE public.tst_one_comp (a INTEGER PRIMARY KEY, b public.tst_comp_basic_t);
CREATE TABLE public.tst_comps (a public.tst_comp_basic_t PRIMARY KEY, b public.tst_comp_basic_t[]);
CREATE TABLE public.tst_comp_enum (a INTEGER PRIMARY KEY, b public.tst_comp_enum_t);
CREATE TABLE public.tst_comp_enum_array (a public.tst_comp_enum_t PRIMARY KEY, b public.tst_comp_enum_t[]);
CREATE TABLE public.tst_comp_one_enum_array (a INTEGER PRIMARY KEY, b public.tst_comp_enum_array_t);
CREATE TABLE public.tst_comp_enum_what (a public.tst_comp_enum_array_t PRIMARY KEY, b public.tst_comp_enum_array_t[]);
CREATE TYPE public.tst_comp_mix_t AS (
    a public.tst_comp_basic_t, b public.tst_comp_basic_t[], c public.tst_enum_t, d public.tst_enum_t[]);
CREATE TABLE public.tst_comp_mix_array (a public.tst_comp_mix_t PRIMARY KEY, b public.tst_comp_mix_t[]);
CREATE TABLE public.tst_range (a INTEGER PRIMARY KEY, b int4range);
CREATE TABLE public.tst_range_array (a INTEGER PRIMARY KEY, b TSTZRANGE, c int8range[]);
CREATE TABLE public.tst_hstore (a INTEGER PRIMARY KEY, b public.hstore);
SET check_function_bodies = off;
CREATE FUNCTION public.monot_incr(int) RETURNS bool LANGUAGE sql
    AS ' select $1 > max(a) from public.tst_dom_constr; ';
CREATE DOMAIN monot_int AS int CHECK (monot_incr(VALUE));
CREATE TABLE public.tst_dom_constr (a monot_int);
-- 014_binary.pl
CREATE TABLE public.test_numerical (a INTEGER PRIMARY KEY, b NUMERIC, c FLOAT, d BIGINT);
CREATE TABLE public.test_arrays (a INTEGER[] PRIMARY KEY, b NUMERIC[], c TEXT[]);
INSERT INTO public.test_numerical (a, b, c, d) VALUES (1, 1.2, 1.3, 10), (2, 2.2, 2.3, 20);
INSERT INTO public.test_arrays (a, b, c) VALUES
    ('{1,2,3}', '{1.1, 1.2, 1.3}', '{"one", "two", "three"}'), ('{3,1,2}', '{1.3, 1.1, 1.2}', '{"three", "one", "two"}');
"""

MATRIX_DDL = """
CREATE TABLE tst_matrix (
    id int PRIMARY KEY, f4 real, f8 double precision, n numeric(12,4), n_free numeric, m money,
    ts timestamp, tstz timestamptz, d date, t time, ttz timetz, iv interval,
    ip inet, net cidr, mac macaddr, mac8 macaddr8, bits bit(8), vbits varbit,
    x xml, j json, jb jsonb, u uuid, by bytea, c char(5), vc varchar(10), nm name,
    pt point, bx box, cr circle, rg tstzrange, dr daterange,
    arr_ts timestamptz[], arr_num numeric[], arr_inet inet[], arr2d int[], e tst_enum_t);
CREATE TABLE tst_numkey (k numeric PRIMARY KEY, v text);
INSERT INTO tst_numkey VALUES (1.0, 'one'), (2.50, 'two-fifty');
CREATE TABLE tst_sorted_parent (id int PRIMARY KEY, name text);
CREATE TABLE tst_sorted_code (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES tst_sorted_parent,
    code text COLLATE "en-x-icu" NOT NULL);
CREATE TABLE tst_sorted_rank (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES tst_sorted_parent, rank int);
INSERT INTO tst_sorted_parent VALUES (1, 'one'), (2, 'two');
INSERT INTO tst_sorted_code VALUES (1, 1, 'b'), (2, 1, 'B'), (3, 1, 'a'), (4, 1, 'Ä'), (5, 1, 'é'), (6, 1, 'Z');
INSERT INTO tst_sorted_rank VALUES (1, 1, 2), (2, 1, NULL), (3, 1, 1), (4, 2, NULL);
CREATE TABLE tst_sorted_bin (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES tst_sorted_parent, tag bytea NOT NULL,
    amount numeric NOT NULL);
INSERT INTO tst_sorted_bin VALUES (1, 1, '\\x0000', 10), (2, 1, '\\x01', 1.50), (3, 1, '\\xff', 2), (4, 1, '\\x00', 1.5);
"""


def matrix_row(i: int) -> str:
    """One tst_matrix row; `i` varies the values so that CDC rows differ from snapshot rows."""
    return f"""INSERT INTO tst_matrix VALUES ({i},
        1.1, 0.1, 1.1000, 'NaN', 12.34,
        '2024-02-29 12:34:56.789{i % 10}23', '2024-02-29 12:34:56.789{i % 10}23+05:30', '2024-02-29',
        '23:59:59.99999{i % 10}', '04:05:06+05:30', '1 year 2 mons 3 days 04:05:06.5',
        '192.168.0.{i}/32', '10.{i}.0.0/16', '08:00:2b:01:02:0{i % 10}', '08:00:2b:01:02:03:04:0{i % 10}',
        B'1010101{i % 2}', B'101',
        '<?xml version="1.0"?><a b="{i}">x &amp; y</a>', '{{"b": {i}, "a": [1, 2.5, null, true, "x"], "big": 12345678901, "f": 1.0}}',
        '{{"b": {i}, "aa": {{"y": 1, "x": 2}}, "f": 1.0, "neg": -0}}',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a{i:02d}', '\\x00ff{i:02x}', 'ab', 'vc{i}', 'name{i}',
        '(1.5,{i})', '(1,1),(0,0)', '<(0,0),{i}>', '[2024-03-31 01:30:00+01,2024-10-27 02:30:00+01)',
        '[2024-01-01,2024-02-01)',
        '{{"2024-02-29 12:34:56.789123+00",NULL}}', '{{1.10,NaN,-0.0}}', '{{192.168.0.1/32,::ffff:1.2.3.{i}}}',
        '{{1,NULL,3}}', 'c')"""


SPECIALS = (
    "INSERT INTO tst_matrix (id, f4, f8, n_free, ip, iv, j) VALUES"
    " (90, 'NaN', 'Infinity', 'Infinity', '::ffff:10.0.0.1', '-1 day', '[]'),"
    " (91, '-Infinity', '-0', '-Infinity', '2001:db8::1/64', '0', '\"s\"'),"
    " (92, 3.4028235e38, 'NaN', 0.00001, '10.0.0.1/8', '1 day -1 hour', 'null')",
    "INSERT INTO tst_matrix (id) VALUES (99)",  # every column NULL
)

UPSTREAM_INSERTS = r"""
INSERT INTO tst_one_array (a, b) VALUES (1, '{1, 2, 3}'), (2, '{2, 3, 1}'), (3, '{3, 2, 1}'), (4, '{4, 3, 2}'), (5, '{5, NULL, 3}');
INSERT INTO tst_arrays (a, b, c, d) VALUES
    ('{1, 2, 3}', '{"a", "b", "c"}', '{1.1, 2.2, 3.3}', '{"1 day", "2 days", "3 days"}'),
    ('{2, 3, 1}', '{"b", "c", "a"}', '{2.2, 3.3, 1.1}', '{"2 minutes", "3 minutes", "1 minute"}'),
    ('{3, 1, 2}', '{"c", "a", "b"}', '{3.3, 1.1, 2.2}', '{"3 years", "1 year", "2 years"}'),
    ('{4, 1, 2}', '{"d", "a", "b"}', '{4.4, 1.1, 2.2}', '{"4 years", "1 year", "2 years"}'),
    ('{5, NULL, NULL}', '{"e", NULL, "b"}', '{5.5, 1.1, NULL}', '{"5 years", NULL, NULL}');
INSERT INTO tst_one_enum (a, b) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, NULL);
INSERT INTO tst_enums (a, b) VALUES ('a', '{b, c}'), ('b', '{c, a}'), ('c', '{b, a}'), ('d', '{c, b}'), ('e', '{d, NULL}');
INSERT INTO tst_one_comp (a, b) VALUES (1, ROW(1.0, 'a', 1)), (2, ROW(2.0, 'b', 2)), (3, ROW(3.0, 'c', 3)),
    (4, ROW(4.0, 'd', 4)), (5, ROW(NULL, NULL, 5));
INSERT INTO tst_comps (a, b) VALUES
    (ROW(1.0, 'a', 1), ARRAY[ROW(1, 'a', 1)::tst_comp_basic_t]),
    (ROW(2.0, 'b', 2), ARRAY[ROW(2, 'b', 2)::tst_comp_basic_t]),
    (ROW(3.0, 'c', 3), ARRAY[ROW(3, 'c', 3)::tst_comp_basic_t]),
    (ROW(4.0, 'd', 4), ARRAY[ROW(4, 'd', 3)::tst_comp_basic_t]),
    (ROW(5.0, 'e', NULL), ARRAY[NULL, ROW(5, NULL, 5)::tst_comp_basic_t]);
INSERT INTO tst_comp_enum (a, b) VALUES (1, ROW(1.0, 'a', 1)), (2, ROW(2.0, 'b', 2)), (3, ROW(3.0, 'c', 3)),
    (4, ROW(4.0, 'd', 4)), (5, ROW(NULL, 'e', NULL));
INSERT INTO tst_comp_enum_array (a, b) VALUES
    (ROW(1.0, 'a', 1), ARRAY[ROW(1, 'a', 1)::tst_comp_enum_t]),
    (ROW(2.0, 'b', 2), ARRAY[ROW(2, 'b', 2)::tst_comp_enum_t]),
    (ROW(3.0, 'c', 3), ARRAY[ROW(3, 'c', 3)::tst_comp_enum_t]),
    (ROW(4.0, 'd', 3), ARRAY[ROW(3, 'd', 3)::tst_comp_enum_t]),
    (ROW(5.0, 'e', 3), ARRAY[ROW(3, 'e', 3)::tst_comp_enum_t, NULL]);
INSERT INTO tst_comp_one_enum_array (a, b) VALUES (1, ROW(1.0, '{a, b, c}', 1)), (2, ROW(2.0, '{a, b, c}', 2)),
    (3, ROW(3.0, '{a, b, c}', 3)), (4, ROW(4.0, '{c, b, d}', 4)), (5, ROW(5.0, '{NULL, e, NULL}', 5));
INSERT INTO tst_comp_enum_what (a, b) VALUES
    (ROW(1.0, '{a, b, c}', 1), ARRAY[ROW(1, '{a, b, c}', 1)::tst_comp_enum_array_t]),
    (ROW(2.0, '{b, c, a}', 2), ARRAY[ROW(2, '{b, c, a}', 1)::tst_comp_enum_array_t]),
    (ROW(3.0, '{c, a, b}', 1), ARRAY[ROW(3, '{c, a, b}', 1)::tst_comp_enum_array_t]),
    (ROW(4.0, '{c, b, d}', 4), ARRAY[ROW(4, '{c, b, d}', 4)::tst_comp_enum_array_t]),
    (ROW(5.0, '{c, NULL, b}', NULL), ARRAY[ROW(5, '{c, e, b}', 1)::tst_comp_enum_array_t]);
INSERT INTO tst_comp_mix_array (a, b) VALUES
    (ROW(ROW(1,'a',1), ARRAY[ROW(1,'a',1)::tst_comp_basic_t, ROW(2,'b',2)::tst_comp_basic_t], 'a', '{a,b,NULL,c}'),
     ARRAY[ROW(ROW(1,'a',1), ARRAY[ROW(1,'a',1)::tst_comp_basic_t, ROW(2,'b',2)::tst_comp_basic_t, NULL], 'a',
     '{a,b,c}')::tst_comp_mix_t]);
INSERT INTO tst_range (a, b) VALUES (1, '[1, 10]'), (2, '[2, 20]'), (3, '[3, 30]'), (4, '[4, 40]'), (5, '[5, 50]');
INSERT INTO tst_range_array (a, b, c) VALUES
    (1, tstzrange('Mon Aug 04 00:00:00 2014 CEST'::timestamptz, 'infinity'), '{"[1,2]", "[10,20]"}'),
    (2, tstzrange('Sat Aug 02 00:00:00 2014 CEST'::timestamptz, 'Mon Aug 04 00:00:00 2014 CEST'::timestamptz), '{"[2,3]", "[20,30]"}'),
    (3, tstzrange('Fri Aug 01 00:00:00 2014 CEST'::timestamptz, 'Mon Aug 04 00:00:00 2014 CEST'::timestamptz), '{"[3,4]"}'),
    (4, tstzrange('Thu Jul 31 00:00:00 2014 CEST'::timestamptz, 'Mon Aug 04 00:00:00 2014 CEST'::timestamptz), '{"[4,5]", NULL, "[40,50]"}'),
    (5, NULL, NULL);
INSERT INTO tst_hstore (a, b) VALUES (1, '"a"=>"1"'), (2, '"zzz"=>"foo"'), (3, '"123"=>"321"'), (4, '"yellow horse"=>"moaned"');
INSERT INTO tst_dom_constr VALUES (10);
INSERT INTO public.test_numerical (a, b, c, d) VALUES (3, 3.2, 3.3, 30), (4, 4.2, 4.3, 40);
INSERT INTO public.test_arrays (a, b, c) VALUES
    ('{2,1,3}', '{1.2, 1.1, 1.3}', '{"two", "one", "three"}'), ('{1,3,2}', '{1.1, 1.3, 1.2}', '{"one", "three", "two"}');
"""

UPSTREAM_UPDATES = r"""
UPDATE tst_one_array SET b = '{4, 5, 6}' WHERE a = 1;
UPDATE tst_one_array SET b = '{4, 5, 6, 1}' WHERE a > 3;
UPDATE tst_arrays SET b = '{"1a", "2b", "3c"}', c = '{1.0, 2.0, 3.0}', d = '{"1 day 1 second", "2 days 2 seconds", "3 days 3 second"}' WHERE a = '{1, 2, 3}';
UPDATE tst_arrays SET b = '{"c", "d", "e"}', c = '{3.0, 4.0, 5.0}', d = '{"3 day 1 second", "4 days 2 seconds", "5 days 3 second"}' WHERE a[1] > 3;
UPDATE tst_one_enum SET b = 'c' WHERE a = 1;
UPDATE tst_one_enum SET b = NULL WHERE a > 3;
UPDATE tst_enums SET b = '{e, NULL}' WHERE a = 'a';
UPDATE tst_enums SET b = '{e, d}' WHERE a > 'c';
UPDATE tst_one_comp SET b = ROW(1.0, 'A', 1) WHERE a = 1;
UPDATE tst_one_comp SET b = ROW(NULL, 'x', -1) WHERE a > 3;
UPDATE tst_comps SET b = ARRAY[ROW(9, 'x', -1)::tst_comp_basic_t] WHERE (a).a = 1.0;
UPDATE tst_comps SET b = ARRAY[NULL, ROW(9, 'x', NULL)::tst_comp_basic_t] WHERE (a).a > 3.9;
UPDATE tst_comp_enum SET b = ROW(1.0, NULL, NULL) WHERE a = 1;
UPDATE tst_comp_enum SET b = ROW(4.0, 'd', 44) WHERE a > 3;
UPDATE tst_comp_enum_array SET b = ARRAY[NULL, ROW(3, 'd', 3)::tst_comp_enum_t] WHERE a = ROW(1.0, 'a', 1)::tst_comp_enum_t;
UPDATE tst_comp_enum_array SET b = ARRAY[ROW(1, 'a', 1)::tst_comp_enum_t, ROW(2, 'b', 2)::tst_comp_enum_t] WHERE (a).a > 3;
UPDATE tst_comp_one_enum_array SET b = ROW(1.0, '{a, e, c}', NULL) WHERE a = 1;
UPDATE tst_comp_one_enum_array SET b = ROW(4.0, '{c, b, d}', 4) WHERE a > 3;
UPDATE tst_comp_enum_what SET b = ARRAY[NULL, ROW(1, '{a, b, c}', 1)::tst_comp_enum_array_t, ROW(NULL, '{a, e, c}', 2)::tst_comp_enum_array_t] WHERE (a).a = 1;
UPDATE tst_comp_enum_what SET b = ARRAY[ROW(5, '{a, b, c}', 5)::tst_comp_enum_array_t] WHERE (a).a > 3;
UPDATE tst_comp_mix_array SET b[2] = NULL WHERE ((a).a).a = 1;
UPDATE tst_range SET b = '[100, 1000]' WHERE a = 1;
UPDATE tst_range SET b = '(1, 90)' WHERE a > 3;
UPDATE tst_range_array SET c = '{"[100, 1000]"}' WHERE a = 1;
UPDATE tst_range_array SET b = tstzrange('Mon Aug 04 00:00:00 2014 CEST'::timestamptz, 'infinity'), c = '{NULL, "[11,9999999]"}' WHERE a > 3;
UPDATE tst_hstore SET b = '"updated"=>"value"' WHERE a < 3;
UPDATE tst_hstore SET b = '"also"=>"updated"' WHERE a = 3;
UPDATE public.test_numerical SET b = 42, c = NULL;
UPDATE public.test_arrays SET b[1] = 42, c = NULL;
"""

UPSTREAM_DELETES = r"""
DELETE FROM tst_one_array WHERE a = 1;
DELETE FROM tst_one_array WHERE b = '{2, 3, 1}';
DELETE FROM tst_arrays WHERE a = '{1, 2, 3}';
DELETE FROM tst_arrays WHERE a[1] = 2;
DELETE FROM tst_one_enum WHERE a = 1;
DELETE FROM tst_one_enum WHERE b = 'b';
DELETE FROM tst_enums WHERE a = 'a';
DELETE FROM tst_enums WHERE b[1] = 'b';
DELETE FROM tst_one_comp WHERE a = 1;
DELETE FROM tst_one_comp WHERE (b).a = 2.0;
DELETE FROM tst_comps WHERE (a).b = 'a';
DELETE FROM tst_comps WHERE ROW(3, 'c', 3)::tst_comp_basic_t = ANY(b);
DELETE FROM tst_comp_enum WHERE a = 1;
DELETE FROM tst_comp_enum WHERE (b).a = 2.0;
DELETE FROM tst_comp_enum_array WHERE a = ROW(1.0, 'a', 1)::tst_comp_enum_t;
DELETE FROM tst_comp_enum_array WHERE ROW(3, 'c', 3)::tst_comp_enum_t = ANY(b);
DELETE FROM tst_comp_one_enum_array WHERE a = 1;
DELETE FROM tst_comp_one_enum_array WHERE 'a' = ANY((b).b);
DELETE FROM tst_comp_enum_what WHERE (a).a = 1;
DELETE FROM tst_comp_enum_what WHERE (b[1]).b = '{c, a, b}';
DELETE FROM tst_comp_mix_array WHERE ((a).a).a = 1;
DELETE FROM tst_range WHERE a = 1;
DELETE FROM tst_range WHERE '[10,20]' && b;
DELETE FROM tst_range_array WHERE a = 1;
DELETE FROM tst_range_array WHERE tstzrange('Mon Aug 04 00:00:00 2014 CEST'::timestamptz, 'Mon Aug 05 00:00:00 2014 CEST'::timestamptz) && b;
DELETE FROM tst_hstore WHERE a = 1;
"""


TABLES = (
    "tst_one_array", "tst_arrays", "tst_one_enum", "tst_enums", "tst_one_comp", "tst_comps", "tst_comp_enum",
    "tst_comp_enum_array", "tst_comp_one_enum_array", "tst_comp_enum_what", "tst_comp_mix_array", "tst_range",
    "tst_range_array", "tst_hstore", "tst_dom_constr", "test_numerical", "test_arrays", "tst_matrix",
    "tst_numkey", "tst_sorted_parent", "tst_sorted_code", "tst_sorted_rank", "tst_sorted_bin",
)  # fmt: skip


def tables(exclude: dict[str, tuple[str, ...]] | None = None) -> list[Table]:
    return [Table(f"public.{t}", (exclude or {}).get(t, ())) for t in TABLES]


# Columns of an open defect (test_07b): the other steps leave them out.
KNOWN = {"public.tst_matrix": ("j",)}
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
    """The tables the migration moves: not those of an open defect (their own xfail tests)."""
    return [
        Table(f"public.{t}", EXCLUDED.get(t, ())) for t in TABLES if t not in (*ARRAY_KEYED, "tst_dom_constr")
    ]


def other_plan(scenario: PgScenario, name: str, entries: list[Table]) -> list[Finding]:
    """`migrator plan` of another plan on the same databases: its failures."""
    path = scenario.directory / f"{name}.yaml"
    text = json.loads(scenario.plan_path.read_text())
    text.update(name=name, tables=[t.plan_entry() for t in entries])
    path.write_text(json.dumps(text))
    return list(api.plan(path, env=scenario.env).failures)


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
    scenario.sql(fix.split("(", 1)[1].rsplit(")", 1)[0].replace("(...)", "(a)"))
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
        "UPDATE tst_matrix SET f4 = 2.2, ip = '::ffff:5.6.7.8', x = '<b/>', n = 7.5 WHERE id IN (1, 3)",
        "UPDATE tst_matrix SET j = '{\"z\": 1.5e300}', iv = '-1 year -2 mons', tstz = '1999-12-31 23:59:59.9999+00' WHERE id = 2",
    )
    scenario.assert_same(skip=KNOWN)


def test_05_upstream_deletes(scenario: PgScenario) -> None:
    scenario.step(
        UPSTREAM_DELETES, "INSERT INTO tst_dom_constr VALUES (11)", "DELETE FROM tst_matrix WHERE id = 4"
    )
    scenario.assert_same(skip=KNOWN)


def test_06_numeric_key_changed_to_an_equal_value_of_another_scale(scenario: PgScenario) -> None:
    scenario.step(
        "UPDATE tst_numkey SET k = 1.00 WHERE k = 1.0", "UPDATE tst_numkey SET v = 'changed' WHERE k = 2.5"
    )
    scenario.assert_same(skip=KNOWN)


def test_07_collated_and_binary_columns_through_cdc(scenario: PgScenario) -> None:
    scenario.step(
        "INSERT INTO tst_sorted_code VALUES (7, 1, 'A'), (8, 1, 'ä'), (9, 2, 'x')",
        "INSERT INTO tst_sorted_rank VALUES (5, 1, 0), (6, 2, 1), (7, 2, NULL)",
        "INSERT INTO tst_sorted_bin VALUES (5, 1, '\\x0001', 1.500), (6, 1, '\\x02', 9.99)",
        "UPDATE tst_matrix SET x = '<c/>', f8 = 0.5 WHERE x IS NOT NULL",
    )
    scenario.assert_same(skip=KNOWN)
    # The target orders the ICU-collated column as the source does.
    ordered = "SELECT code FROM tst_sorted_code ORDER BY code, id"
    assert scenario.target_rows(ordered) == scenario.source_rows(ordered)


@pytest.mark.xfail(
    strict=True,
    reason="defect: CDC applies json and jsonb values as the source's change parser read them (Python values), "
    "so on a PostgreSQL target a value written while CDC follows loses its text: json keys reordered and "
    "1.5e300 written out in 301 digits, a number's scale lost in json and jsonb alike (1.10 -> 1.1), and a "
    "JSON null stored as SQL NULL; verify calls the rows equal (the snapshot's binary COPY keeps them)",
)
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
