"""Chunk planning and key-range reads of a MariaDB source: single and compound keys, an empty table,
one row; every row read once across the chunks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from migrator.adapters.base import LevelRead
from migrator.adapters.mysql import MysqlSource
from tests.support.mariadb import column_info, connect


def _read_chunks(
    source: MysqlSource, table: str, level: LevelRead, key: list[str], key_types: list[str], every: int
) -> tuple[list[list[str]], list[list[tuple[Any, ...]]]]:
    session = source.snapshot_session(None)
    try:
        bounds = session.key_boundaries(table, key, key_types, every)
        exported = session.exported
    finally:
        session.close()
    edges: list[list[str] | None] = [None, *bounds, None]
    reader = source.snapshot_reader(exported)
    try:
        chunks = []
        for lo, hi in itertools.pairwise(edges):
            (stream,) = reader.stream([level], table, key, key_types, lo, hi)
            chunks.append(list(stream))
    finally:
        reader.close()
    return bounds, chunks


SINGLE = LevelRead(path=(), columns=(column_info("id", "bigint", "base"),), order_by=())


@pytest.mark.parametrize(
    ("rows", "every", "bounds"),
    [
        (0, 3, []),
        (1, 3, []),
        (3, 3, []),  # a boundary on the last row would leave an empty chunk after it
        (4, 3, [["3"]]),
        (10, 3, [["3"], ["6"], ["9"]]),
        (10, 1, [[str(i)] for i in range(1, 10)]),
    ],
)
def test_single_key_chunks_cover_every_row_once(
    mysql_url: str, rows: int, every: int, bounds: list[list[str]]
) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        if rows:
            cur.execute("INSERT INTO t VALUES " + ", ".join(f"({i})" for i in range(1, rows + 1)))
    found, chunks = _read_chunks(MysqlSource(mysql_url), "t", SINGLE, ["id"], ["bigint"], every)
    assert found == bounds
    assert [r for chunk in chunks for r in chunk] == [(i,) for i in range(1, rows + 1)]
    assert all(len(c) <= every for c in chunks[:-1])


def test_compound_key_chunks_split_inside_a_leading_value(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (a VARCHAR(5), b INT, v INT, PRIMARY KEY (a, b))")
        values = [(a, b) for a in ("x", "y", "z") for b in (3, 1, 2, 10)]
        cur.execute("INSERT INTO t VALUES " + ", ".join(f"('{a}', {b}, {b * 10})" for a, b in values))
    level = LevelRead(
        path=(),
        columns=(
            column_info("a", "character varying", "base"),
            column_info("b", "integer", "base"),
            column_info("v", "integer", "base"),
        ),
        order_by=(),
    )
    bounds, chunks = _read_chunks(
        MysqlSource(mysql_url), "t", level, ["a", "b"], ["character varying", "integer"], 3
    )
    # Integer order inside a leading value (10 after 3), not text order.
    assert bounds == [["x", "3"], ["y", "2"], ["z", "1"]]
    expected = [(a, b, b * 10) for a in ("x", "y", "z") for b in (1, 2, 3, 10)]
    assert [len(c) for c in chunks] == [3, 3, 3, 3]
    assert [r for chunk in chunks for r in chunk] == expected


def test_binary_and_datetime_keys_round_trip_through_their_text(mysql_url: str) -> None:
    with connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (k VARBINARY(4), at DATETIME(6), PRIMARY KEY (k, at))")
        cur.execute(
            "INSERT INTO t VALUES (x'00', '2020-01-01 00:00:00.000001'), (x'00', '2020-01-01 00:00:00.5'), "
            "(x'0001', '1999-01-01'), (x'ff', '2020-01-01'), (x'ff00', '2020-01-01')"
        )
    level = LevelRead(
        path=(),
        columns=(column_info("k", "bytea", "base"), column_info("at", "timestamp without time zone", "base")),
        order_by=(),
    )
    key_types = ["bytea", "timestamp without time zone"]
    bounds, chunks = _read_chunks(MysqlSource(mysql_url), "t", level, ["k", "at"], key_types, 1)
    assert bounds[0] == ["00", "2020-01-01 00:00:00.000001"]
    assert [len(c) for c in chunks] == [1, 1, 1, 1, 1]
    assert [r[0] for chunk in chunks for r in chunk] == [b"\x00", b"\x00", b"\x00\x01", b"\xff", b"\xff\x00"]
