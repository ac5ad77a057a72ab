"""A PostgreSQL target's DDL from the source's definitions (adapters/postgres_target/schema.py)."""

from __future__ import annotations

import pytest

from migrator.adapters.base import ColumnInfo, SourceInfo, SourceServerInfo, TableInfo
from migrator.adapters.postgres_target.schema import (
    added_columns,
    create_tables,
    primary_key,
    safe_default,
    sequence_schema,
)
from migrator.mapping.spec import resolve
from migrator.plan import parse_plan

SERVER = SourceServerInfo("pg", "15", 150000, {}, 0, 0, "u", True, True, True, (), ())


def _column(
    position: int, name: str, declared: str, *, nullable: bool = True, default: str | None = None
) -> ColumnInfo:
    base = declared.split("(")[0]
    return ColumnInfo(
        name,
        base,
        "base",
        None,
        None,
        nullable,
        None,
        None,
        position,
        declared_type=declared,
        default=default,
    )


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("0", True),
        ("'a(b'::text", True),
        ("now()", True),
        ("gen_random_uuid()", True),
        ("nextval('orders_id_seq'::regclass)", False),
        ("app.next_code()", False),
        ("my_function(1)", False),
        (None, False),
    ],
)
def test_a_default_is_kept_only_where_it_names_nothing_the_target_lacks(
    expression: str | None, kept: bool
) -> None:
    assert (safe_default(expression) == expression and expression is not None) is kept


def test_the_ddl_has_the_declared_types_not_null_safe_defaults_and_the_primary_key_in_column_order() -> None:
    table = TableInfo(
        "public.orders",
        (
            _column(1, "shop", "integer", nullable=False),
            _column(2, "id", "bigint", nullable=False, default="nextval('orders_id_seq'::regclass)"),
            _column(3, "total", "numeric(10,2)", nullable=False, default="0"),
            _column(4, "secret", "text"),
            _column(5, "note", "character varying(20)", default="'n/a'::character varying"),
        ),
        ("shop", "id"),
        (("shop", "id"),),
        "default",
        ("shop", "id"),
        (),
        0,
        0,
        True,
    )
    plan = parse_plan(
        "version: 1\nsource: {adapter: postgres, url: 'postgresql://u@s/db'}\n"
        "target: {adapter: postgres, url: 'postgresql://u@t/db'}\n"
        "tables: [{from: public.orders, name: sales.orders, exclude: [secret], fields: {amount: total, note: note}}]\n"
    )
    resolution = resolve(list(plan.collections), SourceInfo(SERVER, {"public.orders": table}))
    assert create_tables(resolution.collections) == [
        'CREATE SCHEMA IF NOT EXISTS "sales"',
        # A serial's sequence, under the name its default gives (docs/architecture.md).
        "CREATE SEQUENCE IF NOT EXISTS orders_id_seq AS bigint",
        'CREATE TABLE IF NOT EXISTS "sales"."orders" (\n'
        '    "shop" integer NOT NULL,\n'
        "    \"id\" bigint NOT NULL DEFAULT nextval('orders_id_seq'::regclass),\n"
        '    "amount" numeric(10,2) NOT NULL DEFAULT 0,\n'
        "    \"note\" character varying(20) DEFAULT 'n/a'::character varying\n"
        ")",
        'ALTER SEQUENCE orders_id_seq OWNED BY "sales"."orders"."id"',
    ]
    # The primary key comes after the copy (docs/architecture.md, "After the copy"), in key order.
    # Its index built beside the table's others, then attached as the key (pgcopydb's way).
    assert primary_key("sales.orders", resolution.collections[0].document.key) == (
        'CREATE UNIQUE INDEX "orders_pkey" ON "sales"."orders" ("shop", "id"); '
        'ALTER TABLE "sales"."orders" ADD CONSTRAINT "orders_pkey" PRIMARY KEY USING INDEX "orders_pkey"'
    )


