"""Every type of docs/plan.md's type table as a key, on real servers: as a document key (alone and
in a compound key mixing it with an integer) and as an element key, through the snapshot, CDC
(inserts, updates, deletes, key changes), `migrator verify` while CDC follows (full and sample)
and `--repair`. A key type that cannot form an _id is refused by `plan`, with a fix that works.

Expectations come from plain SQL on the source (row counts, sums) and from the corruptions the
test makes itself, never from migrator's mapping code."""

from __future__ import annotations

import math
import re

import pytest

from migrator import api
from migrator.errors import PreflightFailed
from migrator.mapping.compare import MAX_DIFFS_PER_DOCUMENT
from tests.support.docs import Migration
from tests.support.runs import Follower, follow, run

# Type -> key values (the last one is held back for CDC to insert). Tricky values on purpose:
# text that looks like array syntax or NULL, sub-millisecond timestamps before and after 1970,
# NaN and infinities, empty and NULL-holding and two-dimensional arrays.
KEY_TYPES: dict[str, list[str]] = {
    "smallint": ["-32768", "0", "7", "32767"],
    "integer": ["-2147483648", "0", "7", "2147483647"],
    "bigint": ["-9223372036854775808", "0", "7", "9223372036854775807"],
    "oid": ["0", "7", "4294967295", "12"],
    "numeric": ["-1.50", "0", "12345678901234567890.123456789", "NaN", "Infinity"],
    "money": ["-1.50", "0", "1000.25", "3"],
    "real": ["-1.5", "0.1", "3.4e38", "NaN", "Infinity"],
    "double precision": ["-1.5", "0.1", "1e308", "NaN", "-Infinity"],
    "text": ["a", "B", "é✓", "with,comma", 'quo"te\\', "{x}", " sp "],
    "character varying(20)": ["a", "b c", "NULL", "z"],
    "character(5)": ["a", "ab", "abcde", "x"],
    "name": ["a", "b", "c d", "z"],
    "boolean": ["true", "false"],
    "timestamp with time zone": [
        "2024-01-01 00:00:00.123456+00",
        "1960-01-01 00:00:00.000001+00",
        "2024-01-01 00:00:00.124+00",
        "2030-01-01 00:00:00.999999+00",
    ],
    "timestamp without time zone": [
        "2024-01-01 00:00:00.123456",
        "1960-01-01 00:00:00.5",
        "2030-01-01",
        "1969-12-31 23:59:59.999999",
    ],
    "date": ["2024-01-01", "1900-02-28", "2030-12-31", "1999-01-01"],
    "uuid": [
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "12345678-1234-5678-1234-567812345678",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ],
    "bytea": ["\\x", "\\x00", "\\xdeadbeef", "\\x7b7d"],
    "jsonb": ['{"a": 1}', "[1, 2]", '"s"', "1.5", '{"b": [true, null]}'],
    "interval": ["1 day", "P1Y2M", "-1 hour 3 min", "00:00:00.000001"],
    "time without time zone": ["00:00", "23:59:59.999999", "12:00:00.5", "13:00"],
    "time with time zone": ["00:00+00", "12:00+01", "12:00-03:30", "13:00+00"],
    "inet": ["10.0.0.1", "::1", "192.168.0.0/24", "10.0.0.2/8"],
    "cidr": ["10.0.0.0/8", "::/0", "192.168.1.0/24", "10.1.0.0/16"],
    "macaddr": ["08:00:2b:01:02:03", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "08:00:2b:01:02:04"],
    "macaddr8": [
        "08:00:2b:01:02:03:04:05",
        "00:00:00:00:00:00:00:00",
        "ff:ff:ff:ff:ff:ff:ff:ff",
        "01:00:00:00:00:00:00:00",
    ],
    "bit(4)": ["0101", "1111", "0000", "1000"],
    "bit varying(8)": ["0", "101", "", "11111111"],
    "mood": ["sad", "ok", "happy", "meh"],  # an enum
    "int4range": ["[1,10)", "empty", "(,5]", "[3,)"],
    "tstzrange": ["[2024-01-01,2024-02-01)", "empty", "(,2024-01-01 00:00:00.000001+00]", "[2025-01-01,)"],
    "posint": ["1", "2", "3", "4"],  # a domain over integer
    "label": ["a", "b", "c", "d"],  # a domain over text
    "integer[]": ["{1,2,3}", "{}", "{NULL,1}", "{{1,2},{3,4}}", "{7}"],
    "text[]": ['{a,"b,c"}', "{}", '{"NULL",NULL}', '{"quo\\"te","{x}"}', "{x}"],
    "uuid[]": [
        "{00000000-0000-0000-0000-000000000000}",
        "{}",
        "{NULL}",
        "{ffffffff-ffff-ffff-ffff-ffffffffffff}",
    ],
    "numeric[]": ["{1.50,NaN}", "{}", "{-0.001}", "{2}"],
    "date[]": ["{2024-01-01}", "{}", "{1900-02-28,NULL}", "{2030-12-31}"],
}
# Types docs/plan.md's table lists whose values cannot be keys: no btree operator class, so no
# unique index (xml, json, point, line, lseg, box, path, polygon, circle).

