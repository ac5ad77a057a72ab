"""Embedded levels of a MariaDB source read for many parents at once (a statement per level per
window of root keys, never one per parent), the readers verify and CDC use, and key lookups."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

from migrator.adapters.base import JoinHop, LevelRead
from migrator.adapters.mysql import MysqlSource, readers
from tests.support.mariadb import column_info, connect

PARENTS = list(range(1, 8))
LABELS = ["b", "B", "a", "é"]  # binary order: 'B' < 'a' < 'b' < 'é'


def _children(parent: int) -> list[tuple[int, int, str]]:
    return [(parent * 10 + i, parent, LABELS[(parent + i) % 4]) for i in range(parent % 4)]


def _grandchildren(child: int) -> list[tuple[int, int, str]]:
    return [(child * 10 + i, child, f"g{i}") for i in range(child % 3)]


CHILD_HOP = JoinHop("child", (("parent_id", "id"),), 0)
GRAND_HOP = JoinHop("grand", (("child_id", "id"),), 0)
ROOT = LevelRead(
    path=(), columns=(column_info("id", "integer", "base"), column_info("name", "text", "base")), order_by=()
)
CHILD = LevelRead(
    path=(CHILD_HOP,),
    columns=(column_info("id", "integer", "base"), column_info("label", "character varying", "base")),
    order_by=(column_info("label", "character varying", "base"),),
)
GRAND = LevelRead(
    path=(CHILD_HOP, GRAND_HOP),
    columns=(column_info("id", "integer", "base"), column_info("child_id", "integer", "base")),
    order_by=(column_info("id", "integer", "base"),),
)
LEVELS = [ROOT, CHILD, GRAND]


@pytest.fixture
def family(mysql_url: str) -> str:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE parent (id INT PRIMARY KEY, name TEXT)")
        cur.execute(
            "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, label VARCHAR(5), KEY (parent_id))"
        )
        cur.execute("CREATE TABLE grand (id INT PRIMARY KEY, child_id INT, KEY (child_id))")
        cur.executemany("INSERT INTO parent VALUES (%s, %s)", [(p, f"p{p}") for p in PARENTS])
        children = [c for p in PARENTS for c in _children(p)]
        cur.executemany("INSERT INTO child VALUES (%s, %s, %s)", children)
        cur.executemany(
            "INSERT INTO grand VALUES (%s, %s)", [g[:2] for c in children for g in _grandchildren(c[0])]
        )
    return mysql_url


def _expected(parents: list[int]) -> list[list[tuple[Any, ...]]]:
    """Each level's rows, built from the data as inserted: root key first, ordered by the root key
    then the level's order (labels by their UTF-8 bytes)."""
    root = [(p, f"p{p}") for p in parents]
    child = [
        (p, c, label) for p in parents for c, _, label in sorted(_children(p), key=lambda r: r[2].encode())
    ]
    grand = [(p, g, c) for p in parents for c, _, _ in sorted(_children(p)) for g, _, _ in _grandchildren(c)]
    grand.sort(key=lambda r: (r[0], r[1]))
    return [root, child, grand]


