"""Strict plan loader: YAML with positions, ${VAR} expansion, errors located by file, line and key.

Expansion happens on parsed scalar values, not on the raw text, so that a value
cannot inject YAML structure and every error keeps the line of the key it came from.

The work is bounded (docs/architecture.md, "Plan files"): a file over MAX_PLAN_BYTES is refused
before it is parsed, and so is a tree that grows past MAX_NODES values or MAX_CHARS characters
once its aliases are expanded (a "billion laughs" of nested aliases is a few hundred bytes that
expand to hundreds of millions of values). Bytes that are not UTF-8 and characters YAML forbids
(NUL, other control characters) are located by line and column like every other problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from migrator.errors import PlanError, PlanProblem
from migrator.plan.models import PLAN_NAME, Plan

# ${NAME} or ${NAME:-default}; $${ escapes a literal ${.
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}")
# References are swapped for private-use placeholders before parsing, because `{` is a
# flow indicator: `url: ${X}` inside `{...}` would otherwise not be YAML at all.
_OPEN, _CLOSE, _PAD = "\ue000", "\ue001", "\ue002"
_TOKEN = re.compile(f"{_OPEN}([0-9]+){_CLOSE}{_PAD}*")
_Loc = tuple[int | None, int | None]

# A hand-written plan is a few KB; these bounds are orders of magnitude above any real one.
MAX_PLAN_BYTES = 1 << 20
MAX_NODES = 100_000  # values in the tree once aliases are expanded
MAX_CHARS = 16 << 20  # characters of the scalars once aliases are expanded
MAX_DEPTH = 64  # nesting of mappings and sequences
# Characters YAML 1.2 does not allow in a stream (section 5.1): C0 controls other than tab, LF
# and CR, DEL, C1 controls other than NEL, surrogates and the two non-characters U+FFFE/U+FFFF.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def load_plan(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Plan:
    """Read and validate a plan file. Raises PlanError naming file, line and key path."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            # Read one byte past the bound: a larger file is refused without reading it whole.
            data = handle.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        raise PlanError([PlanProblem(str(file), None, None, "", "file not found")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PlanError([PlanProblem(str(file), None, None, "", f"cannot read: {reason}")]) from None
    _check_size(len(data), str(file))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError([_undecodable(data, exc, str(file))]) from None
    return parse_plan(text, file=str(file), env=env)


def _check_size(size: int, file: str) -> None:
    if size > MAX_PLAN_BYTES:
        raise PlanError(
            [
                PlanProblem(
                    file, None, None, "", f"the file is too large for a plan (over {MAX_PLAN_BYTES:,} bytes)"
                )
            ]
        )


def _undecodable(data: bytes, exc: UnicodeDecodeError, file: str) -> PlanProblem:
    """Where the first byte that is not UTF-8 sits: line, and column in characters."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    return PlanProblem(
        file,
        line,
        column,
        "",
        f"not valid UTF-8: byte 0x{data[exc.start]:02x} (a plan file is UTF-8 text; convert it, "
        "e.g. iconv -f latin1 -t utf-8)",
    )


def _check_characters(text: str, file: str) -> None:
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    at = found.start()
    line = text.count("\n", 0, at) + 1
    column = at - text.rfind("\n", 0, at)
    code = ord(found.group(0))
    name = " (a NUL byte)" if code == 0 else ""
    raise PlanError(
        [PlanProblem(file, line, column, "", f"YAML does not allow the character U+{code:04X}{name}")]
    )


def parse_plan(text: str, *, file: str = "<plan>", env: Mapping[str, str] | None = None) -> Plan:
    """Validate plan text. `file` names the origin in errors; its stem is the default plan name."""
    environ = os.environ if env is None else env
    _check_size(len(text.encode("utf-8", errors="surrogatepass")), file)
    _check_characters(text, file)
    references: list[re.Match[str]] = []
    document = _parse_yaml(_hide_references(text, references), file)
    if not isinstance(document, CommentedMap):
        kind = "empty" if document is None else type(document).__name__
        line, col = _node_loc(document)
        raise PlanError(
            [PlanProblem(file, line or 1, col or 1, "", f"a plan is a YAML mapping, found {kind}")]
        )

    problems: list[PlanProblem] = []
    try:
        data = _expand(document, _Env(environ, references), file, (), _node_loc(document), problems)
    except _TooLarge as exc:
        raise PlanError([PlanProblem(file, *exc.where, "", exc.reason)]) from None
    if problems:
        raise PlanError(problems)
    assert isinstance(data, dict)
    if not data.get("name"):
        data["name"] = _default_name(file)
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = [_reveal(p, references) for p in _locate(exc, document, file)]
        raise PlanError(problems) from None


def required_variables(text: str) -> list[str]:
    """Names of the ${NAME} references in plan text that have no default, in order of first
    appearance (`$${` escapes excluded): what the environment must supply."""
    names = [m.group(1) for m in _VAR.finditer(text) if m.group(1) and m.group(2) is None]
    return list(dict.fromkeys(names))


class _TooLarge(Exception):
    def __init__(self, where: _Loc, reason: str) -> None:
        self.where = where
        self.reason = reason


class _Env:
    """What expansion reads (the environment, the hidden references) and what it has spent."""

    def __init__(self, environ: Mapping[str, str], references: list[re.Match[str]]) -> None:
        self.environ = environ
        self.references = references
        self.nodes = 0
        self.chars = 0
        # The top-level key being expanded: an alias keeps the line of its anchor, so this is
        # where a refusal points (the key whose value grew too large), not inside the anchor.
        self.top: _Loc | None = None

    def spend(self, where: _Loc, depth: int, chars: int = 0) -> None:
        """Count one value of the expanded tree; stop at the first one past a bound, where it is."""
        self.nodes += 1
        self.chars += chars
        if depth > MAX_DEPTH:
            raise _TooLarge(self.top or where, f"the plan nests deeper than {MAX_DEPTH} levels")
        if self.nodes > MAX_NODES or self.chars > MAX_CHARS:
            raise _TooLarge(
                self.top or where,
                f"the plan is too large once its aliases (*name) are expanded: over {MAX_NODES:,} values "
                f"or {MAX_CHARS:,} characters (aliases that repeat aliases multiply)",
            )


def _hide_references(text: str, references: list[re.Match[str]]) -> str:
    def hide(match: re.Match[str]) -> str:
        references.append(match)
        token = f"{_OPEN}{len(references) - 1}{_CLOSE}"
        # Padding keeps columns, hence error positions, unchanged where it can.
        return token + _PAD * max(0, len(match.group(0)) - len(token))

    return _VAR.sub(hide, text)


def _reveal(problem: PlanProblem, references: list[re.Match[str]]) -> PlanProblem:
    """Put the user's ${...} text back where a placeholder would show in a message."""

    def back(token: re.Match[str]) -> str:
        return references[int(token.group(1))].group(0)

    return PlanProblem(
        problem.file,
        problem.line,
        problem.column,
        _TOKEN.sub(back, problem.key_path),
        _TOKEN.sub(back, problem.message),
    )


def _default_name(file: str) -> str:
    stem = Path(file).stem
    # A file name that is not a valid plan name is cleaned rather than refused: the
    # user never wrote the name, so an error about it would be a puzzle.
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip("_.-")[:48] or "plan"
    return cleaned if PLAN_NAME.match(cleaned) else "plan"


def _parse_yaml(text: str, file: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        reason = exc.problem or exc.context or "not valid YAML"
        raise PlanError([PlanProblem(file, line, col, "", f"YAML: {reason}")]) from None
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        # ruamel raises a few non-marked errors (bad tags, deep nesting); keep them typed.
        raise PlanError([PlanProblem(file, None, None, "", f"YAML: {type(exc).__name__}")]) from None


def _expand(
    node: Any, env: _Env, file: str, path: tuple[Any, ...], where: _Loc, out: list[PlanProblem]
) -> Any:
    # An alias is the same object in several places; each place counts, as it will be expanded.
    env.spend(where, len(path), len(node) if isinstance(node, str) else 0)
    if isinstance(node, CommentedMap):
        result: dict[Any, Any] = {}
        for key, value in node.items():
            key_where = _key_loc(node, key)
            if not path:
                env.top = key_where
            if not isinstance(key, str):
                out.append(PlanProblem(file, *key_where, _path_text(path), f"key {key!r} is not a string"))
                continue
            result[key] = _expand(value, env, file, (*path, key), key_where, out)
        return result
    if isinstance(node, CommentedSeq):
        return [_expand(item, env, file, (*path, i), _item_loc(node, i), out) for i, item in enumerate(node)]
    if isinstance(node, str):
        return _substitute(node, env, file, path, where, out)
    if node is None or isinstance(node, bool | int | float):
        return node
    # Dates, binary, sets and tagged values have no place in a plan; pydantic rejects
    # them by type, which gives the user a located error rather than a surprise.
    return repr(node) if not isinstance(node, dict | list) else node


def _substitute(
    value: str, env: _Env, file: str, path: tuple[Any, ...], where: _Loc, out: list[PlanProblem]
) -> str:
    def replace(token: re.Match[str]) -> str:
        match = env.references[int(token.group(1))]
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if env.environ.get(name, "") != "":
            return env.environ[name]
        if default is not None:
            return default
        out.append(
            PlanProblem(
                file,
                *where,
                _path_text(path),
                f"environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
            )
        )
        return ""

    return _TOKEN.sub(replace, value)


def _path_text(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _key_loc(node: CommentedMap, key: Any) -> _Loc:
    try:
        line, col = node.lc.key(key)
        return line + 1, col + 1
    except (KeyError, TypeError, AttributeError):
        return _node_loc(node)


def _item_loc(node: CommentedSeq, index: int) -> _Loc:
    try:
        line, col = node.lc.item(index)
        return line + 1, col + 1
    except (KeyError, TypeError, AttributeError):
        return _node_loc(node)


def _node_loc(node: Any) -> _Loc:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None, None
    return lc.line + 1, lc.col + 1


def _find(document: Any, loc: tuple[Any, ...]) -> tuple[_Loc, tuple[Any, ...]]:
    """Walk the YAML tree along a pydantic error location; return the best position found
    and the part of the path that exists in the file."""
    node = document
    best: _Loc = _node_loc(document)
    walked: list[Any] = []
    for part in loc:
        if isinstance(node, CommentedMap) and isinstance(part, str):
            key = "from" if part == "from_" else "as" if part == "as_" else part
            if key not in node:
                break
            best = _key_loc(node, key)
            walked.append(key)
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            best = _item_loc(node, part)
            walked.append(part)
            node = node[part]
        else:
            # pydantic adds union member names ("str", "list[str]") to locations; skip them.
            continue
    return best, tuple(walked)


def _locate(exc: ValidationError, document: CommentedMap, file: str) -> list[PlanProblem]:
    problems: list[PlanProblem] = []
    by_path: dict[str, PlanProblem] = {}
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(error["loc"])
        (line, col), walked = _find(document, loc)
        key_path = _path_text(walked)
        kind = error["type"]
        if kind == "extra_forbidden":
            message = f"unknown key '{walked[-1] if walked else loc[-1]}'"
        elif kind == "missing":
            missing = loc[-1]
            missing = "from" if missing == "from_" else "as" if missing == "as_" else missing
            key_path = _path_text((*walked, missing))
            message = f"required key '{missing}' is missing"
        else:
            # pydantic prefixes our own ValueErrors with "Value error, "; the rest is ours.
            message = str(error["msg"]).removeprefix("Value error, ")
        earlier = by_path.get(key_path)
        if earlier is not None:
            # A `str | list[str]` field fails once per union member: say it once, with both.
            if message not in earlier.message:
                alternative = message.removeprefix("Input should be ")
                merged = PlanProblem(
                    file, earlier.line, earlier.column, key_path, f"{earlier.message}, or {alternative}"
                )
                problems[problems.index(earlier)] = merged
                by_path[key_path] = merged
            continue
        problem = PlanProblem(file, line, col, key_path, message)
        by_path[key_path] = problem
        problems.append(problem)
    return problems