# A document _id cannot hold an array (MongoDB refuses it) nor a JSON value: these are keys only
# in compound keys (arrays) or as element keys.
NOT_ALONE = {"jsonb", "integer[]", "text[]", "uuid[]", "numeric[]", "date[]"}
NOT_IN_ID = {"jsonb"}
# MongoDB orders arrays and JSON values its own way: as element keys they key one sub-document
# per parent (many: false), never an ordered array.
UNORDERED = {"jsonb", "integer[]", "text[]", "uuid[]", "numeric[]", "date[]"}

# The element keys' parents: a few collections for all types (each collection costs every pass
# over the target), each type's elements an array (or a sub-document) of their own in their
# documents; as many types a collection as verify reports differences in one document, so that
# every corrupted element is reported.
TYPES_PER_PARENT = MAX_DIFFS_PER_DOCUMENT
PARENT_TABLES = [f"parents_{i}" for i in range(0, len(KEY_TYPES), TYPES_PER_PARENT)]
PARENTS = max(len(values) for values in KEY_TYPES.values()) + 1
PRELUDE = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'meh');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN label AS text;
""" + "".join(
    f"CREATE TABLE {p} (id int PRIMARY KEY); INSERT INTO {p} SELECT generate_series(1, {PARENTS});\n"
    for p in PARENT_TABLES
)


@pytest.fixture
def source_schema() -> tuple[str, ...]:
    return (PRELUDE,)


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def slug(type_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", type_name.replace("[]", " array")).strip("_")


class KeyTables:
    """For one type T: d (k T primary key), m (a int, k T, primary key (a, k)), and c (k T primary
    key), embedded in the documents of `parent` as the array `field` by the element key k."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        self.parent = PARENT_TABLES[list(KEY_TYPES).index(type_name) // TYPES_PER_PARENT]
        self.values = KEY_TYPES[type_name]
        s = slug(type_name)
        self.d, self.m, self.c, self.field = f"d_{s}", f"m_{s}", f"c_{s}", f"cs_{s}"
        self.alone = type_name not in NOT_ALONE
        self.in_id = type_name not in NOT_IN_ID
        self.many = type_name not in UNORDERED

    def create(self, mig: Migration) -> None:
        t = self.type_name
        statements = [
            f"CREATE TABLE {self.c} (k {t} PRIMARY KEY, pid int NOT NULL {'' if self.many else 'UNIQUE'}"
            f" REFERENCES {self.parent}, v int NOT NULL)",
        ]
        if self.alone:
            statements.append(f"CREATE TABLE {self.d} (k {t} PRIMARY KEY, v int NOT NULL)")
        if self.in_id:
            statements.append(f"CREATE TABLE {self.m} (a int, k {t}, v int NOT NULL, PRIMARY KEY (a, k))")
        for i, value in enumerate(self.values[:-1]):
            parent = 1 + i % 2 if self.many else i + 1
            statements.append(f"INSERT INTO {self.c} VALUES ({lit(value)}, {parent}, {i})")
            if self.alone:
                statements.append(f"INSERT INTO {self.d} VALUES ({lit(value)}, {i})")
            if self.in_id:
                statements.append(
                    f"INSERT INTO {self.m} VALUES (1, {lit(value)}, {i}), (2, {lit(value)}, {i})"
                )
        mig.sql(*statements)

    def embed(self) -> str:
        return (
            f"{{as: {self.field}, from: {self.c}, on: {{pid: id}}, key: k, many: {str(self.many).lower()}}}"
        )

    def collections(self) -> str:
        text = ""
        if self.alone:
            text += f"- {{name: {self.d}, from: {self.d}, key: k}}\n"
        if self.in_id:
            text += f"- {{name: {self.m}, from: {self.m}, key: [a, k]}}\n"
        return text

    def change(self, mig: Migration) -> None:
        """Through CDC: a key change, an update, a delete, an insert."""
        kept = self.values[:-1]
        first, held = lit(kept[0]), lit(self.values[-1])
        # (boolean has one kept value: its key change is all there is)
        second, third = lit(kept[1 % len(kept)]), lit(kept[2 % len(kept)])
        statements = [f"UPDATE {self.c} SET k = {held}, v = 100 WHERE k = {first}"]
        if len(kept) > 1:
            move = ", pid = 3 - pid" if self.many else ""
            statements.append(f"UPDATE {self.c} SET v = v + 10{move} WHERE k = {second}")
        if self.alone:
            statements.append(f"UPDATE {self.d} SET k = {held}, v = 100 WHERE k = {first}")
            if len(kept) > 1:
                statements.append(f"DELETE FROM {self.d} WHERE k = {second}")
        if self.in_id:
            statements += [
                f"DELETE FROM {self.m} WHERE a = 1 AND k = {second}",
                f"UPDATE {self.m} SET v = 50 WHERE a = 2",
                f"INSERT INTO {self.m} VALUES (3, {third}, 3)",
                f"UPDATE {self.m} SET a = 4 WHERE a = 2 AND k = {third}",
            ]
        mig.sql(*statements)

    def expected_sums(self, mig: Migration) -> dict[str, tuple[int, int]]:
        """collection (parent.field for the elements) -> (documents, sum of v over documents or
        elements), from SQL."""
        [(elements, total)] = mig.rows(f"SELECT count(*), coalesce(sum(v), 0) FROM {self.c}")
        [(parents,)] = mig.rows(f"SELECT count(*) FROM {self.parent}")
        out = {f"{self.parent}.{self.field}": (int(parents), int(total))}
        assert elements == len(self.values) - 1
        for table, present in ((self.d, self.alone), (self.m, self.in_id)):
            if present:
                [(n, s)] = mig.rows(f"SELECT count(*), coalesce(sum(v), 0) FROM {table}")
                out[table] = (int(n), int(s))
        return out

    def stored_sums(self, mig: Migration) -> dict[str, tuple[int, int]]:
        db = mig.client[mig.database]
        parents = list(db[self.parent].find())
        f = self.field
        elements = [e for d in parents for e in (d[f] if self.many else [d[f]] if d[f] else [])]
        out = {f"{self.parent}.{f}": (len(parents), sum(e["v"] for e in elements))}
        for table, present in ((self.d, self.alone), (self.m, self.in_id)):
            if present:
                docs = list(db[table].find())
                out[table] = (len(docs), sum(d["v"] for d in docs))
        return out


