"""The `everything` table: a column of every type the conversion table supports (and arrays of
many), with rows of edge values, so that the snapshot and reverse sync are tested on the same
values. `{citext_column}` and `{citext_value}` are filled in (or left empty) depending on whether
the server has the citext extension; `create_everything` does that."""

from __future__ import annotations

from tests.support.docs import Migration

TYPES_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE everything (
    id integer PRIMARY KEY,
    c_smallint smallint, c_integer integer, c_bigint bigint, c_oid oid,
    c_numeric numeric, c_money money, c_real real, c_double double precision,
    c_text text, c_varchar varchar(20), c_char char(5), c_name name, {citext_column}
    c_xml xml, c_bool boolean,
    c_tstz timestamptz, c_ts timestamp, c_date date, c_uuid uuid, c_bytea bytea,
    c_json json, c_jsonb jsonb, c_interval interval, c_time time, c_timetz timetz,
    c_inet inet, c_cidr cidr, c_macaddr macaddr, c_macaddr8 macaddr8, c_bit bit(4), c_varbit varbit,
    c_point point, c_box box, c_int4range int4range, c_tstzrange tstzrange,
    c_enum mood, c_domain posint,
    a_int integer[], a_text text[], a_numeric numeric[], a_tstz timestamptz[], a_enum mood[],
    a_2d integer[][], a_bigint bigint[], a_uuid uuid[], a_date date[], a_bool boolean[], a_domain posint[]
)
"""

ROW_1 = """
INSERT INTO everything VALUES (
    1,
    32767, -2147483648, 9223372036854775807, 4294967295,
    '12345678901234567890.123456789012', '-1234.56', 0.1, 1.5e300,
    'héllo wörld ✓', 'varchar', 'ab', 'a_name', {citext_value}
    '<a x="1">t</a>', true,
    '2024-02-29 23:59:59.123456+02', '2024-01-02 03:04:05.987654', '2024-02-29',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10',
    '{{"b": 1, "a": [1, 2.5, {{"z": null}}], "c": "s"}}', '{{"bb": 1, "a": {{"d": true, "c": 2}}}}',
    '1 year 2 months 3 days 4 hours 5 minutes 6 seconds', '13:14:15.123456', '13:14:15+02',
    '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'1010', B'101',
    '(1.5,2)', '((0,0),(1,2))', '(1,10]', '[2024-01-01 00:00+00,2024-01-02 00:00+00)',
    'happy', 42,
    '{{1,2,NULL}}', '{{"a","b c",NULL,""}}', '{{1.5,NaN,-0.001}}',
    '{{"2024-01-01 00:00:00.999999+00",NULL}}', '{{sad,happy}}',
    '{{{{1,2}},{{3,4}}}}', '{{1,9223372036854775807}}', '{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}',
    '{{2000-01-01}}', '{{true,false,NULL}}', '{{7,8}}'
)
"""

ROW_2 = """
INSERT INTO everything (id, c_smallint, c_integer, c_bigint, c_oid, c_numeric, c_money, c_real, c_double,
                        c_text, c_char, c_tstz, c_ts, c_date, c_json, c_jsonb, c_interval, c_time,
                        c_int4range, a_int, a_text, a_numeric, a_2d)
VALUES (
    2, -32768, 0, 5, 0, 'NaN', '0', '-0', 'Infinity',
    '', '', '1969-12-31 23:59:59.9999+00', '1900-01-01 00:00:00', '0001-01-01',
    '[1, "two", null]', '"scalar"', '-1 day -00:00:01.5', '00:00:00',
    'empty', '{}', '{}', '{Infinity,-Infinity}', '{{NULL,2},{3,NULL}}'
)
"""

ROW_3_MORE_NUMERICS = [
    (3, "'Infinity'"),
    (4, "'-Infinity'"),
    (5, "'0.000000000000000000000000000000000000000000000001'"),  # big scale, one digit
    (6, "'-1234567890123456789012345678901234'"),  # 34 digits, the most Decimal128 holds
    (7, "'1.10'"),  # the scale is kept
    (8, "'1e300'"),  # 301 digits, one of them significant
    (10, "'1.50000000000000000000000000000000000000'"),  # numeric keeps this scale: 39 digits, 2 significant
]


def create_everything(mig: Migration) -> bool:
    """The `everything` table in `mig`'s source with its rows 1 to 10; whether it has c_citext
    (the server has the citext extension)."""
    citext = bool(mig.rows("SELECT 1 FROM pg_available_extensions WHERE name = 'citext'"))
    if citext:
        mig.sql("CREATE EXTENSION IF NOT EXISTS citext")
    mig.sql(
        TYPES_DDL.format(citext_column="c_citext citext," if citext else ""),
        ROW_1.format(citext_value="'MiXeD'," if citext else ""),
        ROW_2,
        *(f"INSERT INTO everything (id, c_numeric) VALUES ({i}, {v})" for i, v in ROW_3_MORE_NUMERICS),
        "INSERT INTO everything (id) VALUES (9)",  # NULL in every nullable column
    )
    return citext
