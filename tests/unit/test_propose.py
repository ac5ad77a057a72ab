"""What `migrator init` proposes (migrator/operations/propose.py), from inspection results built
here: where each table goes, and why, for the cases a live test does not cheaply reach (a document
over the budget, a foreign-key cycle, a child with two parents, a key with no conversion), and
that the text it writes loads as the plan it describes."""

from __future__ import annotations

from migrator.adapters.base import ColumnInfo, ForeignKey, RowStatistics, TableInfo
from migrator.operations.plan_text import Header, render, scalar
from migrator.operations.propose import DOCUMENT_BUDGET, propose
from migrator.plan import parse_plan


def _column(name: str, type_name: str = "bigint", position: int = 1, nullable: bool = False) -> ColumnInfo:
    return ColumnInfo(name, type_name, "base", None, None, nullable, None, None, position)


def _table(
    name: str,
    columns: list[str],
    key: tuple[str, ...] = ("id",),
    fks: tuple[ForeignKey, ...] = (),
    rows: int = 100,
    types: dict[str, str] | None = None,
    nullable: tuple[str, ...] = (),
) -> TableInfo:
    kinds = types or {}
    return TableInfo(
        name=name,
        columns=tuple(
            _column(c, kinds.get(c, "bigint"), i + 1, nullable=c in nullable) for i, c in enumerate(columns)
        ),
        primary_key=key,
        unique_keys=(key,) if key else (),
        replica_identity="default",
        identity_columns=key,
        foreign_keys=fks,
        estimated_rows=rows,
        total_bytes=0,
        owned_by_current_user=True,
    )


def _fk(columns: tuple[str, ...], table: str, referenced: tuple[str, ...] = ("id",)) -> ForeignKey:
    return ForeignKey(columns, table, referenced)


def _shape(tables: list[TableInfo], stats: dict[str, RowStatistics] | None = None) -> dict[str, object]:
    """Each root as {table: {child table: (many, {grandchild: ...})}}, plus the tables left out."""
    proposal = propose({t.name: t for t in tables}, stats or {})

    def tree(level: object) -> dict[str, object]:
        return {c.table: ("one" if c.one else "many", tree(c)) for c in level.children}  # type: ignore[attr-defined]

    return {"roots": {r.table: tree(r) for r in proposal.roots}, "skipped": sorted(proposal.skipped)}


def test_nested_children_and_a_child_with_two_parents_takes_the_link_in_its_key() -> None:
    tables = [
        _table("s.customers", ["id"]),
        _table("s.orders", ["id", "customer_id"], fks=(_fk(("customer_id",), "s.customers"),)),
        _table("s.products", ["id"]),
        # Two parents: the order (its link is part of its primary key) wins over the product.
        _table(
            "s.items",
            ["order_id", "line", "product_id"],
            key=("order_id", "line"),
            fks=(_fk(("product_id",), "s.products"), _fk(("order_id",), "s.orders")),
        ),
    ]
    assert _shape(tables) == {
        "roots": {
            "s.customers": {"s.orders": ("many", {"s.items": ("many", {})})},
            "s.products": {},
        },
        "skipped": [],
    }