def element_v(t: KeyTables) -> str:
    """The path of v in the first element of t's array (or in its sub-document) in t.parent."""
    return f"{t.field}.0.v" if t.many else f"{t.field}.v"


def documents(mig: Migration, tables: list[KeyTables]) -> int:
    """How many documents the target must hold, from SQL."""
    parents = sum(int(mig.rows(f"SELECT count(*) FROM {p}")[0][0]) for p in PARENT_TABLES)
    sums = [s for t in tables for key, s in t.expected_sums(mig).items() if not key.startswith("parents_")]
    return parents + sum(n for n, _ in sums)


def corrupt(mig: Migration, tables: list[KeyTables]) -> tuple[int, int]:
    """Change v in the first element of every type's array in the first document of its parent
    collection, and in one document of every other collection, and add one document to every
    compound-key collection; returns (documents changed, documents added)."""
    db = mig.client[mig.database]
    for p in PARENT_TABLES:
        db[p].update_one({"_id": 1}, {"$set": {element_v(t): -1 for t in tables if t.parent == p}})
    changed, added = len(PARENT_TABLES), 0
    for t in tables:
        for name, present in ((t.d, t.alone), (t.m, t.in_id)):
            if not present:
                continue
            for doc in db[name].find():
                key = doc["_id"]["k"] if isinstance(doc["_id"], dict) else doc["_id"]
                # The test server cannot update a document whose _id is NaN or infinite in
                # place (MongoDB can); the other keys of those types are enough here.
                if not (isinstance(key, float) and not math.isfinite(key)):
                    db[name].update_one({"_id": doc["_id"]}, {"$set": {"v": -1}})
                    changed += 1
                    break
        if t.in_id:
            doc = db[t.m].find_one({"_id.a": {"$ne": 99}})
            assert doc is not None
            db[t.m].insert_one({**doc, "_id": {"a": 99, "k": doc["_id"]["k"]}})
            added += 1
    return changed, added


