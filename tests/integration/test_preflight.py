"""Preflight against real servers: every check is proven by a PostgreSQL set up to fail it.

Each test builds the failing situation for real (a cluster with wal_level=replica, a role without
REPLICATION, a slot taking the only free one, a table without a key, ...), runs `api.plan` as an
application would, and asserts the finding's check id, severity, subject and an actionable fix; a
positive control shows the same plan passes once the situation is repaired.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymongo
import pytest

from migrator.findings import Severity
from migrator.plan.names import publication_name, slot_name
from tests.support.preflight import Setup, execute, failed_checks, findings, leaks, one
from tests.support.servers import PgServer

# Distinctive enough that finding it anywhere in a report can only mean a leak.
PASSWORD = "Pw-7vQz3-never-shown"


def _execute(url: str, *statements: str) -> None:
    execute(url, *statements)


def _with_user(url: str, user: str, password: str) -> str:
    """`url` connecting as `user` with `password` in the URL itself."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, parts.query, parts.fragment))


def _endpoint(url: str) -> str:
    """What migrator shows for a PostgreSQL URL: scheme://user@host:port/db, never the password."""
    parts = urlsplit(url)
    return f"postgresql://{parts.username}@{parts.hostname}:{parts.port or 5432}{parts.path}"


@pytest.fixture
def role(pg_url: str) -> Iterator[str]:
    """A LOGIN role with PASSWORD and nothing else (no REPLICATION, no CREATE); dropped afterwards."""
    name = f"app_{uuid.uuid4().hex[:10]}"
    _execute(pg_url, f"CREATE ROLE {name} LOGIN NOSUPERUSER NOREPLICATION PASSWORD '{PASSWORD}'")
    try:
        yield name
    finally:
        # Roles are cluster-wide: take back what it owns and was granted in this database first.
        _execute(pg_url, f"DROP OWNED BY {name}", f"DROP ROLE {name}")


SIMPLE_TABLE = "CREATE TABLE public.items (id bigint PRIMARY KEY, label text NOT NULL)"
SIMPLE_PLAN = "- {name: items, from: public.items, key: id}"


# -- source server ---------------------------------------------------------------------------------


def test_wal_level_replica_fails_and_logical_passes(
    setup: Setup, pg_cluster_factory: Callable[..., PgServer]
) -> None:
    replica = pg_cluster_factory(settings={"wal_level": "replica"})
    setup.sql(SIMPLE_TABLE, url=replica.url)
    report = setup.plan(SIMPLE_PLAN, source_url=replica.url)

    finding = one(report, "source.wal_level")
    assert finding.severity is Severity.FAIL
    assert finding.subject == "wal_level"
    assert "'replica'" in finding.message
    assert finding.fix is not None and "wal_level = logical" in finding.fix and "restart" in finding.fix
    assert not report.ready
    # Everything else about that cluster is fine: the wal_level is the one reason it is not ready.
    assert failed_checks(report) == [("source.wal_level", "wal_level")]

    # Positive control: the same plan against the logical cluster.
    setup.sql(SIMPLE_TABLE)
    good = setup.plan(SIMPLE_PLAN)
    assert one(good, "source.wal_level").severity is Severity.OK
    assert good.ready, good.failures

    # The same cluster as a PostgreSQL target: reverse sync's slot there needs wal_level = logical,
    # and the fix is PostgreSQL's, not MongoDB's (TargetVocabulary).
    as_target = setup.plan("- {from: public.items}", target="postgres", target_url=replica.url)
    feed = one(as_target, "target.change_streams")
    assert feed.severity is Severity.WARN
    assert feed.message.startswith("no logical decoding on the target (wal_level = logical):")
    assert (
        feed.fix is not None and "ALTER SYSTEM SET wal_level = logical" in feed.fix and "restart" in feed.fix
    )
    said = " ".join(f"{f.message} {f.fix or ''}" for f in as_target.findings if f.check.startswith("target."))
    assert "MongoDB" not in said and "replica set" not in said