def test_a_document_over_the_budget_leaves_its_largest_child_a_collection() -> None:
    tables = [
        _table("s.parents", ["id"], rows=10),
        _table("s.small", ["id", "parent_id"], fks=(_fk(("parent_id",), "s.parents"),), rows=50),
        _table("s.wide", ["id", "parent_id"], fks=(_fk(("parent_id",), "s.parents"),), rows=5000),
    ]
    # 500 wide rows a parent on average, of ~1/100 of the budget each: far over it.
    stats = {"s.wide": RowStatistics(DOCUMENT_BUDGET // 100)}
    proposal = propose({t.name: t for t in tables}, stats)
    roots = {r.table: r for r in proposal.roots}
    assert set(roots) == {"s.parents", "s.wide"}
    assert [c.table for c in roots["s.parents"].children] == ["s.small"]
    assert "a quarter of MongoDB's 16 MB limit" in roots["s.wide"].notes[0]


def test_the_most_common_link_value_marks_a_large_fan_out() -> None:
    tables = [
        _table("s.parents", ["id"], rows=100),
        _table("s.events", ["id", "parent_id"], fks=(_fk(("parent_id",), "s.parents"),), rows=2000),
    ]
    even = _shape(tables, {"s.events": RowStatistics(40, {"parent_id": 20})})
    assert even["roots"] == {"s.parents": {"s.events": ("many", {})}}
    skewed = _shape(tables, {"s.events": RowStatistics(40, {"parent_id": 1900})})
    assert skewed["roots"] == {"s.parents": {}, "s.events": {}}


def test_a_link_that_may_be_null_is_not_embedded() -> None:
    # An order without a customer would be in no customer's document: it stays a collection.
    tables = [
        _table("s.customers", ["id"]),
        _table(
            "s.orders",
            ["id", "customer_id"],
            fks=(_fk(("customer_id",), "s.customers"),),
            nullable=("customer_id",),
        ),
    ]
    proposal = propose({t.name: t for t in tables}, {})
    assert [(r.table, r.children) for r in proposal.roots] == [("s.customers", []), ("s.orders", [])]
    assert "may be NULL" in proposal.roots[1].notes[0]


def test_a_foreign_key_cycle_keeps_one_table_a_root() -> None:
    tables = [
        _table("s.a", ["id", "b_id"], fks=(_fk(("b_id",), "s.b"),)),
        _table("s.b", ["id", "a_id"], fks=(_fk(("a_id",), "s.a"),)),
    ]
    assert _shape(tables)["roots"] == {"s.a": {"s.b": ("many", {})}}


def test_tables_without_a_usable_key_are_left_out_and_unconvertible_columns_excluded() -> None:
    tables = [
        _table("s.log", ["at", "message"], key=()),
        _table("s.my-table", ["id"]),
        _table("s.shapes", ["id", "area"], key=("id",), types={"id": "tsvector"}),
        _table("s.docs", ["id", "body", "search"], types={"body": "text", "search": "tsvector"}),
    ]
    proposal = propose({t.name: t for t in tables}, {})
    assert sorted(proposal.skipped) == ["s.log", "s.my-table", "s.shapes"]
    assert "needs quoting" in proposal.skipped["s.my-table"]
    assert "no primary key" in proposal.skipped["s.log"]
    assert "have no conversion" in proposal.skipped["s.shapes"]
    assert list(proposal.roots[0].excluded) == ["search"]


def test_the_written_plan_loads_as_the_proposal() -> None:
    tables = [
        _table("public.users", ["id", "on", "orders"]),  # a column named like an embed, and `on`
        _table("public.orders", ["id", "user_id"], fks=(_fk(("user_id",), "public.users"),)),
        _table(
            "public.profiles", ["user_id", "bio"], key=("user_id",), fks=(_fk(("user_id",), "public.users"),)
        ),
    ]
    header = Header(
        "plan-v1.json", "postgresql://app@h/db", "postgres", "${SRC:-postgresql://app@h/db}", "${T}", "db"
    )
    text = render(propose({t.name: t for t in tables}, {}), header, len(tables))
    plan = parse_plan(text, env={"T": "mongodb://h/"})
    users = plan.collections[0]
    assert [(e.as_, e.table, e.on, e.many) for e in users.embed] == [
        ("orders_rows", "public.orders", {"user_id": "id"}, True),  # `orders` is a column of users
        ("profiles", "public.profiles", {"user_id": "id"}, False),
    ]
    assert plan.source.url.get_secret_value() == "postgresql://app@h/db"
    assert scalar("on") == '"on"' and scalar("id") == "id" and scalar("a b") == '"a b"'


def test_the_proposal_names_a_cutover_switch_that_loads_once_uncommented() -> None:
    tables = [_table("public.users", ["id", "email"])]
    header = Header(
        "plan-v1.json", "postgresql://app@h/db", "postgres", "${S:-postgresql://app@h/db}", "${T}", "db"
    )
    text = render(propose({t.name: t for t in tables}, {}), header, len(tables))
    assert parse_plan(text, env={"T": "mongodb://h/"}).phases.cutover.switch is None
    uncommented = text.replace("# phases:", "phases:").replace("#   cutover:", "  cutover:")
    uncommented = uncommented.replace("#     switch:", "    switch:")
    switch = parse_plan(uncommented, env={"T": "mongodb://h/"}).phases.cutover.switch
    assert switch is not None and (switch.kind, switch.path) == ("file", "./routing")
