"""Lookup embeds without servers: what `plan` accepts and refuses, the writes a change maps to,
and when the applier reads embedded content from the source (issue 17, defect 5).

The integration tests (tests/integration/test_cdc_lookup.py) check the documents these writes
produce on real servers; these pin the shapes: which writes fan out (update_many), where the
unchanged-TOAST marker may never go, and which reads happen only when a transaction needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from migrator.adapters.base import (
    ColumnInfo,
    ForeignKey,
    SourceInfo,
    SourceRead,
    SourceServerInfo,
    TableInfo,
    WriteOp,
)
from migrator.adapters.mongodb.applier import ChangeApplier
from migrator.findings import Severity
from migrator.mapping.changes import ChangeMapper
from migrator.mapping.spec import Resolution, resolve
from migrator.plan import parse_plan

UNCHANGED = object()
SERVER = SourceServerInfo("pg", "15", 150000, {}, 0, 0, "u", True, True, True, (), ())


def table(
    name: str,
    columns: Sequence[str],
    key: Sequence[str],
    unique: Sequence[Sequence[str]] = (),
    identity: Sequence[str] | None = None,
    fks: Sequence[ForeignKey] = (),
) -> TableInfo:
    infos = tuple(
        ColumnInfo(c, "integer" if c.endswith("id") else "text", "base", None, None, True, None, None, i)
        for i, c in enumerate(columns, 1)
    )
    return TableInfo(
        f"public.{name}",
        infos,
        tuple(key),
        (tuple(key), *(tuple(u) for u in unique)),
        "default",
        tuple(key if identity is None else identity),
        tuple(fks),
        0,
        0,
        True,
    )


CUSTOMER = table("customer", ["customer_id", "name", "address_id"], ["customer_id"])
ADDRESS = table("address", ["address_id", "street", "city_id"], ["address_id"])
CITY = table("city", ["city_id", "city"], ["city_id"])
RENTAL = table("rental", ["rental_id", "customer_id", "inventory_id"], ["rental_id"])
INVENTORY = table("inventory", ["inventory_id", "film"], ["inventory_id"])
ORDERS = table(
    "orders",
    ["order_id", "customer_id"],
    ["order_id"],
    fks=[ForeignKey(("customer_id",), "customer", ("customer_id",))],
)
NOTES = table("notes", ["note_id", "customer_id", "body"], ["note_id"])
TABLES = {t.name: t for t in (CUSTOMER, ADDRESS, CITY, RENTAL, INVENTORY, ORDERS, NOTES)}

PLAN = """
version: 1
source: {adapter: postgres, url: postgresql://localhost/x}
target: {adapter: mongodb, url: mongodb://localhost, database: app}
collections:
  - name: customers
    from: customer
    key: customer_id
    embed:
      - as: address
        from: address
        on: {address_id: address_id}
        many: false
        embed: [{as: city, from: city, on: {city_id: city_id}, many: false}]
      - as: rentals
        from: rental
        on: {customer_id: customer_id}
        embed: [{as: inventory, from: inventory, on: {inventory_id: inventory_id}, many: false}]
      - {as: orders, from: orders, on: {customer_id: customer_id}}
      - {as: notes, from: notes, on: {customer_id: customer_id}}
"""


def resolved(text: str = PLAN, tables: dict[str, TableInfo] | None = None) -> Resolution:
    plan = parse_plan(text, env={})
    return resolve(list(plan.collections), SourceInfo(SERVER, tables or TABLES))


def mapper(tables: dict[str, TableInfo] | None = None) -> ChangeMapper:
    resolution = resolved(tables=tables)
    assert resolution.ok, [f.message for f in resolution.findings]
    identity = {name: info.identity_columns for name, info in (tables or TABLES).items()}
    return ChangeMapper(resolution.collections, identity, UNCHANGED)


def failures(resolution: Resolution) -> list[tuple[str, str, str]]:
    return [(f.check, f.message, f.fix) for f in resolution.findings if f.severity is Severity.FAIL]


def walk(value: Any) -> list[Any]:
    """Every value inside `value` (dicts, lists, tuples, and the fields of Locations)."""
    out = [value]
    if isinstance(value, dict):
        for k, v in value.items():
            out += walk(k) + walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            out += walk(v)
    elif hasattr(value, "__dataclass_fields__") and not isinstance(value, SourceRead):
        for name in value.__dataclass_fields__:
            out += walk(getattr(value, name))
    return out


def no_marker(ops: list[WriteOp]) -> bool:
    return all(
        v is not UNCHANGED for op in ops for v in walk((op.filter, op.update, op.array_filters, op.extra))
    )


# -- plan ---------------------------------------------------------------------------------------------


def test_plan_accepts_a_lookup_and_marks_it() -> None:
    resolution = resolved()
    assert resolution.ok, failures(resolution)
    [customers] = resolution.collections
    embeds = {e.as_: e for e in customers.document.embeds}
    assert embeds["address"].lookup and not embeds["address"].foreign_key
    assert embeds["address"].child.embeds[0].lookup  # a lookup inside a lookup
    assert embeds["rentals"].child.embeds[0].lookup  # a lookup inside an array element
    assert not embeds["rentals"].lookup and not embeds["orders"].lookup
    # The foreign key from the child's link to the parent: orders have one, notes none.
    assert embeds["orders"].foreign_key and not embeds["notes"].foreign_key


def test_plan_refuses_many_true_on_a_non_unique_link_with_the_alternatives() -> None:
    text = PLAN.replace("on: {address_id: address_id}\n        many: false", "on: {address_id: address_id}")
    [(check, message, fix)] = failures(resolved(text))
    assert check == "mapping.embed_parent_unique" and "many: true" in message
    assert "many: false" in fix and "a lookup" in fix and "collection of its own" in fix


def test_plan_refuses_a_link_unique_on_neither_side() -> None:
    tables = dict(TABLES)
    tables["public.city"] = table("city", ["city_id", "city"], ["city"])  # city_id not unique
    [(check, message, fix)] = failures(resolved(tables=tables))
    assert check == "mapping.embed_parent_unique" and "neither is a unique NOT NULL key" in message
    assert "CREATE UNIQUE INDEX CONCURRENTLY city_city_id_key ON public.city (city_id);" in fix


def test_plan_refuses_a_lookup_whose_changes_do_not_name_their_row() -> None:
    tables = dict(TABLES)
    tables["public.address"] = table(
        "address", ["address_id", "street", "city_id", "id"], ["id"], unique=[["address_id"]]
    )
    [(check, message, fix)] = failures(resolved(tables=tables))
    assert check == "mapping.embed_identity" and "which documents embedded the row" in message
    assert "REPLICA IDENTITY" in fix


# -- writes -------------------------------------------------------------------------------------------


def test_a_lookup_row_change_reaches_every_place_that_names_it() -> None:
    m = mapper()
    [op] = m.update("public.address", None, {"address_id": 5, "street": "s", "city_id": 2})
    assert op.kind == "update_many" and op.filter == {"address_id": 5, "address": {"$type": "object"}}
    assert op.update["$set"]["address.street"] == "s" and op.update["$set"]["address.city_id"] == 2
    # The city link may have changed (the change does not say): the city is read again.
    [read] = op.reads
    assert op.update["$set"]["address.city"] is read and read.values == (2,)

    # A lookup inside an array element: every matching element of every document.
    [op] = m.update("public.inventory", None, {"inventory_id": 7, "film": "f"})
    assert op.kind == "update_many" and op.filter == {"rentals.inventory_id": 7}
    assert op.update == {"$set": {"rentals.$[p0].inventory.film": "f"}}
    assert op.array_filters == ({"p0.inventory_id": 7, "p0.inventory": {"$type": "object"}},)

    # A lookup inside a lookup.
    [op] = m.update("public.city", None, {"city_id": 2, "city": "c"})
    assert op.filter == {"address.city_id": 2, "address.city": {"$type": "object"}}
    assert op.update == {"$set": {"address.city.city": "c"}}


def test_a_lookup_key_change_moves_it_and_a_delete_clears_it() -> None:
    m = mapper()
    clear, put = m.update("public.address", {"address_id": 5}, {"address_id": 9, "street": "s", "city_id": 2})
    assert clear.filter == {"address_id": 5} and clear.update == {"$set": {"address": None}}
    assert put.filter == {"address_id": 9} and put.kind == "update_many"
    element = put.update["$set"]["address"]
    assert element["street"] == "s" and isinstance(element["city"], SourceRead)
    [op] = m.delete("public.address", {"address_id": 5})
    assert op.kind == "update_many" and op.update == {"$set": {"address": None}}
    [op] = m.insert("public.city", {"city_id": 3, "city": "new"})
    assert op.filter == {"address.city_id": 3} and op.update == {"$set": {"address.city": {"city": "new"}}}


def test_a_parent_reads_what_its_link_names() -> None:
    m = mapper()
    [op] = m.insert("public.customer", {"customer_id": 1, "name": "n", "address_id": 5})
    content = op.update[0]["$replaceWith"]["$mergeObjects"][3]
    reads = {name: content[name] for name in ("address", "rentals", "orders", "notes")}
    assert all(isinstance(r, SourceRead) and r.literal for r in reads.values())
    assert reads["address"].values == (5,) and reads["address"].only_if is None
    # Children behind a foreign key: read only if the transaction put some there first.
    assert reads["orders"].only_if is not None and reads["notes"].only_if is None
    assert set(op.reads) == set(reads.values())

    # An update that may have re-pointed it (the old row is not in the change): read again.
    [op] = m.update("public.customer", None, {"customer_id": 1, "name": "n", "address_id": 6})
    assert isinstance(op.update["$set"]["address"], SourceRead)
    # The old row shows the link unchanged (REPLICA IDENTITY FULL): nothing to read.
    [op] = m.update(
        "public.customer",
        {"customer_id": 1, "name": "m", "address_id": 6},
        {"customer_id": 1, "name": "n", "address_id": 6},
    )
    assert op.update == {"$set": {"name": "n", "address_id": 6}} and not op.reads
    # A NULL link: null, nothing to read.
    [op] = m.update("public.customer", None, {"customer_id": 1, "name": "n", "address_id": None})
    assert op.update["$set"]["address"] is None and not op.reads


def test_an_unchanged_toasted_link_is_not_a_change_and_is_written_nowhere() -> None:
    m = mapper()
    ops = m.update("public.customer", None, {"customer_id": 1, "name": "n", "address_id": UNCHANGED})
    assert [op.update for op in ops] == [{"$set": {"name": "n"}}] and no_marker(ops)
    # An element whose link to its parent is unchanged stays there, found by its own key.
    ops = m.update("public.rental", None, {"rental_id": 4, "customer_id": UNCHANGED, "inventory_id": 7})
    assert no_marker(ops)
    [op] = ops
    assert op.kind == "update_many" and op.filter == {"rentals.rental_id": 4}
    assert op.update["$set"]["rentals.$[p0].inventory_id"] == 7
    assert isinstance(op.update["$set"]["rentals.$[p0].inventory"], SourceRead)
    assert op.array_filters == ({"p0.rental_id": 4},)
    # A lookup row with an unchanged value keeps it in every place.
    ops = m.update("public.address", None, {"address_id": 5, "street": UNCHANGED, "city_id": UNCHANGED})
    assert ops == [] or no_marker(ops)


# -- the applier's reads ------------------------------------------------------------------------------


class _Database:
    def get_collection(self, name: str, codec_options: Any = None, write_concern: Any = None) -> None:
        return None


class _Reader:
    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    def __call__(self, reads: Sequence[SourceRead]) -> list[Any]:
        self.asked += [r.values for r in reads]
        return [f"content of {r.values}" for r in reads]


def test_reads_only_what_a_transaction_needs() -> None:
    reader = _Reader()
    applier = ChangeApplier(_Database(), "x", transactions=False, reads=reader)  # type: ignore[arg-type]
    always = SourceRead("spec", (1,))
    wanted = SourceRead("spec", (2,), only_if=("tag-2",), otherwise="kept")
    unwanted = SourceRead("spec", (3,), only_if=("tag-3",), otherwise="kept")
    literal = SourceRead("spec", (4,), literal=True)
    ops = [
        WriteOp("c", "update", {"_id": 9}, {"$set": {"a": 1}}, tags=("tag-2",)),
        WriteOp(
            "c",
            "update",
            {"_id": 1},
            {"$set": {"x": always, "y": [wanted], "z": unwanted}},
            reads=(always, wanted, unwanted),
        ),
        WriteOp("c", "rekey", {"_id": 1}, extra={"set": {"w": literal}}, reads=(literal,)),
    ]
    filled = applier._fill(ops, complete=False)
    assert filled[1].update == {"$set": {"x": "content of (1,)", "y": ["content of (2,)"], "z": "kept"}}
    assert filled[2].extra == {"set": {"w": {"$literal": "content of (4,)"}}}
    assert reader.asked == [(1,), (2,), (4,)]
    assert not filled[1].reads and filled[0] is ops[0]

    # A large transaction applied in parts: its tags carry over to the next part ...
    later = SourceRead("spec", (5,), only_if=("tag-2",), otherwise="kept")
    [op] = applier._fill(
        [WriteOp("c", "update", {"_id": 2}, {"$set": {"x": later}}, reads=(later,))], complete=True
    )
    assert op.update == {"$set": {"x": "content of (5,)"}}
    # ... and end with it.
    after = SourceRead("spec", (6,), only_if=("tag-2",), otherwise="kept")
    [op] = applier._fill(
        [WriteOp("c", "update", {"_id": 2}, {"$set": {"x": after}}, reads=(after,))], complete=True
    )
    assert op.update == {"$set": {"x": "kept"}}


def test_an_applier_without_a_reader_refuses_a_read() -> None:
    applier = ChangeApplier(_Database(), "x", transactions=False)  # type: ignore[arg-type]
    read = SourceRead("spec", (1,))
    with pytest.raises(Exception, match="no source reader"):
        applier._fill(
            [WriteOp("c", "update", {"_id": 1}, {"$set": {"x": read}}, reads=(read,))], complete=True
        )