def test_role_without_replication_fails_and_never_shows_password(setup: Setup, role: str) -> None:
    setup.sql(SIMPLE_TABLE, f"ALTER TABLE public.items OWNER TO {role}")
    url = _with_user(setup.pg_url, role, PASSWORD)
    report = setup.plan(SIMPLE_PLAN, source_url=url)

    reachable = one(report, "source.reachable")
    assert reachable.severity is Severity.OK and reachable.subject == _endpoint(url)
    finding = one(report, "source.replication_privilege")
    assert finding.severity is Severity.FAIL
    assert finding.subject == role
    assert finding.fix is not None and f"ALTER ROLE {role} WITH REPLICATION" in finding.fix
    # A fresh role may not create the publication either; it owns the table, so that is fine.
    assert one(report, "source.create_publication").severity is Severity.FAIL
    assert findings(report, "source.table_owner") == []
    assert not report.ready

    # The endpoint is shown (user, host, port, database) but never the password.
    assert report.to_dict()["source"] == _endpoint(url)
    assert not leaks(report, PASSWORD)

    # Positive control: the fixes as given, run by an administrator, make the same role ready.
    create = one(report, "source.create_publication").fix
    assert create == f"GRANT CREATE ON DATABASE {_dbname(setup.pg_url)} TO {role};"
    setup.sql(f"ALTER ROLE {role} WITH REPLICATION", create)
    fixed = setup.plan(SIMPLE_PLAN, source_url=url)
    assert one(fixed, "source.replication_privilege").severity is Severity.OK
    assert fixed.ready, fixed.failures
    assert not leaks(fixed, PASSWORD)


def test_table_not_owned_by_role_fails(setup: Setup, role: str) -> None:
    setup.sql(
        SIMPLE_TABLE,
        f"GRANT SELECT ON public.items TO {role}",
        f"ALTER ROLE {role} WITH REPLICATION",
        f"GRANT CREATE ON DATABASE {_dbname(setup.pg_url)} TO {role}",
    )
    report = setup.plan(SIMPLE_PLAN, source_url=_with_user(setup.pg_url, role, PASSWORD))
    finding = one(report, "source.table_owner")
    assert (finding.severity, finding.subject) == (Severity.FAIL, "public.items")
    assert finding.fix == f"ALTER TABLE public.items OWNER TO {role}; or run as the owner"
    assert failed_checks(report) == [("source.table_owner", "public.items")]
    setup.sql(finding.fix.partition(" or ")[0])
    assert setup.plan(SIMPLE_PLAN, source_url=_with_user(setup.pg_url, role, PASSWORD)).ready


def test_no_free_replication_slot_fails(setup: Setup, pg_cluster_factory: Callable[..., PgServer]) -> None:
    server = pg_cluster_factory(settings={"max_replication_slots": 1})
    setup.sql(
        SIMPLE_TABLE,
        "SELECT pg_create_logical_replication_slot('another_tool', 'pgoutput')",
        url=server.url,
    )
    report = setup.plan(SIMPLE_PLAN, source_url=server.url)
    finding = one(report, "source.free_replication_slots")
    assert finding.severity is Severity.FAIL
    assert finding.subject == "max_replication_slots"
    assert "1 in use of max_replication_slots = 1" in finding.message
    assert finding.fix is not None and "ALTER SYSTEM SET max_replication_slots = 5" in finding.fix
    assert failed_checks(report) == [("source.free_replication_slots", "max_replication_slots")]

    # Positive control: the slot gone, one of one is free.
    setup.sql("SELECT pg_drop_replication_slot('another_tool')", url=server.url)
    freed = setup.plan(SIMPLE_PLAN, source_url=server.url)
    assert one(freed, "source.free_replication_slots").severity is Severity.OK
    assert freed.ready, freed.failures


