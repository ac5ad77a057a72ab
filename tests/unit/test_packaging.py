"""Packaging (issue 14): one version source that `migrator --version` prints, the distribution's
declared dependencies exactly what the package imports (SQLAlchemy only in the `dualwrite` extra),
the CLI working without SQLAlchemy, a LICENSE and a CHANGELOG entry for the version."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DIST = "migrator-cdc"


def version_in_source() -> str:
    """The version as written in migrator/__init__.py, read as text (not imported)."""
    match = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "migrator" / "__init__.py").read_text(), re.M)
    assert match
    return match.group(1)


def normalized(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def imported_distributions(files: list[Path]) -> set[str]:
    """The distributions whose modules these files import (absolute imports, stdlib left out)."""
    owners = importlib.metadata.packages_distributions()
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "migrator":
                    continue
                assert top in owners, f"{path}: {top} belongs to no installed distribution"
                found.update(normalized(dist) for dist in owners[top])
    return found


def test_the_version_has_one_source_and_migrator_version_prints_it() -> None:
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "migrator.__version__"}
    want = version_in_source()
    assert importlib.metadata.version(DIST) == want
    script = Path(sys.executable).parent / "migrator"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == f"migrator, version {want}"


def test_the_distribution_name_and_the_command() -> None:
    assert PYPROJECT["project"]["name"] == DIST
    assert PYPROJECT["project"]["scripts"] == {"migrator": "migrator.cli:main"}


def test_license_and_changelog() -> None:
    # MIT: the dashboard's vendored uPlot, whose license the wheel carries (docs/dashboard.md).
    assert PYPROJECT["project"]["license"] == "Apache-2.0 AND MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE", "migrator/cli/dashboard/static/uPlot.LICENSE"]
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog")
    assert "## [Unreleased]" in changelog
    assert f"## [{version_in_source()}]" in changelog


def test_the_declared_dependencies_are_what_the_package_imports() -> None:
    sessions = ROOT / "migrator" / "dualwrite" / "sessions.py"
    engine = [p for p in (ROOT / "migrator").rglob("*.py") if p != sessions]
    # pydantic-core comes with pydantic, whose validators the plan's units module names directly.
    comes_with = {"pydantic-core"}
    core = {normalized(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert imported_distributions(engine) - comes_with == core
    assert (
        {normalized(r) for r in extras["dualwrite"]} == imported_distributions([sessions]) == {"sqlalchemy"}
    )
    assert "sqlalchemy" not in core
    assert set(extras) == {"dualwrite", "dev"}


BLOCK_SQLALCHEMY = """
import importlib, pkgutil, sys

class NoSQLAlchemy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sqlalchemy":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoSQLAlchemy())
import migrator
if sys.argv[1] == "--version":  # once: every module imports, and the dual-write hooks say what is missing
    for module in pkgutil.walk_packages(migrator.__path__, "migrator."):
        if module.name != "migrator.dualwrite.sessions":
            importlib.import_module(module.name)
    from migrator.dualwrite.core import session_mirror
    try:
        session_mirror()
    except ModuleNotFoundError as exc:
        print("HINT:", exc)
from migrator.cli import main
main()
"""


def test_the_cli_and_the_engine_work_without_sqlalchemy() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", BLOCK_SQLALCHEMY, *args], capture_output=True, text=True, timeout=120
        )

    version = run("--version")
    assert version.returncode == 0, version.stderr
    assert f"migrator, version {version_in_source()}" in version.stdout
    assert (
        "HINT: DualWrite.install and DualWrite.touch need SQLAlchemy: pip install 'migrator-cdc[dualwrite]'"
        in (version.stdout)
    )
    schema = run("schema")
    assert schema.returncode == 0, schema.stderr
    assert '"$id": "urn:migrator:plan:v1"' in schema.stdout
    plan = run("plan", str(ROOT / "tests" / "no-such-plan.yaml"))
    assert plan.returncode == 2, plan.stderr
