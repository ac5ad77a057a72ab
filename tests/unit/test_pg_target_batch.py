"""How a CDC batch folds for a PostgreSQL target (adapters/postgres_target/batch.py): each row's
writes end in one state, in the order the source gave them, and a key change is a barrier."""

from __future__ import annotations

import pytest

from migrator.adapters.base import WriteOp
from migrator.adapters.postgres_target.batch import TableWrites, steps
from migrator.adapters.postgres_target.rows import Column, TargetTable, row_values
from migrator.errors import TargetError


def _replace(table: str, key: int, **columns: object) -> WriteOp:
    return WriteOp(table, "replace", {"_id": key}, {"_id": key, **columns}, upsert=True)


def _set(table: str, key: int, **columns: object) -> WriteOp:
    return WriteOp(table, "update", {"_id": key}, {"$set": columns})


def _delete(table: str, key: int) -> WriteOp:
    return WriteOp(table, "delete", {"_id": key})


def test_each_row_ends_in_its_last_state_and_a_key_change_is_a_barrier() -> None:
    rekey = WriteOp("t", "rekey", {"_id": 9}, extra={"new_id": 10, "set": {}, "defaults": {}})
    ops = [
        _replace("t", 1, a=1, b=1),
        _set("t", 1, b=2),
        _delete("t", 2),
        _set("t", 2, a=5),  # an absent row stays absent
        _set("t", 3, a=1),
        _set("t", 3, b=1),
        _delete("t", 4),
        _replace("t", 4, a=4, b=None),
        _replace("u", 1, a=0),
        _delete("u", 1),
        rekey,
        _set("t", 1, a=7),
    ]
    first, second, barrier, after = steps(ops)
    assert isinstance(first, TableWrites) and isinstance(second, TableWrites)
    assert (first.table, second.table) == ("t", "u")
    assert list(first.rows.values()) == [{"_id": 1, "a": 1, "b": 2}, {"_id": 4, "a": 4, "b": None}]
    assert list(first.deletes.values()) == [2]
    assert list(first.column_updates()) == [(("a", "b"), [(3, {"a": 1, "b": 1})])]
    assert (second.rows, list(second.deletes.values())) == ({}, [1])
    assert barrier is rekey
    assert isinstance(after, TableWrites) and list(after.updates.values()) == [(1, {"a": 7})]


def test_a_field_the_target_table_has_no_column_for_is_an_error_never_dropped() -> None:
    """A row written with a field its table lacks (a column added on the source) would lose it
    silently (docs/architecture.md, "A column added while CDC follows")."""
    table = TargetTable(
        "public.t", (Column("id", "integer", False, False), Column("v", "text", False, False)), ("id",)
    )
    assert row_values(table, {"_id": 1, "v": "x"}, ["id", "v"]) == [1, "x"]
    with pytest.raises(TargetError, match=r"public\.t has no column c"):
        row_values(table, {"_id": 1, "v": "x", "c": 3}, ["id", "v"])
