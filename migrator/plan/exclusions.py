"""Plans that differ only by excluded columns that no longer exist: the same documents.

A run refuses to resume under a changed plan ("resuming would mix two mappings"), recognised by
the plan's digest. An `exclude` entry naming a column that has been dropped since excludes
nothing, so removing it from the plan changes no document: the run must accept that edit
(docs/architecture.md, "Schema changes"). The run records only the digest, not the plan, so the
recorded plan is searched for: the current plan with the dropped columns put back into its
`exclude` lists, each at every place it may have stood.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# Variants tried at most: a plan edit that is more than a few removed exclusions is refused
# anyway, and this bounds the work for plans with many dropped columns.
MAX_VARIANTS = 20_000


def with_gone_exclusions(data: dict[str, Any], gone: Mapping[str, set[str]]) -> Iterator[dict[str, Any]]:
    """`data` (a plan as `model_dump(by_alias=True)` gives it) with columns of `gone` (per table
    as `schema.table`: columns dropped since the run started) put back into the `exclude` lists
    of the levels that read that table, in every order and place, the plan itself excepted."""
    levels = list(_levels(data.get("collections") or []))
    choices = [_exclude_choices(level, gone.get(_table(level["from"]), set())) for level in levels]
    for count, combination in enumerate(itertools.product(*choices)):
        if count >= MAX_VARIANTS:
            return
        if all(chosen is level.get("exclude") for chosen, level in zip(combination, levels, strict=True)):
            continue  # the plan as it is
        yield _replaced(data, dict(zip((id(level) for level in levels), combination, strict=True)))


def recorded_plan(
    data: dict[str, Any],
    gone: Mapping[str, set[str]],
    digest: Callable[[dict[str, Any]], str],
    recorded: str,
) -> dict[str, Any] | None:
    """The variant of `data` with dropped columns excluded again whose digest is `recorded`: the
    plan as the run began, which maps the same documents; None when there is none."""
    return next((v for v in with_gone_exclusions(data, gone) if digest(v) == recorded), None)


def _table(name: str) -> str:
    return name if "." in name else f"public.{name}"


def _levels(collections: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for level in collections:
        yield level
        yield from _levels(level.get("embed") or [])


def _exclude_choices(level: dict[str, Any], gone: set[str]) -> list[list[str]]:
    """The level's own exclude list first (the same object), then it with one or more of the
    dropped columns inserted anywhere."""
    exclude: list[str] = level.get("exclude") or []
    candidates = sorted(c for c in gone if c not in exclude)
    choices = [level.get("exclude")]
    for size in range(1, len(candidates) + 1):
        for chosen in itertools.permutations(candidates, size):
            for places in itertools.combinations_with_replacement(range(len(exclude) + 1), size):
                out = list(exclude)
                # Insert from the last place back, so earlier places keep their meaning.
                for column, place in sorted(zip(chosen, places, strict=True), key=lambda p: -p[1]):
                    out.insert(place, column)
                if out not in choices:
                    choices.append(out)
    return choices  # type: ignore[return-value]


def _replaced(data: Any, excludes: dict[int, list[str]]) -> Any:
    """A copy of `data` with each level's `exclude` replaced as `excludes` (by level id) says."""
    if isinstance(data, dict):
        out = {k: _replaced(v, excludes) for k, v in data.items()}
        if id(data) in excludes:
            out["exclude"] = excludes[id(data)]
        return out
    if isinstance(data, list):
        return [_replaced(v, excludes) for v in data]
    return data
