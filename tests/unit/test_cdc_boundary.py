"""The CDC phase and its helpers talk to the source and the target through adapters/base.py's
protocols only (docs/architecture.md, "Layers"): none imports a concrete adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "migrator"
MODULES = [
    "phases/cdc.py",
    "phases/follow_loop.py",
    "phases/backfill.py",
    "phases/applied.py",
    "phases/mapped_columns.py",
    "phases/touched.py",
    "phases/batch_size.py",
    "phases/lag.py",
    "engine/throttle.py",
    "engine/pipeline.py",
]
CONCRETE = ("migrator.adapters.postgres", "migrator.adapters.mongodb")


@pytest.mark.parametrize("module", MODULES)
def test_imports_no_concrete_adapter(module: str) -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
        elif isinstance(node, ast.Import):
            imported.extend(a.name for a in node.names)
    assert not [n for n in imported if n.startswith(CONCRETE)], imported