def _counting(reader: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    statements: list[str] = []
    real = reader._all

    def counted(query: str, params: Any) -> Any:
        statements.append(query)
        return real(query, params)

    monkeypatch.setattr(reader, "_all", counted)
    return statements


@pytest.mark.parametrize("window", [3, 1000])
def test_levels_are_read_a_window_of_parents_at_a_time(
    family: str, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "WINDOW_ROOTS", window)
    reader = MysqlSource(family).snapshot_reader("")
    statements = _counting(reader, monkeypatch)
    try:
        streams = reader.stream(LEVELS, "parent", ["id"], ["integer"], None, None)
        # The assembler's way: the heads of the embedded levels first, then in step.
        got = [list(s) for s in reversed(streams)][::-1]
    finally:
        reader.close()
    assert got == _expected(PARENTS)
    windows = -(-len(PARENTS) // window)
    # Per level, a key query and a query of its rows for each window, however many children.
    assert len(statements) == windows * 2 * len(LEVELS)


def test_a_sparse_level_skips_ahead_without_holding_the_others(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The assembler asks an embedded level for its first row before reading any root row: a
    level whose first row belongs to the last parent walks every window alone, and the root
    level's rows are not read (and held) meanwhile."""
    monkeypatch.setattr(readers, "WINDOW_ROOTS", 2)
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE parent (id INT PRIMARY KEY, name TEXT)")
        cur.execute("CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, label VARCHAR(5))")
        cur.executemany("INSERT INTO parent VALUES (%s, %s)", [(p, f"p{p}") for p in range(1, 21)])
        cur.execute("INSERT INTO child VALUES (1, 20, 'x')")
    reader = MysqlSource(mysql_url).snapshot_reader("")
    statements = _counting(reader, monkeypatch)
    try:
        root, child = reader.stream([ROOT, CHILD], "parent", ["id"], ["integer"], None, None)
        assert next(child) == (20, 1, "x")
        assert not any("JOIN" not in q and "LIMIT" not in q for q in statements), "root rows were read"
        assert len(list(root)) == 20
        assert list(child) == []
    finally:
        reader.close()


def test_a_chunk_of_embedded_levels_is_its_key_range(family: str) -> None:
    reader = MysqlSource(family).snapshot_reader("")
    try:
        streams = reader.stream(LEVELS, "parent", ["id"], ["integer"], ["2"], ["5"])
        assert [list(s) for s in streams] == _expected([3, 4, 5])
    finally:
        reader.close()


def test_a_range_reader_reads_given_keys_samples_and_missing_keys(family: str) -> None:
    reader = MysqlSource(family).range_reader()
    try:
        reader.begin()
        streams = reader.stream_keys(LEVELS, "parent", ["id"], ["integer"], [["6"], ["2"], ["99"]])
        assert [list(s) for s in streams] == _expected([2, 6])
        assert reader.missing_keys("parent", ["id"], ["integer"], [["6"], ["99"], ["1"], ["0"]]) == [1, 3]
        assert reader.first_keys("parent", ["id"], 3) == [["1"], ["2"], ["3"]]
        sample = [
            list(s) for s in reader.stream_sample(LEVELS, "parent", ["id"], ["integer"], None, None, 0.5, 7)
        ]
        again = [
            list(s) for s in reader.stream_sample(LEVELS, "parent", ["id"], ["integer"], None, None, 0.5, 7)
        ]
        assert sample == again
        sampled = [r[0] for r in sample[0]]
        assert sample == _expected(sampled)  # whole documents: every level of each sampled key
        everything = [
            list(s) for s in reader.stream_sample(LEVELS, "parent", ["id"], ["integer"], None, None, 1.0, 7)
        ]
        assert everything == _expected(PARENTS)
        reader.end()
    finally:
        reader.close()


def test_a_linked_read_takes_many_parents_in_one_statement_per_level(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = MysqlSource(family).linked_reader()
    statements = _counting(reader, monkeypatch)
    link = (column_info("id", "integer", "base"),)
    # The derived parent stands for `parent` (its link column `id`); its levels hang under it.
    levels = [
        LevelRead(path=(), columns=(column_info("n", "bigint", "base"), *link), order_by=()),
        LevelRead(path=(CHILD_HOP,), columns=CHILD.columns, order_by=CHILD.order_by),
        LevelRead(path=(CHILD_HOP, GRAND_HOP), columns=GRAND.columns, order_by=GRAND.order_by),
    ]
    try:
        reader.begin()
        streams = reader.stream_linked(levels, link, [["5"], ["3"], ["42"], ["3"]], "n")
        got = [list(s) for s in streams]
        reader.end()
    finally:
        reader.close()
    assert len(statements) == len(levels)
    assert got[0] == [(1, 5), (2, 3), (3, 42), (4, 3)]
    # Each ordinal's rows as the parent of that link value has them (42 has no children).
    children = _expected(PARENTS)[1]
    assert got[1] == [(n, *r[1:]) for n, p in enumerate([5, 3, 42, 3], 1) for r in children if r[0] == p]
    grand = _expected(PARENTS)[2]
    assert got[2] == [(n, *r[1:]) for n, p in enumerate([5, 3, 42, 3], 1) for r in grand if r[0] == p]


def test_key_lookups_find_root_keys_and_type_key_text(family: str) -> None:
    lookup = MysqlSource(family).key_lookup()
    try:
        root_key = (column_info("id", "integer", "base"),)
        found = lookup.root_keys(
            "parent",
            root_key,
            (CHILD_HOP, GRAND_HOP),
            (column_info("id", "integer", "base"),),
            [["501"], ["9"], ["711"]],
        )
        assert found == [[["5"]], [], [["7"]]]
        assert lookup.root_keys("parent", root_key, (), root_key, [["4"]]) == [[["4"]]]
        key = (
            column_info("a", "bigint", "base"),
            column_info("b", "numeric", "base"),
            column_info("c", "timestamp with time zone", "base"),
            column_info("d", "bytea", "base"),
        )
        typed = lookup.typed(key, [["7", "1.5", "2020-01-02 03:04:05.678", "\\x00ff"]])
        assert typed == [
            (
                7,
                Decimal("1.50"),
                datetime.datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC),
                b"\x00\xff",
            )
        ]
        assert str(typed[0][1]) == "1.50"
    finally:
        lookup.close()


def test_rows_at_key_read_one_document(family: str) -> None:
    with MysqlSource(family).rows_at_key("parent", ["id"], ["integer"], [4], LEVELS) as streams:
        assert [list(s) for s in streams] == _expected([4])


def test_values_meet_columns_of_another_character_set(mysql_url: str) -> None:
    """Link values against latin1 columns (the connection speaks utf8mb4): a derived table's values
    take the column's character set and collation (no illegal mix of collations)."""
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE tag (code VARCHAR(10) CHARACTER SET latin1 PRIMARY KEY, n INT)")
        cur.execute(
            "CREATE TABLE note (id INT PRIMARY KEY, code VARCHAR(10) CHARACTER SET latin1, KEY (code))"
        )
        cur.execute("INSERT INTO tag VALUES ('café', 1), ('x', 2)")
        cur.execute("INSERT INTO note VALUES (10, 'café'), (11, 'café'), (12, 'x')")
    source = MysqlSource(mysql_url)
    code = column_info("code", "character varying", "base")
    reader = source.linked_reader()
    try:
        reader.begin()
        levels = [
            LevelRead(path=(), columns=(column_info("n", "bigint", "base"), code), order_by=()),
            LevelRead(
                path=(JoinHop("note", (("code", "code"),), 0),),
                columns=(column_info("id", "integer", "base"),),
                order_by=(column_info("id", "integer", "base"),),
            ),
        ]
        got = [list(s) for s in reader.stream_linked(levels, (code,), [["café"], ["zzz"]], "n")]
        assert got == [[(1, "café"), (2, "zzz")], [(1, 10), (1, 11)]]
        assert reader.missing_keys("tag", ["code"], ["character varying"], [["zzz"], ["café"]]) == [0]
        reader.end()
    finally:
        reader.close()
    lookup = source.key_lookup()
    try:
        found = lookup.root_keys(
            "tag",
            (code,),
            (JoinHop("note", (("code", "code"),), 0),),
            (column_info("id", "integer", "base"),),
            [["11"]],
        )
        assert found == [[["café"]]]
        assert lookup.root_keys("note", (column_info("id", "integer", "base"),), (), (code,), [["café"]]) == [
            [["10"], ["11"]]
        ]
    finally:
        lookup.close()
