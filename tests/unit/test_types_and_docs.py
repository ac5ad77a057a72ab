"""The conversion table is the single source of truth: docs/plan.md shows it, preflight applies it."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.adapters.base import ColumnInfo
from migrator.mapping.types import conversion_for, type_table_markdown

PLAN_DOC = Path(__file__).parents[2] / "docs" / "plan.md"


def column(
    type_name: str, kind: str = "base", element: str | None = None, element_kind: str | None = None
) -> ColumnInfo:
    return ColumnInfo(type_name, type_name, kind, element, element_kind, True, None, None, 1)


def test_plan_doc_type_table_matches_code() -> None:
    text = PLAN_DOC.read_text()
    begin, end = "<!-- type-table:begin -->\n", "\n<!-- type-table:end -->"
    assert begin in text and end in text
    documented = text.split(begin, 1)[1].split(end, 1)[0]
    assert documented == type_table_markdown()


@pytest.mark.parametrize(
    ("type_name", "kind", "bson"),
    [
        ("integer", "base", "int (int32)"),
        ("bigint", "base", "long (int64)"),
        ("numeric", "base", "decimal (Decimal128)"),
        ("timestamp with time zone", "base", "date (UTC)"),
        ("uuid", "base", "binData subtype 4 (UUID)"),
        ("customer_status", "enum", "string"),
        ("int4range", "range", "string"),
        ("jsonb", "base", "document / array / scalar"),
    ],
)
def test_supported_conversions(type_name: str, kind: str, bson: str) -> None:
    conv = conversion_for(column(type_name, kind))
    assert conv.supported
    assert conv.bson == bson


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [("tsvector", "base"), ("address_t", "composite"), ("int4multirange", "multirange"), ("weird", "base")],
)
def test_refused_conversions_say_why(type_name: str, kind: str) -> None:
    conv = conversion_for(column(type_name, kind))
    assert not conv.supported
    assert conv.refused and "exclude" in conv.refused


def test_arrays_take_their_element_conversion() -> None:
    ok = conversion_for(column("timestamp with time zone[]", "array", "timestamp with time zone", "base"))
    assert ok.bson == "array of date (UTC)"
    assert ok.precision_warning
    refused = conversion_for(column("tsvector[]", "array", "tsvector", "base"))
    assert not refused.supported
