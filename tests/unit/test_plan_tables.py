"""A postgres target's `tables:` (docs/architecture.md, "Tables as collections"): each table is a
flat collection keyed by its source primary key, resolved against the source."""

from __future__ import annotations

import pytest

from migrator.adapters.base import ColumnInfo, SourceInfo, SourceServerInfo, TableInfo
from migrator.errors import PlanError
from migrator.mapping.spec import resolve
from migrator.plan import parse_plan

SERVER = SourceServerInfo("pg", "15", 150000, {}, 0, 0, "u", True, True, True, (), ())
HEAD = (
    "version: 1\n"
    "source: {adapter: postgres, url: 'postgresql://u@s/db'}\n"
    "target: {adapter: postgres, url: 'postgresql://u@t/db'}\n"
)


def _table(name: str, columns: list[str], key: tuple[str, ...]) -> TableInfo:
    infos = tuple(
        ColumnInfo(
            c, "integer" if c.endswith("id") else "text", "base", None, None, c not in key, None, None, i
        )
        for i, c in enumerate(columns, 1)
    )
    unique = (key,) if key else ()
    return TableInfo(name, infos, key, unique, "default", key, (), 0, 0, True)


def test_the_minimal_form_validates_and_names_target_tables_as_the_source() -> None:
    plan = parse_plan(HEAD + "tables: [{from: public.customers}, {from: public.orders}]\n")
    assert [c.name for c in plan.collections] == ["public.customers", "public.orders"]
    assert [c.table for c in plan.collections] == ["public.customers", "public.orders"]
    assert all(c.key_columns == () and not c.embed for c in plan.collections)


def test_name_fields_and_exclude_carry_over() -> None:
    plan = parse_plan(
        HEAD
        + "tables:\n"
        + "  - {from: customers, name: archive.clients, exclude: [secret]}\n"
        + "  - {from: public.orders, fields: {total_cents: total}}\n"
    )
    first, second = plan.collections
    assert (first.name, first.table, first.exclude) == ("archive.clients", "public.customers", ["secret"])
    assert second.fields == {"total_cents": "total"}


def test_resolution_keys_rows_by_the_primary_key_and_refuses_a_table_without_one() -> None:
    plan = parse_plan(HEAD + "tables: [{from: public.orders}, {from: public.logs}]\n")
    source = SourceInfo(
        SERVER,
        {
            "public.orders": _table("public.orders", ["id", "note", "secret"], ("id",)),
            "public.logs": _table("public.logs", ["line"], ()),
        },
    )
    resolution = resolve(list(plan.collections), source)
    assert [c.name for c in resolution.collections] == ["public.orders"]
    orders = resolution.collections[0].document
    assert orders.key == ("id",)
    assert [f.name for f in orders.fields] == ["note", "secret"]
    assert [(f.check, f.subject) for f in resolution.findings] == [("mapping.table_key", "public.logs")]


def test_types_carry_over_and_name_only_columns_taken_and_no_key() -> None:
    plan = parse_plan(HEAD + "tables: [{from: public.orders, types: {flag_id: bool}}]\n")
    assert plan.collections[0].types == {"flag_id": "bool"}
    for entry, said in (
        ("{from: orders, exclude: [flag_id], types: {flag_id: bool}}", "'exclude' leaves out"),
        ("{from: orders, fields: {n: note}, types: {flag_id: bool}}", "'fields' does not take"),
    ):
        with pytest.raises(PlanError, match=said):
            parse_plan(HEAD + f"tables: [{entry}]\n")
    # The key is the source's primary key, known at resolution: a cast of it is refused there.
    keyed = parse_plan(HEAD + "tables: [{from: public.orders, types: {id: bool}}]\n")
    source = SourceInfo(SERVER, {"public.orders": _table("public.orders", ["id", "flag_id"], ("id",))})
    resolution = resolve(list(keyed.collections), source)
    assert [(f.check, f.subject) for f in resolution.findings] == [("mapping.type_cast", "public.orders.id")]
