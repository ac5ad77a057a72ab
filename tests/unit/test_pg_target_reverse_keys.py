"""Reverse sync from a PostgreSQL target names a changed row by its key as `typed` reads it (a
plain int) and finds the row's state by the key the table reader gives (bigint as Int64): both
must name the same row, or the row would look deleted on the target and be deleted on the source
(found by `scripts/demo --target postgres --full`, whose tables have bigint keys)."""

from __future__ import annotations

from bson import Int64

from migrator.adapters.postgres_target.reverse import identity


def test_a_bigint_key_names_the_same_row_as_int_or_int64() -> None:
    assert identity("public.customers", 7) == identity("public.customers", Int64(7))
    assert identity("public.items", {"order_id": 7, "line_no": 1}) == identity(
        "public.items", {"order_id": Int64(7), "line_no": 1}
    )


def test_other_keys_and_tables_stay_apart() -> None:
    assert identity("public.customers", 7) != identity("public.customers", 8)
    assert identity("public.customers", 7) != identity("public.orders", 7)
    assert identity("public.customers", 7) != identity("public.customers", "7")
    assert identity("public.customers", True) != identity("public.customers", 1)
