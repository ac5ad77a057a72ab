"""phases/backfill.py without servers: markers, and which added columns are still to do."""

from __future__ import annotations

from migrator.adapters.postgres.shapes import TableShape
from migrator.phases.backfill import CHECKPOINT_FIELD, AddedColumns, marker_column, marker_content

BASELINE = {"public.t": TableShape(1, "public.t", {"id": 23, "a": 25}, None)}


def test_a_marker_names_table_and_column_of_its_own_plan_only() -> None:
    content = marker_content("shop", "public.t", "c").encode()
    assert marker_column("shop", content) == ("public.t", "c")
    assert marker_column("other", content) is None
    assert marker_column("shop", b"not json") is None
    assert marker_column("shop", b'["shop", "public.t"]') is None


def test_pending_columns_are_mapped_ones_the_snapshot_lacks_and_no_backfill_covered() -> None:
    added = AddedColumns()
    assert added.pending("public.t", BASELINE, {"id", "a", "c", "d"}) == ["c", "d"]
    added.finished("public.t", ["c"])
    assert added.pending("public.t", BASELINE, {"id", "a", "c", "d"}) == ["d"]
    assert added.record_fields() == {CHECKPOINT_FIELD: ["public.t.c"]}


def test_done_is_read_back_from_the_checkpoint() -> None:
    added = AddedColumns()
    assert added.record_fields() == {}
    added.load({"position": 1, CHECKPOINT_FIELD: ["public.t.c", "public.t.d"]})
    assert added.pending("public.t", BASELINE, {"id", "c", "d"}) == []
    added.load(None)
    assert added.pending("public.t", BASELINE, {"id", "c", "d"}) == []


def test_without_the_snapshots_recorded_shape_nothing_is_known_to_be_missing() -> None:
    assert AddedColumns().pending("public.t", None, {"id", "c"}) == []
    assert AddedColumns().pending("public.u", BASELINE, {"id", "c"}) == []
