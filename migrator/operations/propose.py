"""What `migrator init` proposes from an inspected source: which tables become collections, which
are embedded where, which columns are left out and why (docs/architecture.md, "Proposing a
plan"). Pure: it reads inspection results and row statistics, and decides; init.py writes it.

The rules, in order:
- a table without a primary key (or a unique NOT NULL key) cannot be keyed: left out, said why;
- a column whose type has no conversion (mapping/types.py) is excluded, with the reason;
- a join table (its primary key made of its foreign keys to two or more tables) is many-to-many:
  its own collection, embedded in neither side;
- a table whose foreign key names a key of another table is that table's child: one sub-document
  (many: false) where the link is also its own key (1:1), an array (1:N) otherwise, unless a link
  column may be NULL (a row without a parent would be in no document); a table with several such
  links picks one (the link inside its primary key first);
- a 1:N child stays its own collection when one parent may hold more than MAX_ELEMENTS of its rows,
  or when embedding it would take the estimated document past DOCUMENT_BUDGET, a quarter of
  MongoDB's 16 MB limit: estimates from real row counts, average widths and the most common link
  value (how many children the busiest parent has) where the source keeps that statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from migrator.adapters.base import ForeignKey, RowStatistics, TableInfo
from migrator.mapping.types import conversion_for
from migrator.plan.models import TABLE_NAME

BSON_LIMIT = 16 * 1024 * 1024
DOCUMENT_BUDGET = BSON_LIMIT // 4
# More elements than this in one array is the "unbounded array" MongoDB's schema design advice
# warns of: every change rewrites a large document, and the array only grows.
MAX_ELEMENTS = 1000
_FIELD_OVERHEAD = 2  # a BSON element's type byte and its name's terminating NUL
_DOCUMENT_OVERHEAD = 5  # a (sub-)document's length and terminator
_UNKNOWN_WIDTH = 16  # bytes a column is taken to hold where the source has no statistics


@dataclass
class Level:
    """A table as a collection (root) or as an embedded child of another level."""

    table: str
    info: TableInfo
    key: tuple[str, ...]
    excluded: dict[str, str]  # column -> why it is left out
    row_bytes: int  # estimated BSON bytes of one row's fields
    rows: int
    link: ForeignKey | None = None  # to its parent, when embedded
    one: bool = False  # 1:1: a sub-document
    children: list[Level] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why it stands where it stands
    avg_fanout: float = 1.0  # rows per parent, on average
    peak_fanout: int = 1  # rows the busiest parent holds, estimated
    most_common: dict[str, int] = field(default_factory=dict)  # RowStatistics.most_common_rows

    @property
    def on(self) -> dict[str, str]:
        assert self.link is not None
        return dict(zip(self.link.columns, self.link.referenced_columns, strict=True))

    def document_bytes(self, *, peak: bool) -> int:
        """One row with everything embedded under it: on average, or at the busiest parents."""
        size = self.row_bytes
        for child in self.children:
            times = child.peak_fanout if peak else child.avg_fanout
            size += math.ceil(times * child.document_bytes(peak=peak))
        return size


@dataclass
class Proposal:
    roots: list[Level]
    skipped: dict[str, str]  # table -> why it is not in the plan


def propose(tables: Mapping[str, TableInfo], stats: Mapping[str, RowStatistics]) -> Proposal:
    levels: dict[str, Level] = {}
    skipped: dict[str, str] = {}
    for name, info in sorted(tables.items()):
        level = _level(info, stats.get(name, RowStatistics(None)))
        if isinstance(level, str):
            skipped[name] = level
        else:
            levels[name] = level
    parents = _parents(levels)
    _break_cycles(parents, levels)
    for child, parent in sorted(parents.items()):
        _attach(levels[child], levels[parent])
    for level in levels.values():
        level.children.sort(key=lambda c: c.table)
    roots = [level for name, level in levels.items() if name not in parents]
    for root in roots:
        _fit(root, roots)
    roots.sort(key=lambda r: r.table)
    return Proposal(roots, skipped)


def _level(info: TableInfo, stats: RowStatistics) -> Level | str:
    """The table as a level, or why it cannot be one."""
    if not TABLE_NAME.match(info.name):
        return "its name needs quoting, which a plan's `from:` does not take (rename the table)"
    key = info.primary_key or next(iter(info.unique_keys), ())
    if not key:
        return (
            "no primary key and no unique NOT NULL key: a document needs one for its _id (add a primary key)"
        )
    excluded = {}
    for column in info.columns:
        refused = conversion_for(column).refused
        if refused is not None:
            excluded[column.name] = f"{column.native_type or column.type_name}: {refused}"
    held = sorted(set(key) & set(excluded))
    if held:
        return f"its key column(s) {held} have no conversion ({excluded[held[0]]})"
    taken = [c for c in info.columns if c.name not in excluded]
    if stats.avg_row_bytes is not None and info.columns:
        values = round(stats.avg_row_bytes * len(taken) / len(info.columns))
    else:
        values = _UNKNOWN_WIDTH * len(taken)
    names = sum(len(c.name.encode()) + _FIELD_OVERHEAD for c in taken)
    size = values + names + _DOCUMENT_OVERHEAD
    rows = max(info.estimated_rows, 0)
    return Level(info.name, info, key, excluded, size, rows, most_common=dict(stats.most_common_rows))


def _is_join_table(level: Level, levels: Mapping[str, Level]) -> bool:
    links = [fk for fk in level.info.foreign_keys if fk.referenced_table in levels]
    linked = {c for fk in links for c in fk.columns}
    return len({fk.referenced_table for fk in links}) >= 2 and set(level.info.primary_key) <= linked


def _parents(levels: Mapping[str, Level]) -> dict[str, str]:
    """child table -> the parent it is proposed to be embedded in."""
    parents: dict[str, str] = {}
    for name, level in levels.items():
        if _is_join_table(level, levels):
            others = sorted(
                {fk.referenced_table for fk in level.info.foreign_keys if fk.referenced_table in levels}
            )
            level.notes.append(
                f"many-to-many: it joins {' and '.join(others)}. Embedded in one side, each row would "
                "be one of many copies of the link; it stays a collection of references"
            )
            continue
        links = sorted(_links(level, levels), key=lambda fk: _preference(level.info, fk))
        for fk in links[1:]:
            level.notes.append(f"({', '.join(fk.columns)}) stay(s) a reference to {fk.referenced_table}")
        if links:
            level.link = links[0]
            level.one = _is_one(level.info, links[0])
            parents[name] = links[0].referenced_table
    return parents


def _links(level: Level, levels: Mapping[str, Level]) -> list[ForeignKey]:
    """Foreign keys of `level` that name a key of another mapped table: where it may be embedded."""
    found = []
    for fk in level.info.foreign_keys:
        parent = levels.get(fk.referenced_table)
        if parent is None or parent is level or set(fk.columns) & set(level.excluded):
            continue
        keys = [set(parent.info.primary_key), *(set(k) for k in parent.info.unique_keys)]
        if set(fk.referenced_columns) not in keys:
            continue
        nullable = [name for name in fk.columns if (c := level.info.column(name)) is None or c.nullable]
        if nullable:
            # A row whose link is NULL has no parent: embedded, it would be in no document.
            level.notes.append(
                f"({', '.join(fk.columns)}) may be NULL: a row without a {fk.referenced_table} row "
                "would be in no document, so it is not embedded there"
            )
            continue
        found.append(fk)
    return found


def _preference(info: TableInfo, fk: ForeignKey) -> tuple[bool, str]:
    identifying = set(fk.columns) <= set(info.primary_key)
    return (not identifying, fk.referenced_table)


def _is_one(info: TableInfo, fk: ForeignKey) -> bool:
    keys = [set(info.primary_key), *(set(k) for k in info.unique_keys)]
    return set(fk.columns) in keys


def _break_cycles(parents: dict[str, str], levels: Mapping[str, Level]) -> None:
    """Foreign keys may form a cycle (a -> b -> a); embedding cannot: the cycle's first table
    (by name) stays a root."""
    for start in sorted(parents):
        seen: list[str] = []
        node: str | None = start
        while node is not None and node not in seen:
            seen.append(node)
            node = parents.get(node)
        if node is not None:
            cycle = seen[seen.index(node) :]
            head = min(cycle)
            parent = parents.pop(head)
            levels[head].link = None
            levels[head].notes.append(
                f"its foreign keys form a cycle ({' -> '.join(cycle)}): it references {parent} rather "
                "than being embedded in it"
            )


def _attach(child: Level, parent: Level) -> None:
    parent.children.append(child)
    if child.one:
        return
    child.avg_fanout = child.rows / max(parent.rows, 1)
    peak = math.ceil(child.avg_fanout)
    link = child.link
    assert link is not None
    if len(link.columns) == 1:
        peak = max(peak, child.most_common.get(link.columns[0], 0))
    child.peak_fanout = max(peak, 1)


def _fit(level: Level, roots: list[Level]) -> None:
    """Keep `level`'s children embedded while its document stays within the budget (smallest
    first); a child that does not fit, or fans out too far, becomes a root of its own."""
    for child in list(level.children):
        _fit(child, roots)
    budget = level.row_bytes
    kept: list[Level] = []
    for child in sorted(level.children, key=lambda c: c.peak_fanout * c.document_bytes(peak=True)):
        grows = child.peak_fanout * child.document_bytes(peak=True)
        reason = _too_large(level, child, budget + grows)
        if reason is None:
            budget += grows
            kept.append(child)
            continue
        child.notes.append(reason)
        child.link = None
        roots.append(child)
    level.children = sorted(kept, key=lambda c: c.table)


def _too_large(parent: Level, child: Level, total: int) -> str | None:
    link = child.link
    assert link is not None
    refers = f"it references {parent.table} through ({', '.join(link.columns)})"
    if not child.one and child.peak_fanout > MAX_ELEMENTS:
        return (
            f"large fan-out: up to ~{child.peak_fanout:,} rows for one {parent.table} row (over "
            f"{MAX_ELEMENTS:,} elements in an array); {refers}"
        )
    if total > DOCUMENT_BUDGET:
        return (
            f"embedded in {parent.table}, a document could reach ~{_mb(total)} (kept under "
            f"{_mb(DOCUMENT_BUDGET)}, a quarter of MongoDB's 16 MB limit); {refers}"
        )
    return None


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
