"""Every relative link in README.md and docs/ names a file that exists and, with a #fragment, a
heading of that file (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

LINK = re.compile(r"(?<!\\)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)  # may run over a line break
EXTERNAL = ("http://", "https://", "mailto:")


def prose_lines(text: str) -> list[str]:
    """The lines, those of fenced code blocks and inline code spans blanked (numbering kept)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    prose = CODE_SPAN.sub(lambda span: "\n" * span.group(0).count("\n"), "\n".join(out))
    return prose.split("\n")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file, with -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(doc: Path) -> list[tuple[int, str]]:
    return [
        (number, target)
        for number, line in enumerate(prose_lines(doc.read_text()), start=1)
        for target in LINK.findall(line)
        if not target.startswith(EXTERNAL)
    ]


def test_the_anchor_rule_matches_githubs() -> None:
    """Slugs worked out by hand from GitHub's rendering of these headings."""
    doc = ROOT / "docs" / "plan.md"
    assert {"proposing-a-plan-migrator-init", "types-from-mysqlmariadb-into-postgresql", "keys"} <= anchors(
        doc
    )


def test_the_docs_have_links_to_check() -> None:
    assert sum(len(relative_links(doc)) for doc in DOCS) >= 20


def test_links_in_code_are_not_links_and_numbering_is_kept() -> None:
    text = "a `[x](nowhere.md)` b\n```\n[y](nowhere.md)\n```\nc `d\ne` [z](here.md)\n"
    assert prose_lines(text)[0] == "a  b"
    assert [line for line in prose_lines(text) if "](" in line] == [" [z](here.md)"]
    assert prose_lines(text).index(" [z](here.md)") == 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for number, target in relative_links(doc):
        path_part, _, fragment = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            broken.append(f"{doc.name}:{number}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{doc.name}:{number}: {target}: no heading with that anchor")
    assert not broken, "\n".join(broken)
