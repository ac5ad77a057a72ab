"""Real-world schema edge cases against real servers (issue 17, "nothing silent"): each is either
followed exactly (the test reads the documents back and compares them with values written here,
not built by migrator's mapping) or refused by `plan` with a fix PostgreSQL accepts (run here),
or stops CDC with an error that names the table and what to do. One small migration per test.
"""

from __future__ import annotations

import datetime
import math
import uuid
from typing import Any

import psycopg
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from migrator.errors import InternalError, TerminalError
from tests.support.docs import Migration, typed
from tests.support.preflight import Setup, failed_checks, fix_statements, one
from tests.support.runs import follow, run, transactions, wait_for

pytestmark = pytest.mark.usefixtures("stop_followers")

UTC = datetime.UTC


def raw_doc(mig: Migration, collection: str, doc_id: Any) -> dict[str, Any]:
    found = mig.client[mig.database][collection].find_one({"_id": doc_id})
    assert found is not None, (collection, doc_id)
    return found


def stops(follower: Any) -> TerminalError:
    wait_for(lambda: not follower.alive, "the run to stop by itself", 90)
    with pytest.raises(TerminalError) as raised:
        follower.join()
    return raised.value


# -- 1. relations that are not ordinary logged tables ---------------------------------------------


def test_unlogged_table_is_refused_with_set_logged_and_passes_after_it(setup: Setup) -> None:
    setup.sql(
        "CREATE UNLOGGED TABLE public.scratch (id integer PRIMARY KEY, note text)",
        "CREATE TABLE public.events (id integer, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
        "CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu')",
        "CREATE UNLOGGED TABLE public.events_us PARTITION OF public.events FOR VALUES IN ('us')",
    )
    plan = """
    - {name: scratch, from: public.scratch, key: id}
    - {name: events, from: public.events, key: [id, region]}
    """
    report = setup.plan(plan)
    assert failed_checks(report) == [
        ("source.unlogged", "public.events_us"),
        ("source.unlogged", "public.scratch"),
    ]
    finding = one(report, "source.unlogged", "public.scratch")
    assert "public.scratch is UNLOGGED" in finding.message
    assert fix_statements(finding.fix) == ["ALTER TABLE public.scratch SET LOGGED;"]
    partition = one(report, "source.unlogged", "public.events_us")
    assert "partition public.events_us of public.events is UNLOGGED" in partition.message
    for fix in ("public.scratch", "public.events_us"):
        for statement in fix_statements(one(report, "source.unlogged", fix).fix):
            setup.sql(statement)  # PostgreSQL accepts it
    assert setup.plan(plan).ready


@pytest.mark.parametrize(
    ("ddl", "says"),
    [
        (("CREATE VIEW public.thing AS SELECT 1 AS id",), "is a view"),
        (
            ("CREATE MATERIALIZED VIEW public.thing AS SELECT 1 AS id",),
            "is a materialized view",
        ),
        (
            (
                "CREATE FOREIGN DATA WRAPPER edge_fdw",
                "CREATE SERVER edge_server FOREIGN DATA WRAPPER edge_fdw",
                "CREATE FOREIGN TABLE public.thing (id integer) SERVER edge_server",
            ),
            "is a foreign table",
        ),
        (("CREATE SEQUENCE public.thing",), "is a sequence"),
    ],
    ids=["view", "matview", "foreign", "sequence"],
)
def test_relations_that_are_not_tables_are_refused_saying_what_they_are(
    setup: Setup, ddl: tuple[str, ...], says: str
) -> None:
    setup.sql(*ddl)
    try:
        report = setup.plan("- {name: thing, from: public.thing, key: id}")
        finding = one(report, "mapping.table_exists", "public.thing")
        assert finding.severity.name == "FAIL"
        assert f"public.thing {says}" in finding.message, finding.message
    finally:
        if "edge_fdw" in ddl[0]:
            setup.sql("DROP FOREIGN DATA WRAPPER edge_fdw CASCADE")


