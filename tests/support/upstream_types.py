"""PostgreSQL src/test/subscription/t/002_types.pl and 014_binary.pl (publisher side), and the
README's type matrix: the tables, values and statements the corpus runs into each target
(tests/corpus/test_corpus_types.py for MongoDB, test_corpus_pg_target_types.py for PostgreSQL).

`tst_matrix` holds every other type of docs/plan.md's table with the values whose text or binary
forms are easy to get wrong (IPv4-mapped IPv6, /32 hosts, xml with a declaration, microseconds,
numeric scale, NaN and infinities, json numbers); `tst_numkey` a numeric key; `tst_sorted_*` an
ICU-collated text, a column with NULLs, bytea and numeric.
"""

from __future__ import annotations

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


# Beyond upstream, written with upstream's updates and deletes, and a numeric key changed to an
# equal value of another scale.
MATRIX_UPDATES = (
    "UPDATE tst_matrix SET f4 = 2.2, ip = '::ffff:5.6.7.8', x = '<b/>', n = 7.5 WHERE id IN (1, 3)",
    "UPDATE tst_matrix SET j = '{\"z\": 1.5e300}', iv = '-1 year -2 mons', tstz = '1999-12-31 23:59:59.9999+00' WHERE id = 2",
)
MATRIX_DELETES = ("INSERT INTO tst_dom_constr VALUES (11)", "DELETE FROM tst_matrix WHERE id = 4")
NUMKEY_UPDATES = (
    "UPDATE tst_numkey SET k = 1.00 WHERE k = 1.0",
    "UPDATE tst_numkey SET v = 'changed' WHERE k = 2.5",
)
SORTED_INSERTS = (
    "INSERT INTO tst_sorted_code VALUES (7, 1, 'A'), (8, 1, 'ä'), (9, 2, 'x')",
    "INSERT INTO tst_sorted_rank VALUES (5, 1, 0), (6, 2, 1), (7, 2, NULL)",
    "INSERT INTO tst_sorted_bin VALUES (5, 1, '\\x0001', 1.500), (6, 1, '\\x02', 9.99)",
)
