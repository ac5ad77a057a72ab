"""The source-feature matrix against a real PostgreSQL: every schema feature a mapped table may have
is classified by `migrator plan`; each refusal's fix is run on the server, statement by statement,
and the finding is then gone (a fix must be something PostgreSQL accepts); where a feature breaks
the application or loses changes, the test shows that it no longer does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pymongo
import pytest

from migrator.errors import PreflightFailed
from migrator.findings import Severity
from migrator.phases.preflight import PreflightReport
from tests.support.preflight import Setup, failed_checks, findings, fix_statements, one

RUN_STATE = "state.db"


def apply(setup: Setup, fix: str) -> None:
    """Run one alternative of a fix, each statement on its own (CREATE INDEX CONCURRENTLY may not
    run inside a transaction block, which psql -c "a; b" would make)."""
    for statement in fix.split(";"):
        if statement.strip():
            setup.sql(statement)


def rebuild(setup: Setup, schema: tuple[str, ...]) -> None:
    setup.sql("DROP SCHEMA public CASCADE", "CREATE SCHEMA public", *schema)


def each_fix(
    setup: Setup,
    schema: tuple[str, ...],
    fix: str | None,
    plan: str,
    check: Callable[[PreflightReport, str], None],
) -> int:
    """For every SQL alternative of `fix`: rebuild `schema`, run it, plan again, `check` the report.
    Returns how many alternatives there were."""
    alternatives = fix_statements(fix)
    for alternative in alternatives:
        rebuild(setup, schema)
        apply(setup, alternative)
        check(setup.plan(plan), alternative)
    return len(alternatives)


def publications(setup: Setup) -> list[str]:
    with psycopg.connect(setup.pg_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT pubname FROM pg_publication ORDER BY 1").fetchall()]


def unique(prefix: str) -> str:
    """Slot and publication names are cluster-wide: a plan name of the test's own."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- tables without a usable replica identity -------------------------------------------------------

NO_IDENTITY = (
    # No primary key; a unique index on a NOT NULL column could serve.
    "CREATE TABLE public.events (id bigint NOT NULL, kind text)",
    "CREATE UNIQUE INDEX events_id ON public.events (id)",
    # A primary key, and REPLICA IDENTITY NOTHING.
    "CREATE TABLE public.quiet (id bigint PRIMARY KEY)",
    "ALTER TABLE public.quiet REPLICA IDENTITY NOTHING",
    # REPLICA IDENTITY USING INDEX, then the index dropped: PostgreSQL keeps 'i' and has none.
    "CREATE TABLE public.lost (id bigint NOT NULL UNIQUE, kind text)",
    "CREATE UNIQUE INDEX lost_id ON public.lost (id)",
    "ALTER TABLE public.lost REPLICA IDENTITY USING INDEX lost_id",
    "DROP INDEX public.lost_id",
)
NO_IDENTITY_PLAN = """
- {name: events, from: public.events, key: id}
- {name: quiet, from: public.quiet, key: id}
- {name: lost, from: public.lost, key: id}
"""


def test_table_without_replica_identity_is_refused_and_every_fix_is_accepted(setup: Setup) -> None:
    setup.sql(*NO_IDENTITY)
    report = setup.plan(NO_IDENTITY_PLAN)
    tables = ("public.events", "public.quiet", "public.lost")
    assert failed_checks(report) == sorted(("source.replica_identity", t) for t in tables)
    expected = {
        "public.events": (
            "ALTER TABLE public.events ADD PRIMARY KEY (id);",
            "ALTER TABLE public.events REPLICA IDENTITY USING INDEX events_id;",
            "ALTER TABLE public.events REPLICA IDENTITY FULL;",
        ),
        "public.quiet": (
            "ALTER TABLE public.quiet REPLICA IDENTITY DEFAULT;",
            "ALTER TABLE public.quiet REPLICA IDENTITY FULL;",
        ),
        "public.lost": (
            "ALTER TABLE public.lost ADD PRIMARY KEY (id); ALTER TABLE public.lost REPLICA IDENTITY DEFAULT;",
            "ALTER TABLE public.lost REPLICA IDENTITY USING INDEX lost_id_key;",
            "ALTER TABLE public.lost REPLICA IDENTITY FULL;",
        ),
    }
    why = {"public.events": "no primary key", "public.quiet": "NOTHING", "public.lost": "was dropped"}
    for table in tables:
        finding = one(report, "source.replica_identity", table)
        assert why[table] in finding.message and "UPDATE and DELETE on it fail" in finding.message
        assert tuple(fix_statements(finding.fix)) == expected[table], finding.fix

        def fixed(after: PreflightReport, statement: str, table: str = table) -> None:
            assert [f for f in after.failures if f.subject == table] == [], (statement, after.failures)

        assert each_fix(setup, NO_IDENTITY, finding.fix, NO_IDENTITY_PLAN, fixed) == len(expected[table])


