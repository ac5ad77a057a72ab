"""A collection's levels, flattened once in mapping/spec.py, and what reads them: the assembler's
reads, the inverse's row levels, the join paths and tables."""

from __future__ import annotations

from migrator.adapters.base import ColumnInfo, JoinHop
from migrator.mapping.assemble import Assembler
from migrator.mapping.inverse import DocumentInverse
from migrator.mapping.spec import CollectionMapping, DocumentMapping, EmbedMapping, FieldMapping
from migrator.mapping.types import conversion_for


def col(name: str, type_name: str = "bigint") -> ColumnInfo:
    return ColumnInfo(name, type_name, "base", None, None, False, None, None, 0)


def level(
    table: str, key: tuple[str, ...], columns: list[str], fields: list[str], *embeds: EmbedMapping
) -> DocumentMapping:
    by_name = {c: col(c) for c in columns}
    mapped = tuple(FieldMapping(f, by_name[f], conversion_for(by_name[f])) for f in fields)
    return DocumentMapping(table, key, mapped, embeds, tuple(by_name.values()))


def shop() -> CollectionMapping:
    """customers: orders (many) with items (many) and a shipper lookup holding its contact;
    a profile (one)."""
    contact = level("public.contacts", ("id",), ["id", "shipper_id"], ["id"])
    shipper = level(
        "public.shippers",
        ("id",),
        ["id", "name"],
        ["id", "name"],
        EmbedMapping("contact", False, (("shipper_id", "id"),), (), contact),
    )
    items = level("public.items", ("order_id", "line"), ["order_id", "line", "qty"], ["line", "qty"])
    orders = level(
        "public.orders",
        ("id",),
        ["id", "customer_id", "shipper_id"],
        ["id", "shipper_id"],
        EmbedMapping("items", True, (("order_id", "id"),), ("line",), items),
        EmbedMapping("shipper", False, (("id", "shipper_id"),), (), shipper, lookup=True),
    )
    profile = level("public.profiles", ("customer_id",), ["customer_id", "bio"], ["bio"])
    root = level(
        "public.customers",
        ("id",),
        ["id", "name"],
        ["name"],
        EmbedMapping("orders", True, (("customer_id", "id"),), ("id",), orders),
        EmbedMapping("profile", False, (("customer_id", "id"),), (), profile),
    )
    return CollectionMapping("customers", root)


def test_levels_are_depth_first_with_parents_paths_links_and_kinds() -> None:
    mapping = shop()
    levels = mapping.levels
    assert levels is mapping.levels  # computed once
    assert [(v.index, v.parent, v.table) for v in levels] == [
        (0, -1, "public.customers"),
        (1, 0, "public.orders"),
        (2, 1, "public.items"),
        (3, 1, "public.shippers"),
        (4, 3, "public.contacts"),
        (5, 0, "public.profiles"),
    ]
    assert [v.path for v in levels] == [
        (),
        ("orders",),
        ("orders", "items"),
        ("orders", "shipper"),
        ("orders", "shipper", "contact"),
        ("profile",),
    ]
    assert [v.children for v in levels] == [(1, 5), (2, 3), (), (4,), (), ()]
    assert [v.kind for v in levels] == ["root", "many", "many", "lookup", "one", "one"]
    assert [v.depth for v in levels] == [0, 1, 2, 2, 3, 1]
    assert levels[0].key == ("id",) and levels[2].key == ("order_id", "line")
    assert (levels[0].link, levels[0].parent_link) == ((), ())
    assert (levels[3].link, levels[3].parent_link) == (("id",), ("shipper_id",))
    assert levels[2].hops == (
        JoinHop("public.orders", (("customer_id", "id"),), levels[1].document.row_overhead()),
        JoinHop("public.items", (("order_id", "id"),), levels[2].document.row_overhead()),
    )


def test_tables_and_join_paths_follow_the_levels() -> None:
    mapping = shop()
    assert mapping.tables() == [v.table for v in mapping.levels]
    assert mapping.join_paths() == [list(v.hops) for v in mapping.levels[1:]]
    assert [[hop.table for hop in path] for path in mapping.join_paths()] == [
        ["public.orders"],
        ["public.orders", "public.items"],
        ["public.orders", "public.shippers"],
        ["public.orders", "public.shippers", "public.contacts"],
        ["public.profiles"],
    ]


def test_the_assembler_reads_every_level_and_the_inverse_writes_back_none_under_a_lookup() -> None:
    mapping = shop()
    reads = Assembler(mapping).reads()
    assert [r.path for r in reads] == [v.hops for v in mapping.levels]
    # The root reads its key first; a child its link, then its fields, then its children's links.
    assert [c.name for c in reads[0].columns] == ["id", "name"]
    assert [c.name for c in reads[1].columns] == ["customer_id", "id", "shipper_id"]
    assert [c.name for c in reads[2].columns] == ["order_id", "line", "qty"]
    inverse = DocumentInverse(mapping)
    assert [(v.table, v.parent) for v in inverse.levels] == [
        ("public.customers", -1),
        ("public.orders", 0),
        ("public.items", 1),
        ("public.profiles", 0),
    ]
