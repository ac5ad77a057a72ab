"""Start-up imports (docs/architecture.md, "Start-up imports"): loading the CLI, as `migrator
--help`, a command's --help and shell completion do, imports no database driver, no deepdiff and
no numpy. What a command runs is imported when it runs; an adapter's module (and its driver) when
a plan names the adapter; deepdiff when a difference is explained. Checked in a fresh interpreter,
by the modules it holds, never by time."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = {"deepdiff", "numpy", "psycopg", "pymongo", "pymysql", "pymysqlreplication", "MySQLdb"}


def _loaded_by(statement: str) -> list[str]:
    """The HEAVY packages a fresh interpreter holds after `statement`."""
    code = (
        f"{statement}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def test_loading_the_cli_imports_no_driver_deepdiff_or_numpy() -> None:
    assert _loaded_by("import migrator.cli.main") == []


def test_the_library_entry_imports_no_driver_until_a_plan_names_one() -> None:
    # The registry resolves an adapter by its module path: naming one imports that adapter alone.
    assert _loaded_by("import migrator.api") == []
    assert _loaded_by(
        "from migrator.adapters.registry import vocabulary_for; vocabulary_for('postgres')"
    ) == ["psycopg"]


def _migrator_modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('migrator'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout))


def test_the_library_entry_loads_only_what_a_snapshot_run_runs() -> None:
    # A run's start pays for every module it loads: `import migrator.api` and the Runner hold the
    # snapshot's code, not the other commands' nor CDC's (docs/architecture.md, "Start-up imports").
    loaded = _migrator_modules_after("import migrator.api")
    assert {"migrator.operations.run", "migrator.operations.session", "migrator.phases.snapshot"} <= loaded
    not_run = {
        "migrator.operations.cutover",
        "migrator.operations.finish",
        "migrator.operations.follow",
        "migrator.operations.rollback",
        "migrator.operations.rollback_after_cutover",
        "migrator.operations.status",
        "migrator.operations.verify",
        "migrator.operations.dry_run",
        "migrator.phases.cdc",
        "migrator.phases.reverse",
        "migrator.phases.verify",
        "migrator.phases.cutover",
        "migrator.runbook",
    }
    assert sorted(loaded & not_run) == []
