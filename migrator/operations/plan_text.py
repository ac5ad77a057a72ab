"""A proposal (propose.py) as a commented plan file: what `migrator init` writes. The text is built
line by line, so every decision carries its reason as a YAML comment beside it; names are written
plain where YAML reads them back as the same string, else double-quoted (JSON strings are YAML)."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass

from migrator.operations.propose import Level, Proposal

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Words YAML 1.1 parsers read as booleans or null when plain (`on` among them): quoted.
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_WIDTH = 100


@dataclass(frozen=True)
class Header:
    schema_ref: str  # the modeline's path to schema/plan-v1.json
    endpoint: str  # the source as users may see it (no password)
    adapter: str  # the source adapter
    source_url: str  # what `source.url` holds: an env reference, with a password-less default
    target_url: str
    database: str


def scalar(text: str) -> str:
    plain = _PLAIN.match(text) and text.lower() not in _YAML11_WORDS
    return text if plain else json.dumps(text, ensure_ascii=False)


def _columns(columns: tuple[str, ...]) -> str:
    return scalar(columns[0]) if len(columns) == 1 else "[" + ", ".join(scalar(c) for c in columns) + "]"


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 2)]


def render(proposal: Proposal, header: Header, tables: int) -> str:
    lines = [
        f"# yaml-language-server: $schema={header.schema_ref}",
        f"# Proposed by `migrator init` from {header.endpoint} ({tables} table(s)). Review it, then run",
        "# `migrator plan` on this file. The comments say why each table stands where it stands; the",
        "# sizes are estimates from the source's statistics (row counts, average row widths) at init.",
        "#",
        "# No password is written here. The URLs come from the environment, e.g.",
        "#   export MIGRATOR_SOURCE_URL='<the source URL, password included>'",
        "#   export MIGRATOR_TARGET_URL='mongodb://host:27017/?replicaSet=rs0'",
        "# (an unset MIGRATOR_SOURCE_URL takes the URL after ':-', which holds no password).",
        "version: 1",
        "source:",
        f"  adapter: {header.adapter}",
        f"  url: {_quoted(header.source_url)}",
        "target:",
        "  adapter: mongodb",
        f"  url: {_quoted(header.target_url)}",
        f"  database: {scalar(header.database)}",
        "collections:",
    ]
    names = _collection_names(proposal.roots)
    for root in proposal.roots:
        lines += _collection(root, names[root.table])
    if proposal.skipped:
        lines.append("# Left out:")
        for table, reason in sorted(proposal.skipped.items()):
            lines += _comment(f"- {table}: {reason}", "")
    return "\n".join(lines + CUTOVER_HINT) + "\n"


# `migrator cutover` refuses a plan without a switch: the proposal says so, with one that works
# once uncommented (docs/architecture.md, "Cutover and rollback after cutover").
CUTOVER_HINT = [
    "#",
    "# Before `migrator cutover`: the switch that tells your application which side is primary",
    "# (kind file, command, postgres or mongodb; see docs/cutover.md). Uncomment and adapt:",
    "# phases:",
    "#   cutover:",
    "#     switch: {kind: file, path: ./routing}",
]


def _quoted(text: str) -> str:
    """A URL value in single quotes (no escapes but '' for ')."""
    return "'" + text.replace("'", "''") + "'"


def _collection_names(roots: list[Level]) -> dict[str, str]:
    """Each root's collection: its table's own name, schema-qualified where two would clash."""
    bare = [r.table.rpartition(".")[2] for r in roots]
    return {
        r.table: name if bare.count(name) == 1 else r.table.replace(".", "_")
        for r, name in zip(roots, bare, strict=True)
    }


def _collection(root: Level, name: str) -> list[str]:
    avg, peak = root.document_bytes(peak=False), root.document_bytes(peak=True)
    size = f"~{_size(avg)} on average" + (f", up to ~{_size(peak)}" if peak > avg else "")
    lines = ["", *_comment(f"{root.table}: ~{root.rows:,} row(s); a document {size} (estimated)", "  ")]
    for note in root.notes:
        lines += _comment(note, "  ")
    lines += [
        f"  - name: {scalar(name)}",
        f"    from: {root.table}",
        f"    key: {_columns(root.key)}",
    ]
    return lines + _shape(root, "    ")


def _shape(level: Level, indent: str) -> list[str]:
    """What a collection and an embed share: exclusions, then embeds."""
    lines: list[str] = []
    if level.excluded:
        lines.append(f"{indent}exclude:")
        for column, reason in sorted(level.excluded.items()):
            lines += _comment(f"{column}: {reason}", indent + "  ")
            lines.append(f"{indent}  - {scalar(column)}")
    if level.children:
        lines.append(f"{indent}embed:")
        taken = {c.name for c in level.info.columns}
        for child in level.children:
            lines += _embed(child, level, taken, indent + "  ")
    return lines


def _embed(child: Level, parent: Level, taken: set[str], indent: str) -> list[str]:
    name = child.table.rpartition(".")[2]
    if name in taken:
        name = f"{name}_{'doc' if child.one else 'rows'}"
    taken.add(name)
    on = ", ".join(f"{scalar(c)}: {scalar(p)}" for c, p in child.on.items())
    if child.one:
        why = f"1:1: ({', '.join(child.on)}) is also {child.table}'s own key: one sub-document or null"
    else:
        why = (
            f"1:N: ~{child.avg_fanout:,.1f} row(s) per {parent.table} row on average, up to "
            f"~{child.peak_fanout:,}; ~{_size(child.document_bytes(peak=False))} each"
        )
    lines = _comment(why, indent)
    for note in child.notes:
        lines += _comment(note, indent)
    lines += [
        f"{indent}- as: {scalar(name)}",
        f"{indent}  from: {child.table}",
        f"{indent}  join: {{{on}}}",
        f"{indent}  many: {'false' if child.one else 'true'}",
        f"{indent}  key: {_columns(child.key)}",
    ]
    return lines + _shape(child, indent + "  ")


def _size(size: int | float) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{int(size)} B"
