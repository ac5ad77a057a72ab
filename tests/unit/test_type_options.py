"""The plan's type choices without servers: `types: {column: bool}` resolved against a schema,
applied by the assembler and the change mapper, inverted for reverse sync; `source.zero_dates` in
the plan and in the MySQL value converters (expected values written by hand)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from migrator.adapters.base import ColumnInfo, SourceInfo, SourceServerInfo
from migrator.adapters.mysql.binlog_values import ColumnFacts, RowConverter
from migrator.adapters.mysql.values import ZeroDateRefused, converter
from migrator.errors import PlanError
from migrator.findings import Severity
from migrator.mapping.assemble import Assembler
from migrator.mapping.changes import ChangeMapper
from migrator.mapping.inverse import DocumentInverse, InverseError
from migrator.mapping.spec import resolve
from migrator.mapping.types import CastError
from migrator.operations.run import plan_digest
from migrator.plan import parse_plan
from migrator.plan.models import Collection
from tests.support.tables import keyed_table

UTC = datetime.UTC


def column(name: str, type_name: str, position: int, *, nullable: bool = True) -> ColumnInfo:
    return ColumnInfo(name, type_name, "base", None, None, nullable, None, None, position)


USERS = keyed_table(
    "shop.users",
    column("id", "integer", 1, nullable=False),
    column("active", "smallint", 2),
    column("name", "text", 3),
)
FLAGS = keyed_table(
    "shop.flags",
    column("id", "integer", 1, nullable=False),
    column("user_id", "integer", 2),
    column("on_", "smallint", 3),
)


def resolved(plan: dict[str, Any]) -> Any:
    server = SourceServerInfo("mysql", "10.11", 101100, {}, 0, 0, "u", True, True, True, (), ())
    source = SourceInfo(server, {t.name: t for t in (USERS, FLAGS)})
    collection = Collection.model_validate({"name": "users", "from": "shop.users", "key": "id", **plan})
    return resolve([collection], source)


def fails(resolution: Any) -> list[tuple[str, str]]:
    return [(f.check, f.subject) for f in resolution.findings if f.severity is Severity.FAIL]


EMBED = {"as": "flags", "from": "shop.flags", "on": {"user_id": "id"}, "types": {"on_": "bool"}}


def test_a_cast_makes_the_fields_bool_on_every_level() -> None:
    resolution = resolved({"types": {"active": "bool"}, "embed": [EMBED]})
    assert fails(resolution) == []
    (mapping,) = resolution.collections
    assert mapping.shape() == {
        "_id": "<id>",
        "active": "bool | null",
        "name": "string | null",
        "flags": [{"id": "int (int32)", "on_": "bool | null"}],
    }


def test_a_cast_of_a_missing_column_a_text_column_or_a_default_key_fails_plan() -> None:
    assert fails(resolved({"types": {"activ": "bool"}})) == [("mapping.column_exists", "shop.users.activ")]
    assert fails(resolved({"types": {"name": "bool"}})) == [("mapping.type_cast", "shop.users.name")]
    # The embed's key is the table's primary key by default: the plan alone cannot refuse it.
    keyed = {**EMBED, "types": {"id": "bool"}}
    assert fails(resolved({"embed": [keyed]})) == [("mapping.type_cast", "shop.flags.id")]


def test_the_plan_refuses_casts_it_can_judge_alone_with_their_line() -> None:
    text = """\
version: 1
source: {adapter: mysql, url: "mysql://app@h:3306/shop"}
target: {adapter: mongodb, url: "mongodb://h/", database: app}
collections:
  - name: users
    from: shop.users
    key: id
    fields: {name: name}
    types: {active: bool}
"""
    with pytest.raises(PlanError) as caught:
        parse_plan(text, file="p.yaml")
    assert "p.yaml:5" in str(caught.value)
    assert "'types' names column(s) ['active'] that 'fields' does not take" in str(caught.value)
    with pytest.raises(PlanError, match=r"p.yaml:8:13 at 'collections\[0\].types.active'"):
        parse_plan(text.replace("    fields: {name: name}\n", "").replace("bool", "int"), file="p.yaml")


def test_zero_dates_is_a_mysql_source_option() -> None:
    text = """\