def test_every_key_type_goes_through_snapshot_cdc_verify_and_repair(mig: Migration) -> None:
    tables = [KeyTables(t) for t in KEY_TYPES]
    for t in tables:
        t.create(mig)
    parents = "".join(
        f"- name: {p}\n  from: {p}\n  key: id\n  embed:\n"
        + "".join(f"    - {t.embed()}\n" for t in tables if t.parent == p)
        for p in PARENT_TABLES
    )
    plan = mig.plan(
        parents + "".join(t.collections() for t in tables),
        name="key-types",
        phases="cdc: {heartbeat_interval: 1s}\nverify: {chunk_rows: 10, parallel: 4}",
    )
    assert api.plan(plan, env=mig.env).ready
    run(mig, plan, "snapshot")
    at_rest = api.verify(plan, state=mig.state_path, env=mig.env)
    assert at_rest.equal and at_rest.totals.checked == documents(mig, tables), sorted(
        {m.collection for m in at_rest.mismatches}
    )

    follower: Follower = follow(mig, plan, "key-types")
    try:
        for t in tables:
            t.change(mig)
        # While CDC follows: every key type's changes were applied and are found equal.
        live = api.verify(plan, state=mig.state_path, env=mig.env)
        total = documents(mig, tables)
        assert live.equal and live.totals.checked == total, "\n".join(
            str(m.to_dict()) for m in live.mismatches
        )
        sample = api.verify(plan, state=mig.state_path, env=mig.env, mode="sample", sample=0.5)
        assert sample.equal and 0 < sample.totals.checked < total, sample.to_dict()

        changed, added = corrupt(mig, tables)
        found = api.verify(plan, state=mig.state_path, env=mig.env)
        totals = found.totals
        assert (totals.mismatched, totals.extra, totals.missing, totals.unsettled) == (
            changed,
            added,
            0,
            0,
        ), [(m.collection, m.kind, m.id) for m in found.mismatches if m.kind != "mismatched"]
        in_parent = {
            p: sorted((element_v(t), "int32 -1") for t in tables if t.parent == p) for p in PARENT_TABLES
        }
        assert all(
            sorted((d.path, d.target) for d in m.diffs) == in_parent.get(m.collection, [("v", "int32 -1")])
            for m in found.mismatches
            if m.kind == "mismatched"
        ), [(m.collection, [(d.path, d.target) for d in m.diffs]) for m in found.mismatches]
        repaired = api.verify(plan, state=mig.state_path, env=mig.env, repair=True)
        assert repaired.totals.repaired == changed + added and repaired.equal, repaired.to_dict()
        again = api.verify(plan, state=mig.state_path, env=mig.env)
        assert again.equal and again.totals.checked == total
    finally:
        follower.finish()
    for t in tables:
        assert t.stored_sums(mig) == t.expected_sums(mig), t.type_name


