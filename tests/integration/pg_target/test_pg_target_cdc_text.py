"""PostgreSQL -> PostgreSQL change capture with values passed through as the source's text
(docs/architecture.md, "Undecoded change values"): every column of the same type on both sides and
not cast by the plan reaches the target undecoded, through the staging COPY (many rows of a table
in a batch) and through statements (a few rows, a key change), and the target holds exactly the
source's values: NULLs, text that COPY must escape, arrays with NULLs and quotes, bytea, numeric
and float specials, dates beyond Python's, timestamps, intervals, json and jsonb, and TOASTed values
an update left unchanged. A column the plan casts (`types`) is still converted.

The expectation is the source itself: `SELECT t::text` of every row on both servers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from migrator.adapters.base import SourceText
from migrator.adapters.postgres_target import rows
from tests.support.pg_target import PgToPg

COLUMNS = {
    "i2": "smallint",
    "i8": "bigint",
    "num": "numeric",
    "num_scaled": "numeric(12,4)",
    "r4": "real",
    "f8": "double precision",
    "flag": "boolean",
    "txt": "text",
    "vc": "varchar(20)",
    "ch": "char(5)",
    "bin": "bytea",
    "js": "json",
    "jb": "jsonb",
    "d": "date",
    "ts": "timestamp",
    "tstz": "timestamptz",
    "tm": "time",
    "tmtz": "timetz",
    "iv": "interval",
    "u": "uuid",
    "ip": "inet",
    "net": "cidr",
    "mac": "macaddr",
    "bits": "bit(4)",
    "vbits": "varbit",
    "pt": "point",
    "ints": "integer[]",
    "texts": "text[]",
    "nums": "numeric[]",
    "stamps": "timestamptz[]",
    "grid": "integer[][]",
    "jbs": "jsonb[]",
    "bins": "bytea[]",
    "big": "text",  # stored out of line: an update that leaves it unchanged does not send it
}
SCHEMA = (
    "CREATE TABLE public.everything (id integer PRIMARY KEY, "
    + ", ".join(f"{name} {declared}" for name, declared in COLUMNS.items())
    + ")",
    "ALTER TABLE everything ALTER COLUMN big SET STORAGE EXTERNAL",
    "ALTER TABLE everything ALTER COLUMN bins SET STORAGE EXTERNAL",
)

# Values that try the text form: one row each, every other column NULL. Two sets, one a
# transaction of many rows (staged by COPY) and one of a few (statements).
TRICKY: list[dict[str, str]] = [
    {"txt": r"E'back\\slash\ttab\nnewline\rreturn'", "vc": "'\\N'", "ch": "'ab'"},
    {"txt": "'\\N'", "vc": "'NULL'", "ch": "''"},
    {"txt": "'tab\there, quote '' and \"dq\" and é ☃ 𝄞'", "big": "repeat('x\\y\t', 2000)"},
    {"bin": "'\\x005c090a0d0022ff'::bytea", "bins": "ARRAY['\\x00'::bytea, NULL, '\\x5c5c'::bytea]"},
    {"bin": "''::bytea", "bins": "'{}'::bytea[]"},
    {"num": "'NaN'", "num_scaled": "'-0.0001'", "r4": "'NaN'", "f8": "'-0'"},
    {"num": "'Infinity'", "r4": "'Infinity'", "f8": "'-Infinity'"},
    {"num": "'-Infinity'", "r4": "'1.1'", "f8": "'1e-310'"},
    {"num": "'123456789012345678901234567890.123456789012345678901234567890'", "f8": "'0.1'"},
    {"num": "'1.10'", "num_scaled": "'1.1'", "r4": "'3.4028235e38'", "f8": "'1.7976931348623157e308'"},
    {"i2": "-32768", "i8": "-9223372036854775808", "flag": "false"},
    {"i2": "32767", "i8": "9223372036854775807", "flag": "true"},
    {"js": '\'{"b": 1,  "a": [1.0, 2e3], "a": null}\'', "jb": '\'{"k": "v\\\\u00e9\\\\n", "n": 1.50}\''},
    {"js": "'\"just a string with \\\\t\"'", "jb": '\'[null, "\\\\\\\\", {"x": -0.0}]\''},
    {"jb": "'null'", "js": "'null'"},
    {"d": "'infinity'", "ts": "'-infinity'", "tstz": "'infinity'"},
    {"d": "'0044-03-15 BC'", "ts": "'0001-01-01 00:00:00 BC'", "tstz": "'4713-01-01 00:00:00+00 BC'"},
    {"d": "'2024-02-29'", "ts": "'2024-02-29 23:59:59.999999'", "tstz": "'2024-06-01 12:00:00.654321+05:30'"},
    {"tm": "'24:00:00'", "tmtz": "'23:59:59.999999-15:59'", "iv": "'-1 year 2 mons -3 days 04:05:06.789'"},
    {"tm": "'00:00:00.000001'", "tmtz": "'00:00:00+14'", "iv": "'1 mon -1 day -00:00:00.000001'"},
    {"iv": "'P0D'", "u": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"},
    {"ip": "'192.168.0.1/24'", "net": "'10.0.0.0/8'", "mac": "'08:00:2b:01:02:03'"},
    {"ip": "'::ffff:1.2.3.4'", "net": "'2001:db8::/32'", "bits": "B'1010'", "vbits": "B''"},
    {"pt": "'(1.5,-2e-300)'", "vbits": "B'10101010101'"},
    {
        "ints": "'{1,NULL,-3}'",
        "texts": "ARRAY['a,b', NULL, 'NULL', '\"q\"', 'back\\slash', '', ' sp ', '{}']",
    },
    {"texts": "ARRAY[E'tab\\there', E'new\\nline', 'é']", "nums": "'{NaN,1.10,-Infinity,NULL}'"},
    {
        "stamps": "ARRAY['2024-01-01 00:00:00+02'::timestamptz, NULL, 'infinity']",
        "grid": "'{{1,2},{NULL,4}}'",
    },
    {"jbs": r"""ARRAY['{"a": "\""}'::jsonb, NULL, '[]']""", "ints": "'{}'"},
]


def _insert(row_id: int, values: dict[str, str]) -> str:
    names = ", ".join(values)
    return f"INSERT INTO everything (id, {names}) VALUES ({row_id}, {', '.join(values.values())})"


def _many(first: int) -> str:
    """The tricky rows, each several times: one transaction of more rows than a statement batch."""
    rows = [_insert(first + n, TRICKY[n % len(TRICKY)]) for n in range(3 * len(TRICKY))]
    return "BEGIN; " + "; ".join(rows) + "; COMMIT"


def _same(pg2pg: PgToPg, table: str = "everything") -> None:
    query = f"SELECT t::text FROM {table} t ORDER BY id"
    source = pg2pg.source_rows(query)
    assert source
    assert pg2pg.target_rows(query) == source


class Dumped(list[bytes]):
    """The values the target wrote as text (as UTF-8); `plain`: those of them that came as a plain
    str, not a SourceText."""

    plain: list[bytes]


@pytest.fixture
def dumped(monkeypatch: pytest.MonkeyPatch) -> Dumped:
    """The values the target wrote as text (a SourceText, or a plain str: the source's text of a
    column whose decoded values are never a str, or a decoded text value), as UTF-8: those of COPY
    rows (staged writes), and those adapted one by one (rows._adapt: a statement's parameters;
    row_values and the staged column updates pass text on without that call)."""
    seen = Dumped()
    seen.plain = []
    adapt = rows._adapt
    write_row = psycopg.Copy.write_row

    def record(value: Any) -> None:
        if isinstance(value, str):
            seen.append(value.encode())
            if not isinstance(value, SourceText):
                seen.plain.append(value.encode())

    def spy(value: Any, column: Any, *, element: bool = False) -> Any:
        record(value)
        return adapt(value, column, element=element)

    def spy_row(copy: psycopg.Copy, row: Any) -> None:
        for value in row:
            record(value)
        write_row(copy, row)

    monkeypatch.setattr(rows, "_adapt", spy)
    monkeypatch.setattr(psycopg.Copy, "write_row", spy_row)
    return seen


def test_every_type_reaches_the_target_as_the_source_holds_it(pg2pg: PgToPg, dumped: Dumped) -> None:
    pg2pg.source(*SCHEMA, _insert(1, {"txt": "'snapshot'", "big": "repeat('s', 5000)"}))
    plan = pg2pg.plan("- {from: public.everything}")
    pg2pg.run(plan)
    _same(pg2pg)

    # Many rows in one transaction: staged by COPY (its text escapes).
    pg2pg.source(_many(100))
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)
    assert b"'\\x005c090a0d0022ff" not in dumped  # written as the text, not a literal
    assert b"\\x005c090a0d0022ff" in dumped
    assert b"NaN" in dumped and b"infinity" in dumped
    # A bytea's and a timestamp's text come as a plain str (no SourceText object a value); a json
    # value's as a SourceText (a plain str would be taken for a JSON string).
    assert b"\\x005c090a0d0022ff" in dumped.plain and b"infinity" in dumped.plain
    assert b'{"b": 1,  "a": [1.0, 2e3], "a": null}' in dumped
    assert b'{"b": 1,  "a": [1.0, 2e3], "a": null}' not in dumped.plain

    # A few rows a transaction: statements with text parameters; and a key change.
    for n, values in enumerate(TRICKY):
        pg2pg.source(_insert(1000 + n, values))
    pg2pg.source("UPDATE everything SET id = 2000 + id, txt = E'moved\\\\' WHERE id BETWEEN 1000 AND 1003")
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)


def test_updates_keep_unchanged_toasted_values_and_nulls(pg2pg: PgToPg, dumped: Dumped) -> None:
    big = "repeat('ab\\cd' || chr(9), 3000)"
    bins = "ARRAY[decode(repeat('5c', 9000), 'hex'), NULL]"
    pg2pg.source(
        *SCHEMA,
        *(
            f"INSERT INTO everything (id, txt, big, bins, jb) VALUES ({n}, 't{n}', {big}, {bins}, '{{\"n\": {n}}}')"
            for n in range(1, 81)
        ),
    )
    plan = pg2pg.plan("- {from: public.everything}")
    pg2pg.run(plan)
    pg2pg.source(
        # Many rows: the staged column updates leave big and bins as they are.
        "UPDATE everything SET txt = txt || E'\\t+', i8 = id * 3, jb = NULL WHERE id <= 60",
        # A few rows: the statements do too.
        "UPDATE everything SET txt = NULL, num = 'NaN' WHERE id IN (70, 71)",
        # Unchanged in one update, then changed in the next of the same transaction.
        "BEGIN; UPDATE everything SET txt = 'a' WHERE id = 75; UPDATE everything SET big = 'small' WHERE id = 75; "
        "COMMIT",
        # An unchanged value of a row whose key changes: the row moves with its stored value.
        "UPDATE everything SET id = 500 WHERE id = 76",
    )
    pg2pg.run(plan, until="caught-up")
    _same(pg2pg)
    assert pg2pg.target_rows("SELECT length(big), bins[2] IS NULL FROM everything WHERE id = 500") == [
        (18000, True)
    ]
    assert dumped  # the changed values went as text


def test_a_column_the_plan_casts_is_still_converted(pg2pg: PgToPg, dumped: Dumped) -> None:
    pg2pg.source(
        "CREATE TABLE public.flags (id integer PRIMARY KEY, flag smallint, label text)",
        "INSERT INTO flags VALUES (1, 0, 'a')",
    )
    plan = pg2pg.plan("- {from: public.flags, types: {flag: bool}}")
    pg2pg.run(plan)
    pg2pg.source(
        "BEGIN; "
        + "; ".join(f"INSERT INTO flags VALUES ({n}, {n % 2}, 'l{n}')" for n in range(2, 60))
        + "; COMMIT",
        "UPDATE flags SET flag = 1, label = E'x\\ty' WHERE id = 1",
    )
    pg2pg.run(plan, until="caught-up")
    expected = [(n, n % 2 == 1 if n > 1 else True, f"l{n}" if n > 1 else "x\ty") for n in range(1, 60)]
    assert pg2pg.target_rows("SELECT id, flag, label FROM flags ORDER BY id") == expected
    # The label went as text; the cast column did not (a smallint's text is no boolean's).
    assert b"x\ty" in dumped and b"1" not in dumped and b"0" not in dumped
