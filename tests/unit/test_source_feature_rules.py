"""The source-feature matrix on servers the suite has no binaries for (PostgreSQL 12 and 14), and the
pure rules behind it: column lists, quoting of fix statements. Real-server behaviour (PostgreSQL 15)
is in tests/integration/test_source_features.py and test_publication.py."""

from __future__ import annotations

from dataclasses import replace

from migrator.adapters.base import ColumnInfo, LeafInfo, SourceInfo, SourceServerInfo, TableInfo
from migrator.adapters.postgres import fixes
from migrator.adapters.postgres.features import source_features
from migrator.adapters.postgres.publication import identity_problems, publishing
from migrator.findings import Finding, Severity
from migrator.mapping.columns import columns_read
from migrator.mapping.spec import resolve
from migrator.plan.models import Collection
from tests.support.tables import keyed_table


def column(name: str, position: int, *, storage: str = "x", generated: str | None = None) -> ColumnInfo:
    return ColumnInfo(
        name=name,
        type_name="text" if storage != "p" else "bigint",
        type_kind="base",
        element_type=None,
        element_kind=None,
        nullable=name != "id",
        numeric_precision=None,
        numeric_scale=None,
        position=position,
        storage=storage,
        generated=generated,
        generated_from=("email",) if generated else (),
    )


USERS = keyed_table(
    "public.users",
    column("id", 1, storage="p"),
    column("email", 2),
    column("pw", 3),
    column("lower_email", 4, generated="lower(email)"),
)
PARTITIONED = replace(
    USERS,
    name="public.events",
    kind="partitioned",
    leaves=(LeafInfo("public.events_1", "default", ("id",), ("id",)),),
    partition_key=("id",),
)


def findings(tables: list[TableInfo], version: int, *plans: Collection) -> list[Finding]:
    server = SourceServerInfo("pg", str(version), version, {}, 0, 0, "u", True, True, True, (), ())
    source = SourceInfo(server, {t.name: t for t in tables})
    collections = resolve(list(plans), source).collections
    return source_features(source, collections, columns_read(collections))


def users_plan(**extra: object) -> Collection:
    return Collection.model_validate({"name": "users", "from": "public.users", "key": "id", **extra})


def test_postgresql_12_cannot_publish_a_partitioned_table() -> None:
    plan = Collection.model_validate({"name": "events", "from": "public.events", "key": "id"})
    found = [f for f in findings([PARTITIONED], 120000, plan) if f.check == "source.partitioned"]
    assert [(f.severity, f.subject, f.fix) for f in found] == [
        (Severity.FAIL, "public.events", "upgrade to PostgreSQL 13 or newer")
    ]
    assert "before 13" in found[0].message


def test_postgresql_14_has_no_column_lists_so_excluded_columns_are_sent_and_said_so() -> None:
    found = [
        f
        for f in findings([USERS], 140000, users_plan(exclude=["pw"]))
        if f.check == "source.excluded_columns"
    ]
    assert len(found) == 1
    assert found[0].severity is Severity.WARN
    assert "column pw of public.users" in found[0].message and "dropped on arrival" in found[0].message
    assert found[0].fix == "upgrade to PostgreSQL 15 or newer"
    # From 15 the same plan keeps it in the source.
    later = [
        f
        for f in findings([USERS], 150000, users_plan(exclude=["pw"]))
        if f.check == "source.excluded_columns"
    ]
    assert [f.severity for f in later] == [Severity.INFO]


def test_column_list_holds_what_is_read_plus_the_identity_never_a_generated_column() -> None:
    listed = publishing(USERS, {"email", "lower_email"}, 150000)
    # id is the replica identity (not read, still listed and sent); the generated column is never listed
    # (PostgreSQL refuses it before 18, and computes it anyway).
    assert listed.columns == ("id", "email")
    assert listed.left_out == ("pw",) and listed.sent_unread == ("id",)
    assert publishing(USERS, {"id", "email"}, 150000).sent_unread == ()
    assert publishing(USERS, {"id", "email", "pw"}, 150000).columns is None  # nothing left out
    assert publishing(USERS, None, 150000).columns is None
    full = publishing(
        replace(USERS, replica_identity="full", identity_columns=("id", "email", "pw")), {"id"}, 150000
    )
    assert full.columns is None and full.sent_unread == ("email", "pw")
    assert full.fix == "ALTER TABLE public.users REPLICA IDENTITY DEFAULT;"
    # An excluded column inside the identity is sent; the rest of the list still applies.
    by_pw = replace(USERS, replica_identity="index", identity_columns=("id", "pw"))
    inside = publishing(by_pw, {"id"}, 150000)
    assert inside.columns == ("id", "pw") and inside.left_out == ("email",) and inside.sent_unread == ("pw",)


def test_table_partitioned_by_an_expression_has_no_primary_key_fix() -> None:
    table = replace(PARTITIONED, primary_key=(), partitioned_by_expression=True, identity_columns=())
    problems = identity_problems(table, ("id",))
    assert problems[0].relation == "public.events"
    assert problems[0].fix.startswith("none in PostgreSQL")


def test_fix_statements_quote_only_what_postgresql_needs() -> None:
    assert fixes.ident("orders") == "orders"
    assert fixes.ident("user") == '"user"'  # reserved
    assert fixes.ident("Orders") == '"Orders"'
    assert fixes.ident('odd"name') == '"odd""name"'
    assert fixes.table("Sales.order items") == '"Sales"."order items"'
    assert (
        fixes.add_primary_key("public.t", ["id", "order"])
        == 'ALTER TABLE public.t ADD PRIMARY KEY (id, "order");'
    )
