"""No function in migrator/ has a cyclomatic complexity above 20 (docs/architecture.md, "Function
complexity"), unless EXCEPTIONS names it with the reason.

Measured with radon's own API (`radon.complexity.cc_visit`), as `radon cc -n D migrator` does, and
closures included (a closure is a function of its own to read). An entry of EXCEPTIONS that no
longer exists or no longer exceeds the limit fails too, so the list cannot go stale: remove the
entry when its function is split. The last test proves the check catches what it forbids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class, Function

PACKAGE = Path(__file__).resolve().parents[2] / "migrator"
LIMIT = 20

# "module:qualname" -> why it may exceed LIMIT for now.
EXCEPTIONS: dict[str, str] = {}


def _functions(blocks: Iterable[object], prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualname, complexity) of every function, method and closure among radon's blocks."""
    for block in blocks:
        if isinstance(block, Function):
            name = prefix + block.fullname
            yield name, block.complexity
            yield from _functions(block.closures, name + ".")
        elif isinstance(block, Class):
            # cc_visit lists a top-level class's methods beside it; nested classes only here.
            yield from _nested_classes(block, prefix)


def _nested_classes(cls: Class, prefix: str) -> Iterator[tuple[str, int]]:
    inner_prefix = prefix + cls.name + "."
    for inner in cls.inner_classes:
        yield from _functions(inner.methods, inner_prefix)
        yield from _nested_classes(inner, inner_prefix)


def over_limit(source: str, module: str) -> dict[str, int]:
    """Each function of `source` above LIMIT, as "module:qualname" -> complexity."""
    return {f"{module}:{name}": c for name, c in _functions(cc_visit(source)) if c > LIMIT}


def problems(found: dict[str, int], exceptions: dict[str, str]) -> list[str]:
    """What fails the check: functions above LIMIT not excepted, and stale exceptions."""
    out = [
        f"{name}: complexity {c} > {LIMIT}; split it (or, with a reason, add it to EXCEPTIONS)"
        for name, c in sorted(found.items())
        if name not in exceptions
    ]
    out += [
        f"{name}: in EXCEPTIONS but no longer above {LIMIT} (or gone); remove the entry"
        for name in sorted(exceptions)
        if name not in found
    ]
    return out


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_function_above_the_limit() -> None:
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found.update(over_limit(path.read_text(encoding="utf-8"), _module(path)))
    failures = problems(found, EXCEPTIONS)
    assert not failures, "\n".join(failures)


def test_every_exception_says_why() -> None:
    assert all(reason.strip() for reason in EXCEPTIONS.values())


def _branches(indent: int) -> str:
    """A body of LIMIT + 1 ifs: complexity LIMIT + 2."""
    pad = " " * indent
    return "\n".join(f"{pad}if x == {i}:\n{pad}    return {i}" for i in range(LIMIT + 1))


_SAMPLE = f"""
def simple(x):
    return x


class Outer:
    def method(self, x):
{_branches(8)}

    class Inner:
        def method(self, x):
{_branches(12)}


def outer(x):
    def closure(x):
{_branches(8)}

    return closure
"""


def test_the_check_catches_what_it_forbids() -> None:
    found = over_limit(_SAMPLE, "m")
    assert found == {
        "m:Outer.method": LIMIT + 2,
        "m:Outer.Inner.method": LIMIT + 2,
        "m:outer.closure": LIMIT + 2,
    }
    assert len(problems(found, {})) == 3
    excepted = {name: "why" for name in found}
    assert problems(found, excepted) == []
    stale = problems(found, {**excepted, "m:simple": "why", "m:gone": "why"})
    assert [p.split(":", 2)[1] for p in stale] == ["gone", "simple"]
