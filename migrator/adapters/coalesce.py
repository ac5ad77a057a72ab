"""Fewer target writes for the same effect: consecutive `$set`s of one document become one update.

A batch of CDC writes often changes one document many times: an order's line items updated in
one source transaction, a hot row updated by several. Each update rewrites the whole document,
its index entries and an oplog entry on the target, so `n` element `$set`s of one parent cost `n`
document rewrites where one would do.

What is merged, and why it is safe:
- Only writes found by `{_id: value}` alone are regrouped; any other write (update_many, a
  filter by an element's key or with `$nor`, rekey, merge_element) is a barrier: everything
  before it is written first, in order.
- Writes to different documents commute, so a document's writes are gathered together (in their
  own order) and documents sorted by collection, for fewer bulk round trips. A batch commits as
  one transaction with its checkpoint; where the target has none, a crash replays the batch,
  and every write is idempotent.
- Two writes of one document merge only when they are adjacent in that document's order, both
  plain `$set`s without upsert, and their paths cannot meet: each path either names another
  field or another array element (equal key fields with other values), or is the same path
  over the same elements, where the later value replaces the earlier one, as it would applied
  one after the other. A path that is a prefix of another, or positions that may match the same
  element, keep the writes apart.
- Array filter identifiers are renamed by what they match (`f0`, `f1`, ...), so that equal
  conditions share one identifier; MongoDB allows an identifier more than once in an update,
  with exactly one filter document each.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from migrator.adapters.base import WriteOp

# A path segment: ("field", name) or ("element", conditions), where conditions are the array
# filter's (field, tagged value) pairs, sorted.
_Segment = tuple[str, Any]
_Path = tuple[_Segment, ...]


class _Unmergeable(Exception):
    """A write outside what the merge understands: kept as it is."""


def coalesce(ops: Sequence[WriteOp]) -> list[WriteOp]:
    out: list[WriteOp] = []
    pending: dict[tuple[str, Hashable], list[WriteOp | _MergedSet]] = {}

    def flush() -> None:
        # Stable: a collection's documents stay in the order they first appear.
        for key in sorted(pending, key=lambda k: k[0]):
            out.extend(item.build() if isinstance(item, _MergedSet) else item for item in pending[key])
        pending.clear()

    for op in ops:
        key = _document_key(op)
        if key is None:
            flush()
            out.append(op)
            continue
        writes = pending.setdefault(key, [])
        merged = _MergedSet.of(op)
        previous = writes[-1] if writes else None
        if merged is None:
            writes.append(op)
        elif not (isinstance(previous, _MergedSet) and previous.absorb(merged)):
            writes.append(merged)
    flush()
    return out


def _document_key(op: WriteOp) -> tuple[str, Hashable] | None:
    """(collection, _id) for a write of exactly one document named by its _id, else None."""
    if op.kind not in ("update", "replace", "delete") or len(op.filter) != 1 or "_id" not in op.filter:
        return None
    try:
        return op.collection, _tagged(op.filter["_id"])
    except _Unmergeable:
        return None


def _tagged(value: Any) -> Hashable:
    """A hashable stand-in equal only for values of the same type and value: 1, 1.0 and True are
    different elements to MongoDB's type-aware comparison more often than Python's equality says."""
    if isinstance(value, dict):
        return ("dict", tuple((k, _tagged(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(_tagged(v) for v in value))
    try:
        hash(value)
    except TypeError:
        raise _Unmergeable from None
    return (type(value).__name__, value)


class _MergedSet:
    """One document's `$set` writes merged into one: the paths with their values, in order."""

    def __init__(self, op: WriteOp, assignments: dict[_Path, Any], conditions: dict[Hashable, Any]) -> None:
        self.first = op
        self.count = 1
        self.assignments = assignments
        # tagged conditions -> the conditions as written (field -> value)
        self.conditions = conditions

    @classmethod
    def of(cls, op: WriteOp) -> _MergedSet | None:
        if op.kind != "update" or op.upsert or not isinstance(op.update, dict) or set(op.update) != {"$set"}:
            return None
        try:
            by_name = _filters_by_name(op.array_filters)
            conditions: dict[Hashable, Any] = {}
            assignments: dict[_Path, Any] = {}
            for key, value in op.update["$set"].items():
                path = []
                for part in key.split("."):
                    if part.startswith("$"):
                        name = part[2:-1] if part.startswith("$[") and part.endswith("]") else ""
                        if name not in by_name:
                            raise _Unmergeable  # `$`, `$[]`, or a filter not given
                        written = by_name[name]
                        tagged = tuple(sorted((f, _tagged(v)) for f, v in written.items()))
                        conditions[tagged] = written
                        path.append(("element", tagged))
                    else:
                        path.append(("field", part))
                assignments[tuple(path)] = value
        except _Unmergeable:
            return None
        return cls(op, assignments, conditions)

    def absorb(self, later: _MergedSet) -> bool:
        """Take `later`'s assignments, if no path of it can meet one of these; else False."""
        for path in later.assignments:
            if not all(_apart_or_same(path, mine) for mine in self.assignments):
                return False
        for path, value in later.assignments.items():
            self.assignments[path] = value  # the same path over the same elements: the later value
        self.conditions.update(later.conditions)
        self.count += 1
        return True

    def build(self) -> WriteOp:
        if self.count == 1:
            return self.first
        names: dict[Hashable, str] = {}
        assignments: dict[str, Any] = {}
        for path, value in self.assignments.items():
            parts = []
            for kind, what in path:
                if kind == "field":
                    parts.append(what)
                else:
                    parts.append(f"$[{names.setdefault(what, f'f{len(names)}')}]")
            assignments[".".join(parts)] = value
        filters = tuple(
            {f"{name}.{field}": value for field, value in self.conditions[tagged].items()}
            for tagged, name in names.items()
        )
        return WriteOp(self.first.collection, "update", self.first.filter, {"$set": assignments}, filters)


def _filters_by_name(array_filters: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """identifier -> {field: value} for equality filters like {'e.id': 5, 'e.line': 2}."""
    by_name: dict[str, dict[str, Any]] = {}
    for array_filter in array_filters:
        names = set()
        fields: dict[str, Any] = {}
        for key, value in array_filter.items():
            name, dot, field = key.partition(".")
            if (
                not dot
                or not field
                or "." in field
                or (isinstance(value, dict) and any(str(k).startswith("$") for k in value))
            ):
                raise _Unmergeable  # an operator or a nested path: not a plain key match
            names.add(name)
            fields[field] = value
        if len(names) != 1 or next(iter(names)) in by_name:
            raise _Unmergeable
        by_name[next(iter(names))] = fields
    return by_name


def _apart_or_same(a: _Path, b: _Path) -> bool:
    """True when paths `a` and `b` write different places, or exactly the same one."""
    for (kind_a, what_a), (kind_b, what_b) in zip(a, b, strict=False):
        if (kind_a, what_a) == (kind_b, what_b):
            continue
        if kind_a == kind_b == "field":
            return True
        # The same key fields with other values: other elements. Anything else may meet.
        return kind_a == kind_b == "element" and [f for f, _ in what_a] == [f for f, _ in what_b]
    return len(a) == len(b)  # equal; a prefix of the other would conflict
