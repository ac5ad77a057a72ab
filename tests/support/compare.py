"""The target compared with documents built from plain SQL, never with migrator's mapping code:
rows read back as dicts, grouped into arrays, and whole collections compared down to BSON types
and key order (tests/support/docs.py `typed`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.support.docs import Migration, sorted_documents, typed


def records(mig: Migration, query: str) -> list[dict[str, Any]]:
    with psycopg.connect(mig.pg_url, row_factory=dict_row) as conn:
        return list(conn.execute(query).fetchall())


def flat_documents(mig: Migration, query: str) -> list[dict[str, Any]]:
    """One document a row: the first column is _id, the others follow in order."""
    out = []
    for row in records(mig, query):
        items = list(row.items())
        out.append({"_id": items[0][1], **dict(items[1:])})
    return sorted_documents(out)


def group(rows: list[dict[str, Any]], by: str, drop: Sequence[str] = ()) -> dict[Any, list[dict[str, Any]]]:
    """Rows grouped by column `by` (in the query's order), without the columns in `drop`."""
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row[by]].append({k: v for k, v in row.items() if k not in drop})
    return out


def assert_documents(mig: Migration, collection: str, expected: list[dict[str, Any]]) -> None:
    actual = mig.documents(collection)
    actual_ids = [d["_id"] for d in actual]
    expected_ids = [d["_id"] for d in sorted_documents(expected)]
    assert actual_ids == expected_ids, f"{collection}: ids differ"
    for got, want in zip(actual, sorted_documents(expected), strict=True):
        assert typed(got) == typed(want), f"{collection} _id={want['_id']!r}:\n got {got}\nwant {want}"


def differences(mig: Migration, collection: str, expected: list[dict[str, Any]]) -> list[str]:
    """Every document that differs from the expected one (or is missing or extra), described."""
    actual = {repr(d["_id"]): d for d in mig.documents(collection)}
    wanted = {repr(d["_id"]): d for d in sorted_documents(expected)}
    out = [f"missing {k}" for k in wanted if k not in actual] + [
        f"extra {k}" for k in actual if k not in wanted
    ]
    for k, want in wanted.items():
        got = actual.get(k)
        if got is not None and typed(got) != typed(want):
            out.append(f"_id {k}:\n got {got}\nwant {want}")
    return out


def assert_equal_to_sql(mig: Migration, collection: str, expected: list[dict[str, Any]]) -> None:
    wrong = differences(mig, collection, expected)
    assert not wrong, f"{len(wrong)} of {len(expected)} documents differ; first:\n" + "\n".join(wrong[:3])