def test_a_temporary_table_is_refused_saying_so(setup: Setup) -> None:
    with psycopg.connect(setup.pg_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE thing (id integer PRIMARY KEY)")
        row = conn.execute("SELECT pg_my_temp_schema()::regnamespace::text").fetchone()
        assert row is not None
        schema = str(row[0])
        report = setup.plan(f"- {{name: thing, from: {schema}.thing, key: id}}")
    finding = one(report, "mapping.table_exists", f"{schema}.thing")
    assert f"{schema}.thing is a temporary table" in finding.message, finding.message


# -- 2. REPLICA IDENTITY NOTHING on a table with a primary key --------------------------------------


def test_identity_nothing_with_a_primary_key_says_nothing_and_default_fixes_it(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.quiet (id integer PRIMARY KEY, note text)",
        "ALTER TABLE public.quiet REPLICA IDENTITY NOTHING",
    )
    plan = "- {name: quiet, from: public.quiet, key: id}"
    report = setup.plan(plan)
    assert failed_checks(report) == [("source.replica_identity", "public.quiet")]
    finding = one(report, "source.replica_identity", "public.quiet")
    assert "REPLICA IDENTITY NOTHING" in finding.message
    assert "no primary key" not in finding.message
    first = fix_statements(finding.fix)[0]
    assert first == "ALTER TABLE public.quiet REPLICA IDENTITY DEFAULT;"
    setup.sql(first)
    assert setup.plan(plan).ready


# -- 3. key updated to a value MongoDB's _id comparison finds equal --------------------------------


def test_key_updated_to_an_equal_value_of_another_form_gives_the_snapshot_document(mig: Migration) -> None:
    name = "edge-equal-keys"
    mig.sql(
        "CREATE TABLE nums (id numeric PRIMARY KEY, note text)",
        "CREATE TABLE floats (id double precision PRIMARY KEY, note text)",
        "CREATE TABLE pairs (a numeric, b integer, note text, PRIMARY KEY (a, b))",
        "INSERT INTO nums VALUES (1.0, 'one'), (2, 'two')",
        "INSERT INTO floats VALUES (0, 'zero')",
        "INSERT INTO pairs VALUES (1.5, 1, 'p')",
        "CREATE TABLE parts (id integer PRIMARY KEY)",
        "CREATE TABLE bits (id numeric PRIMARY KEY, part_id integer NOT NULL REFERENCES parts, note text)",
        "INSERT INTO parts VALUES (1)",
        "INSERT INTO bits VALUES (1.0, 1, 'b1'), (2.5, 1, 'b2')",
    )
    plan = mig.plan(
        """
        - {name: nums, from: nums, key: id}
        - {name: floats, from: floats, key: id}
        - {name: pairs, from: pairs, key: [a, b]}
        - name: parts
          from: parts
          key: id
          embed: [{as: bits, from: bits, on: {part_id: id}, key: id}]
        """,
        name=name,
    )
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "UPDATE nums SET id = 1.00 WHERE id = 1",  # equal in PostgreSQL and in MongoDB
        "UPDATE nums SET id = 2.0, note = 'two!' WHERE id = 2",
        "UPDATE floats SET id = '-0' WHERE id = 0",  # 0 = -0 in PostgreSQL, in MongoDB and in Python
        "UPDATE pairs SET a = 1.50 WHERE a = 1.5",
        "UPDATE bits SET id = 1.00 WHERE id = 1",  # an element key
        "UPDATE bits SET id = 2.50, note = 'b2!' WHERE id = 2.5",
    )
    run(mig, plan)
    # What a new snapshot of these rows gives: the new row's values, in the new row's form.
    nums = sorted((typed(d) for d in mig.documents("nums")), key=repr)
    assert nums == sorted(
        [
            typed({"_id": Decimal128("1.00"), "note": "one"}),
            typed({"_id": Decimal128("2.0"), "note": "two!"}),
        ],
        key=repr,
    )
    floats = mig.documents("floats")
    assert len(floats) == 1 and math.copysign(1.0, floats[0]["_id"]) == -1.0, floats
    assert [typed(d) for d in mig.documents("pairs")] == [
        typed({"_id": {"a": Decimal128("1.50"), "b": 1}, "note": "p"})
    ]
    assert [typed(d) for d in mig.documents("parts")] == [
        typed(
            {
                "_id": 1,
                "bits": [{"id": Decimal128("1.00"), "note": "b1"}, {"id": Decimal128("2.50"), "note": "b2!"}],
            }
        )
    ]


# -- 4. replica identity switched during CDC to an index without the key ----------------------------


