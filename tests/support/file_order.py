"""The order in which the suite's files reach pytest-xdist's workers (scripts/test: two workers,
`--dist loadfile`): the longest files first, then the rest in collection order.

xdist's default for loadfile ("loadscope reorder") sorts files by their number of tests, so the
files of one long test (the kill -9 workload tests, minutes each) were handed out last, and one
worker ran the last of them alone while the other had finished. Handing out the longest first
lets the many short files (tests/unit last) fill in beside them: the suite's 15-minute limit
is for its wall time on two cores.

LONGEST_FIRST comes from a measured run (`pytest -n 2 --dist loadfile --durations=0`, each file's
setup + call + teardown summed); keep it roughly in order when a file grows or shrinks. A file
not named here keeps its place in collection order, after these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LONGEST_FIRST = (
    "tests/integration/test_cdc_workload_kill_stream.py",
    "tests/integration/test_snapshot_resume.py",
    "tests/integration/test_verify.py",
    "tests/integration/mysql/test_mysql_run.py",
    "tests/integration/test_rollback_kill_steps.py",
    "tests/integration/test_ownership.py",
    "tests/integration/test_verify_keys.py",
    "tests/integration/test_cdc_workload_kill_poll.py",
    "tests/integration/test_switchback.py",
    "tests/integration/test_cutover.py",
    "tests/integration/test_cdc_workload.py",
    "tests/unit/test_pgoutput.py",
    "tests/integration/test_verify_incomplete.py",
    "tests/integration/test_cdc.py",
    "tests/corpus/test_corpus_stream.py",
    "tests/integration/test_cli_plan.py",
    "tests/integration/test_state_disk_full.py",
    "tests/integration/test_cdc_schema_changes.py",
    "tests/integration/test_snapshot.py",
    "tests/integration/test_rollback_kill.py",
    "tests/integration/test_reverse.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # xdist's option (absent without xdist, e.g. `-p no:xdist`): keep the order set below.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(ROOT).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: a file's tests, and the other files, keep their order