def test_replica_identity_full_warns_with_a_narrower_identity(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.wide (id bigint PRIMARY KEY, body text)",
        "ALTER TABLE public.wide REPLICA IDENTITY FULL",
    )
    plan = "- {name: wide, from: wide, key: id}"
    report = setup.plan(plan)
    finding = one(report, "source.replica_identity", "public.wide")
    assert finding.severity is Severity.WARN and "FULL" in finding.message
    assert finding.fix == "ALTER TABLE public.wide REPLICA IDENTITY DEFAULT;"
    assert report.ready, report.failures
    apply(setup, finding.fix)
    assert findings(setup.plan(plan), "source.replica_identity") == []


# -- deferrable primary key (issue 17, defect 4) ----------------------------------------------------

DEFERRABLE = (
    "CREATE TABLE public.accounts (id bigint PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, owner text)",
    "INSERT INTO public.accounts SELECT g, 'owner ' || g FROM generate_series(1, 5) g",
)


def test_deferrable_primary_key_is_refused_before_anything_is_published(setup: Setup) -> None:
    setup.sql(*DEFERRABLE)
    plan = "- {name: accounts, from: accounts, key: id}"
    # What the application needs: its writes keep working whatever `run` does. Before this check,
    # `run` published the table and PostgreSQL then refused the UPDATE ("cannot update table
    # accounts because it does not have a replica identity and publishes updates").
    with pytest.raises(PreflightFailed, match=r"public\.accounts"):
        setup.run(plan, unique("deferrable"))
    setup.sql(
        "UPDATE public.accounts SET owner = 'changed' WHERE id = 1",
        "DELETE FROM public.accounts WHERE id = 2",
    )
    assert publications(setup) == []

    report = setup.plan(plan)
    finding = one(report, "source.replica_identity", "public.accounts")
    assert finding.severity is Severity.FAIL
    assert "DEFERRABLE" in finding.message and "UPDATE and DELETE on it fail" in finding.message
    assert fix_statements(finding.fix) == [
        "CREATE UNIQUE INDEX CONCURRENTLY accounts_replica_identity ON public.accounts (id); "
        "ALTER TABLE public.accounts REPLICA IDENTITY USING INDEX accounts_replica_identity;",
        "ALTER TABLE public.accounts REPLICA IDENTITY FULL;",
    ]
    assert failed_checks(report) == [("source.replica_identity", "public.accounts")]


@pytest.mark.parametrize("alternative", [0, 1], ids=["unique-index", "full"])
def test_deferrable_primary_key_once_fixed_runs_and_the_application_still_writes(
    setup: Setup, mongo: pymongo.MongoClient[dict[str, Any]], alternative: int
) -> None:
    setup.sql(*DEFERRABLE)
    plan = "- {name: accounts, from: accounts, key: id}"
    apply(
        setup,
        fix_statements(one(setup.plan(plan), "source.replica_identity", "public.accounts").fix)[alternative],
    )
    assert setup.plan(plan).ready
    name = unique("deferrable")
    setup.run(plan, name)
    assert publications(setup) != []
    # Once published, PostgreSQL lets the application update and delete: the table has an identity.
    setup.sql(
        "UPDATE public.accounts SET owner = 'changed' WHERE id = 1",
        "DELETE FROM public.accounts WHERE id = 2",
        "INSERT INTO public.accounts VALUES (6, 'owner 6')",
    )
    setup.run(plan, name, until="caught-up")
    expected = [
        {"_id": i, "owner": o}
        for i, o in setup_rows(setup, "SELECT id, owner FROM public.accounts ORDER BY id")
    ]
    assert list(mongo[setup.database]["accounts"].find().sort("_id")) == expected


