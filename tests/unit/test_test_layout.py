"""The test suite's own layout: shared fixtures and helpers live in tests/support, and no file of
the suite imports a test module (tests/integration, tests/corpus, tests/unit, or any `test_*`
module). A fixture is used by naming it (tests/conftest.py registers tests/support's fixture
modules through `pytest_plugins`), never by importing it, so no suppression of pyflakes' F8-11
("redefinition of unused name": an imported fixture named as a parameter) is needed anywhere.

Checked by parsing every Python file under tests/ with `ast` (and `tokenize` for comments); the
last test proves the checks catch what they forbid.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TEST_PACKAGES = ("tests.integration", "tests.corpus", "tests.unit")
# pyflakes' "redefinition of unused name", spelled so that a grep for it finds no test file.
REDEFINITION = "F8" + "11"
# An import written inside a string, e.g. the script a test runs in a child process.
IMPORT_IN_TEXT = re.compile(r"^\s*(?:from|import)\s+([\w.]+)", re.MULTILINE)


def _is_test_module(module: str) -> bool:
    parts = module.split(".")
    return module.startswith(TEST_PACKAGES) or any(p.startswith("test_") or p == "conftest" for p in parts)


def imports_of_test_modules(source: str) -> list[str]:
    """Each import of a test module in `source` (statements, and imports in string literals)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names = [a.name for a in node.names]
            if _is_test_module(module.lstrip(".")) or (
                node.level and any(n.startswith("test_") for n in names)
            ):
                found.append(f"line {node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [
                f"line {node.lineno}: import in a string: {m.group(0).strip()}"
                for m in IMPORT_IN_TEXT.finditer(node.value)
                if _is_test_module(m.group(1))
            ]
    return found


def _is_test_or_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether pytest reads the function's parameters as fixture names."""
    fixture = any(
        "fixture" in ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list
    )
    return fixture or node.name.startswith("test")


def redefined_imports(source: str) -> list[str]:
    """What the suppressed redefinitions were: an imported name that a test or fixture takes as a
    parameter (a fixture imported so that tests could name it), and any suppression left in a comment."""
    tree = ast.parse(source)
    imported = {
        (a.asname or a.name).split(".")[0]: node.lineno
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for a in node.names
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test_or_fixture(node):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if arg.arg in imported:
                    found.append(
                        f"line {node.lineno}: {node.name}() takes {arg.arg!r}, imported on line {imported[arg.arg]}"
                    )
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and REDEFINITION in token.string:
            found.append(f"line {token.start[0]}: {token.string}")
    return found


def _suite() -> dict[str, str]:
    return {
        str(path.relative_to(TESTS.parent)): path.read_text()
        for path in sorted(TESTS.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def test_no_file_of_the_suite_imports_a_test_module() -> None:
    suite = _suite()
    assert len(suite) > 50, "the suite's files were not found"
    found = {name: hits for name, source in suite.items() if (hits := imports_of_test_modules(source))}
    assert found == {}, (
        "move what is shared into tests/support (fixtures: register them in tests/conftest.py)"
    )


def test_no_fixture_is_imported_into_a_module_that_names_it() -> None:
    found = {name: hits for name, source in _suite().items() if (hits := redefined_imports(source))}
    assert found == {}, "name fixtures from tests/support (pytest_plugins) instead of importing them"


# Written with {pkg} for "tests", {rel} for "." and {rule} for the rule, so that neither a grep
# of the suite nor the checks above find these lines in this file.
FORBIDDEN = """
import {pkg}.integration.test_cdc
from {pkg}.integration.test_cdc import run
from {pkg}.corpus.harness import Scenario
from {pkg}.unit.test_lag import helper
from {rel}test_verify import mig
from {pkg}.support.runs import follow
from {pkg}.support.shop import SCHEMA as mig_schema

CHILD = \"\"\"
import sys
from {pkg}.integration.test_reverse import child_mappings
\"\"\"


def test_it(mig, run, tmp_path):  # noqa: {rule}
    pass


class Workload:
    def run(self, follow):  # a method's parameter is no fixture
        pass
"""


def test_the_checks_catch_what_they_forbid() -> None:
    source = FORBIDDEN.format(pkg="tests", rel=".", rule=REDEFINITION)
    imports = imports_of_test_modules(source)
    assert [hit.split(":")[0] for hit in imports] == [
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 10",
    ]
    assert "test_reverse" in imports[-1]
    redefined = redefined_imports(source)
    assert [hit.split(":")[0] for hit in redefined] == ["line 16", "line 16", "line 16"], redefined
    assert "takes 'mig'" in redefined[0] and "takes 'run'" in redefined[1] and REDEFINITION in redefined[2]
    # What the suite does instead passes.
    allowed = "from tests.support.runs import follow\n\n\ndef test_it(mig, tmp_path):\n    follow(mig)\n"
    assert imports_of_test_modules(allowed) == [] and redefined_imports(allowed) == []


def test_no_two_test_files_share_a_name() -> None:
    """Test folders are not packages, so pytest imports each file by its name alone: a second file
    of the same name anywhere under tests/ fails collection ("import file mismatch")."""
    seen: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
