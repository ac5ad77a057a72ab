"""A module of scripts/lib for the tests (the demo data, the routed application writes).

scripts/ is not a package (it must run before migrator is installed), so a module is imported by
its path, under the name `migrator_<name>`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LIB = Path(__file__).resolve().parents[2] / "scripts" / "lib"


def load(name: str) -> ModuleType:
    """scripts/lib/NAME.py, imported once."""
    module_name = f"migrator_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, LIB / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module