def test_no_free_wal_sender_fails(setup: Setup, pg_cluster_factory: Callable[..., PgServer]) -> None:
    server = pg_cluster_factory(settings={"max_wal_senders": 1})
    setup.sql(SIMPLE_TABLE, url=server.url)
    # A replication connection holds a WAL sender from the moment it logs in.
    with psycopg.connect(server.url, autocommit=True, replication="database"):
        report = setup.plan(SIMPLE_PLAN, source_url=server.url)
    finding = one(report, "source.free_wal_senders")
    assert finding.severity is Severity.FAIL
    assert finding.subject == "max_wal_senders"
    assert "1 in use of max_wal_senders = 1" in finding.message
    assert finding.fix is not None and "ALTER SYSTEM SET max_wal_senders = 5" in finding.fix
    assert failed_checks(report) == [("source.free_wal_senders", "max_wal_senders")]

    # Positive control, once the walsender has exited.
    deadline = time.monotonic() + 10
    while _scalar(server.url, "SELECT count(*) FROM pg_stat_replication") and time.monotonic() < deadline:
        time.sleep(0.05)
    freed = setup.plan(SIMPLE_PLAN, source_url=server.url)
    assert one(freed, "source.free_wal_senders").severity is Severity.OK
    assert freed.ready, freed.failures


def test_existing_slot_and_publication_of_the_plan_are_reported(setup: Setup) -> None:
    # Slot names are cluster-wide: a name of this test's own keeps parallel tests apart.
    name = f"resume-{uuid.uuid4().hex[:8]}"
    slot, publication = slot_name(name, uuid.uuid4().hex), publication_name(name)
    setup.sql(
        SIMPLE_TABLE,
        f"CREATE PUBLICATION {publication} FOR TABLE public.items",
        f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')",
    )
    report = setup.plan(SIMPLE_PLAN, name=name)
    finding = one(report, "source.existing_slot")
    assert (finding.severity, finding.subject) == (Severity.WARN, slot)
    assert finding.fix is not None and f"pg_drop_replication_slot('{slot}')" in finding.fix
    assert one(report, "source.existing_publication").severity is Severity.INFO
    assert report.ready, report.failures
    # Another plan's slot is none of this plan's business.
    other = setup.plan(SIMPLE_PLAN, name=f"{name}-other")
    assert findings(other, "source.existing_slot") == []


# Replica identities (missing, NOTHING, DEFERRABLE, per partition, FULL) and every other schema
# feature of a mapped table: tests/integration/test_source_features.py.


# -- mapping -------------------------------------------------------------------------------------


PARENT_CHILD = (
    "CREATE TABLE public.parent (id integer PRIMARY KEY, name text)",
    "CREATE TABLE public.child (id integer PRIMARY KEY, parent_id integer NOT NULL, note text)",
)


def test_missing_table_and_columns_fail_naming_them(setup: Setup) -> None:
    setup.sql(*PARENT_CHILD)
    report = setup.plan(
        """
        - {name: ghosts, from: public.nope, key: id}
        - {name: by_key, from: parent, key: nokey}
        - {name: by_field, from: parent, key: id, fields: {n: nofield}}
        - name: full
          from: parent
          key: id
          exclude: [noexcl]
          embed:
            - {as: a, from: public.nochild, on: {parent_id: id}}
            - {as: b, from: child, on: {noon: id}}
            - {as: c, from: child, on: {parent_id: noparent}}
            - {as: d, from: child, on: {parent_id: id}, order_by: noorder}
        """
    )
    for table in ("public.nope", "public.nochild"):
        finding = one(report, "mapping.table_exists", table)
        assert finding.severity is Severity.FAIL
        assert finding.fix is not None and "from:" in finding.fix
    expected = {
        "public.parent.nokey": "key",
        "public.parent.nofield": "mapped",
        "public.child.noon": "embed 'on' (child)",
        "public.parent.noparent": "embed 'on' (parent)",
        "public.child.noorder": "order_by",
    }
    for subject, role in expected.items():
        finding = one(report, "mapping.column_exists", subject)
        assert finding.severity is Severity.FAIL
        assert finding.message.startswith(f"{role} column '{subject.rsplit('.', 1)[1]}'"), finding.message
        # The fix lists the columns the table does have.
        known = "id, name" if subject.startswith("public.parent") else "id, parent_id, note"
        assert finding.fix == f"use one of: {known}"
    # An exclusion that names nothing excludes nothing (a column dropped since): a warning.
    excluded = one(report, "mapping.column_exists", "public.parent.noexcl")
    assert excluded.severity is Severity.WARN and "excludes nothing" in excluded.message
    assert len(report.failures) == 2 + len(expected), report.failures
    assert not report.ready