def setup_rows(setup: Setup, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(setup.pg_url, autocommit=True) as conn:
        return list(conn.execute(query).fetchall())


# -- partitioned tables (issue 17, defect 1) --------------------------------------------------------

PARTITIONED = (
    "CREATE TABLE public.orders (id bigint NOT NULL, region text NOT NULL, total integer) PARTITION BY LIST (region)",
    # Two levels: a unique index on orders must hold both levels' partition keys.
    "CREATE TABLE public.orders_eu PARTITION OF public.orders FOR VALUES IN ('eu') PARTITION BY RANGE (id)",
    "CREATE TABLE public.orders_eu_1 PARTITION OF public.orders_eu FOR VALUES FROM (0) TO (1000)",
    "CREATE TABLE public.orders_us PARTITION OF public.orders FOR VALUES IN ('us')",
    "CREATE UNIQUE INDEX orders_key ON public.orders (id, region)",
    "INSERT INTO public.orders VALUES (1, 'eu', 10), (2, 'us', 20)",
    # What preflight used to advise: an identity on the partitioned table, which no partition takes.
    "ALTER TABLE public.orders REPLICA IDENTITY USING INDEX orders_key",
)
ORDERS_PLAN = "- {name: orders, from: orders, key: [id, region]}"


def test_partitioned_table_identity_is_checked_per_partition(setup: Setup) -> None:
    setup.sql(*PARTITIONED)
    report = setup.plan(ORDERS_PLAN)
    assert failed_checks(report) == [
        ("source.replica_identity", "public.orders"),
        ("source.replica_identity", "public.orders_eu_1"),
        ("source.replica_identity", "public.orders_us"),
    ]
    root = next(f for f in report.failures if f.subject == "public.orders")
    assert "no primary key" in root.message and "partition created later" in root.message
    assert fix_statements(root.fix) == ["ALTER TABLE public.orders ADD PRIMARY KEY (id, region);"]
    leaf = findings(report, "source.replica_identity")
    us = next(f for f in leaf if f.subject == "public.orders_us")
    assert "partition public.orders_us of public.orders" in us.message
    assert fix_statements(us.fix) == [
        "ALTER TABLE public.orders_us REPLICA IDENTITY USING INDEX orders_us_id_region_idx;",
        "ALTER TABLE public.orders_us REPLICA IDENTITY FULL;",
    ]
    partitioned = one(report, "source.partitioned", "public.orders")
    assert partitioned.severity is Severity.INFO
    assert "2 partitions: public.orders_us, public.orders_eu_1" in partitioned.message
    assert "partition key region, id" in partitioned.message
    # The partitioned table's own REPLICA IDENTITY is reported for what it is: without effect.
    assert any("applies to none of its partitions" in f.message for f in leaf if f.severity is Severity.INFO)

    # Each partition's fixes are accepted and clear that partition (the missing key still fails).
    for subject in ("public.orders_us", "public.orders_eu_1"):
        finding = next(f for f in leaf if f.subject == subject)

        def cleared(after: PreflightReport, statement: str, subject: str = subject) -> None:
            assert [f for f in after.failures if f.subject == subject] == [], (statement, after.failures)
            assert ("source.replica_identity", "public.orders") in failed_checks(after)

        assert each_fix(setup, PARTITIONED, finding.fix, ORDERS_PLAN, cleared) == 2

    # The primary key, partition key included, clears everything: every partition takes it.
    rebuild(setup, PARTITIONED)
    apply(setup, fix_statements(root.fix)[0])
    fixed = setup.plan(ORDERS_PLAN)
    assert fixed.ready, fixed.failures
    assert [f.severity for f in findings(fixed, "source.replica_identity")] == [Severity.INFO]


def test_partitioned_table_once_fixed_keeps_the_applications_writes_working(setup: Setup) -> None:
    """After `run` published the partitioned table, the application writes to every partition,
    including one created later (it takes the default identity: the primary key)."""
    setup.sql(*PARTITIONED, "ALTER TABLE public.orders ADD PRIMARY KEY (id, region)")
    name = unique("partitioned")
    setup.run(ORDERS_PLAN, name)
    via_root = setup.scalar("SELECT pubviaroot FROM pg_publication WHERE pubname <> ''")
    assert via_root is False
    setup.sql(
        "UPDATE public.orders SET total = 11 WHERE id = 1",
        "UPDATE public.orders SET region = 'us' WHERE id = 1",  # moves the row to another partition
        "CREATE TABLE public.orders_asia PARTITION OF public.orders FOR VALUES IN ('asia')",
        "INSERT INTO public.orders VALUES (3, 'asia', 30)",
        "UPDATE public.orders SET total = 31 WHERE id = 3",
        "DELETE FROM public.orders WHERE id = 3",
    )


def test_partitioned_table_with_the_old_advice_is_refused_and_the_application_keeps_writing(
    setup: Setup,
) -> None:
    """The issue's case: the identity set on the partitioned table only. `run` used to publish it,
    and the application's UPDATE and DELETE on a partition then failed; now it refuses, publishing
    nothing."""
    setup.sql(*PARTITIONED)
    with pytest.raises(PreflightFailed, match=r"public\.orders_us"):
        setup.run(ORDERS_PLAN, unique("partitioned"))
    setup.sql("UPDATE public.orders SET total = 21 WHERE id = 2", "DELETE FROM public.orders WHERE id = 2")
    assert publications(setup) == []


def test_partitioned_table_without_any_unique_key_gets_a_primary_key_with_the_partition_key(
    setup: Setup,
) -> None:
    schema = (
        "CREATE TABLE public.metrics (id bigint NOT NULL, day date NOT NULL, v integer) PARTITION BY RANGE (day)",
        "CREATE TABLE public.metrics_2024 PARTITION OF public.metrics FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "CREATE UNIQUE INDEX metrics_key ON public.metrics (id, day)",
    )
    setup.sql(*schema)
    plan = "- {name: metrics, from: metrics, key: [id, day]}"
    root = one(setup.plan(plan), "source.replica_identity", "public.metrics")
    assert fix_statements(root.fix) == ["ALTER TABLE public.metrics ADD PRIMARY KEY (id, day);"]

    def fixed(after: PreflightReport, statement: str) -> None:
        assert after.ready, (statement, after.failures)

    assert each_fix(setup, schema, root.fix, plan, fixed) == 1


def test_partitioned_table_with_a_deferrable_primary_key_is_refused_with_a_replacement_key(
    setup: Setup,
) -> None:
    schema = (
        "CREATE TABLE public.logs (id bigint, at date, PRIMARY KEY (id, at) DEFERRABLE) PARTITION BY RANGE (at)",
        "CREATE TABLE public.logs_2024 PARTITION OF public.logs FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    )
    setup.sql(*schema)
    plan = "- {name: logs, from: logs, key: [id, at]}"
    report = setup.plan(plan)
    assert failed_checks(report) == [
        ("source.replica_identity", "public.logs"),
        ("source.replica_identity", "public.logs_2024"),
    ]
    root = one(report, "source.replica_identity", "public.logs")
    assert "DEFERRABLE" in root.message
    assert fix_statements(root.fix) == [
        "ALTER TABLE public.logs DROP CONSTRAINT logs_pkey, ADD PRIMARY KEY (id, at);"
    ]

    def fixed(after: PreflightReport, statement: str) -> None:
        assert after.ready, (statement, after.failures)

    each_fix(setup, schema, root.fix, plan, fixed)


def test_inheritance_children_are_refused_until_detached(setup: Setup) -> None:
    schema = (
        "CREATE TABLE public.animals (id bigint PRIMARY KEY, name text)",
        "CREATE TABLE public.cats (lives integer) INHERITS (public.animals)",
    )
    setup.sql(*schema)
    plan = "- {name: animals, from: animals, key: id}"
    finding = one(setup.plan(plan), "source.inheritance", "public.animals")
    assert finding.severity is Severity.FAIL and "public.cats" in finding.message

    def fixed(after: PreflightReport, statement: str) -> None:
        assert after.ready, (statement, after.failures)

    assert each_fix(setup, schema, finding.fix, plan, fixed) == 1


def test_embed_identity_fix_is_accepted_on_tables_and_partitioned_tables(setup: Setup) -> None:
    schema = (
        "CREATE TABLE public.parent (id integer PRIMARY KEY)",
        "CREATE TABLE public.child (id integer PRIMARY KEY, parent_id integer, note text)",
        "CREATE TABLE public.part (id integer NOT NULL, parent_id integer NOT NULL, kind text NOT NULL,"
        " PRIMARY KEY (id, kind)) PARTITION BY LIST (kind)",
        "CREATE TABLE public.part_a PARTITION OF public.part FOR VALUES IN ('a')",
        "CREATE TABLE public.part_b PARTITION OF public.part FOR VALUES IN ('b')",
    )
    setup.sql(*schema)
    plan = """
        - name: parents
          from: parent
          key: id
          embed:
            - {as: children, from: child, on: {parent_id: id}}
            - {as: parts, from: part, on: {parent_id: id}, key: [id, kind]}
    """
    report = setup.plan(plan)
    for subject in ("public.child(parent_id)", "public.part(parent_id)"):
        finding = one(report, "mapping.embed_identity", subject)

        def fixed(after: PreflightReport, statement: str, subject: str = subject) -> None:
            assert findings(after, "mapping.embed_identity") == [
                f for f in findings(after, "mapping.embed_identity") if f.subject != subject
            ], statement

        assert each_fix(setup, schema, finding.fix, plan, fixed) >= 1


# -- keys outside the replica identity --------------------------------------------------------------


def test_document_key_outside_the_replica_identity_is_refused_and_deletes_then_arrive(
    setup: Setup, mongo: pymongo.MongoClient[dict[str, Any]]
) -> None:
    setup.sql(
        "CREATE TABLE public.codes (id bigint PRIMARY KEY, code text NOT NULL UNIQUE, label text)",
        "INSERT INTO public.codes VALUES (1, 'a', 'one'), (2, 'b', 'two')",
    )
    plan = "- {name: codes, from: codes, key: code}"
    finding = one(setup.plan(plan), "source.key_identity", "public.codes(code)")
    assert finding.severity is Severity.FAIL and "a DELETE carries only the identity" in finding.message
    statements = fix_statements(finding.fix)
    assert statements == ["ALTER TABLE public.codes REPLICA IDENTITY USING INDEX codes_code_key;"]
    apply(setup, statements[0])
    assert setup.plan(plan).ready
    name = unique("codes")
    setup.run(plan, name)
    setup.sql("DELETE FROM public.codes WHERE id = 1", "UPDATE public.codes SET label = 'deux' WHERE id = 2")
    setup.run(plan, name, until="caught-up")
    assert list(mongo[setup.database]["codes"].find()) == [{"_id": "b", "id": 2, "label": "deux"}]


# -- generated columns (issue 17, defect 3) ---------------------------------------------------------

GENERATED = (
    "CREATE TABLE public.people (id bigint PRIMARY KEY, first text, last text, n integer,"
    " full_name text GENERATED ALWAYS AS (first || ' ' || last) STORED,"
    " doubled integer GENERATED ALWAYS AS (n * 2) STORED)",
)


def test_generated_columns_are_classified_and_toastable_sources_refused(setup: Setup) -> None:
    setup.sql(*GENERATED)
    plan = "- {name: people, from: people, key: id}"
    report = setup.plan(plan)
    full_name = one(report, "source.generated_column", "public.people.full_name")
    assert full_name.severity is Severity.FAIL
    assert "computed from columns first, last" in full_name.message
    assert fix_statements(full_name.fix) == ["ALTER TABLE public.people REPLICA IDENTITY FULL;"]
    assert full_name.fix is not None and "add 'full_name' to 'exclude' of public.people" in full_name.fix
    doubled = one(report, "source.generated_column", "public.people.doubled")
    assert doubled.severity is Severity.INFO and "(n * 2)" in doubled.message and "from n" in doubled.message
    assert failed_checks(report) == [("source.generated_column", "public.people.full_name")]

    def fixed(after: PreflightReport, statement: str) -> None:
        assert after.ready, (statement, after.failures)
        assert one(after, "source.generated_column", "public.people.full_name").severity is Severity.INFO

    assert each_fix(setup, GENERATED, full_name.fix, plan, fixed) == 1
    # The other way out: leave the generated column out of the documents.
    rebuild(setup, GENERATED)
    excluded = setup.plan("- {name: people, from: people, key: id, exclude: [full_name]}")
    assert excluded.ready, excluded.failures
    assert [f.subject for f in findings(excluded, "source.generated_column")] == ["public.people.doubled"]


def test_generated_column_from_identity_columns_is_supported(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.slugs (name text PRIMARY KEY, slug text GENERATED ALWAYS AS (lower(name)) STORED)"
    )
    report = setup.plan("- {name: slugs, from: slugs, key: name}")
    assert one(report, "source.generated_column", "public.slugs.slug").severity is Severity.INFO
    assert report.ready, report.failures


GENERATED_IDENTITY = (
    "CREATE TABLE public.codes (id int PRIMARY KEY, name text,"
    " code text GENERATED ALWAYS AS ('C-' || id) STORED NOT NULL)",
    "CREATE UNIQUE INDEX codes_code ON public.codes (code)",
    "ALTER TABLE public.codes REPLICA IDENTITY USING INDEX codes_code",
)


def test_generated_column_in_the_replica_identity_or_key_is_refused_and_every_fix_is_accepted(
    setup: Setup,
) -> None:
    """PostgreSQL sends no stored generated column, not even in a DELETE's old row."""
    setup.sql(*GENERATED_IDENTITY)
    plan = "- {name: codes, from: codes, key: id}"
    report = setup.plan(plan)
    identity = one(report, "source.generated_key", "public.codes.code")
    assert identity.severity is Severity.FAIL
    assert "replica identity of public.codes includes stored generated column code" in identity.message
    assert fix_statements(identity.fix) == [
        "ALTER TABLE public.codes REPLICA IDENTITY DEFAULT;",
        "ALTER TABLE public.codes REPLICA IDENTITY FULL;",
    ]

    def fixed(after: PreflightReport, statement: str) -> None:
        assert after.ready, (statement, after.failures)

    assert each_fix(setup, GENERATED_IDENTITY, identity.fix, plan, fixed) == 2
    # Keyed by the generated column itself (with an identity PostgreSQL sends): refused, with a
    # key of ordinary columns.
    rebuild(setup, GENERATED_IDENTITY)
    setup.sql("ALTER TABLE public.codes REPLICA IDENTITY FULL")
    keyed = one(
        setup.plan("- {name: codes, from: codes, key: code}"), "source.generated_key", "public.codes.code"
    )
    assert "keys public.codes by (code) (document _id)" in keyed.message, keyed
    assert keyed.fix == "key it by (id)", keyed.fix
    assert setup.plan(plan).ready


# -- keys and links that may be TOASTed, N:1 links --------------------------------------------------


def test_toastable_keys_and_n_to_1_links_are_classified(setup: Setup) -> None:
    setup.sql(
        "CREATE TABLE public.addresses (id integer PRIMARY KEY, line text)",
        "CREATE TABLE public.customers (name text PRIMARY KEY, address_id integer NOT NULL)",
    )
    report = setup.plan(
        """
        - name: customers
          from: customers
          key: name
          embed:
            - {as: address, from: addresses, on: {id: address_id}, many: false}
        """
    )
    toast = one(report, "source.toastable_key", "public.customers(name)")
    assert toast.severity is Severity.INFO and "'unchanged'" in toast.message
    # An integer is never stored out of line.
    assert [f.subject for f in findings(report, "source.toastable_key")] == ["public.customers(name)"]
    link = one(report, "source.n_to_1", "public.customers(address_id)")
    assert link.severity is Severity.INFO
    assert "public.customers.address_id -> public.addresses.id" in link.message


# -- triggers ---------------------------------------------------------------------------------------


def test_triggers_are_reported_with_when_they_fire(setup: Setup) -> None:
    schema = (
        "CREATE TABLE public.audit (at timestamptz)",
        "CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN INSERT INTO public.audit VALUES (now()); RETURN NEW; END$$",
        "CREATE TABLE public.parent (id integer PRIMARY KEY)",
        # A foreign key makes internal triggers: never listed.
        "CREATE TABLE public.items (id integer PRIMARY KEY, parent_id integer REFERENCES public.parent)",
        "CREATE TRIGGER plain AFTER INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION public.touch()",
        "CREATE TRIGGER always AFTER UPDATE OR DELETE ON public.items FOR EACH ROW EXECUTE FUNCTION public.touch()",
        "ALTER TABLE public.items ENABLE ALWAYS TRIGGER always",
        "CREATE TRIGGER replica BEFORE INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION public.touch()",
        "ALTER TABLE public.items ENABLE REPLICA TRIGGER replica",
        "CREATE TRIGGER off AFTER INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION public.touch()",
        "ALTER TABLE public.items DISABLE TRIGGER off",
        # A trigger on a partitioned table is cloned onto each partition: reported once.
        "CREATE TABLE public.parts (id integer, k text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)",
        "CREATE TABLE public.parts_a PARTITION OF public.parts FOR VALUES IN ('a')",
        "CREATE TRIGGER cloned AFTER INSERT ON public.parts FOR EACH ROW EXECUTE FUNCTION public.touch()",
    )
    setup.sql(*schema)
    plan = "- {name: items, from: items, key: id}\n- {name: parts, from: parts, key: [id, k]}"
    report = setup.plan(plan)
    by_subject = {f.subject: f for f in findings(report, "source.trigger")}
    assert sorted(by_subject) == [
        "public.items: trigger always",
        "public.items: trigger off",
        "public.items: trigger plain",
        "public.items: trigger replica",
        "public.parts: trigger cloned",
    ]
    always = by_subject["public.items: trigger always"]
    assert always.severity is Severity.WARN and "ENABLE ALWAYS" in always.message
    assert "after update or delete" in always.message
    assert by_subject["public.items: trigger replica"].severity is Severity.WARN
    assert by_subject["public.items: trigger plain"].severity is Severity.INFO
    assert "disabled" in by_subject["public.items: trigger off"].message
    assert report.ready, report.failures

    statements = fix_statements(always.fix)
    assert statements == ["ALTER TABLE public.items ENABLE TRIGGER always;"]
    apply(setup, statements[0])
    after = one(setup.plan(plan), "source.trigger", "public.items: trigger always")
    assert after.severity is Severity.INFO and "ENABLE ALWAYS" not in after.message


# -- columns the plan leaves out (issue 17, defect 11) ----------------------------------------------


def test_excluded_columns_where_postgresql_must_send_them_warn_with_the_fix(setup: Setup) -> None:
    schema = (
        "CREATE TABLE public.users (id bigint PRIMARY KEY, email text, password_hash text)",
        "ALTER TABLE public.users REPLICA IDENTITY FULL",
        "CREATE TABLE public.logins (id bigint, at date, secret text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
        "CREATE TABLE public.logins_2024 PARTITION OF public.logins FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    )
    setup.sql(*schema)
    plan = """
        - {name: users, from: users, key: id, exclude: [password_hash]}
        - {name: logins, from: logins, key: [id, at], fields: {at: at}}
    """
    report = setup.plan(plan)
    users = one(report, "source.excluded_columns", "public.users")
    assert users.severity is Severity.WARN
    assert (
        "column password_hash of public.users" in users.message and "REPLICA IDENTITY FULL" in users.message
    )
    assert (
        "dropped on arrival" in users.message
        and "never written to the target, logged, or stored" in users.message
    )
    assert users.fix == "ALTER TABLE public.users REPLICA IDENTITY DEFAULT;"
    logins = one(report, "source.excluded_columns", "public.logins")
    assert logins.severity is Severity.WARN and "column secret" in logins.message
    assert "publish_via_partition_root = false" in logins.message and logins.fix is None
    assert report.ready, report.failures

    apply(setup, users.fix)
    after = one(setup.plan(plan), "source.excluded_columns", "public.users")
    assert after.severity is Severity.INFO and "stays in the source" in after.message


def test_foreign_table_partition_is_refused_until_detached(setup: Setup) -> None:
    # A wrapper without a handler: enough for a foreign table to exist (it is never read here).
    setup.sql("CREATE FOREIGN DATA WRAPPER nowhere", "CREATE SERVER far FOREIGN DATA WRAPPER nowhere")
    schema = (
        # PostgreSQL allows no unique index, so no primary key, beside a foreign partition.
        "CREATE TABLE public.sales (id bigint NOT NULL, region text NOT NULL) PARTITION BY LIST (region)",
        "CREATE TABLE public.sales_eu PARTITION OF public.sales FOR VALUES IN ('eu')",
        "CREATE FOREIGN TABLE public.sales_far PARTITION OF public.sales FOR VALUES IN ('far') SERVER far",
    )
    setup.sql(*schema)
    plan = "- {name: sales, from: sales, key: [id, region]}"
    report = setup.plan(plan)
    finding = one(report, "source.partitioned", "public.sales_far")
    assert finding.severity is Severity.FAIL and "foreign table" in finding.message
    assert ("source.partitioned", "public.sales_far") in failed_checks(report)
    statements = fix_statements(finding.fix)
    assert statements == ["ALTER TABLE public.sales DETACH PARTITION public.sales_far;"]
    apply(setup, statements[0])
    detached = setup.plan(plan)
    assert findings(detached, "source.partitioned") == [
        f for f in findings(detached, "source.partitioned") if f.severity is Severity.INFO
    ]
    # Now the primary key the partitioned table lacked can be added, as its own finding says.
    apply(setup, fix_statements(next(f for f in detached.failures if f.subject == "public.sales").fix)[0])
    assert setup.plan(plan).ready
