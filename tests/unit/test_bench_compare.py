"""scripts/bench/compare.py reads the PostgreSQL target benchmarks' results: pg-cdc's ratio to the
native subscription (computed for a REF whose benchmark did not write it) and p99 lag, and
pg-snapshot's rounds of one run kept apart. The expected metrics are written out by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "compare.py"


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migrator_bench_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pg_cdc_metrics_include_the_ratio_to_native_and_p99(compare: ModuleType, tmp_path: Path) -> None:
    result = tmp_path / "pg-cdc.json"
    result.write_text(
        json.dumps(
            {
                "benchmark": "pg-cdc",
                "rows": 10,
                "results": [
                    {
                        "case": "migrator",
                        "changes_per_s": 500,
                        "changes_per_s_from_first": 800,
                        "load_1min": 3.0,
                    },
                    {"case": "native", "changes_per_s": 2000, "changes_per_s_from_first": 2000},
                ],
                "lag": [{"case": "lag 1000/s", "p50_ms": 40, "p95_ms": 60, "p99_ms": 90, "max_ms": 100}],
            }
        )
    )
    assert compare._metrics(result) == {
        "results[migrator].changes_per_s": 500.0,
        "results[migrator].changes_per_s_from_first": 800.0,
        "results[migrator].ratio_to_native": 0.25,
        "results[migrator].ratio_to_native_from_first": 0.4,
        "results[native].changes_per_s": 2000.0,
        "results[native].changes_per_s_from_first": 2000.0,
        "lag[lag 1000/s].p95_ms": 60.0,
        "lag[lag 1000/s].p99_ms": 90.0,
    }


def test_pg_snapshot_rounds_of_one_run_are_metrics_of_their_own(compare: ModuleType, tmp_path: Path) -> None:
    result = tmp_path / "pg-snapshot.json"
    result.write_text(
        json.dumps(
            {
                "benchmark": "pg-snapshot",
                "results": [
                    {"case": "migrator", "round": 1, "mb_per_s": 5.5, "ratio_to_pgcopydb": 0.35},
                    {"case": "migrator", "round": 2, "mb_per_s": 6.0, "ratio_to_pgcopydb": 0.4},
                ],
            }
        )
    )
    assert compare._metrics(result) == {
        "results[migrator/1].mb_per_s": 5.5,
        "results[migrator/1].ratio_to_pgcopydb": 0.35,
        "results[migrator/2].mb_per_s": 6.0,
        "results[migrator/2].ratio_to_pgcopydb": 0.4,
    }
