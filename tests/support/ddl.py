"""DDL while CDC follows (docs/architecture.md, "Schema changes"): the table the CDC test modules
change, and the cases both run, while a run follows changes and between two runs."""

from __future__ import annotations

import pytest

THINGS = (
    "CREATE TABLE things (id integer PRIMARY KEY, name text, qty integer)",
    "INSERT INTO things SELECT g, 'n' || g, g FROM generate_series(1, 3) g",
)
WHEN = pytest.mark.parametrize("when", ["following", "between-runs"])
# A mapped column dropped or retyped: the run stops, and its error says which (`says`).
DROPPED_OR_RETYPED = pytest.mark.parametrize(
    ("ddl", "says"),
    [
        ("ALTER TABLE things DROP COLUMN qty", "was dropped"),
        ("ALTER TABLE things ALTER COLUMN qty TYPE bigint", "changed type"),
    ],
    ids=["drop", "retype"],
)