def test_key_must_be_unique_and_not_null(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.t (id integer PRIMARY KEY, grp integer NOT NULL, code text NOT NULL,"
        " maybe integer UNIQUE, inc integer NOT NULL)",
        "CREATE UNIQUE INDEX t_code ON public.t (code)",
        # A covering index: only its key column is unique, the INCLUDEd one is payload.
        "CREATE UNIQUE INDEX t_inc ON public.t (inc) INCLUDE (maybe)",
    )
    report = setup.plan(
        """
        - {name: by_grp, from: t, key: grp}
        - {name: by_maybe, from: t, key: maybe}
        - {name: by_code, from: t, key: code}
        - {name: by_inc, from: t, key: inc}
        - {name: by_pair, from: t, key: [grp, code]}
        """
    )
    for subject in ("public.t(grp)", "public.t(maybe)"):
        finding = one(report, "mapping.key_unique", subject)
        assert finding.severity is Severity.FAIL
        assert finding.fix is not None and "primary key" in finding.fix
    assert [c for c in failed_checks(report) if c[0] == "mapping.key_unique"] == [
        ("mapping.key_unique", "public.t(grp)"),
        ("mapping.key_unique", "public.t(maybe)"),
    ]
    # Unique keys other than the replica identity (the primary key) are refused for another reason:
    # a DELETE would not name them (tests/integration/test_source_features.py).
    assert {c for c in failed_checks(report) if c[0] != "mapping.key_unique"} == {
        ("source.key_identity", f"public.t({key})") for key in ("grp", "maybe", "code", "inc", "grp, code")
    }


def test_embed_on_type_mismatch_fails(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.parent (id bigint PRIMARY KEY)",
        "CREATE TABLE public.by_text (id integer PRIMARY KEY, parent_ref text NOT NULL)",
        "CREATE TABLE public.by_int (id integer PRIMARY KEY, parent_id integer NOT NULL)",
    )
    report = setup.plan(
        """
        - name: parents
          from: parent
          key: id
          embed:
            - {as: texts, from: by_text, on: {parent_ref: id}}
            - {as: ints, from: by_int, on: {parent_id: id}}
        """
    )
    finding = one(report, "mapping.on_types")
    assert finding.severity is Severity.FAIL
    assert finding.subject == "public.by_text.parent_ref -> public.parent.id"
    assert "text with bigint" in finding.message
    assert finding.fix is not None and "same type" in finding.fix
    # integer against bigint joins fine.
    assert failed_checks(report) == [("mapping.on_types", finding.subject)]


def test_unsupported_types_are_refused_until_excluded(setup: Setup) -> None:
    setup.sql(
        "CREATE TYPE public.pair AS (x integer, y integer)",
        "CREATE TABLE public.docs (id integer PRIMARY KEY, body text, search tsvector,"
        " spot public.pair, searches tsvector[])",
    )
    report = setup.plan("- {name: docs, from: docs, key: id}")
    for column, why in (("search", "full-text"), ("spot", "composite"), ("searches", "array of tsvector")):
        finding = one(report, "mapping.type_supported", f"public.docs.{column}")
        assert finding.severity is Severity.FAIL
        assert why in finding.message
        assert finding.fix == f"add '{column}' to 'exclude' of public.docs"
    assert len(report.failures) == 3

    excluded = setup.plan("- {name: docs, from: docs, key: id, exclude: [search, spot, searches]}")
    assert findings(excluded, "mapping.type_supported") == []
    assert excluded.ready, excluded.failures
    assert excluded.collections[0].shape() == {"_id": "<id>", "body": "string | null"}


def test_numeric_precision_and_timestamp_precision(setup: Setup) -> None:
    forty = "1234567890123456789012345678901234567891"
    setup.sql(
        "CREATE TABLE public.n (id integer PRIMARY KEY, declared numeric(40,2), free numeric,"
        " small numeric, fine numeric(12,2), free_list numeric[], at timestamptz)",
        f"INSERT INTO public.n VALUES (1, 1.5, {forty}, 12.5, 3.25, ARRAY[1, {forty}], now()),"
        " (2, NULL, NULL, '-100.25', NULL, NULL, NULL), (3, NULL, 'NaN', 'Infinity', NULL, NULL, NULL)",
    )
    # Mapped twice: each column is still reported once (`one` checks that).
    report = setup.plan("- {name: n, from: n, key: id}\n- {name: n_again, from: n, key: id}")

    declared = one(report, "mapping.numeric_precision", "public.n.declared")
    assert declared.severity is Severity.FAIL and "numeric(40)" in declared.message
    assert declared.fix is not None and "numeric(34, s)" in declared.fix
    for column in ("free", "free_list"):
        found = one(report, "mapping.numeric_precision", f"public.n.{column}")
        assert found.severity is Severity.FAIL, found
        assert "40 significant digits" in found.message
        assert found.fix is not None and "exclude the column" in found.fix
    small = one(report, "mapping.numeric_precision", "public.n.small")
    assert small.severity is Severity.INFO
    assert "largest value today has 5 significant digits" in small.message
    # A declared precision within Decimal128's 34 digits needs no scan and no finding.
    assert findings(report, "mapping.numeric_precision") == [
        f for f in findings(report, "mapping.numeric_precision") if f.subject != "public.n.fine"
    ]
    assert len(findings(report, "mapping.numeric_precision")) == 4
    at = one(report, "mapping.precision", "public.n.at")
    assert at.severity is Severity.WARN and "milliseconds" in at.message

    # Narrowed and rounded, nothing fails; the timestamp still warns.
    setup.sql(
        "UPDATE public.n SET free = 1, free_list = ARRAY[1]",
        "ALTER TABLE public.n ALTER declared TYPE numeric(30,2)",
    )
    fixed = setup.plan("- {name: n, from: n, key: id}")
    assert fixed.ready, fixed.failures
    assert one(fixed, "mapping.numeric_precision", "public.n.free").severity is Severity.INFO
    assert one(fixed, "mapping.precision", "public.n.at").severity is Severity.WARN


SIZE_TABLES = (
    "CREATE TABLE public.parent (id integer PRIMARY KEY, name text)",
    "CREATE TABLE public.child (id integer PRIMARY KEY, parent_id integer NOT NULL, payload text)",
    # Stored uncompressed, so the stored size the estimate reads is the size that goes to BSON.
    "ALTER TABLE public.child ALTER payload SET STORAGE EXTERNAL",
)
# md5 text: about 1 kB per row that neither PostgreSQL nor a reader could shrink much.
PAYLOAD = "repeat(md5(g::text), 32)"
EMBED_PLAN = """
- name: parents
  from: parent
  key: id
  embed:
    - {as: children, from: child, on: {parent_id: id}}
"""


def test_document_over_16mb_fails_naming_the_parent(setup: Setup) -> None:
    setup.sql(
        *SIZE_TABLES,
        "INSERT INTO public.parent SELECT g, 'p' || g FROM generate_series(1, 3) g",
        # Parent 2 gets 20,000 children of ~1 kB: ~20 MB embedded. Parents 1 and 3 get a few.
        f"INSERT INTO public.child SELECT g, 2, {PAYLOAD} FROM generate_series(1, 20000) g",
        f"INSERT INTO public.child SELECT g, 1 + (g % 2) * 2, {PAYLOAD} FROM generate_series(20001, 20100) g",
    )
    report = setup.plan(EMBED_PLAN)
    finding = one(report, "mapping.document_size", "parents")
    assert finding.severity is Severity.FAIL
    assert "_id (2) with 20000 embedded rows" in finding.message
    assert "16 MB" in finding.message
    assert finding.fix is not None and "collection of its own" in finding.fix
    assert failed_checks(report) == [("mapping.document_size", "parents")]


def test_small_documents_pass_naming_the_largest(setup: Setup) -> None:
    setup.sql(
        *SIZE_TABLES,
        "INSERT INTO public.parent SELECT g, 'p' || g FROM generate_series(1, 3) g",
        "INSERT INTO public.child VALUES (1, 1, 'a'), (2, 3, 'b'), (3, 3, 'c'), (4, 2, 'd')",
    )
    report = setup.plan(EMBED_PLAN)
    finding = one(report, "mapping.document_size", "parents")
    assert finding.severity is Severity.OK
    assert "_id (3) with 2 embedded rows" in finding.message
    assert report.ready, report.failures


def test_grandchildren_count_toward_document_size(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.top (id integer PRIMARY KEY)",
        "CREATE TABLE public.mid (id integer PRIMARY KEY, top_id integer NOT NULL)",
        "CREATE TABLE public.leaf (id integer PRIMARY KEY, mid_id integer NOT NULL, payload text)",
        "ALTER TABLE public.leaf ALTER payload SET STORAGE EXTERNAL",
        "INSERT INTO public.top VALUES (1), (2)",
        # Top 2 has the most direct children; top 1 has few, but they carry ~20 MB of grandchildren.
        "INSERT INTO public.mid SELECT g, CASE WHEN g <= 2 THEN 1 ELSE 2 END FROM generate_series(1, 50) g",
        f"INSERT INTO public.leaf SELECT g, 1 + g % 2, {PAYLOAD} FROM generate_series(1, 20000) g",
    )
    plan = """
        - name: tops
          from: top
          key: id
          embed:
            - as: mids
              from: mid
              on: {top_id: id}
              embed:
                - {as: leaves, from: leaf, on: {mid_id: id}}
    """
    report = setup.plan(plan)
    finding = one(report, "mapping.document_size", "tops")
    assert finding.severity is Severity.FAIL
    assert "_id (1) with 20002 embedded rows" in finding.message, finding.message

    # Control: without the grandchildren, the top with more direct children is the largest.
    setup.sql("TRUNCATE public.leaf")
    small = setup.plan(plan)
    finding = one(small, "mapping.document_size", "tops")
    assert finding.severity is Severity.OK
    assert "_id (2) with 48 embedded rows" in finding.message, finding.message


def test_domains_and_enums_convert_as_their_base_types(setup: Setup) -> None:
    setup.sql(
        "CREATE DOMAIN public.qty AS integer CHECK (VALUE > 0)",
        "CREATE DOMAIN public.qty_again AS public.qty",
        "CREATE DOMAIN public.qty_list AS integer[]",
        "CREATE TYPE public.mood AS ENUM ('happy', 'sad')",
        "CREATE DOMAIN public.good_mood AS public.mood CHECK (VALUE = 'happy')",
        "CREATE DOMAIN public.huge AS numeric(40, 2)",
        "CREATE TABLE public.d (id integer PRIMARY KEY, q public.qty NOT NULL, qq public.qty_again,"
        " m public.mood, gm public.good_mood, moods public.mood[], qtys public.qty[],"
        " ql public.qty_list, big public.huge, bigs public.huge[])",
        "INSERT INTO public.d VALUES (1, 2, 3, 'sad', 'happy', '{happy,sad}', '{1,2}', '{3}', 1.5, '{2.5}')",
    )
    report = setup.plan("- {name: d, from: d, key: id}")
    assert findings(report, "mapping.type_supported") == []
    assert report.collections[0].shape() == {
        "_id": "<id>",
        "q": "int (int32)",
        "qq": "int (int32) | null",
        "m": "string | null",
        "gm": "string | null",
        "moods": "array of string | null",
        "qtys": "array of int (int32) | null",
        "ql": "array of int (int32) | null",
        "big": "decimal (Decimal128) | null",
        "bigs": "array of decimal (Decimal128) | null",
    }
    # The domain's declared numeric(40, 2) is what counts, as for a plain column, arrays included.
    for column in ("big", "bigs"):
        finding = one(report, "mapping.numeric_precision", f"public.d.{column}")
        assert finding.severity is Severity.FAIL and "numeric(40)" in finding.message
    assert failed_checks(report) == [
        ("mapping.numeric_precision", "public.d.big"),
        ("mapping.numeric_precision", "public.d.bigs"),
    ]


# -- target and reachability -----------------------------------------------------------------------


def test_non_empty_target_collection_warns(setup: Setup) -> None:
    setup.sql(SIMPLE_TABLE, "CREATE TABLE public.others (id bigint PRIMARY KEY)")
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(setup.mongo_url)
    try:
        client[setup.database]["items"].insert_many([{"_id": 1}, {"_id": 2}])
    finally:
        client.close()
    report = setup.plan(f"{SIMPLE_PLAN}\n- {{name: others, from: others, key: id}}")
    finding = one(report, "target.collection_empty", f"{setup.database}.items")
    assert finding.severity is Severity.WARN
    assert "2 documents" in finding.message
    assert finding.fix is not None and "drop" in finding.fix
    empty = one(report, "target.collection_empty", f"{setup.database}.others")
    assert empty.severity is Severity.OK and empty.message == "will be created"
    assert report.ready, report.failures


def test_unreachable_target_fails_without_password(setup: Setup) -> None:
    setup.sql(SIMPLE_TABLE)
    target = f"mongodb://app:{PASSWORD}@127.0.0.1:1/?serverSelectionTimeoutMS=300"
    report = setup.plan(SIMPLE_PLAN, target_url=target)
    finding = one(report, "target.reachable")
    assert finding.severity is Severity.FAIL
    assert finding.subject == "mongodb://app@127.0.0.1:1/"
    assert finding.fix is not None and "host and port" in finding.fix
    assert failed_checks(report) == [("target.reachable", "mongodb://app@127.0.0.1:1/")]
    # The source side was still checked.
    assert one(report, "source.wal_level").severity is Severity.OK
    assert not leaks(report, PASSWORD)


def test_unreachable_source_fails_naming_endpoint_without_password(setup: Setup) -> None:
    source = f"postgresql://app:{PASSWORD}@127.0.0.1:1/shop?connect_timeout=2"
    report = setup.plan(SIMPLE_PLAN, source_url=source)
    finding = one(report, "source.reachable")
    assert finding.severity is Severity.FAIL
    assert finding.subject == "postgresql://app@127.0.0.1:1/shop"
    assert "postgresql://app@127.0.0.1:1/shop" in finding.message
    assert finding.fix is not None and "host and port" in finding.fix
    assert report.source is None and report.collections == []
    assert failed_checks(report) == [("source.reachable", "postgresql://app@127.0.0.1:1/shop")]
    # The target side was still checked.
    assert one(report, "target.reachable").severity is Severity.OK
    assert not leaks(report, PASSWORD)


def _dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _scalar(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_a_bool_cast_of_an_integer_column_is_scanned_and_its_fix_works(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.flags (id integer PRIMARY KEY, active smallint, note text)",
        "INSERT INTO public.flags VALUES (1, 1, 'a'), (2, 0, 'b'), (3, NULL, 'c'), (4, 2, 'd'), (5, -1, 'e')",
    )
    report = setup.plan("- {name: flags, from: flags, key: id, types: {active: bool}}")
    finding = one(report, "mapping.type_cast", "public.flags.active")
    assert finding.severity is Severity.FAIL
    assert "2 row(s) of public.flags hold a active other than 0, 1 or NULL" in finding.message
    assert finding.fix is not None
    setup.sql(finding.fix.rsplit(": ", 1)[1])  # the UPDATE it gives
    assert setup.scalar("SELECT count(*) FROM public.flags WHERE active = 1") == 3
    fixed = setup.plan("- {name: flags, from: flags, key: id, types: {active: bool}}")
    assert one(fixed, "mapping.type_cast", "public.flags.active").severity is Severity.OK
    assert fixed.ready, fixed.failures
    assert fixed.collections[0].shape() == {"_id": "<id>", "active": "bool | null", "note": "string | null"}

    text = setup.plan("- {name: flags, from: flags, key: id, types: {note: bool}}")
    refused = one(text, "mapping.type_cast", "public.flags.note")
    assert refused.severity is Severity.FAIL and "note is text" in refused.message