def test_identity_switched_to_an_index_without_the_key_stops_naming_it(mig: Migration) -> None:
    name = "edge-identity-switch"
    mig.sql(
        "CREATE TABLE people (id integer PRIMARY KEY, email text NOT NULL, name text)",
        "CREATE UNIQUE INDEX people_email ON people (email)",
        "INSERT INTO people VALUES (1, 'a@x', 'a'), (2, 'b@x', 'b'), (3, 'c@x', 'c')",
    )
    plan = mig.plan("- {name: people, from: people, key: id}", name=name)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    transactions(
        mig,
        "UPDATE people SET name = 'a1' WHERE id = 1",
        "ALTER TABLE people REPLICA IDENTITY USING INDEX people_email",
        "DELETE FROM people WHERE id = 2",
    )
    error = stops(follower)
    text = str(error)
    assert "public.people" in text and "people_email" in text and "(email)" in text, text
    assert error.hint is not None and "ALTER TABLE public.people REPLICA IDENTITY DEFAULT;" in error.hint
    # Not applied past the identity change (the checkpoint stays before it): the delete is not lost.
    assert 2 in mig.by_id("people")
    # The fix is accepted; the delete logged meanwhile names no document: the run says so again.
    mig.sql(error.hint.split(";")[0])
    with pytest.raises(
        TerminalError, match=r"a DELETE of public\.people was logged while its replica identity lacked id"
    ):
        run(mig, plan)


def test_identity_switched_and_back_before_any_change_is_followed(mig: Migration) -> None:
    """Changes logged under the other identity whose old tuple still says which document they
    change are applied; the identity restored, the run goes on."""
    name = "edge-identity-back"
    mig.sql(
        "CREATE TABLE people (id integer PRIMARY KEY, email text NOT NULL, name text)",
        "CREATE UNIQUE INDEX people_email_id ON people (email, id)",
        "INSERT INTO people VALUES (1, 'a@x', 'a'), (2, 'b@x', 'b')",
    )
    plan = mig.plan("- {name: people, from: people, key: id}", name=name)
    run(mig, plan, "snapshot")
    transactions(
        mig,
        "ALTER TABLE people REPLICA IDENTITY USING INDEX people_email_id",  # still carries id
        "DELETE FROM people WHERE id = 2",
        "UPDATE people SET name = 'a1' WHERE id = 1",
    )
    run(mig, plan)
    assert [(d["_id"], d["name"]) for d in mig.documents("people")] == [(1, "a1")]


# -- 5. a mapped table renamed or moved to another schema during CDC --------------------------------


@pytest.mark.parametrize(
    ("ddl", "new", "fix"),
    [
        ("ALTER TABLE app.things RENAME TO stuff", "app.stuff", "ALTER TABLE app.stuff RENAME TO things"),
        ("ALTER SCHEMA app RENAME TO shop", "shop.things", "ALTER SCHEMA shop RENAME TO app"),
        (
            "ALTER TABLE app.things SET SCHEMA public",
            "public.things",
            "ALTER TABLE public.things SET SCHEMA app",
        ),
    ],
    ids=["rename", "schema-rename", "set-schema"],
)
def test_a_mapped_table_renamed_with_a_change_right_after_stops_naming_both(
    mig: Migration, ddl: str, new: str, fix: str
) -> None:
    name = f"edge-rename-{ddl.split()[1].lower()}-{new.split('.')[0]}"
    mig.sql(
        "CREATE SCHEMA app",
        "CREATE TABLE app.things (id integer PRIMARY KEY, qty integer)",
        "INSERT INTO app.things VALUES (1, 1), (2, 2)",
    )
    plan = mig.plan("- {name: things, from: app.things, key: id}", name=name)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    # The change follows the DDL at once: its Relation message (new name, same oid) may come
    # before the periodic catalog check sees the rename.
    transactions(mig, [ddl, f"UPDATE {new} SET qty = 20 WHERE id = 2"])
    error = stops(follower)
    assert f"table app.things was renamed to {new}" in str(error), str(error)
    assert error.hint is not None and error.hint.split(";")[0] == fix, error.hint
    mig.sql(fix)  # PostgreSQL accepts it; the run goes on from where it stopped
    run(mig, plan)
    assert {d["_id"]: d["qty"] for d in mig.documents("things")} == {1: 1, 2: 20}


