"""The modules re-cut onto the adapter protocols (issue 13: snapshot, verify, preflight, dry-run,
the mapping) reach their databases only through adapters/base.py: they import no concrete
adapter (adapters/registry.py alone may name one) and never reach through `source.endpoint`
(docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "migrator"
CUT = [
    "phases/snapshot.py",
    "phases/verify.py",
    "phases/preflight.py",
    "phases/oracle.py",
    "operations/dry_run.py",
    "operations/verify.py",
    *sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "mapping").glob("*.py")),
]
CONCRETE = ("migrator.adapters.postgres", "migrator.adapters.mongodb")
# Known exceptions, each with its reason; remove a line once its module is cut over.
EXCEPTIONS: set[tuple[str, str]] = set()


def _is_source(node: ast.expr) -> bool:
    """`source`, `self.source`, `ctx.source`: an adapter (an inspection result's `endpoint`, e.g.
    `info.server.endpoint`, is the text users see, and allowed)."""
    return (isinstance(node, ast.Name) and node.id == "source") or (
        isinstance(node, ast.Attribute) and node.attr == "source"
    )


def violations(source: str) -> list[str]:
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
        found += [f"line {node.lineno}: imports {n}" for n in names if n.startswith(CONCRETE)]
    return found


def test_the_re_cut_modules_use_only_the_protocols() -> None:
    found = [
        f"{path}: {v}"
        for path in CUT
        for v in violations((PACKAGE / path).read_text())
        if (path, v.partition(": ")[2]) not in EXCEPTIONS
    ]
    assert not found, "\n".join(found)


def test_the_check_catches_what_it_forbids() -> None:
    assert violations("from migrator.adapters.postgres.snapshot import RangeReader") != []
    assert violations("import migrator.adapters.mongodb.codec") != []
    assert violations("reader = RangeReader(source.endpoint)") != []
    assert violations("SourceReads(ctx.source.endpoint)") != []
    assert violations("name = report.source.server.endpoint") == []
    assert violations("from migrator.adapters.base import KeyReader") == []
