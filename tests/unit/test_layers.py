"""Imports run one way (DESIGN.md): a lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "migrator"

# Higher numbers sit higher; a module may import its own level or lower.
LEVELS = {
    "errors": 0,
    "redact": 0,
    "connstr": 0,
    "findings": 0,
    "timestamps": 0,
    "plan": 1,
    "adapters": 1,
    "state": 1,
    "mapping": 2,
    "engine": 2,
    "phases": 3,
    "dualwrite": 3,  # a library for applications: never imports operations, api or cli
    "operations": 4,  # the commands users type (run, cutover, rollback, dry_run, status, follow)
    "runbook": 4,  # Markdown from the plan and preflight results; only api calls it
    "api": 5,
    "cli": 6,
}


def _level(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "migrator" or len(parts) < 2:
        return None
    return LEVELS.get(parts[1])


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        own = _level(module)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                other = _level(name)
                if other is not None and other > own:
                    violations.append(f"{module} imports {name}")
    assert not violations, "\n".join(violations)


def test_every_top_level_module_has_a_layer() -> None:
    tops = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert tops <= set(LEVELS), f"give these a layer: {sorted(tops - set(LEVELS))}"