@pytest.mark.parametrize(
    ("sequence", "schema"),
    [
        ("orders_id_seq", None),
        ("sales.orders_id_seq", "sales"),
        ('"My.Schema"."seq"', '"My.Schema"'),
        ('"a.b"', None),
    ],
)
def test_a_sequence_in_another_schema_has_that_schema_created_first(
    sequence: str, schema: str | None
) -> None:
    assert sequence_schema(sequence) == schema


def _generated(
    position: int, name: str, expression: str, inputs: tuple[str, ...], builtin: bool
) -> ColumnInfo:
    return ColumnInfo(
        name, "integer", "base", None, None, True, None, None, position,
        generated=expression, generated_from=inputs, generated_builtin=builtin, declared_type="integer",
    )  # fmt: skip


def test_a_stored_generated_column_stays_generated_where_the_target_can_compute_it() -> None:
    """As pg_dump keeps it: over built-in functions and columns the table has under their own
    names. Over a user function, or a column the plan renames or leaves out, it is a plain
    column the copy and CDC fill (docs/architecture.md, "Tables as collections")."""
    table = TableInfo(
        "public.g",
        (
            _column(1, "a", "integer", nullable=False),
            _column(2, "x", "integer"),
            _generated(3, "twice", "(a * 2)", ("a",), True),
            _generated(4, "custom", "public.f(a)", ("a",), False),
            _generated(5, "from_x", "(x + 1)", ("x",), True),
        ),
        ("a",),
        (("a",),),
        "default",
        ("a",),
        (),
        0,
        0,
        True,
    )
    head = (
        "version: 1\nsource: {adapter: postgres, url: 'postgresql://u@s/db'}\n"
        "target: {adapter: postgres, url: 'postgresql://u@t/db'}\n"
    )
    ddl = create_tables(resolve(list(parse_plan(head + "tables: [{from: public.g}]\n").collections),
                                SourceInfo(SERVER, {"public.g": table})).collections)  # fmt: skip
    assert ddl[-1] == (
        'CREATE TABLE IF NOT EXISTS "public"."g" (\n'
        '    "a" integer NOT NULL,\n'
        '    "x" integer,\n'
        '    "twice" integer GENERATED ALWAYS AS ((a * 2)) STORED,\n'
        '    "custom" integer,\n'
        '    "from_x" integer GENERATED ALWAYS AS ((x + 1)) STORED\n'
        ")"
    )
    renamed = parse_plan(head + "tables: [{from: public.g, fields: {y: x, twice: twice, from_x: from_x}}]\n")
    ddl = create_tables(
        resolve(list(renamed.collections), SourceInfo(SERVER, {"public.g": table})).collections
    )
    assert ddl[-1].endswith('"from_x" integer\n)') and "GENERATED ALWAYS AS ((a * 2))" in ddl[-1], ddl[-1]


def test_a_column_added_on_the_source_is_added_to_the_target_table_without_not_null() -> None:
    """docs/architecture.md, "A column added while CDC follows": the rows already there get it
    from CDC, so it cannot be NOT NULL yet; a serial's default names a sequence the target lacks."""
    table = TableInfo(
        "public.t",
        (
            _column(1, "id", "integer", nullable=False),
            _column(2, "v", "text"),
            _column(3, "n", "integer", nullable=False, default="7"),
            _column(4, "s", "bigint", nullable=False, default="nextval('t_s_seq'::regclass)"),
        ),
        ("id",),
        (("id",),),
        "default",
        ("id",),
        (),
        0,
        0,
        True,
    )
    plan = parse_plan(
        "version: 1\nsource: {adapter: postgres, url: 'postgresql://u@s/db'}\n"
        "target: {adapter: postgres, url: 'postgresql://u@t/db'}\ntables: [{from: public.t}]\n"
    )
    (collection,) = resolve(list(plan.collections), SourceInfo(SERVER, {"public.t": table})).collections
    assert added_columns(collection, {"id", "v"}) == [
        'ALTER TABLE "public"."t" ADD COLUMN IF NOT EXISTS "n" integer DEFAULT 7',
        'ALTER TABLE "public"."t" ADD COLUMN IF NOT EXISTS "s" bigint',
    ]
    assert added_columns(collection, {"id", "v", "n", "s"}) == []