# -- 6. an excluded column dropped after the run started --------------------------------------------


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])  # FULL: no column list, the column is sent
def test_an_excluded_column_dropped_is_harmless_and_its_exclusion_may_go(
    mig: Migration, identity: str
) -> None:
    name = f"edge-excluded-dropped-{identity.lower()}"
    mig.sql(
        "CREATE TABLE users (id integer PRIMARY KEY, email text, secret text)",
        f"ALTER TABLE users REPLICA IDENTITY {identity}",
        "INSERT INTO users VALUES (1, 'a@x', 'pw1'), (2, 'b@x', 'pw2')",
    )
    plan = mig.plan("- {name: users, from: users, key: id, exclude: [secret]}", name=name)
    run(mig, plan, "snapshot")
    run(mig, plan)
    mig.sql("ALTER TABLE users DROP COLUMN secret")
    transactions(mig, "UPDATE users SET email = 'a2@x' WHERE id = 1")
    follower = run(mig, plan)  # resumes: the exclusion names nothing, which changes no document
    assert follower.outcome is not None
    warned = one(follower.outcome.preflight, "mapping.column_exists", "public.users.secret")
    assert warned.severity.name == "WARN" and "no longer exists" in warned.message
    assert any("public.users.secret" in n and "no document changes" in n for n in follower.notices())
    # The plan edited to drop the exclusion maps the same documents: the run resumes.
    plan = mig.plan("- {name: users, from: users, key: id}", name=name)
    transactions(mig, "UPDATE users SET email = 'b2@x' WHERE id = 2")
    run(mig, plan)
    assert [typed(d) for d in mig.documents("users")] == [
        typed({"_id": 1, "email": "a2@x"}),
        typed({"_id": 2, "email": "b2@x"}),
    ]


# -- 7. every type's text form: the snapshot and CDC give the same document -------------------------

# (column type, SQL literal, what docs/plan.md's type table says the document holds)
FORMS: list[tuple[str, str, Any]] = [
    ("xml", """'<?xml version="1.0" encoding="UTF-8"?><a>x</a>'""", "<a>x</a>"),
    ("xml", """'<?xml version="1.0" standalone="yes"?><a/>'""", '<?xml version="1.0" standalone="yes"?><a/>'),
    ("xml", "'<b>t</b>'", "<b>t</b>"),
    ("xml", "''", ""),
    ("inet", "'10.0.0.1'", "10.0.0.1"),
    ("inet", "'10.0.0.1/24'", "10.0.0.1/24"),
    ("inet", "'::1'", "::1"),
    ("cidr", "'10.0.0.0/8'", "10.0.0.0/8"),
    ("cidr", "'10.1.2.3/32'", "10.1.2.3/32"),
    ("money", "'1234.56'", Decimal128("1234.56")),
    ("money", "'-0.5'", Decimal128("-0.50")),
    ("interval", "'1 year 2 months 3 days 04:05:06.5'", "P1Y2M3DT4H5M6.5S"),
    ("interval", "'-1 day'", "P-1D"),
    ("interval", "'0'", "PT0S"),
    ("timestamptz", "'2024-01-02 03:04:05.678901+02'", datetime.datetime(2024, 1, 2, 1, 4, 5, 678000, UTC)),
    (
        "timestamptz",
        "'1969-12-31 23:59:59.9995+00'",
        datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, UTC),
    ),
    ("double precision", "'NaN'", math.nan),
    ("double precision", "'Infinity'", math.inf),
    ("double precision", "'-Infinity'", -math.inf),
    ("double precision", "'-0'", -0.0),
    ("real", "'NaN'", math.nan),
    ("real", "'0.1'", 0.10000000149011612),
    ("numeric", "'NaN'", Decimal128("NaN")),
    ("numeric", "'1.500'", Decimal128("1.500")),
    ("bit(3)", "B'101'", "101"),
    ("bit varying", "B'1101'", "1101"),
    ("bit varying", "B''", ""),
    ("xml[]", """ARRAY['<?xml version="1.0"?><a/>'::xml, '<b/>']""", ["<a/>", "<b/>"]),
    ("inet[]", "'{10.0.0.1,192.168.0.0/24,NULL}'", ["10.0.0.1", "192.168.0.0/24", None]),
    ("cidr[]", "'{10.0.0.0/8}'", ["10.0.0.0/8"]),
    ("money[]", "'{1.5,-2}'", [Decimal128("1.50"), Decimal128("-2.00")]),
    ("interval[]", "'{1 hour,\"-1 day\"}'", ["PT1H", "P-1D"]),
    (
        "timestamptz[]",
        "'{\"2024-01-02 03:04:05.6789+00\"}'",
        [datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, UTC)],
    ),
    ("double precision[]", "'{NaN,Infinity,-Infinity,1.5}'", [math.nan, math.inf, -math.inf, 1.5]),
    ("bit varying[]", "'{101,\"\"}'", ["101", ""]),
    ("numeric", "'Infinity'", Decimal128("Infinity")),
    ("numeric", "'-Infinity'", Decimal128("-Infinity")),
    ("numeric[]", "'{1.10,NaN,NULL}'", [Decimal128("1.10"), Decimal128("NaN"), None]),
    ("real", "'-0'", -0.0),
    ("date", "'2024-02-29'", datetime.datetime(2024, 2, 29, tzinfo=UTC)),
    ("time", "'04:05:06.789'", "04:05:06.789"),
    ("timetz", "'04:05:06+05:30'", "04:05:06+05:30"),
    ("macaddr", "'08:00:2b:01:02:03'", "08:00:2b:01:02:03"),
    ("point", "'(1.5,-2)'", "(1.5,-2)"),
    ("character(4)", "'ab'", "ab  "),
    (
        "text[]",
        """ARRAY['NULL', NULL, 'a,b', 'q"uote', 'back\\slash', '', ' sp ', '{x}']""",
        ["NULL", None, "a,b", 'q"uote', "back\\slash", "", " sp ", "{x}"],
    ),
    ("character(2)[]", "'{a,bc}'", ["a ", "bc"]),
    ("boolean[]", "'{t,f,NULL}'", [True, False, None]),
    ("integer[]", "'{{1,2},{3,NULL}}'", [[1, 2], [3, None]]),
    ("bigint[]", "'{1,-9223372036854775808}'", [Int64(1), Int64(-9223372036854775808)]),
    ("jsonb", """'{"b": [1, 2.50, null], "a": "x"}'""", {"a": "x", "b": [1, 2.5, None]}),
    ("json[]", """ARRAY['{"k": 1}'::json, '[true]']""", [{"k": 1}, [True]]),
    (
        "uuid[]",
        "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
        [uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")],
    ),
    ("bytea[]", "ARRAY['\\x00ff'::bytea, '']", [b"\x00\xff", b""]),
    ("date[]", "'{2024-01-01,NULL}'", [datetime.datetime(2024, 1, 1, tzinfo=UTC), None]),
    ("macaddr[]", "'{08:00:2b:01:02:03}'", ["08:00:2b:01:02:03"]),
    ("time[]", "'{04:05:06}'", ["04:05:06"]),
]


