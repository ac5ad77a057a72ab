"""The adapter boundary (docs/architecture.md, "Layers"): above migrator/adapters/, code reaches a
database only through the protocols of adapters/base.py. It imports no concrete adapter (which
one a plan names is decided in adapters/registry.py alone) and never reaches through a source's
`endpoint`.

dualwrite/ is the library applications embed beside their own PostgreSQL and MongoDB clients; it
names both adapters on purpose (docs/architecture.md, "Layers"). Database drivers (psycopg,
pymongo, a MySQL client) are imported by adapters alone; bson by adapters and mapping/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "migrator"
CONCRETE = ("migrator.adapters.postgres", "migrator.adapters.mongodb", "migrator.adapters.memory")
# Database drivers are the adapters' business too. bson is allowed in mapping/ alone: documents
# are BSON values, and the mapping builds and compares them as such.
DRIVERS = ("psycopg", "pymongo", "pymysql", "MySQLdb", "mysql", "pymysqlreplication")
DOCUMENTS = ("bson",)
NEUTRAL = ["phases", "operations", "mapping", "engine", "state", "plan", "api.py", "cli"]
# Known exceptions: (module path, what it does) -> why. Remove an entry once its module is cut over.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _is_source(node: ast.expr) -> bool:
    """`source`, `self.source`, `ctx.source`: an adapter (an inspection result's `endpoint`, e.g.
    `info.server.endpoint`, is the text users see, and allowed)."""
    return (isinstance(node, ast.Name) and node.id == "source") or (
        isinstance(node, ast.Attribute) and node.attr == "source"
    )


def violations(source: str, *, documents: bool = False) -> list[str]:
    forbidden = CONCRETE + DRIVERS + (() if documents else DOCUMENTS)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Attribute) and node.attr == "endpoint" and _is_source(node.value):
            found.append(f"line {node.lineno}: source.endpoint")
            continue
        else:
            continue
        found += [f"line {node.lineno}: imports {n}" for n in names if _names(n, forbidden)]
    return found


def _names(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(path: Path) -> list[str]:
    return violations(path.read_text(), documents=path.is_relative_to(PACKAGE / "mapping"))


def _files() -> list[Path]:
    found: list[Path] = []
    for name in [*NEUTRAL, "runbook"]:
        path = PACKAGE / name
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def test_above_the_adapters_only_the_protocols_are_used() -> None:
    found = []
    for path in _files():
        rel = str(path.relative_to(PACKAGE))
        found += [f"{rel}: {v}" for v in _violations(path) if (rel, v.partition(": ")[2]) not in EXCEPTIONS]
    assert not found, "\n".join(found)


def test_every_exception_is_still_needed() -> None:
    seen = {
        (str(path.relative_to(PACKAGE)), v.partition(": ")[2]) for path in _files() for v in _violations(path)
    }
    assert set(EXCEPTIONS) <= seen, f"no longer needed: {sorted(set(EXCEPTIONS) - seen)}"


def test_the_check_catches_what_it_forbids() -> None:
    assert violations("from migrator.adapters.postgres.snapshot import RangeReader") != []
    assert violations("import migrator.adapters.mongodb.codec") != []
    assert violations("from bson.int64 import Int64") != []
    assert violations("from bson import json_util", documents=True) == []
    assert violations("import psycopg", documents=True) != []
    assert violations("from pymongo import errors") != []
    assert violations("import mysqlx") == []  # a prefix of a name is not the name
    assert violations("reader = RangeReader(source.endpoint)") != []
    assert violations("SourceReads(ctx.source.endpoint)") != []
    assert violations("name = report.source.server.endpoint") == []
    assert violations("from migrator.adapters.base import KeyReader") == []
