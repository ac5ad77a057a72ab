"""A look at documents on both sides compares them as the target does (TargetAdapter.same_document):
a PostgreSQL target's raw documents are not BSON, and the BSON comparison failed on them
("InvalidBSON: objsize too large") in rollback's recheck under the fence (found by
`scripts/demo --target postgres --full`)."""

from __future__ import annotations

import pytest
from bson.errors import InvalidBSON

from migrator.mapping.lookup import Look


def _look(**same: object) -> Look:
    # Raw documents in a target's own encoding (not BSON): equal bytes for key a, others for b.
    expected = {b"a": b"\x01row a", b"b": b"\x01row b"}
    actual = {b"a": b"\x01row a", b"b": b"\x01row B"}
    return Look("0/0", {b"a": 1, b"b": 2, b"c": 3}, expected, actual, **same)  # type: ignore[arg-type]


def test_the_target_comparison_decides() -> None:
    look = _look(same=lambda expected, actual: expected.lower() == actual.lower())
    assert look.differing() == []
    look = _look(same=lambda expected, actual: expected == actual)
    assert look.differing() == [b"b"]


def test_the_default_is_bson() -> None:
    with pytest.raises(InvalidBSON):
        _look().differing()