version: 1
source: {adapter: mysql, url: "mysql://app@h:3306/shop", zero_dates: "null"}
target: {adapter: mongodb, url: "mongodb://h/", database: app}
collections: [{name: users, from: shop.users, key: id}]
"""
    assert parse_plan(text).source.options == {"zero_dates": "null"}
    assert parse_plan(text.replace(', zero_dates: "null"', "")).source.options == {"zero_dates": "refuse"}


def test_snapshot_rows_and_changes_give_the_same_document() -> None:
    (mapping,) = resolved({"types": {"active": "bool"}, "embed": [EMBED]}).collections
    assembler = Assembler(mapping)
    # Row layouts: the root (id, active, name); the embed (root key, its own columns as read).
    reads = assembler.reads()
    assert [c.name for c in reads[0].columns] == ["id", "active", "name"]
    assert [c.name for c in reads[1].columns] == ["user_id", "id", "on_"]
    ((_, snapshot, _),) = list(
        assembler.documents([iter([(1, 1, "a")]), iter([(1, 1, 10, 0), (1, 1, 11, None)])])
    )
    assert snapshot == {
        "_id": 1,
        "active": True,
        "name": "a",
        "flags": [{"id": 10, "on_": False}, {"id": 11, "on_": None}],
    }
    (flat,) = resolved({"types": {"active": "bool"}}).collections
    mapper = ChangeMapper([flat], {"shop.users": ("id",)}, unchanged=object())
    (write,) = mapper.insert("shop.users", {"id": 1, "active": 1, "name": "a"})
    assert (write.kind, write.update) == ("replace", {"_id": 1, "active": True, "name": "a"})
    (write,) = mapper.update("shop.users", None, {"id": 1, "active": 0, "name": "a"})
    assert write.update == {"$set": {"active": False, "name": "a"}}


def test_a_value_the_cast_cannot_carry_stops_naming_the_column() -> None:
    (mapping,) = resolved({"types": {"active": "bool"}}).collections
    with pytest.raises(CastError, match=r"shop.users.active holds 2, which `types: \{active: bool\}` cannot"):
        list(Assembler(mapping).documents([iter([(1, 2, "a")])]))


def test_reverse_sync_writes_one_and_zero_and_refuses_other_values() -> None:
    (mapping,) = resolved({"types": {"active": "bool"}, "embed": [EMBED]}).collections
    inverse = DocumentInverse(mapping)
    rows = inverse.rows({"_id": 1, "active": True, "name": "a", "flags": [{"id": 10, "on_": False}]})
    assert rows.state is not None
    assert rows.state[0].rows == [{"id": 1, "active": 1, "name": "a"}]
    assert rows.state[1].rows == [{"user_id": 1, "id": 10, "on_": 0}]
    assert type(rows.state[0].rows[0]["active"]) is int
    with pytest.raises(InverseError, match="expected bool, found int 1"):
        inverse.rows({"_id": 1, "active": 1})


def test_the_readers_zero_dates() -> None:
    for type_name in ("date", "timestamp without time zone", "timestamp with time zone"):
        to_null = converter(type_name, zero_dates="null")
        assert to_null is not None and to_null("0000-00-00") is None and to_null(b"2024-00-10") is None
        refuse = converter(type_name)
        assert refuse is not None
        with pytest.raises(ZeroDateRefused, match="'0000-00-00 00:00:00'"):
            refuse("0000-00-00 00:00:00")
    assert converter("date", zero_dates="null")(datetime.date(2024, 1, 2)) == datetime.date(2024, 1, 2)  # type: ignore[misc]
    aware = converter("timestamp with time zone", zero_dates="null")(datetime.datetime(2024, 1, 2))  # type: ignore[misc]
    assert aware == datetime.datetime(2024, 1, 2, tzinfo=UTC)


FACTS = [
    ColumnFacts("id", "int", "int(11)"),
    ColumnFacts("d", "date", "date"),
    ColumnFacts("ts", "timestamp", "timestamp"),
    ColumnFacts("unread", "date", "date"),
]
ZERO_ROW = {"id": 1, "d": None, "ts": datetime.datetime(1970, 1, 1), "unread": None}
ZERO_SOURCES = {"d": "out of date range", "unread": "out of date range"}


def test_the_binlogs_zero_dates() -> None:
    read = {"id", "d", "ts"}
    to_null = RowConverter(FACTS, "null", "shop.t", read)
    assert to_null.row(ZERO_ROW, ZERO_SOURCES) == {"id": 1, "d": None, "ts": None, "unread": None}
    one_second = datetime.datetime(1970, 1, 1, 0, 0, 1)
    assert to_null.row({**ZERO_ROW, "ts": one_second}, ZERO_SOURCES)["ts"] == one_second.replace(tzinfo=UTC)
    refuse = RowConverter(FACTS, "refuse", "shop.t", read)
    with pytest.raises(ZeroDateRefused, match=r"in shop\.t\.d from the binlog"):
        refuse.row({**ZERO_ROW, "ts": one_second}, ZERO_SOURCES)
    with pytest.raises(ZeroDateRefused, match=r"in shop\.t\.ts from the binlog"):
        refuse.row({**ZERO_ROW, "d": datetime.date(2024, 1, 1)}, {"unread": "out of date range"})
    # A NULL, and a zero date in a column the mapping does not read, are no reason to stop.
    fine = refuse.row(
        {**ZERO_ROW, "d": None, "ts": None}, {"d": "null", "ts": "null", "unread": "out of date range"}
    )
    assert fine == {"id": 1, "d": None, "ts": None, "unread": None}


def test_types_count_in_the_runs_mapping_digest_only_where_given() -> None:
    text = """\
version: 1
source: {adapter: mysql, url: "mysql://app@h:3306/shop"}
target: {adapter: mongodb, url: "mongodb://h/", database: app}
collections: [{name: users, from: shop.users, key: id}]
"""
    plain = parse_plan(text)
    # Without `types` a collection dumps as before it existed: an active run's recorded digest holds.
    assert plain.collections[0].model_dump(by_alias=True) == {
        "from": "shop.users",
        "fields": None,
        "exclude": [],
        "embed": [],
        "name": "users",
        "key": "id",
    }
    typed = parse_plan(text.replace("key: id}", "key: id, types: {active: bool}}"))
    assert plan_digest(typed) != plan_digest(plain)