def test_every_text_form_gives_the_same_document_by_snapshot_and_by_cdc(mig: Migration) -> None:
    name = "edge-text-forms"
    columns = ", ".join(f"c{i} {t}" for i, (t, _v, _e) in enumerate(FORMS))
    values = ", ".join(v for _t, v, _e in FORMS)
    mig.sql(
        f"CREATE TABLE forms (id integer PRIMARY KEY, {columns})", f"INSERT INTO forms VALUES (1, {values})"
    )
    plan = mig.plan("- {name: forms, from: forms, key: id}", name=name)
    run(mig, plan, "snapshot")
    transactions(mig, f"INSERT INTO forms VALUES (2, {values})")
    run(mig, plan)
    by_snapshot, by_cdc = raw_doc(mig, "forms", 1), raw_doc(mig, "forms", 2)
    assert list(by_snapshot)[1:] == list(by_cdc)[1:] == [f"c{i}" for i in range(len(FORMS))]
    differ = []
    for i, (type_name, literal, expected) in enumerate(FORMS):
        got = (typed(by_snapshot[f"c{i}"]), typed(by_cdc[f"c{i}"]))
        want = typed(expected)
        if got != (want, want):
            differ.append(f"{type_name} {literal}: snapshot {got[0]}, cdc {got[1]}, docs {want}")
    assert not differ, "\n".join(differ)


# -- 8. the order of embedded array elements ---------------------------------------------------------