REFUSED = {
    # type -> (a value, the table's DDL for the key, what plan says)
    "tsvector": ("'a b'", "k tsvector PRIMARY KEY", "full-text vectors are derived data"),
    "tsquery": ("'a & b'", "k tsquery PRIMARY KEY", "a query is not data to migrate"),
    "composite": ("'(1,x)'", "k pair PRIMARY KEY", "composite types have no defined conversion"),
    "multirange": ("'{[1,2)}'", "k int4multirange PRIMARY KEY", "multiranges have no defined conversion"),
    "array": ("'{1,2}'", "k integer[] PRIMARY KEY", "MongoDB refuses an array as _id"),
    "jsonb": ("'[1]'", "k jsonb PRIMARY KEY", "MongoDB refuses in an _id"),
    "jsonb in a compound key": ("'{}'", "a int, k jsonb, PRIMARY KEY (a, k)", "MongoDB refuses in an _id"),
    "timestamps in an array": (
        "'{2024-01-01 00:00:00.000001}'",
        "a int, k timestamp[], PRIMARY KEY (a, k)",
        "an _id could not name its source row",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_key_that_cannot_form_an_id_is_refused_with_a_fix_that_works(mig: Migration, case: str) -> None:
    value, columns, why = REFUSED[case]
    compound = "PRIMARY KEY (a, k)" in columns
    mig.sql(
        "CREATE TYPE pair AS (n int, s text)",
        f"CREATE TABLE t ({columns}, v int NOT NULL)",
        f"INSERT INTO t (k, v{', a' if compound else ''}) VALUES ({value}, 1{', 1' if compound else ''})",
    )
    key = "[a, k]" if compound else "k"
    plan = mig.plan(f"- {{name: t, from: t, key: {key}}}", name="refused-key")
    report = api.plan(plan, env=mig.env)
    [finding] = [f for f in report.failures if f.check == "mapping.key_type"]
    assert not report.ready and finding.subject == "public.t.k" and why in finding.message, finding
    with pytest.raises(PreflightFailed, match=r"mapping\.key_type"):
        api.run(plan, until="snapshot", state=mig.state_path, env=mig.env)
    # The fix, as plan gives it, is accepted by PostgreSQL and makes a plan that runs and verifies.
    statement, new_key = re.fullmatch(r".*: (ALTER TABLE .*;) then key: (\w+)", finding.fix).groups()  # type: ignore[union-attr]
    mig.sql(statement)
    fixed = mig.plan(f"- {{name: t, from: t, key: {new_key}, exclude: [k]}}", name="refused-key")
    fixed_report = api.plan(fixed, env=mig.env)
    assert fixed_report.ready, [(f.check, f.message, f.fix) for f in fixed_report.failures]
    run(mig, fixed, "snapshot")
    assert [d["v"] for d in mig.documents("t")] == [1]
    assert api.verify(fixed, state=mig.state_path, env=mig.env).equal


def test_the_fix_names_another_unique_key_when_the_table_has_one(mig: Migration) -> None:
    mig.sql("CREATE TABLE t (k integer[] PRIMARY KEY, code text NOT NULL UNIQUE)")
    plan = mig.plan("- {name: t, from: t, key: k}", name="other-key")
    [finding] = [f for f in api.plan(plan, env=mig.env).failures if f.check == "mapping.key_type"]
    assert finding.fix.startswith("key the collection by another unique key of public.t: key: code")
    assert "REPLICA IDENTITY USING INDEX" in finding.fix


def test_an_array_or_json_key_cannot_order_the_elements_of_an_array(mig: Migration) -> None:
    mig.sql(
        "CREATE TABLE p (id int PRIMARY KEY)",
        "CREATE TABLE c (k integer[] PRIMARY KEY, pid int NOT NULL REFERENCES p, code text NOT NULL UNIQUE)",
        "CREATE TABLE j (k jsonb PRIMARY KEY, pid int NOT NULL REFERENCES p, n int NOT NULL)",
    )
    plan = mig.plan(
        """
        - name: p
          from: p
          key: id
          embed:
            - {as: cs, from: c, on: {pid: id}, key: k, many: true}
            - {as: js, from: j, on: {pid: id}, key: k, order_by: n, many: true}
        """,
        name="unordered",
    )
    found = {
        f.subject: f for f in api.plan(plan, env=mig.env).failures if f.check == "mapping.embed_order_type"
    }
    assert set(found) == {"public.c.k", "public.j.k"}
    assert "code" in found["public.c.k"].fix


def test_a_compound_key_mixing_types(mig: Migration) -> None:
    """A key of an array, a sub-millisecond timestamp, a UUID, a numeric, an interval and text
    that looks like array syntax, through snapshot, CDC, verify and repair."""
    mig.sql(
        "CREATE TABLE mixed (a text[], t timestamptz, u uuid, n numeric, i interval, s text, v int NOT NULL,"
        " PRIMARY KEY (a, t, u, n, i, s))",
        "INSERT INTO mixed SELECT ARRAY['x' || g, NULL, 'y,z'], '2024-01-01 00:00:00.000001+00'::timestamptz"
        " + g * interval '1.0005 ms', md5(g::text)::uuid, g / 7.0, g * interval '1 min 0.000001 s', '{' || g || '}', g"
        " FROM generate_series(1, 40) AS g",
    )
    plan = mig.plan(
        "- {name: mixed, from: mixed, key: [a, t, u, n, i, s]}",
        name="mixed-key",
        phases="cdc: {heartbeat_interval: 1s}\nverify: {chunk_rows: 10}",
    )
    assert api.plan(plan, env=mig.env).ready
    run(mig, plan, "snapshot")
    follower = follow(mig, plan, "mixed-key")
    try:
        mig.sql(
            "UPDATE mixed SET v = v + 100 WHERE v % 3 = 0",
            "UPDATE mixed SET t = t + interval '0.000002 s' WHERE v = 4",
            "DELETE FROM mixed WHERE v = 5",
            "INSERT INTO mixed VALUES ('{}', '1960-06-01 12:00:00.999999+00', gen_random_uuid(), 'NaN', '-1 day', '', 0)",
        )
        live = api.verify(plan, state=mig.state_path, env=mig.env)
        assert live.equal and live.totals.checked == 40, [m.to_dict() for m in live.mismatches]
        db = mig.client[mig.database]["mixed"]
        doc = db.find_one({"v": 7})
        assert doc is not None
        db.update_one({"_id": doc["_id"]}, {"$set": {"v": -7}})
        found = api.verify(plan, state=mig.state_path, env=mig.env, mode="sample", sample=1.0)
        assert (found.totals.mismatched, found.totals.extra, found.totals.missing) == (1, 0, 0)
        repaired = api.verify(plan, state=mig.state_path, env=mig.env, repair=True)
        assert repaired.totals.repaired == 1 and repaired.equal
    finally:
        follower.finish()
    [(count, total)] = mig.rows("SELECT count(*), sum(v) FROM mixed")
    stored = list(mig.client[mig.database]["mixed"].find())
    assert (len(stored), sum(d["v"] for d in stored)) == (count, total)