def test_embedded_elements_are_in_the_same_order_by_snapshot_and_by_cdc(mig: Migration) -> None:
    name = "edge-element-order"
    # Children of parent 1 exist at the snapshot; parent 2 gets the same ones (other keys, in
    # reverse order of their place) during CDC. Ties in order_by fall back to the key; text is
    # ordered by code point; timestamps as BSON dates (milliseconds).
    kids = [
        # (key offset, label, at)
        (1, "b", "2024-01-01 00:00:00.0009"),
        (2, "B", "2024-01-01 00:00:00.0001"),
        (3, "é", "2024-01-01 00:00:00.0005"),
        (4, None, "2024-01-01 00:00:00.002"),
        (5, "a", "2024-01-01 00:00:00.0009"),
        (6, "b", None),
    ]
    mig.sql(
        "CREATE TABLE parents (id integer PRIMARY KEY)",
        "CREATE TABLE kids (id integer PRIMARY KEY, parent_id integer NOT NULL REFERENCES parents,"
        " label text, at timestamp)",
        "INSERT INTO parents VALUES (1), (2), (3), (4)",
        *(
            f"INSERT INTO kids VALUES ({p * 10 + k}, {p}, {_lit(label)}, {_lit(at)})"
            for p in (1, 3)
            for k, label, at in kids
        ),
    )
    plan = mig.plan(
        """
        - name: by_label
          from: parents
          key: id
          embed: [{as: kids, from: kids, on: {parent_id: id}, key: id, order_by: label}]
        - name: by_at
          from: parents
          key: id
          embed: [{as: kids, from: kids, on: {parent_id: id}, key: id, order_by: at}]
        """,
        name=name,
    )
    run(mig, plan, "snapshot")
    transactions(
        mig,
        *(
            f"INSERT INTO kids VALUES ({p * 10 + k}, {p}, {_lit(label)}, {_lit(at)})"
            for p in (2, 4)
            for k, label, at in reversed(kids)
        ),
    )
    run(mig, plan)
    for collection in ("by_label", "by_at"):
        docs = mig.by_id(collection)
        orders = {p: [e["id"] - p * 10 for e in docs[p]["kids"]] for p in (1, 2, 3, 4)}
        assert orders[1] == orders[2] == orders[3] == orders[4], (collection, orders)
    # docs/plan.md's order: nulls first, then strings by code point; dates by millisecond, ties by key.
    assert [e["id"] for e in mig.by_id("by_label")[1]["kids"]] == [14, 12, 15, 11, 16, 13]
    assert [e["id"] for e in mig.by_id("by_at")[1]["kids"]] == [16, 11, 12, 13, 15, 14]


def _lit(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def test_a_date_bson_cannot_hold_stops_cdc_naming_the_column(mig: Migration) -> None:
    """'infinity' is a valid timestamp in PostgreSQL and none in BSON: the snapshot stops naming
    the rows; CDC stops naming the column and the value (was: "a defect of migrator")."""
    name = "edge-infinity"
    mig.sql("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz, days date[])")
    plan = mig.plan("- {name: events, from: events, key: id}", name=name)
    run(mig, plan, "snapshot")
    transactions(mig, "INSERT INTO events VALUES (1, 'infinity', '{2024-01-01}')")
    with pytest.raises(TerminalError) as raised:
        run(mig, plan)
    assert "column at (timestamp with time zone) of a changed row holds 'infinity'" in str(raised.value)
    assert raised.value.hint is not None and "rollback" in raised.value.hint
    assert not isinstance(raised.value, InternalError)


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE UNLOGGED TABLE accounts_asia PARTITION OF accounts FOR VALUES IN ('asia')",
        "ALTER TABLE accounts_us SET UNLOGGED",
    ],
    ids=["created", "set"],
)
def test_a_partition_made_unlogged_while_following_stops_the_run(mig: Migration, ddl: str) -> None:
    """An UNLOGGED partition writes no WAL: its rows would never reach the target. PostgreSQL
    refuses SET UNLOGGED only for a table that is itself in a publication, not for a partition
    of one, nor an UNLOGGED partition created under it."""
    name = f"edge-unlogged-{ddl.split()[1].lower()}"
    mig.sql(
        "CREATE TABLE accounts (id integer, region text, name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
        "CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu')",
        "CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us')",
        "INSERT INTO accounts VALUES (1, 'eu', 'a1'), (2, 'us', 'a2')",
    )
    plan = mig.plan("- {name: accounts, from: accounts, key: [id, region]}", name=name)
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, name)
    transactions(mig, ddl)
    error = stops(follower)
    leaf = "public.accounts_asia" if "asia" in ddl else "public.accounts_us"
    assert f"partition {leaf} of public.accounts is UNLOGGED" in str(error), str(error)
    assert error.hint is not None and error.hint.startswith(f"ALTER TABLE {leaf} SET LOGGED;")
